"""A crawl's checkpoint in the artifacts bucket, so one crawl can span many invocations.

Under ``scrape/checkpoints/<run_id>/``:

- ``state.json``: the snapshot: the request, the frontier, the counts, the sealed parts and
  the number of visits it includes (written before each invocation's first request, when a
  part is sealed and when an invocation hands over);
- ``parts/part-NNNNN.jsonl.gz``: sealed parts, copied into the raw zone when the crawl lands
  (the raw zone sees nothing of a crawl before it is complete);
- ``visits/NNNNNNNN.json``: every page visit after the snapshot, written before the next
  request, so a crash loses at most the visit in flight and the retry refetches nothing else.

After landing, ``state.json`` is marked landed, so a late retry of the same event returns
the landed run instead of crawling again; the artifacts bucket's lifecycle rule expires the
checkpoint (template.yaml, ``expire-crawl-checkpoints``). A crawl stopped because its pages no
longer match the spec (``mlops.scraping.breakage``) is marked stopped the same way: a retry or
a duplicate event reports the stop again and never fetches another page.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops.clients import client
from mlops.scraping.crawl import CrawlStats, Frontier, PageVisit, apply
from mlops.scraping.landing import Part

PREFIX = "scrape/checkpoints/"


def run_prefix(run_id: str) -> str:
    return f"{PREFIX}{run_id}/"


def state_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}state.json"


def part_key(run_id: str, number: int) -> str:
    return f"{run_prefix(run_id)}parts/part-{number:05d}.jsonl.gz"


def visit_key(run_id: str, number: int) -> str:
    return f"{run_prefix(run_id)}visits/{number:08d}.json"


@dataclass
class CrawlState:
    """Everything a continuation needs to carry on where the last invocation stopped."""

    run_id: str
    dataset: str
    source: str
    ingest_date: str
    started_at: str
    request: dict[str, Any]
    frontier: Frontier
    stats: CrawlStats = field(default_factory=CrawlStats)
    parts: list[dict[str, Any]] = field(default_factory=list)
    visits: int = 0
    invocations: int = 1
    requests: int = 0
    retries: int = 0
    last_request_at: float | None = None
    # Records after the last sealed part (a part sealed on size leaves the next one over).
    unsealed: list[str] = field(default_factory=list)
    landed: dict[str, Any] | None = None
    # Set when the crawl was stopped for good (a broken layout): what the stop reported.
    stopped: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "frontier": self.frontier.as_json(),
            "stats": self.stats.as_dict(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CrawlState:
        return cls(
            **{k: v for k, v in data.items() if k not in ("frontier", "stats")},
            frontier=Frontier.from_json(data["frontier"]),
            stats=CrawlStats(**data["stats"]),
        )


class Checkpoints:
    """Reads and writes one crawl's checkpoint in ``bucket``."""

    def __init__(self, bucket: str, run_id: str) -> None:
        self.bucket, self.run_id = bucket, run_id

    def load(self) -> CrawlState | None:
        s3 = client("s3")
        try:
            body = s3.get_object(Bucket=self.bucket, Key=state_key(self.run_id))["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return CrawlState.from_json(json.loads(body))

    def replay(self, state: CrawlState) -> list[PageVisit]:
        """Apply the visits logged after the snapshot to ``state``; returns them in order."""
        s3 = client("s3")
        replayed: list[PageVisit] = []
        while True:
            try:
                body = s3.get_object(Bucket=self.bucket, Key=visit_key(self.run_id, state.visits))
            except s3.exceptions.NoSuchKey:
                return replayed
            visit = PageVisit.from_json(json.loads(body["Body"].read()))
            apply(visit, state.frontier, state.stats)
            state.visits += 1
            replayed.append(visit)

    def log(self, state: CrawlState, visit: PageVisit) -> None:
        """Record one visit before the crawl moves on (``state.visits`` counts it)."""
        client("s3").put_object(
            Bucket=self.bucket,
            Key=visit_key(self.run_id, state.visits),
            Body=json.dumps(visit.as_json(), separators=(",", ":")).encode(),
            ContentType="application/json",
        )
        state.visits += 1

    def keep_part(self, state: CrawlState, part: Part) -> None:
        number = len(state.parts)
        key = part_key(self.run_id, number)
        client("s3").put_object(
            Bucket=self.bucket, Key=key, Body=part.body, ContentType="application/gzip"
        )
        state.parts.append({"checkpoint_key": key, "records": part.records, "bytes": part.bytes})

    def kept_parts(self, state: CrawlState) -> list[Part]:
        return [
            Part(records=p["records"], source_key=p["checkpoint_key"], size=p["bytes"])
            for p in state.parts
        ]

    def save(self, state: CrawlState) -> None:
        client("s3").put_object(
            Bucket=self.bucket,
            Key=state_key(self.run_id),
            Body=json.dumps(state.as_json(), separators=(",", ":")).encode(),
            ContentType="application/json",
        )

    def mark_landed(self, state: CrawlState, result: dict[str, Any]) -> None:
        """After landing: the state says so. Parts and visits are left to the artifacts
        bucket's lifecycle rule (deleting thousands of visits would eat the landing time)."""
        state.landed = result
        self.save(state)

    def mark_stopped(self, state: CrawlState, stop: dict[str, Any]) -> None:
        """The crawl ends here without landing. Its parts stay in the checkpoint (never in the
        raw zone) until the lifecycle rule expires them, like a landed crawl's."""
        state.stopped = stop
        self.save(state)
