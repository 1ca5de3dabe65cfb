"""One scrape run: load the spec, crawl, land parts and manifest, record it in the run ledger.

A crawl may span several invocations: it checkpoints as it goes and, when its time runs out,
hands over to a new invocation that resumes from the checkpoint (``ScrapeContinued``).

One crawl at a time per site: a run takes the site's lease in the run ledger (a conditional
write) before its first request and gives it back at the end; a run that finds the lease held
is recorded SKIPPED with the reason and returns without crawling. Each invocation of a
continuing crawl takes the lease again (same owner, so it is renewed); it outlives one
invocation, so a crashed crawl blocks its site only until the lease expires.

A crawl whose detail pages no longer match the spec (``mlops.scraping.breakage``: more than
SCRAPE_MAX_BROKEN_SHARE of them lack a required field) stops early: nothing lands, the stage
is FAILED with the share in its reason, people are notified, and ``ScrapeStopped`` is returned
rather than raised, because a changed layout is not transient (a retry would refetch the site).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from mlops import ledger
from mlops.ledger import Status
from mlops.notifications import notify
from mlops.observability import logger
from mlops.scraping.breakage import Breakage, pages_read
from mlops.scraping.checkpoint import Checkpoints, CrawlState
from mlops.scraping.crawl import CrawlStats, Frontier, ScrapeError, visits
from mlops.scraping.fetch import Fetcher
from mlops.scraping.landing import PART_MAX_BYTES, PART_MAX_RECORDS, PartBuffer, land_run
from mlops.scraping.spec import load_spec
from mlops.settings import get_settings

STAGE = "scrape"
DEFAULT_SPEC_URI = "builtin:demo_cars"
# Longer than Lambda's 15-minute maximum timeout: a lease outlives the invocation that took it
# (each invocation of a continuing crawl takes it again).
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
    # Set by a "Scrape Continues" event: the run's checkpoint must exist.
    continuation: bool = False


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


class ScrapeStopped(BaseModel):
    """A crawl stopped early because its detail pages no longer match the site spec: the stage
    is FAILED, nothing landed in the raw zone, and people were notified."""

    run_id: str
    dataset: str
    source: str
    site_spec: str
    reason: str
    pages_read: int
    pages_broken: int
    missing_required: dict[str, int]
    max_broken_share: float
    invocations: int


def site_of(url: str) -> str:
    """The site a crawl of ``url`` hits (scheme and host:port), the unit of one-at-a-time."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}" if parts.netloc else url


def lease_name(site: str) -> str:
    return f"scrape:{site}"


class ScrapeContinued(BaseModel):
    """A crawl that ran out of time in this invocation and continues in the next."""

    run_id: str
    dataset: str
    invocation: int
    records: int
    pages_fetched: int
    pending_pages: int


def run_scrape(
    request: ScrapeRequest,
    *,
    sleep: Callable[[float], None] = time.sleep,
    continue_with: Callable[[str, str], None] | None = None,
) -> ScrapeResult | ScrapeSkipped | ScrapeContinued | ScrapeStopped:
    """Crawl the site of ``request`` into the raw zone; ledger FAILED and re-raise on any failure.

    The spec is loaded and validated before any request. The crawl checkpoints as it goes
    (``mlops.scraping.checkpoint``): a run id with a checkpoint resumes it, so Lambda's retry
    of a crashed invocation neither restarts nor refetches. When the time budget runs out
    and ``continue_with`` is given, the crawl hands over: it saves its checkpoint, calls
    ``continue_with(run_id, dataset)`` (the handler emits the event that starts the next
    invocation) and returns ``ScrapeContinued``; without it, it lands what it has. Nothing
    lands unless the crawl finishes; parts go first and the manifest last. While another run
    holds the site's lease nothing is fetched: the run is recorded SKIPPED. A crawl whose pages
    lack required fields past the settings' bound stops without landing (``ScrapeStopped``).
    """
    settings = get_settings()
    bucket = settings.require("raw_bucket")
    checkpoints = Checkpoints(settings.require("artifacts_bucket"), request.run_id)
    deadline = (
        time.monotonic() + request.time_budget_seconds if request.time_budget_seconds else None
    )
    known: dict[str, str] = {}  # ledger detail learnt before a failure
    state: CrawlState | None = None
    try:
        state = checkpoints.load()
        if state is not None and state.landed:
            # A retry after landing (the last invocation died before its ledger write).
            landed = ScrapeResult.model_validate(state.landed)
            _record_landed(landed, state)
            return landed
        if state is not None and state.stopped is not None:
            # A retry (or a duplicate event) of a stopped crawl: report again, fetch nothing.
            return _report_stopped(state)
        if state is None and request.continuation:
            raise ScrapeError(f"run {request.run_id} has no crawl checkpoint to continue")
        if state is None:
            ledger.start(request.run_id, STAGE)
        else:
            # A continuation (or a retry) carries on with the crawl's original request.
            request = request.model_copy(update=state.request)
        spec = load_spec(request.spec_uri or settings.site_spec_uri or DEFAULT_SPEC_URI)
        dataset = request.dataset or spec.dataset
        source = request.start_url or spec.start_url
        known.update(dataset=dataset, source=source)
        lease = ledger.claim_lease(lease_name(site_of(source)), request.run_id, LEASE_SECONDS)
    except Exception as error:
        if state is None or state.stopped is None:  # a stop's reason stands; its report failed
            _record_failure(request.run_id, state.stats if state else CrawlStats(), error, known)
        raise
    if not lease.won:
        return _skipped(request.run_id, dataset, source, lease)
    if state is None:
        started = datetime.now(timezone.utc)
        state = CrawlState(
            run_id=request.run_id,
            dataset=dataset,
            source=source,
            ingest_date=started.date().isoformat(),
            started_at=started.isoformat(timespec="seconds"),
            request=request.model_dump(
                include={"spec_uri", "start_url", "dataset", "max_pages", "max_items"}
                | {"politeness_delay_seconds", "part_max_records", "part_max_bytes"},
                exclude_none=True,
            ),
            frontier=Frontier(next_index=source),
        )
    else:
        state.invocations += 1
    # Saved before the first request: a killed invocation is counted, and its retry resumes.
    checkpoints.save(state)
    handed_over = False
    breakage = Breakage.from_settings(settings)
    try:
        buffer = PartBuffer(request.part_max_records, request.part_max_bytes)
        buffer.restore(state.unsealed)
        for visit in checkpoints.replay(state):
            if visit.record is not None:
                buffer.add(visit.record)
        _keep_sealed(checkpoints, state, buffer)
        # Judged before any request too: an invocation may have died between the deciding
        # page's log entry and the stop, and its retry must not fetch on.
        broken = breakage.judge(state.stats)
        politeness = (
            request.politeness_delay_seconds
            if request.politeness_delay_seconds is not None
            else settings.politeness_delay_seconds
        )
        with Fetcher(spec.http, spec.user_agent, politeness, sleep=sleep) as fetcher:
            fetcher.resume_after(state.last_request_at)
            pages = visits(
                spec,
                fetcher,
                state.frontier,
                max_pages=request.max_pages or settings.max_pages,
                max_items=request.max_items or settings.max_items,
                stats=state.stats,
                deadline=deadline,
            )
            try:
                for visit in pages if broken is None else ():
                    checkpoints.log(state, visit)
                    if visit.record is not None:
                        buffer.add(visit.record)
                        _keep_sealed(checkpoints, state, buffer)
                    if visit.kind == "detail":
                        broken = breakage.judge(state.stats)
                        if broken is not None:
                            break
            finally:
                state.requests += fetcher.requests_made
                state.retries += fetcher.retries
                state.last_request_at = fetcher.last_request_wall_time
        stats = state.stats
        if broken is not None:
            stop = ScrapeStopped(
                run_id=request.run_id,
                dataset=dataset,
                source=source,
                site_spec=request.spec_uri or settings.site_spec_uri or DEFAULT_SPEC_URI,
                reason=broken,
                pages_read=pages_read(stats),
                pages_broken=stats.items_failed,
                missing_required=stats.missing_required,
                max_broken_share=breakage.max_share,
                invocations=state.invocations,
            )
            # Saved before anyone is told: a retry or a duplicate event of this run finds the
            # crawl stopped and repeats the report, never the fetching.
            checkpoints.mark_stopped(state, stop.model_dump(mode="json"))
            return _report_stopped(state)
        unfinished = not state.frontier.done and stats.capped_by is None
        if unfinished and continue_with is not None:
            buffer.seal()
            _keep_sealed(checkpoints, state, buffer)
            checkpoints.save(state)
            # The ledger first: once the hand-over event is out, nothing here may fail, or
            # Lambda's retry of this invocation would crawl alongside its continuation.
            ledger.progress(
                request.run_id,
                STAGE,
                dataset=dataset,
                source=source,
                invocations=state.invocations,
                records_so_far=stats.records,
                pages_so_far=stats.pages_fetched,
            )
            continue_with(request.run_id, dataset)
            handed_over = True
            logger.info(
                "scrape continues in a new invocation",
                extra={"invocation": state.invocations, **stats.as_dict()},
            )
            return ScrapeContinued(
                run_id=request.run_id,
                dataset=dataset,
                invocation=state.invocations,
                records=stats.records,
                pages_fetched=stats.pages_fetched,
                pending_pages=len(state.frontier.pending),
            )
        if unfinished:
            stats.capped_by = "time_budget"
        buffer.seal()
        if stats.records == 0:
            raise ScrapeError(
                f"no records extracted from {source}: {stats.pages_fetched} pages fetched, "
                f"{stats.pages_failed} failed, {stats.items_failed} items failed"
            )
        result = _land(bucket, checkpoints, state, buffer, spec.name)
    except Exception as error:
        if state.stopped is None:  # a stop's reason stands; only its report failed
            _record_failure(request.run_id, state.stats, error, known)
        raise
    finally:
        if not handed_over:
            _release(lease)
    _record_landed(result, state)
    return result


def _record_landed(result: ScrapeResult, state: CrawlState) -> None:
    ledger.finish(
        result.run_id,
        STAGE,
        Status.SUCCEEDED,
        counts=_counts(state.stats, parts=len(result.part_keys)),
        dataset=result.dataset,
        manifest_key=result.manifest_key,
        source=state.source,
        invocations=state.invocations,
    )
    logger.info(
        "scrape landed", extra={"manifest_key": result.manifest_key, **state.stats.as_dict()}
    )


def _report_stopped(state: CrawlState) -> ScrapeStopped:
    """Record a stopped crawl FAILED, then tell people; repeated as is by a retry.

    The ledger goes first so the reason is on record even if the publish fails; a failed
    publish raises, and Lambda's retry (which finds the checkpoint stopped) reports again.
    """
    assert state.stopped is not None
    stop = ScrapeStopped.model_validate(state.stopped)
    stats = state.stats
    ledger.finish(
        stop.run_id,
        STAGE,
        Status.FAILED,
        counts=_counts(stats, parts=0)
        | {"records": 0, "records_discarded": stats.records}
        | {"pages_read": stop.pages_read, "pages_broken": stop.pages_broken},
        reason=stop.reason,
        dataset=stop.dataset,
        source=stop.source,
        invocations=stop.invocations,
        missing_required=stop.missing_required,
        stopped_early=True,
    )
    notify(
        f"Scrape of {stop.dataset} stopped: site layout changed?",
        f"The crawl of {stop.source} (run {stop.run_id}) stopped early: {stop.reason}.\n"
        "Nothing landed in the raw zone, so nothing was validated, prepared, trained or "
        "deployed: the model in production is unchanged.\n"
        f"Compare a detail page with the selectors of the site spec {stop.site_spec} and fix "
        "the spec; the next scheduled scrape uses it.",
        run_id=stop.run_id,
        dataset=stop.dataset,
        source=stop.source,
        site_spec=stop.site_spec,
        pages_read=stop.pages_read,
        pages_broken=stop.pages_broken,
        missing_required=stop.missing_required,
    )
    logger.error(
        "scrape stopped early: pages lack required fields",
        extra={"reason": stop.reason, **stats.as_dict()},
    )
    return stop


def _keep_sealed(checkpoints: Checkpoints, state: CrawlState, buffer: PartBuffer) -> None:
    """Move parts the buffer sealed into the checkpoint, then snapshot the crawl."""
    if not buffer.parts:
        return
    for part in buffer.parts:
        checkpoints.keep_part(state, part)
    buffer.parts.clear()
    state.unsealed = buffer.unsealed()
    checkpoints.save(state)


def _land(
    bucket: str,
    checkpoints: Checkpoints,
    state: CrawlState,
    buffer: PartBuffer,
    site_spec: str,
) -> ScrapeResult:
    stats = state.stats
    finished = datetime.now(timezone.utc)
    started = datetime.fromisoformat(state.started_at)
    manifest = {
        "run_id": state.run_id,
        "dataset": state.dataset,
        "ingest_date": state.ingest_date,
        "complete": True,
        "pages_fetched": stats.pages_fetched,
        "pages_failed": stats.pages_failed,
        "items_failed": stats.items_failed,
        "field_errors": stats.field_errors,
        "duplicate_links": stats.duplicate_links,
        "disallowed_links": stats.disallowed_links,
        "capped_by": stats.capped_by,
        "requests": state.requests,
        "retries": state.retries,
        "invocations": state.invocations,
        "started_at": state.started_at,
        "finished_at": finished.isoformat(timespec="seconds"),
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "source": state.source,
        "site_spec": site_spec,
    }
    parts = checkpoints.kept_parts(state) + buffer.parts
    entries, manifest_key = land_run(
        bucket,
        state.dataset,
        state.ingest_date,
        state.run_id,
        parts,
        manifest,
        copy_from=checkpoints.bucket,
    )
    result = ScrapeResult(
        run_id=state.run_id,
        dataset=state.dataset,
        ingest_date=state.ingest_date,
        bucket=bucket,
        manifest_key=manifest_key,
        part_keys=[entry["key"] for entry in entries],
        records=stats.records,
        pages_fetched=stats.pages_fetched,
        pages_failed=stats.pages_failed,
        items_failed=stats.items_failed,
        requests=state.requests,
        duration_seconds=manifest["duration_seconds"],
    )
    checkpoints.mark_landed(state, result.model_dump(mode="json"))
    return result


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
