"""Validate one raw object: valid rows to the validated zone, invalid rows and bad files to
quarantine, one report per object, then record the object towards its run's completion.

A run is a unit the lake and the ledger agree on: within a run still open, a new version of a
key replaces every row and file the earlier one left; once the run's completion is claimed,
an object arriving for it is refused (a report and a note on the run, nothing else changes).

``handle_object_created`` is the entry point of the validate function: it processes each
object version once (Powertools idempotency keyed on bucket, key and version id or etag).
pandas and awswrangler are imported only when a data object is read, so a manifest event
(and any module importing this one) does not pay for them.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from mlops import lake, runs
from mlops.clients import client
from mlops.contract import NUMERIC_TYPES, Contract, ContractError, load_contract
from mlops.observability import bind_run, logger
from mlops.settings import get_settings
from mlops.validation.completion import (
    Completion,
    PartOutcome,
    RawManifest,
    closed_reason,
    record_bad_manifest,
    record_manifest,
    record_part,
    record_refusal,
    run_item,
)
from mlops.validation.readers import (
    UnreadableObject,
    check_format,
    check_gzip_size,
    declared_gzip_size,
    read_chunks,
    too_large,
)
from mlops.validation.spreadsheet import to_csv

if TYPE_CHECKING:
    import pandas as pd

    from mlops.validation.checks import CheckResult

Outcome = Literal[
    "validated",
    "rejected",
    "unreadable",
    "missing",
    "manifest",
    "bad_manifest",
    "refused",
    "delegated",
]
METRIC_OF_OUTCOME = {
    "validated": "ObjectsValidated",
    "rejected": "ObjectsRejected",
    "unreadable": "UnreadableObjects",
    "missing": "MissingObjects",
    "manifest": "ManifestsRecorded",
    "bad_manifest": "UnreadableObjects",
    "refused": "ObjectsRefused",
    "delegated": "ObjectsDelegated",
}
# Longer than EventBridge's retry window (1 h) and Lambda's async retries, so any
# redelivery of the same object version finds the record.
IDEMPOTENCY_SECONDS = 7 * 24 * 3600
_RUN_PREFIX = re.compile(r"(?:^|/)run_id=[^/]+/")
_INGEST_DATE = re.compile(r"(?:^|/)ingest_date=(\d{4}-\d{2}-\d{2})/")
# CopyObject's limit: a larger unreadable object stays in the raw zone, its report says so.
MAX_COPY_BYTES = 5 * 1024**3
# People open quarantined rows in a spreadsheet: the CSV holds the first this many.
CSV_ROWS = 10_000
# Bytes per ranged GET of a raw object being validated.
RANGE_BYTES = 8 * 1024**2
_ATHENA_TYPES = {
    "int": "bigint",
    "float": "double",
    "string": "string",
    "category": "string",
    "bool": "boolean",
    "datetime": "timestamp",
}


class RawObject(BaseModel):
    """One version of an object in the raw zone, as an S3 "Object Created" event names it."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str = ""
    size: float | None = None
    event_time: datetime

    @classmethod
    def from_event(cls, event: S3EventNotificationEventBridgeModel) -> RawObject:
        """The object as the event names it; ``resolve_key`` settles a key's encoding."""
        obj = event.detail.object
        version = obj.version_id if obj.version_id not in (None, "", "null") else None
        return cls(
            bucket=event.detail.bucket.name,
            key=obj.key,
            version_id=version,
            etag=obj.etag,
            size=obj.size,
            event_time=event.time,
        )

    @property
    def version(self) -> str:
        """What tells two uploads of the same key apart: the version id, else the etag."""
        return self.version_id or self.etag

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class ObjectResult(BaseModel):
    """What validating one object did (also the response stored for idempotent replays)."""

    outcome: Outcome
    metric: str
    run_id: str
    dataset: str
    key: str
    version: str
    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    reason: str | None = None
    report_key: str | None = None
    run_complete: bool = False
    run_emitted: bool = False
    replayed: bool = False


def handle_object_created(
    event: S3EventNotificationEventBridgeModel, lambda_context: Any = None
) -> ObjectResult:
    """Validate the object an event names, once per object version."""
    obj = resolve_key(RawObject.from_event(event))
    if not obj.version:
        obj = _with_current_version(obj)
    settings = get_settings()
    config = IdempotencyConfig(
        expires_after_seconds=IDEMPOTENCY_SECONDS, response_hook=_mark_replayed
    )
    if lambda_context is not None:
        # Lets a crashed attempt's in-progress record expire when its Lambda would have.
        config.register_lambda_context(lambda_context)
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.require("idempotency_table"), boto3_client=client("dynamodb")
    )
    once = idempotent_function(
        data_keyword_argument="identity", persistence_store=persistence, config=config
    )(_validate_once)
    identity = {"bucket": obj.bucket, "key": obj.key, "version": obj.version}
    return ObjectResult.model_validate(once(identity=identity, obj=obj))


def key_candidates(key: str) -> list[str]:
    """The object keys an event's ``key`` may stand for: itself, then its form-decoded reading.

    S3 URL-encodes the key of a classic event notification (``Records[].s3.object.key``:
    "red flower.jpg" arrives as "red+flower.jpg"). For its EventBridge events AWS documents
    no encoding of ``detail.object.key``; taken as is, "a+b c.csv" is "a+b c.csv", which
    ``unquote_plus`` would turn into "a b c.csv". A key that decoding leaves unchanged (no
    ``%`` and no ``+``) has one reading.
    """
    decoded = unquote_plus(key)
    return [key] if decoded == key else [key, decoded]


def resolve_key(obj: RawObject) -> RawObject:
    """``obj`` under the key that names the event's object, whichever way the key was encoded.

    The literal key comes first; the decoded one is taken only when the literal key does not
    name this object version (or, in an unversioned bucket, an object with the event's etag).
    When neither exists any more, the key stays as sent and the object is recorded missing.
    """
    candidates = key_candidates(obj.key)
    if len(candidates) == 1:
        return obj
    for key in candidates:
        if _names_the_object(obj, key):
            if key != obj.key:
                logger.info("event key was URL-encoded", extra={"sent": obj.key, "key": key})
            return obj.model_copy(update={"key": key})
    return obj


def _names_the_object(obj: RawObject, key: str) -> bool:
    params = {"Bucket": obj.bucket, "Key": key}
    if obj.version_id:
        params["VersionId"] = obj.version_id
    try:
        head = client("s3").head_object(**params)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        # A version id of another key: 404 (NoSuchVersion), or 400 if S3 finds it malformed.
        if code in ("404", "NoSuchKey", "NoSuchVersion") or (
            obj.version_id and code in ("400", "InvalidArgument")
        ):
            return False
        raise
    return bool(obj.version_id) or not obj.etag or head["ETag"].strip('"') == obj.etag


def _with_current_version(obj: RawObject) -> RawObject:
    """Fill in the version of an event that names none (moto sends ``eTag``, not ``etag``).

    Without it a changed re-upload of the same key would look like a duplicate.
    """
    try:
        head = client("s3").head_object(Bucket=obj.bucket, Key=obj.key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return obj  # gone: validate_object records it as missing
        raise
    version = head.get("VersionId")
    return obj.model_copy(
        update={
            "version_id": version if version not in (None, "null") else None,
            "etag": head["ETag"].strip('"'),
        }
    )


def _validate_once(identity: dict[str, str], obj: RawObject) -> dict[str, Any]:
    return validate_object(obj).model_dump(mode="json")


def _mark_replayed(response: Any, data_record: Any) -> Any:
    if isinstance(response, dict):
        response = response | {"replayed": True}
    return response


def validate_object(obj: RawObject) -> ObjectResult:
    """Validate one object version (not idempotent by itself: see ``handle_object_created``).

    An object of a run that is already complete is refused before anything is read or
    written; one of an open run replaces what an earlier version of its key produced.
    """
    dataset = lake.dataset_of_key(obj.key) or "unknown"
    run_id = runs.run_id_for_object(obj.key, obj.version)
    bind_run(run_id, dataset=dataset, object_key=obj.key)
    run = run_item(run_id)
    closed = closed_reason(run, owner=f"{obj.key}#{obj.version}")
    if closed:
        return refuse(obj, dataset, run_id, closed)
    if obj.key.rsplit("/", 1)[-1] == lake.MANIFEST:
        return _record_manifest(obj, dataset, run_id)

    # One partition per run: the key's date, else the date its first object was given, so a
    # re-upload on another day replaces its rows instead of adding a second partition.
    match = _INGEST_DATE.search(obj.key)
    ingest_date = (
        match.group(1) if match else run.get("ingest_date") or obj.event_time.strftime("%Y-%m-%d")
    )
    contract: Contract | None = None
    try:
        if lake.dataset_of_key(obj.key) is None:
            raise ContractError(f"key {obj.key} does not name a dataset")
        # Before anything is read: an object of another kind is rejected by its name alone.
        check_format(obj.key)
        contract = load_contract(dataset)
        settings = get_settings()
        glue_min = settings.validation_glue_min_bytes
        limit = settings.max_decompressed_bytes
        if glue_min is not None and obj.size and obj.size > min(glue_min, limit):
            # More than one invocation's time, or than the function reads at all: the Glue
            # job validates it with the same checks.
            from mlops.validation.delegation import delegate

            return delegate(obj, dataset, run_id, ingest_date, contract)
        if obj.size and obj.size > limit:
            # Not even fetched: more bytes than validation would decode.
            raise too_large(f"object of {int(obj.size):,} bytes", limit)
        stream = _open(obj)
        if stream is None:
            forget_earlier(obj, dataset, run_id, ingest_date)
            return finish(
                obj, dataset, run_id, ingest_date, contract, "missing", "object no longer exists"
            )
        return _validate_data(obj, stream, dataset, run_id, ingest_date, contract)
    except (ContractError, UnreadableObject) as exc:
        # Retrying cannot fix the object (or a missing/broken contract): record, do not raise.
        return unreadable(obj, dataset, run_id, ingest_date, contract, str(exc))


def _read(obj: RawObject) -> bytes | None:
    try:
        return client("s3").get_object(**_version_params(obj))["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "NoSuchVersion"):
            return None
        raise


def _open(obj: RawObject) -> RangedObject | None:
    """The object version to read a range at a time, or None when it no longer exists."""
    params = _version_params(obj)
    try:
        head = client("s3").head_object(**params)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NoSuchVersion"):
            return None
        raise
    return RangedObject(params, int(head["ContentLength"]))


def _version_params(obj: RawObject) -> dict[str, str]:
    params = {"Bucket": obj.bucket, "Key": obj.key}
    if obj.version_id:
        params["VersionId"] = obj.version_id
    return params


class RangedObject(io.RawIOBase):
    """An S3 object version read with one ranged GET per read.

    A chunk is checked and written between reads, which can take longer than S3 keeps an
    idle streaming GET open; each range is a request of its own instead. Buffered by
    ``reader()`` so a range is about ``RANGE_BYTES``, whatever size the reader asks for.
    """

    def __init__(self, params: dict[str, str], size: int) -> None:
        self._params = params
        self.size = size
        self._position = 0

    def again(self) -> RangedObject:
        """The same object from its first byte."""
        return RangedObject(self._params, self.size)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._position >= self.size:
            return 0
        last = min(self._position + len(buffer), self.size) - 1
        body = self.range(self._position, last)
        buffer[: len(body)] = body
        self._position += len(body)
        return len(body)

    def range(self, first: int, last: int) -> bytes:
        """Bytes ``first`` to ``last``, both included (HTTP's Range)."""
        response = client("s3").get_object(**self._params, Range=f"bytes={first}-{last}")
        return response["Body"].read()

    def reader(self) -> io.BufferedReader:
        return io.BufferedReader(self, buffer_size=RANGE_BYTES)


def _validate_data(
    obj: RawObject,
    stream: RangedObject,
    dataset: str,
    run_id: str,
    ingest_date: str,
    contract: Contract,
) -> ObjectResult:
    """Check and write the object a chunk at a time; judge it whole at the end.

    An object of one chunk (every scraper part) is judged before anything is written. One of
    more is written as it is read, so memory stays that of a chunk; if the whole object is
    then rejected, it is read a second time and every row goes to quarantine, as it would
    have read whole. Duplicate keys are found within a chunk; preparation drops those that
    repeat across chunks (and counts them), as it does across the objects of a run.
    """
    from mlops.validation.checks import Tally

    settings = get_settings()
    prefix = forget_earlier(obj, dataset, run_id, ingest_date)
    tally = Tally(contract)
    quarantined_csv: list[pd.DataFrame] = []
    chunks = _checked_chunks(obj, stream, contract, judge=True)
    for result in chunks:
        tally.add(result)
        append_rows(obj, result, dataset, run_id, ingest_date, contract, prefix, settings)
        _keep_for_csv(quarantined_csv, result)
        del result  # not kept while the next chunk is read
    # A lone chunk was judged as the whole object by its checks; more are judged together.
    rejection = tally.rejection()
    if rejection and not tally.whole:
        prefix = forget_earlier(obj, dataset, run_id, ingest_date)
        quarantined_csv = []
        for result in _checked_chunks(obj, stream.again(), contract, reject=rejection):
            append_rows(obj, result, dataset, run_id, ingest_date, contract, prefix, settings)
            _keep_for_csv(quarantined_csv, result)
            del result
    put_quarantined_csv(obj, dataset, run_id, contract, quarantined_csv)

    summary = tally.summary(rejection)
    outcome: Outcome = "rejected" if rejection else "validated"
    report = report_body(obj, dataset, run_id, contract, outcome, rejection)
    report |= summary | {
        "chunks": tally.chunks,
        "duplicate_keys_checked": "across the object"
        if tally.chunks == 1
        else "within each chunk; preparation drops keys repeated across chunks",
    }
    report_key = put_report(dataset, run_id, obj, report)
    logger.info(
        "object validated",
        extra={
            k: report[k] for k in ("rows_in", "rows_valid", "rows_quarantined", "status", "chunks")
        },
    )
    return finish(
        obj,
        dataset,
        run_id,
        ingest_date,
        contract,
        outcome,
        rejection,
        rows=(summary["rows_in"], summary["rows_valid"], summary["rows_quarantined"]),
        report_key=report_key,
    )


def _checked_chunks(
    obj: RawObject,
    stream: RangedObject,
    contract: Contract,
    *,
    judge: bool = False,
    reject: str | None = None,
) -> Iterator[CheckResult]:
    """The object's chunks, each checked; ``judge``: a lone chunk is judged as the object.

    Whatever the reading or the checks raise about the data is ``UnreadableObject``; AWS
    errors (reading a range) still raise as they are, to be retried.
    """
    import pyarrow as pa

    from mlops.validation.checks import check_frame, expected_columns

    settings = get_settings()
    try:
        limit = settings.max_decompressed_bytes
        if obj.key.lower().endswith(".gz") and stream.size >= 18:
            trailer = stream.range(stream.size - 4, stream.size - 1)
            if declared_gzip_size(trailer) > limit:
                check_gzip_size(stream.again().reader(), limit)
        chunks = read_chunks(
            stream.reader(),
            obj.key,
            max_bytes=limit,
            chunk_bytes=settings.validation_chunk_bytes,
        )
        first = True
        for read in chunks:
            if first:
                found = sorted(map(str, read.frame.columns))
                if not set(found) & expected_columns(contract):
                    raise UnreadableObject(f"none of the contract's columns in {found}")
            if read.bad_lines:
                logger.warning(
                    "bad lines quarantined",
                    extra={"bad_lines": len(read.bad_lines), "first": read.bad_lines[0].line},
                )
            # Neither the chunk nor its check stays referenced here while the caller writes it
            # and the next chunk is read: a local held across the yield would keep it alive.
            box = [
                check_frame(
                    read.frame,
                    contract,
                    bad_lines=read.bad_lines,
                    missing_values=read.text_format,
                    judge=judge and first and read.last,
                    reject=reject,
                )
            ]
            del read
            first = False
            yield box.pop()
    except UnreadableObject:
        raise
    except (TypeError, ValueError, ArithmeticError, pa.ArrowException) as exc:
        # Data this code did not foresee (a type it cannot compare, say) is the object's
        # problem, not a transient one: rejected with the error as its reason, never a retry
        # loop into the dead-letter queue. AWS errors still raise.
        logger.exception("object could not be validated")
        raise UnreadableObject(
            f"could not be validated: {type(exc).__name__}: {exc}"[:1000]
        ) from exc


def append_rows(
    obj: RawObject,
    result: CheckResult,
    dataset: str,
    run_id: str,
    ingest_date: str,
    contract: Contract,
    prefix: str,
    settings: Any,
    *,
    catalog: bool = True,
) -> list[str]:
    """Add one checked chunk's rows to the validated and quarantine zones; the valid columns.

    ``catalog``: register the validated rows' partition in the Glue table too (Spark pieces
    written side by side leave it to their driver: concurrent registrations collide).
    """
    import awswrangler as wr

    ingest_time = obj.event_time.astimezone(timezone.utc).replace(tzinfo=None)
    columns: list[str] = []
    if result.rows_valid:
        valid = with_lineage(result.valid, obj, run_id, ingest_time)
        valid["ingest_date"] = ingest_date
        columns = [str(c) for c in valid.columns]
        registered = (
            {"database": settings.require("glue_database"), "table": dataset} if catalog else {}
        )
        wr.s3.to_parquet(
            valid,
            path=lake.validated_path(settings.require("validated_bucket"), dataset),
            dataset=True,
            mode="append",
            partition_cols=["ingest_date", "run_id"],
            dtype=athena_types(contract, valid),
            filename_prefix=prefix,
            **registered,
        )
    if result.rows_quarantined:
        wr.s3.to_parquet(
            with_lineage(result.invalid, obj, run_id, ingest_time),
            path=lake.quarantine_rows_path(settings.require("quarantine_bucket"), dataset),
            dataset=True,
            mode="append",
            partition_cols=["run_id"],
            filename_prefix=prefix,
        )
    return columns


def _keep_for_csv(kept: list[pd.DataFrame], result: CheckResult) -> None:
    room = CSV_ROWS - sum(map(len, kept))
    if room > 0 and result.rows_quarantined:
        kept.append(result.invalid.head(room))


def put_quarantined_csv(
    obj: RawObject, dataset: str, run_id: str, contract: Contract, kept: list[pd.DataFrame]
) -> None:
    """The first ``CSV_ROWS`` quarantined rows as CSV for people (formulas neutralised)."""
    if not kept:
        return
    import pandas as pd

    numeric = [name for name, spec in contract.columns.items() if spec.type in NUMERIC_TYPES]
    client("s3").put_object(
        Bucket=get_settings().require("quarantine_bucket"),
        Key=lake.quarantined_rows_csv_key(dataset, run_id, obj.key),
        Body=to_csv(pd.concat(kept, ignore_index=True).head(CSV_ROWS), numeric_columns=numeric),
        ContentType="text/csv; charset=utf-8",
    )


def forget_earlier(obj: RawObject, dataset: str, run_id: str, ingest_date: str) -> str:
    """Delete the rows an earlier version (or attempt) of this key left in its run; the prefix.

    awswrangler appends a random suffix to file names; a prefix of our own per source key
    lets a retry or a changed re-upload replace its earlier files instead of adding to them.
    """
    prefix = "src-" + hashlib.sha256(obj.key.encode()).hexdigest()[:16] + "-"
    forget_files(dataset, run_id, ingest_date, prefix)
    quarantine = get_settings().require("quarantine_bucket")
    s3 = client("s3")
    s3.delete_object(Bucket=quarantine, Key=lake.quarantined_rows_csv_key(dataset, run_id, obj.key))
    # What an earlier, unreadable version of this key left: it no longer stands for the key.
    s3.delete_object(Bucket=quarantine, Key=lake.quarantine_object_key(dataset, run_id, obj.key))
    return prefix


def forget_files(dataset: str, run_id: str, ingest_date: str, prefix: str) -> None:
    """Delete the run's validated and quarantined row files whose names start with ``prefix``."""
    settings = get_settings()
    _delete_prefix(
        settings.require("validated_bucket"),
        f"{dataset}/ingest_date={ingest_date}/run_id={run_id}/{prefix}",
    )
    _delete_prefix(
        settings.require("quarantine_bucket"), f"rows/{dataset}/run_id={run_id}/{prefix}"
    )


def _delete_prefix(bucket: str, prefix: str) -> None:
    s3 = client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def with_lineage(
    frame: pd.DataFrame, obj: RawObject, run_id: str, ingest_time: datetime
) -> pd.DataFrame:
    frame = frame.copy()
    frame["source_object"] = obj.uri
    frame["ingest_time"] = ingest_time
    frame["run_id"] = run_id
    return frame


def athena_types(contract: Contract, frame: pd.DataFrame) -> dict[str, str]:
    types = {name: _ATHENA_TYPES[spec.type] for name, spec in contract.columns.items()}
    types |= {name: "string" for name in contract.lineage_columns if name in frame.columns}
    types |= {"source_object": "string", "ingest_time": "timestamp"}
    return types


def report_body(
    obj: RawObject,
    dataset: str,
    run_id: str,
    contract: Contract | None,
    outcome: Outcome,
    reason: str | None,
) -> dict[str, Any]:
    return {
        "status": outcome,
        "reason": reason,
        "dataset": dataset,
        "run_id": run_id,
        "source": {
            "bucket": obj.bucket,
            "key": obj.key,
            "version_id": obj.version_id,
            "etag": obj.etag,
            "size": obj.size,
        },
        "contract": None
        if contract is None
        else {"name": contract.name, "version": contract.version},
        "validated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def put_report(
    dataset: str, run_id: str, obj: RawObject, report: dict[str, Any], key: str | None = None
) -> str:
    key = key or lake.validation_report_key(dataset, run_id, obj.key)
    client("s3").put_object(
        Bucket=get_settings().require("quarantine_bucket"),
        Key=key,
        Body=json.dumps(report, default=str, indent=1).encode(),
        ContentType="application/json",
    )
    return key


def unreadable(
    obj: RawObject,
    dataset: str,
    run_id: str,
    ingest_date: str,
    contract: Contract | None,
    reason: str,
) -> ObjectResult:
    """Keep a copy of the whole object in quarantine with a report; never retried."""
    forget_earlier(obj, dataset, run_id, ingest_date)
    quarantine = get_settings().require("quarantine_bucket")
    source = _version_params(obj)
    copied = not (obj.size and obj.size > MAX_COPY_BYTES)
    if copied:
        client("s3").copy_object(
            CopySource=source,
            Bucket=quarantine,
            Key=lake.quarantine_object_key(dataset, run_id, obj.key),
        )
    report = report_body(obj, dataset, run_id, contract, "unreadable", reason)
    report |= {"rows_in": 0, "rows_valid": 0, "rows_quarantined": 0, "copied": copied}
    report_key = put_report(dataset, run_id, obj, report)
    logger.warning("unreadable object quarantined", extra={"reason": reason})
    return finish(
        obj, dataset, run_id, ingest_date, contract, "unreadable", reason, report_key=report_key
    )


def finish(
    obj: RawObject,
    dataset: str,
    run_id: str,
    ingest_date: str,
    contract: Contract | None,
    outcome: Outcome,
    reason: str | None,
    *,
    rows: tuple[int, int, int] = (0, 0, 0),
    report_key: str | None = None,
) -> ObjectResult:
    rows_in, rows_valid, rows_quarantined = rows
    part = PartOutcome(
        key=obj.key,
        version_id=obj.version_id,
        outcome=outcome,
        rows_in=rows_in,
        rows_valid=rows_valid,
        rows_quarantined=rows_quarantined,
        reason=reason,
    )
    completion = record_part(
        run_id,
        dataset,
        part,
        owner=f"{obj.key}#{obj.version}",
        contract_version=None if contract is None else contract.version,
        ingest_date=ingest_date,
        alone=not _RUN_PREFIX.search(obj.key),
    )
    return _result(obj, dataset, run_id, outcome, completion, part=part, report_key=report_key)


def refuse(obj: RawObject, dataset: str, run_id: str, reason: str) -> ObjectResult:
    """An object version arriving into a complete run: a report and a ledger note, no rows.

    The zones and the run's counts stay those of the versions the run was completed with.
    """
    report = report_body(obj, dataset, run_id, None, "refused", reason)
    key = lake.refusal_report_key(dataset, run_id, obj.key, obj.version)
    put_report(dataset, run_id, obj, report, key)
    record_refusal(run_id, obj.key, obj.version, reason)
    logger.warning("object refused: its run is complete", extra={"reason": reason})
    return _result(obj, dataset, run_id, "refused", None, reason=reason, report_key=key)


def _record_manifest(obj: RawObject, dataset: str, run_id: str) -> ObjectResult:
    body = _read(obj)
    try:
        if body is None:
            raise ValueError("manifest no longer exists")
        manifest = RawManifest.model_validate_json(body)
        if manifest.run_id != run_id:
            raise ValueError(f"manifest names run {manifest.run_id}, its key run {run_id}")
    except (ValidationError, ValueError) as exc:
        # A broken manifest cannot complete its run; record it loudly, do not retry forever.
        reason = f"unreadable manifest: {exc}"
        logger.error(reason)
        record_bad_manifest(run_id, dataset, obj.key, reason)
        report = report_body(obj, dataset, run_id, None, "bad_manifest", reason)
        return _result(
            obj,
            dataset,
            run_id,
            "bad_manifest",
            None,
            reason=reason,
            report_key=put_report(dataset, run_id, obj, report),
        )
    completion = record_manifest(manifest, obj.key, owner=f"{obj.key}#{obj.version}")
    return _result(obj, manifest.dataset, run_id, "manifest", completion)


def _result(
    obj: RawObject,
    dataset: str,
    run_id: str,
    outcome: Outcome,
    completion: Completion | None,
    *,
    part: PartOutcome | None = None,
    reason: str | None = None,
    report_key: str | None = None,
) -> ObjectResult:
    return ObjectResult(
        outcome=outcome,
        metric=METRIC_OF_OUTCOME[outcome],
        run_id=run_id,
        dataset=dataset,
        key=obj.key,
        version=obj.version,
        rows_in=part.rows_in if part else 0,
        rows_valid=part.rows_valid if part else 0,
        rows_quarantined=part.rows_quarantined if part else 0,
        reason=part.reason if part else reason,
        report_key=report_key,
        run_complete=bool(completion and completion.complete),
        run_emitted=bool(completion and completion.emitted),
    )
