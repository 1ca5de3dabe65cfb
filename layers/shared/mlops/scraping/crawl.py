"""The crawl: follow index pages, fetch each detail page once, extract a record from each.

A crawl is a sequence of page visits over a ``Frontier``; each visit records what it changed,
so a crawl can stop at any visit and continue elsewhere from its frontier (or rebuild the
frontier by replaying its logged visits) without skipping or refetching a page.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin

from mlops.observability import logger
from mlops.scraping.extract import (
    ItemError,
    PageError,
    extract_item,
    parse_html,
    select_first,
    select_links,
)
from mlops.scraping.fetch import Fetcher, FetchError
from mlops.scraping.spec import SiteSpec


class ScrapeError(RuntimeError):
    """The crawl cannot produce a run: unreachable or unusable start page, or nothing extracted."""


@dataclass
class CrawlStats:
    """What happened during a crawl; ``pages_*`` count index and detail pages alike."""

    pages_fetched: int = 0
    pages_failed: int = 0
    items_failed: int = 0
    records: int = 0
    index_pages: int = 0
    field_errors: int = 0
    duplicate_links: int = 0
    disallowed_links: int = 0
    capped_by: str | None = None
    # Required field -> detail pages that lacked it (``items_failed`` counts the pages); the
    # crawl's layout check (``mlops.scraping.breakage``) names them when it stops a crawl.
    missing_required: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, delta: dict[str, int]) -> None:
        for name, value in delta.items():
            setattr(self, name, getattr(self, name) + value)

    def add_missing(self, fields: list[str]) -> None:
        for name in fields:
            self.missing_required[name] = self.missing_required.get(name, 0) + 1


@dataclass
class Frontier:
    """Where a crawl stands: what is left to visit and what was seen (JSON round-trips).

    A crawl that continues in another invocation resumes from its frontier, so it neither
    skips nor refetches a page.
    """

    next_index: str | None
    pending: list[str] = field(default_factory=list)
    seen_index: list[str] = field(default_factory=list)
    seen_detail: set[str] = field(default_factory=set)

    @property
    def done(self) -> bool:
        return not self.pending and (self.next_index is None or self.next_index in self.seen_index)

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"seen_detail": sorted(self.seen_detail)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Frontier:
        return cls(
            next_index=data.get("next_index"),
            pending=list(data.get("pending", [])),
            seen_index=list(data.get("seen_index", [])),
            seen_detail=set(data.get("seen_detail", [])),
        )


@dataclass
class PageVisit:
    """One page the crawl visited and what it changed: replaying visits rebuilds a frontier.

    An index visit carries the detail links it queued and the next index page; a detail
    visit carries its record (or None when the page failed). ``stats`` holds the counts the
    visit adds, ``missing`` the required fields a detail page lacked.
    """

    kind: Literal["index", "detail"]
    url: str
    stats: dict[str, int] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    next_index: str | None = None
    record: dict[str, Any] | None = None
    missing: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageVisit:
        return cls(**data)


def apply(visit: PageVisit, frontier: Frontier, stats: CrawlStats) -> None:
    """Move ``frontier`` and ``stats`` past ``visit`` (live, and when replaying a log)."""
    stats.add(visit.stats)
    stats.add_missing(visit.missing)
    if visit.kind == "index":
        frontier.seen_index.append(visit.url)
        frontier.pending.extend(visit.links)
        frontier.seen_detail.update(visit.links)
        frontier.next_index = visit.next_index
    else:
        if frontier.pending and frontier.pending[0] == visit.url:
            frontier.pending.pop(0)
        else:  # a visit logged out of order would mean a bug; never visit it again
            frontier.pending = [u for u in frontier.pending if u != visit.url]
        frontier.seen_detail.add(visit.url)


def visits(
    spec: SiteSpec,
    fetcher: Fetcher,
    frontier: Frontier,
    *,
    max_pages: int,
    max_items: int,
    stats: CrawlStats,
    deadline: float | None = None,
) -> Iterator[PageVisit]:
    """Visit the frontier's pages in order, applying each visit before yielding it.

    Stops when the frontier is done, at ``max_pages`` index pages or ``max_items`` records
    (``stats.capped_by`` says which), or at ``deadline`` (a ``time.monotonic()`` instant)
    with the frontier left where a continuation picks it up. A start page that cannot be
    fetched or parsed raises ``ScrapeError``; any later page that fails is counted and skipped.
    """
    while not frontier.done:
        if frontier.pending:
            if stats.records >= max_items:
                stats.capped_by = "max_items"
                return
            if _past(deadline):
                return
            link = frontier.pending[0]
            visit = _detail_visit(link, spec, fetcher)
        else:
            url = frontier.next_index
            assert url is not None  # not done and nothing pending
            if stats.index_pages >= max_pages:
                stats.capped_by = "max_pages"
                return
            first = not frontier.seen_index
            if not first and _past(deadline):
                return
            visit = _index_visit(url, spec, fetcher, frontier, first=first)
        apply(visit, frontier, stats)
        yield visit


def crawl(
    spec: SiteSpec,
    start_url: str,
    fetcher: Fetcher,
    *,
    max_pages: int,
    max_items: int,
    stats: CrawlStats,
    deadline: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Records of the site, each with ``source_url`` and ``fetched_at``, in one go.

    ``deadline`` stops the crawl in time to land what it has (``capped_by`` "time_budget").
    """
    frontier = Frontier(next_index=start_url)
    for visit in visits(
        spec,
        fetcher,
        frontier,
        max_pages=max_pages,
        max_items=max_items,
        stats=stats,
        deadline=deadline,
    ):
        if visit.record is not None:
            yield visit.record
    if not frontier.done and stats.capped_by is None:
        stats.capped_by = "time_budget"


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _index_visit(
    url: str, spec: SiteSpec, fetcher: Fetcher, frontier: Frontier, *, first: bool
) -> PageVisit:
    """Visit an index page: the detail links it adds and the next index page."""
    visit = PageVisit("index", url)
    document = _index_document(url, fetcher, visit.stats, first=first)
    if document is None:
        return visit  # a later index page failed: the crawl ends here
    queued = set(frontier.seen_detail)
    for link in select_links(document, spec.detail_links, url):
        if link in queued:
            _count(visit.stats, "duplicate_links")
            continue
        queued.add(link)
        try:
            allowed = fetcher.allowed(link)
        except FetchError as error:  # robots.txt of another host linked from the index
            _count(visit.stats, "pages_failed")
            logger.warning("robots.txt unreachable", extra={"url": link, "error": str(error)})
            continue
        if not allowed:
            _count(visit.stats, "disallowed_links")
            logger.info("skipping link disallowed by robots.txt", extra={"url": link})
            continue
        visit.links.append(link)
    next_href = select_first(document, spec.pagination)
    visit.next_index = urljoin(url, next_href.strip()) if next_href else None
    return visit


def _count(stats: dict[str, int], name: str, by: int = 1) -> None:
    stats[name] = stats.get(name, 0) + by


def _index_document(url: str, fetcher: Fetcher, stats: dict[str, int], *, first: bool) -> Any:
    """The parsed index page, or None (counted) when a later one fails; the first must work."""
    try:
        allowed = fetcher.allowed(url)
    except FetchError as error:
        raise ScrapeError(f"site of {url} unreachable: {error}") from error
    if not allowed:
        if first:
            raise ScrapeError(f"robots.txt disallows the start page {url}")
        _count(stats, "disallowed_links")
        return None
    try:
        response = fetcher.get(url)
        if response.status != 200:
            raise FetchError(f"{url} answered HTTP {response.status}")
        _count(stats, "pages_fetched")
        _count(stats, "index_pages")
        return parse_html(response.content, url)
    except (FetchError, PageError) as error:
        if first:
            raise ScrapeError(f"start page unusable: {error}") from error
        _count(stats, "pages_failed")
        logger.warning("index page failed, crawl ends", extra={"url": url, "error": str(error)})
        return None


def _detail_visit(url: str, spec: SiteSpec, fetcher: Fetcher) -> PageVisit:
    visit = PageVisit("detail", url)
    try:
        response = fetcher.get(url)
        if response.status != 200:
            raise FetchError(f"{url} answered HTTP {response.status}")
    except FetchError as error:
        _count(visit.stats, "pages_failed")
        logger.warning("detail page not fetched", extra={"url": url, "error": str(error)})
        return visit
    _count(visit.stats, "pages_fetched")
    try:
        record, field_errors = extract_item(parse_html(response.content, url), spec)
    except PageError as error:
        _count(visit.stats, "pages_failed")
        logger.warning("detail page not parseable", extra={"url": url, "error": str(error)})
        return visit
    except ItemError as error:
        _count(visit.stats, "items_failed")
        visit.missing = list(error.fields)
        logger.warning("item not extracted", extra={"url": url, "error": str(error)})
        return visit
    if field_errors:
        _count(visit.stats, "field_errors", len(field_errors))
        logger.warning("optional fields unparseable", extra={"url": url, "errors": field_errors})
    _count(visit.stats, "records")
    visit.record = record | {"source_url": url, "fetched_at": response.fetched_at}
    return visit
