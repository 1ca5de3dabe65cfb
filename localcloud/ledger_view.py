"""Reading the run ledger from outside the handlers (CLI progress and status)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from mlops.ledger import LEASE_PREFIX, QUEUE_PREFIX

_DESERIALIZE = TypeDeserializer().deserialize


@dataclass
class StageItem:
    """One (run_id, stage) ledger item."""

    run_id: str
    stage: str
    status: str
    started_at: str | None = None
    ended_at: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dynamo(cls, raw: dict[str, Any]) -> StageItem:
        item = {k: plain(_DESERIALIZE(v)) for k, v in raw.items()}
        known = {"run_id", "stage", "status", "started_at", "ended_at", "counts", "reason"}
        detail = dict(item.get("detail") or {})
        detail |= {k: v for k, v in item.items() if k not in known and k != "detail"}
        return cls(
            run_id=item["run_id"],
            stage=item["stage"],
            status=item.get("status", "?"),
            started_at=item.get("started_at"),
            ended_at=item.get("ended_at"),
            counts=item.get("counts") or {},
            reason=item.get("reason"),
            detail=detail,
        )

    @property
    def short_reason(self) -> str:
        """The first line of the reason (exception texts can run to many lines)."""
        return (self.reason or "").strip().splitlines()[0] if self.reason else ""

    @property
    def is_dlq(self) -> bool:
        return self.stage.startswith("dlq:")

    @property
    def seconds(self) -> float | None:
        if not (self.started_at and self.ended_at):
            return None
        start = datetime.fromisoformat(self.started_at)
        return (datetime.fromisoformat(self.ended_at) - start).total_seconds()

    def waited(self, now: datetime | None = None) -> float | None:
        """Seconds a QUEUED stage has been waiting."""
        queued_at = self.detail.get("queued_at")
        if self.status != "QUEUED" or not queued_at:
            return None
        now = now or datetime.now(timezone.utc)
        return (now - datetime.fromisoformat(str(queued_at))).total_seconds()

    def line(self, now: datetime | None = None) -> str:
        """One progress line: stage, status, duration (or time waited), key counts."""
        seconds = f"{self.seconds:.1f}s" if self.seconds is not None else ""
        waited = self.waited(now)
        if waited is not None:
            seconds = f"waiting {duration(waited)}"
        counts = " ".join(f"{k}={v}" for k, v in self.counts.items())
        reason = f"  {self.short_reason}" if self.reason and self.status != "SUCCEEDED" else ""
        return f"  {self.stage:<28} {self.status:<10} {seconds:>7}  {counts}{reason}".rstrip()

    def failed_objects(self) -> list[tuple[str, str, str]]:
        """(key, outcome, reason) of each object the validate stage rejected or found
        unreadable or missing, in key order."""
        parts = self.detail.get("part_counts") or {}
        failed = []
        for key in sorted(self.detail.get("failed_objects") or []):
            part = parts.get(key) or {}
            failed.append((key, str(part.get("outcome", "failed")), str(part.get("reason") or "")))
        return failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "status": self.status,
            "seconds": self.seconds,
            "counts": self.counts,
            "reason": self.reason,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "detail": self.detail,
        }


def duration(seconds: float) -> str:
    """3s, 4m05s, 2h07m."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class QueuedItem:
    """A run waiting in a queue of the ledger (``queue#<name>``)."""

    queue: str
    run_id: str
    queued_at: str
    reason: str
    claimed: bool

    def waited(self, now: datetime | None = None) -> float:
        now = now or datetime.now(timezone.utc)
        return (now - datetime.fromisoformat(self.queued_at)).total_seconds()

    def line(self, now: datetime | None = None) -> str:
        claimed = "  (being started)" if self.claimed else ""
        return (
            f"  {self.run_id:<36} waiting {duration(self.waited(now)):<8} "
            f"since {self.queued_at}{claimed}"
        )


def plain(value: Any) -> Any:
    """A DynamoDB value as plain Python: Decimals as int or float, sets as lists."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [plain(v) for v in value]
    return value


class LedgerView:
    """The whole ledger table, read with a plain DynamoDB client (the ledger is small)."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    def _raw(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table}
        while True:
            page = self.dynamodb.scan(**kwargs)
            out += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def items(self) -> list[StageItem]:
        # Leases (one crawl per site) and queues share the table but are no run's stage.
        return [
            StageItem.from_dynamo(raw)
            for raw in self._raw()
            if not raw.get("run_id", {}).get("S", "").startswith((LEASE_PREFIX, QUEUE_PREFIX))
        ]

    def queued(self) -> list[QueuedItem]:
        """Runs waiting in the ledger's queues, oldest first."""
        out = []
        for raw in self._raw():
            run_id = raw.get("run_id", {}).get("S", "")
            if not run_id.startswith(QUEUE_PREFIX):
                continue
            item = {k: plain(_DESERIALIZE(v)) for k, v in raw.items()}
            out.append(
                QueuedItem(
                    queue=run_id.removeprefix(QUEUE_PREFIX),
                    run_id=str(item.get("queued_run", "")),
                    queued_at=str(item.get("queued_at", "")),
                    reason=str(item.get("reason", "")),
                    # A claim past its expiry is a drain that died: the run is waiting again.
                    claimed=float(item.get("claimed_until") or 0) > time.time(),
                )
            )
        return sorted(out, key=lambda q: (q.queued_at, q.run_id))

    def keys(self) -> set[tuple[str, str]]:
        return {(i.run_id, i.stage) for i in self.items()}

    def run(self, run_id: str) -> list[StageItem]:
        return sorted(
            (i for i in self.items() if i.run_id == run_id), key=lambda i: i.started_at or ""
        )

    def latest_run(self) -> str | None:
        latest: dict[str, str] = {}
        for item in self.items():
            stamp = item.started_at or item.ended_at or ""
            latest[item.run_id] = max(latest.get(item.run_id, ""), stamp)
        named = [r for r in latest if r != "unknown"] or list(latest)
        return max(named, key=lambda r: latest[r]) if named else None
