"""The run ledger: one DynamoDB item per (run_id, stage) recording start, end, status and counts."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from mlops.clients import resource
from mlops.settings import get_settings


class Status(str, Enum):
    STARTED = "STARTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    PENDING = "PENDING"
    # Waiting for a resource (a free Glue run slot): recorded with a reason and queued_at.
    QUEUED = "QUEUED"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def _table() -> Any:
    return resource("dynamodb").Table(get_settings().require("ledger_table"))


def start(run_id: str, stage: str, **detail: Any) -> None:
    """Mark ``stage`` of ``run_id`` as started (a retry restarts it)."""
    _table().update_item(
        Key={"run_id": run_id, "stage": stage},
        UpdateExpression="SET #s = :s, started_at = :t, detail = :d REMOVE ended_at, reason",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":s": Status.STARTED.value,
            ":t": _now(),
            ":d": _to_dynamo(detail),
        },
    )


def progress(run_id: str, stage: str, **detail: Any) -> None:
    """Note how far a started ``stage`` has got (into its ``detail``), keeping its start time."""
    names = {f"#d{i}": key for i, key in enumerate(detail)}
    values = {f":d{i}": _to_dynamo(value) for i, value in enumerate(detail.values())}
    _table().update_item(
        Key={"run_id": run_id, "stage": stage},
        UpdateExpression="SET " + ", ".join(f"detail.#d{i} = :d{i}" for i in range(len(detail))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def finish(
    run_id: str,
    stage: str,
    status: Status,
    *,
    counts: dict[str, int | float] | None = None,
    reason: str | None = None,
    **detail: Any,
) -> None:
    """Record the outcome of ``stage``; ``detail`` is merged into what ``start`` recorded."""
    names = {"#s": "status"}
    values: dict[str, Any] = {":s": status.value, ":t": _now()}
    sets = ["#s = :s", "ended_at = :t", "started_at = if_not_exists(started_at, :t)"]
    if counts is not None:
        sets.append("counts = :c")
        values[":c"] = _to_dynamo(counts)
    if reason is not None:
        sets.append("reason = :r")
        values[":r"] = reason
    for i, (key, value) in enumerate(detail.items()):
        names[f"#d{i}"] = key
        values[f":d{i}"] = _to_dynamo(value)
        sets.append(f"#d{i} = :d{i}")
    _table().update_item(
        Key={"run_id": run_id, "stage": stage},
        UpdateExpression="SET " + ", ".join(sets),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def claim(run_id: str, stage: str, *, retry_failed: bool = False, **detail: Any) -> bool:
    """Atomically start ``stage`` once: True for the first caller, False for any duplicate.

    ``retry_failed``: a stage recorded FAILED may be claimed again (the retry of an event
    whose first attempt raised), never one STARTED, SUCCEEDED or SKIPPED.
    """
    table = _table()
    condition = "attribute_not_exists(run_id)"
    values: dict[str, Any] = {}
    if retry_failed:
        condition += " OR #s = :failed"
        values = {
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":failed": Status.FAILED.value},
        }
    try:
        table.put_item(
            Item=_to_dynamo(
                {
                    "run_id": run_id,
                    "stage": stage,
                    "status": Status.STARTED.value,
                    "started_at": _now(),
                }
                | ({"detail": detail} if detail else {})
            ),
            ConditionExpression=condition,
            **values,
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        return False
    return True


# A lease is an item of the ledger table keyed (``lease:<name>``, ``lease``): no run has that id.
LEASE_PREFIX = "lease:"
LEASE_STAGE = "lease"


@dataclass(frozen=True)
class Lease:
    """Who holds the lease ``name`` and until when (epoch seconds); ``won`` if the caller does."""

    name: str
    owner: str
    expires_at: float
    won: bool

    @property
    def expires_iso(self) -> str:
        moment = datetime.fromtimestamp(self.expires_at, timezone.utc)
        return moment.isoformat(timespec="seconds")


def _lease_key(name: str) -> dict[str, str]:
    return {"run_id": LEASE_PREFIX + name, "stage": LEASE_STAGE}


def claim_lease(name: str, owner: str, seconds: float, *, now: float | None = None) -> Lease:
    """Take the lease ``name`` for ``seconds`` unless another owner holds an unexpired one.

    One conditional PutItem: it succeeds when no lease item exists, the existing one has
    expired (a crashed holder never released it) or ``owner`` holds it already, so exactly
    one of concurrent claimers wins.
    On a lost claim the holder comes back from the failed condition check (ALL_OLD).
    """
    now = time.time() if now is None else now
    expires = round(now + seconds, 3)
    table = _table()
    try:
        table.put_item(
            Item=_lease_key(name)
            | {
                "owner": owner,
                "expires_at": Decimal(str(expires)),
                "claimed_at": _now(),
            },
            # The same owner may take it again: Lambda's retry of a crawl that timed out
            # (same event, same run) must not find its own lease in the way.
            ConditionExpression=(
                "attribute_not_exists(run_id) OR expires_at <= :now OR #owner = :owner"
            ),
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":now": Decimal(str(round(now, 3))), ":owner": owner},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException as error:
        raw = error.response.get("Item") or {}
        held = {k: TypeDeserializer().deserialize(v) for k, v in raw.items()}
        return Lease(
            name, str(held.get("owner", "unknown")), float(held.get("expires_at", 0)), False
        )
    return Lease(name, owner, expires, True)


def release_lease(name: str, owner: str) -> bool:
    """Give the lease ``name`` back if ``owner`` still holds it; False (and no change) if not."""
    table = _table()
    try:
        table.delete_item(
            Key=_lease_key(name),
            ConditionExpression="#o = :me",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":me": owner},
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def stages(run_id: str) -> list[dict[str, Any]]:
    """Every stage item of a run, oldest first."""
    table = _table()
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": "run_id = :r",
        "ExpressionAttributeValues": {":r": run_id},
    }
    while True:
        page = table.query(**kwargs)
        items.extend(_from_dynamo(item) for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(items, key=lambda item: item.get("started_at", ""))


def latest_runs(limit: int = 20) -> list[str]:
    """Run ids seen in the ledger, newest first (a scan: the ledger is small)."""
    table = _table()
    runs: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ProjectionExpression": "run_id, started_at"}
    while True:
        page = table.scan(**kwargs)
        for item in page["Items"]:
            if str(item["run_id"]).startswith((LEASE_PREFIX, QUEUE_PREFIX)):
                continue
            started = str(item.get("started_at", ""))
            runs[item["run_id"]] = max(runs.get(item["run_id"], ""), started)
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(runs, key=lambda r: runs[r], reverse=True)[:limit]


# A queue is a partition of the ledger table keyed ``queue#<name>`` (no run has such an id).
# Its items' sort keys ``<queued_at>#<run_id>`` make a Query return the queue oldest first.
QUEUE_PREFIX = "queue#"


@dataclass(frozen=True)
class QueuedRun:
    """One run waiting in a queue, with what is needed to start it later."""

    queue: str
    position: str
    run_id: str
    queued_at: str
    reason: str
    payload: dict[str, Any]

    @property
    def key(self) -> dict[str, str]:
        return {"run_id": QUEUE_PREFIX + self.queue, "stage": self.position}

    def waited_seconds(self, now: datetime | None = None) -> float:
        now = now or datetime.now(timezone.utc)
        return (now - datetime.fromisoformat(self.queued_at)).total_seconds()


def mark_queued(run_id: str, stage: str, *, reason: str, **detail: Any) -> str:
    """Record ``stage`` of ``run_id`` as QUEUED; returns its queued_at, set once only, so a
    redelivery finds the run's place in its queue unchanged."""
    item = _table().update_item(
        Key={"run_id": run_id, "stage": stage},
        UpdateExpression=(
            "SET #s = :q, reason = :r, queued_at = if_not_exists(queued_at, :t), "
            "started_at = if_not_exists(started_at, :t), detail = :d REMOVE ended_at"
        ),
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":q": Status.QUEUED.value,
            ":r": reason,
            ":t": _now(),
            ":d": _to_dynamo(detail),
        },
        ReturnValues="ALL_NEW",
    )["Attributes"]
    return str(item["queued_at"])


def enqueue(
    queue: str, run_id: str, queued_at: str, payload: dict[str, Any], *, reason: str
) -> QueuedRun:
    """Put ``run_id`` in ``queue`` at ``queued_at``; a no-op if it is there already."""
    queued = QueuedRun(queue, f"{queued_at}#{run_id}", run_id, queued_at, reason, payload)
    table = _table()
    with contextlib.suppress(table.meta.client.exceptions.ConditionalCheckFailedException):
        table.put_item(
            Item=queued.key
            | {
                "queued_run": run_id,
                "queued_at": queued_at,
                "reason": reason,
                "payload": _to_dynamo(payload),
            },
            # A redelivered enqueue must not clear a drain's claim on the item.
            ConditionExpression="attribute_not_exists(run_id)",
        )
    return queued


def queued(queue: str) -> list[QueuedRun]:
    """The runs waiting in ``queue``, oldest first."""
    table = _table()
    out: list[QueuedRun] = []
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": "run_id = :q",
        "ExpressionAttributeValues": {":q": QUEUE_PREFIX + queue},
    }
    while True:
        page = table.query(**kwargs)
        for raw in page["Items"]:
            item = _from_dynamo(raw)
            out.append(
                QueuedRun(
                    queue,
                    item["stage"],
                    item["queued_run"],
                    item["queued_at"],
                    item.get("reason", ""),
                    item.get("payload") or {},
                )
            )
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def claim_queued(item: QueuedRun, owner: str, seconds: float, *, now: float | None = None) -> bool:
    """Take ``item`` for ``seconds`` unless another owner holds an unexpired claim or it is gone.

    A claim, not a delete: a drain that dies before starting the run leaves the item in the
    queue, and the next drain takes it once the claim has expired.
    """
    now = time.time() if now is None else now
    table = _table()
    try:
        table.update_item(
            Key=item.key,
            UpdateExpression="SET claimed_by = :me, claimed_until = :until",
            ConditionExpression=(
                "attribute_exists(run_id) AND "
                "(attribute_not_exists(claimed_until) OR claimed_until <= :now)"
            ),
            ExpressionAttributeValues={
                ":me": owner,
                ":until": Decimal(str(round(now + seconds, 3))),
                ":now": Decimal(str(round(now, 3))),
            },
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def release_queued(item: QueuedRun, owner: str) -> bool:
    """Give a claimed item back to its queue, in its place (False if ``owner`` lost it)."""
    table = _table()
    try:
        table.update_item(
            Key=item.key,
            UpdateExpression="REMOVE claimed_by, claimed_until",
            ConditionExpression="claimed_by = :me",
            ExpressionAttributeValues={":me": owner},
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def dequeue(item: QueuedRun, owner: str) -> bool:
    """Delete a claimed item (its run started or ended); False if ``owner`` no longer holds it."""
    table = _table()
    try:
        table.delete_item(
            Key=item.key,
            ConditionExpression="claimed_by = :me",
            ExpressionAttributeValues={":me": owner},
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        return False
    return True
