"""One scrape run: load the spec, crawl, land parts and manifest, record it in the run ledger.

One crawl at a time per site: a run takes the site's lease in the run ledger (a conditional
write) before its first request and gives it back at the end; a run that finds the lease held
is recorded SKIPPED with the reason and returns without crawling. The lease outlives any Lambda
invocation, so a crashed crawl blocks its site only until the lease expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from mlops import ledger
from mlops.ledger import Status
from mlops.observability import logger
from mlops.scraping.crawl import CrawlStats, ScrapeError, crawl
from mlops.scraping.fetch import Fetcher
from mlops.scraping.landing import PART_MAX_BYTES, PART_MAX_RECORDS, PartBuffer, land_run
from mlops.scraping.spec import load_spec
from mlops.settings import get_settings

STAGE = "scrape"
DEFAULT_SPEC_URI = "builtin:demo_cars"
# Longer than Lambda's 15-minute maximum timeout: a lease outlives the crawl that took it.
LEASE_SECONDS = 20 * 60


class ScrapeRequest(BaseModel):
    """What to scrape; unset fields come from the spec and the settings (environment)."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1)
    spec_uri: str | None = None
    start_url: str | None = None
    dataset: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]+$")
    max_pages: int | None = Field(default=None, ge=1)
    max_items: int | None = Field(default=None, ge=1)
    politeness_delay_seconds: float | None = Field(default=None, ge=0)
    # Crawling stops after this long so the run can still land (Lambda: remaining time - margin).
    time_budget_seconds: float | None = Field(default=None, gt=0)
    part_max_records: int = Field(default=PART_MAX_RECORDS, ge=1)
    part_max_bytes: int = Field(default=PART_MAX_BYTES, ge=1024)


class ScrapeResult(BaseModel):
    """Summary of a landed run."""

    run_id: str
    dataset: str
    ingest_date: str
    bucket: str
    manifest_key: str
    part_keys: list[str]
    records: int
    pages_fetched: int
    pages_failed: int
    items_failed: int
    requests: int
    duration_seconds: float


class ScrapeSkipped(BaseModel):
    """A run that did not crawl: another crawl of the same site holds the site's lease."""

    run_id: str
    dataset: str
    site: str
    reason: str
    holder: str
    held_until: str


def site_of(url: str) -> str:
    """The site a crawl of ``url`` hits (scheme and host:port), the unit of one-at-a-time."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}" if parts.netloc else url


def lease_name(site: str) -> str:
    return f"scrape:{site}"


def run_scrape(
    request: ScrapeRequest, *, sleep: Callable[[float], None] = time.sleep
) -> ScrapeResult | ScrapeSkipped:
    """Crawl the site of ``request`` into the raw zone; ledger FAILED and re-raise on any failure.

    The spec is loaded and validated before any request. Nothing lands unless the crawl
    finishes; parts are written first and the manifest last. While another run holds the
    site's lease nothing is fetched: the run is recorded SKIPPED and ``ScrapeSkipped`` returned.
    """
    settings = get_settings()
    bucket = settings.require("raw_bucket")
    started = datetime.now(timezone.utc)
    ledger.start(request.run_id, STAGE)
    stats = CrawlStats()
    known: dict[str, str] = {}  # ledger detail learnt before a failure
    deadline = (
        time.monotonic() + request.time_budget_seconds if request.time_budget_seconds else None
    )
    try:
        spec = load_spec(request.spec_uri or settings.site_spec_uri or DEFAULT_SPEC_URI)
        dataset = request.dataset or spec.dataset
        source = request.start_url or spec.start_url
        known.update(dataset=dataset, source=source)
        lease = ledger.claim_lease(lease_name(site_of(source)), request.run_id, LEASE_SECONDS)
    except Exception as error:
        _record_failure(request.run_id, stats, error, known)
        raise
    if not lease.won:
        return _skipped(request.run_id, dataset, source, lease)
    try:
        ingest_date = started.date().isoformat()
        buffer = PartBuffer(request.part_max_records, request.part_max_bytes)
        politeness = (
            request.politeness_delay_seconds
            if request.politeness_delay_seconds is not None
            else settings.politeness_delay_seconds
        )
        with Fetcher(spec.http, spec.user_agent, politeness, sleep=sleep) as fetcher:
            for record in crawl(
                spec,
                source,
                fetcher,
                max_pages=request.max_pages or settings.max_pages,
                max_items=request.max_items or settings.max_items,
                stats=stats,
                deadline=deadline,
            ):
                buffer.add(record)
            requests_made, retries = fetcher.requests_made, fetcher.retries
        buffer.seal()
        if stats.records == 0:
            raise ScrapeError(
                f"no records extracted from {source}: {stats.pages_fetched} pages fetched, "
                f"{stats.pages_failed} failed, {stats.items_failed} items failed"
            )
        finished = datetime.now(timezone.utc)
        manifest = {
            "run_id": request.run_id,
            "dataset": dataset,
            "ingest_date": ingest_date,
            "complete": True,
            "pages_fetched": stats.pages_fetched,
            "pages_failed": stats.pages_failed,
            "items_failed": stats.items_failed,
            "field_errors": stats.field_errors,
            "duplicate_links": stats.duplicate_links,
            "disallowed_links": stats.disallowed_links,
            "capped_by": stats.capped_by,
            "requests": requests_made,
            "retries": retries,
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "duration_seconds": round((finished - started).total_seconds(), 3),
            "source": source,
            "site_spec": spec.name,
        }
        parts, manifest_key = land_run(
            bucket, dataset, ingest_date, request.run_id, buffer.parts, manifest
        )
    except Exception as error:
        _record_failure(request.run_id, stats, error, known)
        raise
    finally:
        _release(lease)
    ledger.finish(
        request.run_id,
        STAGE,
        Status.SUCCEEDED,
        counts=_counts(stats, parts=len(parts)),
        dataset=dataset,
        manifest_key=manifest_key,
        source=source,
    )
    logger.info("scrape landed", extra={"manifest_key": manifest_key, **stats.as_dict()})
    return ScrapeResult(
        run_id=request.run_id,
        dataset=dataset,
        ingest_date=ingest_date,
        bucket=bucket,
        manifest_key=manifest_key,
        part_keys=[part["key"] for part in parts],
        records=stats.records,
        pages_fetched=stats.pages_fetched,
        pages_failed=stats.pages_failed,
        items_failed=stats.items_failed,
        requests=requests_made,
        duration_seconds=manifest["duration_seconds"],
    )


def _record_failure(
    run_id: str, stats: CrawlStats, error: Exception, known: dict[str, str]
) -> None:
    # Nothing landed: records extracted before the failure are reported as discarded.
    counts = _counts(stats, parts=0) | {"records": 0, "records_discarded": stats.records}
    ledger.finish(
        run_id,
        STAGE,
        Status.FAILED,
        counts=counts,
        reason=f"{type(error).__name__}: {error}",
        **known,
    )


def _skipped(run_id: str, dataset: str, source: str, lease: ledger.Lease) -> ScrapeSkipped:
    site = site_of(source)
    reason = (
        f"another crawl of {site} is running: run {lease.owner} holds its lease "
        f"until {lease.expires_iso}"
    )
    ledger.finish(
        run_id,
        STAGE,
        Status.SKIPPED,
        reason=reason,
        dataset=dataset,
        source=source,
        lease_holder=lease.owner,
    )
    logger.info("scrape skipped", extra={"site": site, "holder": lease.owner})
    return ScrapeSkipped(
        run_id=run_id,
        dataset=dataset,
        site=site,
        reason=reason,
        holder=lease.owner,
        held_until=lease.expires_iso,
    )


def _release(lease: ledger.Lease) -> None:
    """Give the site back; a failed release only delays the next crawl until the lease expires."""
    try:
        if not ledger.release_lease(lease.name, lease.owner):
            logger.warning("scrape lease was no longer ours", extra={"lease": lease.name})
    except Exception as error:  # the run's outcome stands; the lease expires on its own
        logger.warning(
            "could not release the scrape lease", extra={"lease": lease.name, "error": str(error)}
        )


def _counts(stats: CrawlStats, *, parts: int) -> dict[str, int | float]:
    return {
        "pages_fetched": stats.pages_fetched,
        "pages_failed": stats.pages_failed,
        "items_failed": stats.items_failed,
        "records": stats.records,
        "parts": parts,
    }
