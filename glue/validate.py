"""Glue 5.0 job (Spark 3.5, Python 3.11): validate one raw object too large for the function.

The validate function hands an object stored over ``VALIDATION_GLUE_MIN_BYTES`` to this job
(``mlops.validation.delegation``). The job runs the function's own code on pieces of it:

* Spark reads the object's lines (a ``.gz`` one decompressed by Hadoop's codec), numbers them
  in the JVM (line numbers in reports and quarantine are the object's) and cuts them into
  pieces of ``--partition_lines`` lines, each checked whole in one partition. A CSV piece
  starts on a record: lines inside a quoted value that spans lines (an odd number of ``"``
  opens or closes one) never begin a piece, and each piece gets the header. A parquet object
  is cut by row groups.
* In ``mapInPandas`` each partition is parsed by ``mlops.validation.readers.read_object`` and
  checked by ``mlops.validation.checks.check_frame``, the function's reader and checks, and
  writes its valid rows to the validated zone and its invalid rows to quarantine, with the
  same lineage columns and file-name prefix (``src-<sha256(key)[:16]>-``) as the function.
  It returns a summary row; nothing else comes back to the driver.
* The driver adds the summaries up in a ``checks.Tally``, as the function adds its chunks, and
  judges the whole object (``min_rows``, ``max_invalid_share``): a rejected object's
  partitions are checked again as rejected (``check_frame(reject=…)``), so its rows end up in
  quarantine exactly as the function leaves a rejected object (passing rows under
  ``object_rejected``). It registers the Glue table partition once, writes the report (the
  function's keys, plus ``validated_by``) and the first 10,000 quarantined rows as CSV, and
  records the part with ``completion.record_part``: run completion, "Run Validated" and the
  lake-vs-ledger reconciliation see the object as if the function had validated it.

Duplicate keys are found within each partition (``check_frame``); a key repeated across two
partitions is left valid and dropped by preparation (counted there as ``duplicates_dropped``),
as the function does across its chunks and preparation across a run's objects. Finding it
here would take a second pass over every typed key (a shuffle of the whole object) for what
preparation catches anyway; the report says so (``duplicate_keys_checked``, ``chunks``).

Failures never lose the object: data the reader or checks cannot handle records it
``unreadable`` with the reason (the job succeeds, as the function would not retry it); any
other error records it ``unreadable`` with the error and re-raises, so the job run FAILS.

Arguments are Glue's ``--KEY value`` pairs, set by ``delegation.job_arguments`` and the job's
DefaultArguments (buckets, ledger table, Glue database). ``--raw_path`` is ``s3://`` on Glue
and a local file when the local cloud stages the object (no s3a connector offline).
"""

from __future__ import annotations

import bisect
import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

REQUIRED = ("raw_path", "bucket", "key", "run_id", "dataset", "ingest_date", "event_time")
# Job arguments that become the settings (environment variables) the shared package reads.
SETTINGS = {
    "validated_bucket": "VALIDATED_BUCKET",
    "quarantine_bucket": "QUARANTINE_BUCKET",
    "artifacts_bucket": "ARTIFACTS_BUCKET",
    "ledger_table": "LEDGER_TABLE",
    "glue_database": "GLUE_DATABASE",
    "event_bus_name": "EVENT_BUS_NAME",
}
# A partition of this many lines is a few tens of MB of text: well within a G.1X worker's
# memory while parsed and checked several times over.
PARTITION_LINES = 200_000
# The function's byte cap (MAX_DECOMPRESSED_BYTES) bounds one invocation; a piece is bounded
# by its lines or row groups instead.
UNCAPPED = 2**62
# Lines with an odd number of quotes open or close a value spanning lines; a file with more
# of them (stray inch marks, say) is cut without regard to them past this many.
MAX_QUOTE_LINES = 1_000_000
SUMMARY = T.StructType(
    [T.StructField("chunk", T.LongType()), T.StructField("summary", T.StringType())]
)
LINES = T.StructType(
    [
        T.StructField("chunk", T.LongType()),
        T.StructField("idx", T.LongType()),
        T.StructField("line", T.StringType()),
    ]
)
# The function's wording for an object it read in several chunks.
DUPLICATE_SCOPE = "within each chunk; preparation drops keys repeated across chunks"


class ValidationJobFailed(RuntimeError):
    """The job cannot run (bad arguments); its message is the job run's ErrorMessage."""


@dataclass(frozen=True)
class JobArgs:
    raw_path: str
    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int
    event_time: str
    run_id: str
    dataset: str
    ingest_date: str
    partition_lines: int
    job_name: str
    job_run_id: str
    environment: dict[str, str]


def parse_args(argv: Sequence[str]) -> JobArgs:
    """Glue-style ``--KEY value`` (or ``--KEY=value``) arguments; unknown keys are ignored."""
    values: dict[str, str] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item.startswith("--"):
            key, eq, value = item[2:].partition("=")
            if not eq and i + 1 < len(items) and not items[i + 1].startswith("--"):
                value = items[i + 1]
                i += 1
            values[key] = value
        i += 1
    missing = [k for k in REQUIRED if not values.get(k)]
    if missing:
        raise ValidationJobFailed(f"missing job arguments: {', '.join('--' + k for k in missing)}")
    environment = {env: values[arg] for arg, env in SETTINGS.items() if values.get(arg)}
    environment.setdefault("POWERTOOLS_SERVICE_NAME", "validate-glue")
    # X-Ray is not there in a Glue job.
    environment.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    return JobArgs(
        raw_path=values["raw_path"],
        bucket=values["bucket"],
        key=values["key"],
        version_id=values.get("version_id") or None,
        etag=values.get("etag", ""),
        size=int(values.get("size") or 0),
        event_time=values["event_time"],
        run_id=values["run_id"],
        dataset=values["dataset"],
        ingest_date=values["ingest_date"],
        partition_lines=int(values.get("partition_lines") or PARTITION_LINES),
        job_name=values.get("JOB_NAME", ""),
        job_run_id=values.get("JOB_RUN_ID", ""),
        environment=environment,
    )


def spark_session() -> SparkSession:
    """Glue's session on Glue; a small local one (2 cores, quiet, no UI) anywhere else."""
    try:
        from awsglue.context import GlueContext  # type: ignore[import-not-found]
        from pyspark.context import SparkContext

        return GlueContext(SparkContext.getOrCreate()).spark_session
    except ImportError:
        pass
    spark = (
        SparkSession.builder.appName("mlops-validate")
        .master(os.environ.get("MLOPS_SPARK_MASTER", "local[2]"))
        .config("spark.driver.memory", os.environ.get("MLOPS_SPARK_DRIVER_MEMORY", "2g"))
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# ------------------------------------------------------------------------------ cutting
def piece_bounds(
    total: int, first: int, size: int, quote_lines: Sequence[int]
) -> list[tuple[int, int, int]]:
    """Where each piece starts, per block of ``size`` lines from ``first``: (block, start,
    before) rows for a join on a line's block, ``(idx - first) // size``.

    A block's piece starts at the block's first line, unless that line continues a quoted value
    spanning lines (the lines after an odd-quote line, up to and including the next one): then
    it starts after the value's last line. A line of the block before that start belongs to the
    piece before (``before``). A piece is named by its first line; blocks whose start moved
    past the object's end have ``start == total`` (none of their lines is at or after it).
    """
    opens = list(quote_lines[0::2])
    closes = list(quote_lines[1::2]) + ([total] if len(quote_lines) % 2 else [])
    bounds: list[tuple[int, int, int]] = []
    previous = -1
    for block, nominal in enumerate(range(first, total, size)):
        start = nominal
        span = bisect.bisect_left(opens, nominal) - 1
        if span >= 0 and opens[span] < nominal <= closes[span]:
            start = min(closes[span] + 1, total)
        bounds.append((block, start, previous))
        if start > previous and start < total:
            previous = start
    return bounds


# --------------------------------------------------------------------------- partitions
def check_partitions(config: dict[str, Any]) -> Callable[[Iterator[pd.DataFrame]], Any]:
    """The ``mapInPandas`` function: each piece read, checked, written; one summary row each."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # Executors are other processes (other hosts on Glue): settings travel in the closure.
        os.environ.update(config["environment"])
        frames = [batch for batch in batches if len(batch)]
        if not frames:
            return
        # A partition holds whole pieces (partitioned by piece), maybe more than one.
        part = pd.concat(frames, ignore_index=True).sort_values(["chunk", "idx"], kind="stable")
        for chunk, piece in part.groupby("chunk", sort=True):
            summary = check_piece(piece.reset_index(drop=True), config)
            yield pd.DataFrame({"chunk": [int(chunk)], "summary": [summary]})

    return run


def check_piece(part: pd.DataFrame, config: dict[str, Any]) -> str:
    """Read, check and write one partition; its summary as JSON."""
    import pyarrow as pa

    from mlops.validation.checks import check_frame
    from mlops.validation.readers import UnreadableObject

    chunk = int(part["chunk"].iloc[0])
    summary: dict[str, Any] = {"chunk": chunk}
    try:
        frame, bad, text = read_piece(part, config)
        if frame is None:
            return json.dumps(summary | _empty())
        # No piece is judged on its own numbers: the driver judges the object (Tally). A
        # rejected object's pieces are checked again as rejected, whatever their numbers.
        result = check_frame(
            frame,
            _contract(config),
            bad_lines=bad,
            missing_values=text,
            judge=False,
            reject=config.get("rejection"),
        )
    except UnreadableObject as exc:
        return json.dumps(summary | {"unreadable": str(exc)})
    except (TypeError, ValueError, ArithmeticError, pa.ArrowException) as exc:
        # As the function does: data this code did not foresee is the object's problem.
        reason = f"could not be validated: {type(exc).__name__}: {exc}"[:1000]
        return json.dumps(summary | {"unreadable": reason})
    valid_columns = _write(result, chunk, config)
    return json.dumps(
        summary
        | result.counts()
        | {"columns": sorted(map(str, frame.columns)), "valid_columns": valid_columns}
    )


def _empty() -> dict[str, Any]:
    return {"rows_in": 0, "rows_valid": 0, "rows_quarantined": 0}


def read_piece(part: pd.DataFrame, config: dict[str, Any]) -> tuple[Any, list[Any], bool]:
    """The piece's frame (None: nothing in it), its bad lines (object line numbers), and
    whether it is text (where missing-value markers apply)."""
    from mlops.validation.readers import BadLine, read_object

    base = config["format"]
    if base == "parquet":
        import pyarrow.parquet as pq

        groups = [int(g) for g in str(part["line"].iloc[0]).split(",")]
        table = _parquet_file(config["path"]).read_row_groups(groups)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        body = buffer.getvalue()
        # The reader's own parquet path (nested columns as JSON text), on these row groups.
        # A piece is bounded by its rows (--partition_lines), not by the function's byte cap.
        read = read_object(body, "piece.parquet", max_bytes=UNCAPPED)
        return read.frame, [], False
    lines = part["line"].tolist()
    if not any(line.strip() for line in lines):
        return None, [], True
    first = int(part["idx"].iloc[0])
    if base == "csv":
        body = (config["header"] + "\n" + "\n".join(lines) + "\n").encode()
        # Line 1 of the piece is the header; its line 2 is the object's line first + 1.
        shift = first - 1
    else:
        body = ("\n".join(lines) + "\n").encode()
        shift = first
    read = read_object(body, f"piece.{base}", max_bytes=UNCAPPED, piece=True)
    bad = [BadLine(b.line + shift, b.reason, b.text) for b in read.bad_lines]
    return read.frame, bad, True


def _parquet_file(path: str) -> Any:
    import pyarrow.parquet as pq

    if path.startswith("s3://"):
        from pyarrow import fs

        # Not from_uri: a key with a space, "?", "#" or "%" is no valid URI, yet a valid key.
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        filesystem = fs.S3FileSystem(**({"region": region} if region else {}))
        return pq.ParquetFile(filesystem.open_input_file(path.removeprefix("s3://")))
    return pq.ParquetFile(path)


def _contract(config: dict[str, Any]) -> Any:
    from mlops.contract import Contract

    return Contract.model_validate(config["contract"])


def _raw_object(config: dict[str, Any]) -> Any:
    from mlops.validation.objects import RawObject

    return RawObject.model_validate(config["object"])


def _write(result: Any, chunk: int, config: dict[str, Any]) -> list[str]:
    """This piece's rows, as the function writes a chunk's (without the catalog: the driver
    registers the partition once); the valid rows' columns."""
    from mlops.settings import get_settings
    from mlops.validation.objects import append_rows, forget_files

    # The piece's number, padded: file names sort in object order (the CSV for people).
    prefix = f"{config['prefix']}{chunk:012d}-"
    # A task Spark runs again (a lost executor) replaces its piece's files, not adds to them.
    forget_files(config["dataset"], config["run_id"], config["ingest_date"], prefix)
    return append_rows(
        _raw_object(config),
        result,
        config["dataset"],
        config["run_id"],
        config["ingest_date"],
        _contract(config),
        prefix,
        get_settings(),
        catalog=False,
    )


# ------------------------------------------------------------------------------- driver
def pieces(spark: SparkSession, path: str, base: str, size: int) -> tuple[Any, str, int]:
    """The object as a DataFrame of (chunk, idx, line), each piece in one partition; the CSV
    header; the number of pieces. Lines are numbered and cut in the JVM: no line goes through
    Python before the piece that holds it is checked."""
    if base == "parquet":
        meta = _parquet_file(path).metadata
        groups: list[list[int]] = [[]]
        rows = 0
        for index in range(meta.num_row_groups):
            if groups[-1] and rows + meta.row_group(index).num_rows > size:
                groups.append([])
                rows = 0
            groups[-1].append(index)
            rows += meta.row_group(index).num_rows
        found = [(i, -1, ",".join(map(str, g))) for i, g in enumerate(groups) if g]
        if not found:
            return None, "", 0
        frame = spark.createDataFrame(found, LINES).repartition(len(found), "chunk")
        return frame, "", len(found)

    numbered = numbered_lines(spark, path).persist()
    total = numbered.count()
    quotes: list[int] = []
    first = 0
    header = ""
    if base == "csv":
        odd = (F.length("line") - F.length(F.regexp_replace("line", '"', ""))) % 2 == 1
        found_quotes = numbered.where(odd).select("idx").limit(MAX_QUOTE_LINES + 1).collect()
        quotes = sorted(row["idx"] for row in found_quotes)
        if len(quotes) > MAX_QUOTE_LINES:
            quotes = []
        # The header is the first record: more than one line if a quoted name spans lines.
        first = 1
        if quotes[:1] == [0]:
            first = (quotes[1] if len(quotes) > 1 else total) + 1
        lines = sorted(numbered.where(F.col("idx") < first).collect(), key=lambda r: r["idx"])
        header = "\n".join(row["line"] for row in lines).lstrip("\ufeff")
    bounds = piece_bounds(total, first, size, quotes)
    count = len({start for _, start, _ in bounds if start < total})
    if not count:
        return None, header, 0
    table = spark.createDataFrame(bounds, "block long, start long, before long")
    block = F.floor((F.col("idx") - first) / size).cast("long")
    frame = (
        numbered.where(F.col("idx") >= first)
        .withColumn("block", block)
        .join(F.broadcast(table), "block")
        .select(
            F.when(F.col("idx") >= F.col("start"), F.col("start"))
            .otherwise(F.col("before"))
            .alias("chunk"),
            "idx",
            "line",
        )
        .repartition(count, "chunk")
    )
    return frame, header, count


def numbered_lines(spark: SparkSession, path: str) -> Any:
    """The object's lines with their 0-based index (``idx``, ``line``), in the object's order.

    Numbered in the JVM by the sequence column pandas-on-Spark's default index uses (Spark 3.4+;
    Glue 5.0 runs 3.5); through ``rdd.zipWithIndex`` (every line through Python) without it.
    """
    text = spark.read.text(path)
    try:
        sequenced = DataFrame(text._jdf.toDF().withSequenceColumn("idx"), spark)
    except Exception:  # py4j's error for a JVM without it: fall back, slower, same numbers
        pairs = text.rdd.map(lambda row: row.value).zipWithIndex()
        return spark.createDataFrame(pairs.map(lambda p: (p[1], p[0])), "idx long, line string")
    return sequenced.select(F.col("idx").cast("long"), F.col("value").alias("line"))


def tally(summaries: list[dict[str, Any]], contract: Any) -> Any:
    """The pieces' summaries added up in object order, as the function adds its chunks."""
    from mlops.validation.checks import Tally

    total = Tally(contract)
    for s in sorted(summaries, key=lambda s: s["chunk"]):
        if s.get("rows_in"):  # else blank lines only
            total.add_counts(s)
    return total


def run_pieces(frame: Any, config: dict[str, Any]) -> list[dict[str, Any]]:
    rows = frame.mapInPandas(check_partitions(config), schema=SUMMARY).collect()
    summaries = [json.loads(row["summary"]) for row in rows]
    unreadable = sorted((s for s in summaries if s.get("unreadable")), key=lambda s: s["chunk"])
    if unreadable:
        from mlops.validation.readers import UnreadableObject

        raise UnreadableObject(unreadable[0]["unreadable"])
    return summaries


def validate(spark: SparkSession, args: JobArgs, obj: Any, contract: Any) -> None:
    """Validate the object through Spark and record it as the function would."""
    from mlops.validation import objects
    from mlops.validation.checks import BAD_LINE_RULE, expected_columns
    from mlops.validation.readers import UnreadableObject, check_format

    base = check_format(obj.key).removesuffix(".gz")
    prefix = objects.forget_earlier(obj, args.dataset, args.run_id, args.ingest_date)
    frame, header, count = pieces(spark, args.raw_path, base, args.partition_lines)
    if frame is None:
        raise UnreadableObject("empty object: no records")
    # Executors on other hosts need the driver's region for their clients (awswrangler's).
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        import boto3

        region = boto3.session.Session().region_name
    environment = args.environment | ({"AWS_DEFAULT_REGION": region} if region else {})
    config = {
        "environment": environment,
        "format": base,
        "path": args.raw_path,
        "header": header,
        "contract": contract.model_dump(mode="json"),
        "object": obj.model_dump(mode="json"),
        "run_id": args.run_id,
        "dataset": args.dataset,
        "ingest_date": args.ingest_date,
        "prefix": prefix,
        "rejection": None,
    }
    frame = frame.cache()
    summaries = run_pieces(frame, config)
    total = tally(summaries, contract)
    if not total.rows_in or total.rows_in == total.rule_failures.get(BAD_LINE_RULE, 0):
        first = total.bad_lines[:1]
        raise UnreadableObject(
            f"no line can be read (line {first[0].line}: {first[0].reason})"
            if first
            else "empty object: no records"
        )
    found = sorted({c for s in summaries for c in s.get("columns", [])})
    if not set(found) & expected_columns(contract):
        raise UnreadableObject(f"none of the contract's columns in {found}")
    rejection = total.rejection()
    if rejection:
        # As the function leaves a rejected object: every row in quarantine, the passing
        # ones under object_rejected. The pieces are checked again as rejected.
        objects.forget_earlier(obj, args.dataset, args.run_id, args.ingest_date)
        run_pieces(frame, config | {"rejection": rejection})
    else:
        _register(summaries, args, contract)
    summary = total.summary(rejection)
    if summary["rows_quarantined"]:
        _quarantined_csv(obj, args, contract, prefix)
    outcome = "rejected" if rejection else "validated"
    report = objects.report_body(obj, args.dataset, args.run_id, contract, outcome, rejection)
    report |= summary | {
        "chunks": count,
        "duplicate_keys_checked": DUPLICATE_SCOPE if count > 1 else "across the object",
        "validated_by": {
            "job_name": args.job_name,
            "job_run_id": args.job_run_id,
            "partition_lines": args.partition_lines,
        },
    }
    report_key = objects.put_report(args.dataset, args.run_id, obj, report)
    objects.finish(
        obj,
        args.dataset,
        args.run_id,
        args.ingest_date,
        contract,
        outcome,
        rejection,
        rows=(summary["rows_in"], summary["rows_valid"], summary["rows_quarantined"]),
        report_key=report_key,
    )


def _register(summaries: list[dict[str, Any]], args: JobArgs, contract: Any) -> None:
    """Register the run's partition in the Glue table once (the function's to_parquet does it
    per object; here the pieces wrote files only)."""
    import awswrangler as wr

    from mlops import lake
    from mlops.validation.objects import athena_types

    columns = next((s["valid_columns"] for s in summaries if s.get("valid_columns")), None)
    if not columns:
        return
    partitions = ("ingest_date", "run_id")
    types = athena_types(contract, pd.DataFrame(columns=columns))
    columns_types = {c: types[c] for c in columns if c not in partitions}
    root = lake.validated_path(args.environment["VALIDATED_BUCKET"], args.dataset)
    database = args.environment["GLUE_DATABASE"]
    wr.catalog.create_parquet_table(
        database=database,
        table=args.dataset,
        path=root,
        columns_types=columns_types,
        partitions_types=dict.fromkeys(partitions, "string"),
        compression="snappy",
        mode="append",
    )
    wr.catalog.add_parquet_partitions(
        database=database,
        table=args.dataset,
        partitions_values={
            f"{root}ingest_date={args.ingest_date}/run_id={args.run_id}/": [
                args.ingest_date,
                args.run_id,
            ]
        },
        compression="snappy",
        columns_types=columns_types,
    )


def _quarantined_csv(obj: Any, args: JobArgs, contract: Any, prefix: str) -> None:
    """The first 10,000 quarantined rows as CSV for people, read back in piece order."""
    import awswrangler as wr

    from mlops.clients import client
    from mlops.validation.objects import CSV_ROWS, put_quarantined_csv

    quarantine = args.environment["QUARANTINE_BUCKET"]
    listed = client("s3").get_paginator("list_objects_v2")
    where = f"rows/{args.dataset}/run_id={args.run_id}/{prefix}"
    keys = sorted(
        item["Key"]
        for page in listed.paginate(Bucket=quarantine, Prefix=where)
        for item in page.get("Contents", [])
    )
    frames: list[pd.DataFrame] = []
    rows = 0
    for key in keys:  # file names start with the piece's number: object order
        frame = wr.s3.read_parquet(f"s3://{quarantine}/{key}")
        frames.append(frame.drop(columns=["source_object", "ingest_time"], errors="ignore"))
        rows += len(frame)
        if rows >= CSV_ROWS:
            break
    put_quarantined_csv(obj, args.dataset, args.run_id, contract, frames)


def _version_state(obj: Any) -> str:
    """``current``, ``missing`` (the version is gone) or ``superseded`` (a newer version
    is the key's now: Spark reads a path, which is the newest version)."""
    from botocore.exceptions import ClientError

    from mlops.clients import client

    s3 = client("s3")
    try:
        head = s3.head_object(Bucket=obj.bucket, Key=obj.key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return "missing"
        raise
    current = head.get("VersionId")
    if obj.version_id and current not in (None, "null"):
        return "current" if current == obj.version_id else "superseded"
    return "current" if not obj.etag or head["ETag"].strip('"') == obj.etag else "superseded"


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    os.environ.update(args.environment)
    from mlops.contract import ContractError, load_contract
    from mlops.observability import bind_run, logger
    from mlops.validation import objects
    from mlops.validation.completion import closed_reason, run_item
    from mlops.validation.readers import UnreadableObject

    obj = objects.RawObject(
        bucket=args.bucket,
        key=args.key,
        version_id=args.version_id,
        etag=args.etag,
        size=args.size or None,
        event_time=datetime.fromisoformat(args.event_time),
    )
    bind_run(args.run_id, dataset=args.dataset, object_key=obj.key, job_run_id=args.job_run_id)
    # The run may have closed while the job waited to start: refused like a late object.
    closed = closed_reason(run_item(args.run_id), owner=f"{obj.key}#{obj.version}")
    if closed:
        objects.refuse(obj, args.dataset, args.run_id, closed)
        _finished(args)
        return
    state = _version_state(obj)
    if state == "superseded":
        # The newer version's own event validates the key and replaces this one's record.
        logger.warning("object version superseded before the job ran: nothing validated")
        return
    if state == "missing":
        objects.forget_earlier(obj, args.dataset, args.run_id, args.ingest_date)
        objects.finish(
            obj,
            args.dataset,
            args.run_id,
            args.ingest_date,
            None,
            "missing",
            "object no longer exists",
        )
        _finished(args)
        return
    contract = None
    try:
        contract = load_contract(args.dataset)
        validate(spark_session(), args, obj, contract)
    except (ContractError, UnreadableObject) as exc:
        objects.unreadable(obj, args.dataset, args.run_id, args.ingest_date, contract, str(exc))
    except Exception as exc:
        # Never lose the object: record why it was not validated, then fail the job run.
        logger.exception("validation job failed")
        reason = f"could not be validated: {type(exc).__name__}: {exc}"[:1000]
        objects.unreadable(obj, args.dataset, args.run_id, args.ingest_date, contract, reason)
        _finished(args)
        raise
    _finished(args)


def _finished(args: JobArgs) -> None:
    """Tell the job run's state change that the object is recorded (nothing left to do)."""
    from mlops.validation.delegation import mark_finished

    if args.job_run_id:
        mark_finished(args.run_id, args.key, args.job_run_id)


if __name__ == "__main__":
    main(sys.argv[1:])
