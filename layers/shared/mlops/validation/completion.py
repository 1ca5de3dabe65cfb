"""Run completion: the call that validates a run's last object records it and emits "Run Validated".

Progress lives on the run's one ``validate`` ledger item, updated atomically: each object
``ADD``s its key to the ``parts`` string set and stores its counts under its key in the
``part_counts`` map (so a redelivery overwrites instead of double counting); the manifest
stores the list of ``expected`` parts. Each update returns the item as it now is, so
whichever caller completes the set sees it, in any arrival order. The item stays STARTED
until the run is complete, then ``ledger.finish`` records SUCCEEDED with the run's counts.

Exactly one "Run Validated": completing callers race on a conditional write of
``completion = pending`` with themselves as ``owner``; only the winner emits, then writes
``completion = emitted``. If the emit fails the winner raises; its retry (the same object
version, so the same owner) may take the pending claim over and emit. Anyone else who finds a
claim leaves it to its owner, so a slow owner and a duplicate never both emit. The one window
left is a crash between PutEvents and recording it: the owner's retry then emits a second
time (at-least-once; start_preparation's claim absorbs the duplicate).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from mlops import lake, ledger
from mlops.clients import client, resource
from mlops.observability import logger
from mlops.settings import get_settings

STAGE = "validate"
SOURCE = "mlops.pipeline"
DETAIL_TYPE = "Run Validated"
FAILED_OUTCOMES = ("unreadable", "rejected", "missing")
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
    # The object version these counts are of (None in an unversioned bucket).
    version_id: str | None = None
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


def _table() -> Any:
    return resource("dynamodb").Table(get_settings().require("ledger_table"))


def _update(
    run_id: str,
    sets: list[str],
    names: dict[str, str],
    values: dict[str, Any],
    adds: list[str] | None = None,
    deletes: list[str] | None = None,
) -> dict[str, Any]:
    """One atomic update of the run's validate item; returns the item as it now is."""
    sets = [
        *sets,
        "updated_at = :now",
        "started_at = if_not_exists(started_at, :now)",
        "#status = if_not_exists(#status, :started)",
    ]
    if not any(part.startswith("part_counts.") for part in sets):
        # DynamoDB sets a path inside a map only once the map exists.
        sets.append("part_counts = if_not_exists(part_counts, :nothing)")
        values = values | {":nothing": {}}
    expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
    if deletes:
        expression += " DELETE " + ", ".join(deletes)
    return _table().update_item(
        Key={"run_id": run_id, "stage": STAGE},
        UpdateExpression=expression,
        ExpressionAttributeNames={"#status": "status", **names},
        ExpressionAttributeValues={
            ":now": _now(),
            ":started": ledger.Status.STARTED.value,
            **values,
        },
        ReturnValues="ALL_NEW",
    )["Attributes"]


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
    sets = ["dataset = :ds", "ingest_date = if_not_exists(ingest_date, :d)"]
    values: dict[str, Any] = {":k": {part.key}, ":ds": dataset, ":d": ingest_date}
    adds = ["parts :k"]
    if contract_version is not None:
        sets.append("contract_version = :v")
        values[":v"] = contract_version
    if alone:
        sets.append("expected = :e")
        values[":e"] = [part.key]
    deletes = []
    if part.outcome in FAILED_OUTCOMES:
        # Objects that failed whole stay listed on the run, for the summary and the operator.
        adds.append("failed_objects :k")
    else:
        # A re-upload that now reads replaces the failed version it follows.
        deletes.append("failed_objects :k")
    _update(run_id, [], {}, {})  # creates the part_counts map the next update writes into
    item = _update(
        run_id,
        [*sets, "part_counts.#part = :c"],
        {"#part": part.key},
        values | {":c": part.model_dump(exclude_none=True)},
        adds,
        deletes,
    )
    return _complete_if_ready(item, owner)


def run_item(run_id: str) -> dict[str, Any]:
    """The run's validate item as it is now (strongly consistent), or {} before its first object."""
    item = _table().get_item(Key={"run_id": run_id, "stage": STAGE}, ConsistentRead=True)
    return item.get("Item") or {}


def closed_reason(item: dict[str, Any], owner: str) -> str | None:
    """Why no object may join the run of ``item`` any more, or None while it is open.

    A run is closed once its completion is claimed: from then on its rows are what Run
    Validated announces and preparation reads, so a late or changed object would leave the
    lake, the ledger's counts and a model's lineage disagreeing. The claim's owner (the same
    object version, retried after a failed emit) may still finish what it started.
    """
    state = item.get("completion")
    if state is None or item.get("owner") == owner:
        return None
    handed = "validated and handed to preparation" if state == "emitted" else "being completed"
    return f"run {item['run_id']} is already {handed}; upload into a new run prefix"


def record_refusal(run_id: str, key: str, version: str, reason: str) -> None:
    """Keep an object version refused by a closed run on the run's item (counts untouched)."""
    _update(run_id, ["refused = if_not_exists(refused, :nothing)"], {}, {":nothing": {}})
    _update(
        run_id,
        ["refused.#k = :r"],
        {"#k": key},
        {":r": {"version": version, "reason": reason, "at": _now()}},
    )


def record_bad_manifest(run_id: str, dataset: str, manifest_key: str, reason: str) -> None:
    """Keep a manifest that cannot be read on the run's item (the run cannot complete)."""
    _update(
        run_id,
        ["dataset = :ds", "bad_manifest = :r"],
        {},
        {":ds": dataset, ":r": reason, ":k": {manifest_key}},
        ["failed_objects :k"],
    )


def record_manifest(manifest: RawManifest, manifest_key: str, *, owner: str) -> Completion:
    """Record which parts a run has; complete it if every part was already validated."""
    sets = ["expected = :e", "manifest_key = :m", "manifest_complete = :mc", "dataset = :ds"]
    values: dict[str, Any] = {
        ":e": [p.key for p in manifest.parts],
        ":m": manifest_key,
        ":mc": manifest.complete,
        ":ds": manifest.dataset,
    }
    if manifest.ingest_date:
        sets.append("ingest_date = :d")
        values[":d"] = manifest.ingest_date
    item = _update(manifest.run_id, sets, {}, values)
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
            Key={"run_id": run_id, "stage": STAGE},
            UpdateExpression="SET completion = :p, #o = :o, claimed_at = :t",
            ConditionExpression="attribute_not_exists(completion) OR (completion = :p AND #o = :o)",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":p": "pending", ":o": owner, ":t": _now()},
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def run_totals(item: dict[str, Any], expected: set[str]) -> dict[str, int]:
    """Counts of a run summed over the stored outcome of each expected part."""
    totals = dict.fromkeys(("objects", *_COUNTS, "objects_failed"), 0)
    counts = item.get("part_counts") or {}
    for key in expected:
        part = counts.get(key) or {}
        totals["objects"] += 1
        for name in _COUNTS:
            totals[name] += int(part.get(name, 0))
        totals["objects_failed"] += part.get("outcome") in FAILED_OUTCOMES
    return totals


def _emit(item: dict[str, Any], expected: set[str]) -> None:
    settings = get_settings()
    run_id, dataset = item["run_id"], item["dataset"]
    # Every object validated into the run is in its partition, and preparation reads it all:
    # the counts cover one the manifest did not name too, so they describe what the lake holds.
    parts = expected | set(item.get("part_counts") or {})
    totals = run_totals(item, parts)
    failed = sorted(set(item.get("failed_objects", set())) & parts)
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
        # Retryable: the claim stays pending under this owner, so its retry emits.
        raise RuntimeError(f"Run Validated for {run_id} not accepted: {response['Entries']}")
    ledger.finish(
        run_id,
        STAGE,
        ledger.Status.SUCCEEDED,
        counts=totals,
        reason=f"{len(failed)} object(s) rejected or unreadable" if failed else None,
        validated_path=detail["validated_path"],
        event_id=response["Entries"][0]["EventId"],
        completion="emitted",
    )
    logger.info("run validated", extra=detail)
