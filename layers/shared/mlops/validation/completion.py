"""Run completion: the call that validates a run's last object records it and emits "Run Validated".

Progress lives in one ledger item per run (stage ``validate#parts``) updated atomically:
each validated object ``ADD``s its key to a string set and stores its counts under an
attribute of its own (so a redelivery overwrites instead of double counting); the manifest
stores the list of expected parts. Each update returns the item as it now is, so whichever
caller completes the set sees it, in any arrival order.

Exactly one "Run Validated": completing callers race on a conditional write of
``completion = pending`` with themselves as ``owner``; only the winner emits, then writes
``completion = emitted``. If the emit fails the winner raises; its retry (the same object,
so the same owner) may take the pending claim over and emit. Anyone else who finds a claim
leaves it to its owner, so a slow owner and a duplicate can never both emit.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from mlops import lake, ledger
from mlops.clients import client, resource
from mlops.observability import logger
from mlops.settings import get_settings

PROGRESS_STAGE = "validate#parts"
STAGE = "validate"
SOURCE = "mlops.pipeline"
DETAIL_TYPE = "Run Validated"
_COUNTS = ("rows_in", "rows_valid", "rows_quarantined")


class ManifestPart(BaseModel):
    key: str
    records: int | None = None


class RawManifest(BaseModel):
    """The scraper's ``_manifest.json`` (only the fields completion needs are required)."""

    run_id: str
    dataset: str
    ingest_date: str | None = None
    complete: bool = True
    parts: list[ManifestPart] = Field(default_factory=list)
    records: int | None = None


class PartOutcome(BaseModel):
    """What validating one object of a run produced (stored on the progress item)."""

    key: str
    outcome: str
    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    reason: str | None = None


class Completion(BaseModel):
    """Where a run stands after an update: complete or not, and whether this call emitted."""

    run_id: str
    complete: bool
    emitted: bool = False
    parts_done: int
    parts_expected: int | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _counts_attr(key: str) -> str:
    return "c_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _table() -> Any:
    return resource("dynamodb").Table(get_settings().require("ledger_table"))


def record_part(
    run_id: str,
    dataset: str,
    part: PartOutcome,
    *,
    owner: str,
    contract_version: str | None,
    ingest_date: str,
    alone: bool,
) -> Completion:
    """Record one validated (or rejected/unreadable) object; complete the run if it was the last.

    ``alone`` marks an object that is a run by itself (an upload outside a ``run_id=`` prefix):
    it is its own manifest. ``owner`` identifies this object version (for the emit claim).
    """
    names = {"#c": _counts_attr(part.key)}
    values: dict[str, Any] = {
        ":k": {part.key},
        ":c": part.model_dump(exclude_none=True),
        ":ds": dataset,
        ":d": ingest_date,
        ":t": _now(),
        ":s": ledger.Status.STARTED.value,
    }
    sets = [
        "#c = :c",
        "dataset = :ds",
        "ingest_date = if_not_exists(ingest_date, :d)",
        "updated_at = :t",
        "started_at = if_not_exists(started_at, :t)",
        "#st = if_not_exists(#st, :s)",
    ]
    names["#st"] = "status"
    adds = ["parts :k"]
    if contract_version is not None:
        sets.append("contract_version = :v")
        values[":v"] = contract_version
    if alone:
        sets.append("expected = :e")
        values[":e"] = [part.key]
    if part.outcome in ("unreadable", "rejected", "missing"):
        # The ledger keeps every object that failed as a whole, for the run summary.
        adds.append("failed_objects :k")
    item = _table().update_item(
        Key={"run_id": run_id, "stage": PROGRESS_STAGE},
        UpdateExpression="SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
        ReturnValues="ALL_NEW",
    )["Attributes"]
    return _complete_if_ready(item, owner)


def record_bad_manifest(run_id: str, dataset: str, manifest_key: str, reason: str) -> None:
    """Keep a manifest that cannot be read on the run's ledger item (the run cannot complete)."""
    _table().update_item(
        Key={"run_id": run_id, "stage": PROGRESS_STAGE},
        UpdateExpression=(
            "SET dataset = :ds, bad_manifest = :r, updated_at = :t, "
            "started_at = if_not_exists(started_at, :t), #st = if_not_exists(#st, :s) "
            "ADD failed_objects :k"
        ),
        ExpressionAttributeNames={"#st": "status"},
        ExpressionAttributeValues={
            ":ds": dataset,
            ":r": reason,
            ":t": _now(),
            ":s": ledger.Status.STARTED.value,
            ":k": {manifest_key},
        },
    )


def record_manifest(manifest: RawManifest, manifest_key: str, *, owner: str) -> Completion:
    """Record which parts a run has; complete it if every part was already validated."""
    item = _table().update_item(
        Key={"run_id": manifest.run_id, "stage": PROGRESS_STAGE},
        UpdateExpression=(
            "SET expected = :e, manifest_key = :m, manifest_complete = :mc, dataset = :ds, "
            "updated_at = :t, started_at = if_not_exists(started_at, :t), "
            "#st = if_not_exists(#st, :s)" + (", ingest_date = :d" if manifest.ingest_date else "")
        ),
        ExpressionAttributeNames={"#st": "status"},
        ExpressionAttributeValues={
            ":e": [p.key for p in manifest.parts],
            ":m": manifest_key,
            ":mc": manifest.complete,
            ":ds": manifest.dataset,
            ":t": _now(),
            ":s": ledger.Status.STARTED.value,
        }
        | ({":d": manifest.ingest_date} if manifest.ingest_date else {}),
        ReturnValues="ALL_NEW",
    )["Attributes"]
    return _complete_if_ready(item, owner)


def _complete_if_ready(item: dict[str, Any], owner: str) -> Completion:
    run_id = item["run_id"]
    done = set(item.get("parts", set()))
    expected = item.get("expected")
    status = Completion(
        run_id=run_id,
        complete=False,
        parts_done=len(done),
        parts_expected=None if expected is None else len(expected),
    )
    if expected is None or not set(expected) <= done:
        return status
    status.complete = True
    if item.get("completion") == "emitted" or not _claim(run_id, owner):
        return status
    _emit(item, set(expected))
    status.emitted = True
    return status


def _claim(run_id: str, owner: str) -> bool:
    table = _table()
    try:
        table.update_item(
            Key={"run_id": run_id, "stage": PROGRESS_STAGE},
            UpdateExpression="SET completion = :p, #o = :o, claimed_at = :t",
            ConditionExpression=(
                "attribute_not_exists(completion) OR (completion = :p AND #o = :o)"
            ),
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":p": "pending", ":o": owner, ":t": _now()},
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def run_totals(item: dict[str, Any], expected: set[str]) -> dict[str, int]:
    """Counts of a run summed over the stored outcome of each expected part."""
    totals = dict.fromkeys(("objects", *_COUNTS, "objects_failed"), 0)
    for key in expected:
        part = item.get(_counts_attr(key)) or {}
        totals["objects"] += 1
        for name in _COUNTS:
            totals[name] += int(part.get(name, 0))
        totals["objects_failed"] += part.get("outcome") in ("unreadable", "rejected", "missing")
    return totals


def _emit(item: dict[str, Any], expected: set[str]) -> None:
    settings = get_settings()
    run_id, dataset = item["run_id"], item["dataset"]
    totals = run_totals(item, expected)
    failed = sorted(set(item.get("failed_objects", set())) & expected)
    detail = {
        "run_id": run_id,
        "dataset": dataset,
        "contract_version": item.get("contract_version"),
        "ingest_date": item.get("ingest_date"),
        "validated_path": lake.validated_path(settings.require("validated_bucket"), dataset),
        "rows_in": totals["rows_in"],
        "rows_valid": totals["rows_valid"],
        "rows_quarantined": totals["rows_quarantined"],
        "objects": totals["objects"],
    }
    reason = f"{len(failed)} object(s) rejected or unreadable" if failed else None
    ledger_detail = {
        "dataset": dataset,
        "contract_version": item.get("contract_version"),
        "validated_path": detail["validated_path"],
        "failed_objects": failed,
    }
    ledger.finish(
        run_id, STAGE, ledger.Status.SUCCEEDED, counts=totals, reason=reason, **ledger_detail
    )
    client("s3").put_object(
        Bucket=settings.require("quarantine_bucket"),
        Key=lake.run_summary_key(dataset, run_id),
        Body=json.dumps(detail | {"failed_objects": failed, "totals": totals}).encode(),
        ContentType="application/json",
    )
    response = client("events").put_events(
        Entries=[
            {
                "Source": SOURCE,
                "DetailType": DETAIL_TYPE,
                "Detail": json.dumps(detail),
                "EventBusName": settings.event_bus_name,
                "Resources": [],
            }
        ]
    )
    if response.get("FailedEntryCount"):
        # Retryable: the claim stays pending under this owner, so the retry emits.
        raise RuntimeError(f"Run Validated for {run_id} not accepted: {response['Entries']}")
    _table().update_item(
        Key={"run_id": run_id, "stage": PROGRESS_STAGE},
        UpdateExpression="SET completion = :e, emitted_at = :t, #st = :s",
        ExpressionAttributeNames={"#st": "status"},
        ExpressionAttributeValues={
            ":e": "emitted",
            ":t": _now(),
            ":s": ledger.Status.SUCCEEDED.value,
        },
    )
    ledger.finish(
        run_id, STAGE, ledger.Status.SUCCEEDED, event_id=response["Entries"][0]["EventId"]
    )
    logger.info("run validated", extra=detail)
