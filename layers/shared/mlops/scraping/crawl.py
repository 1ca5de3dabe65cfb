"""The crawl: follow index pages, fetch each detail page once, extract a record from each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    """Records of the site, each with ``source_url`` and ``fetched_at``; ``stats`` fills as it goes.

    ``max_pages`` caps index pages, ``max_items`` caps records, ``deadline`` (a
    ``time.monotonic()`` instant) stops the crawl in time to land what it has. A start page
    that cannot be fetched or parsed raises ``ScrapeError``; any later page that fails is
    counted and skipped.
    """
    index_url: str | None = start_url
    seen_index: set[str] = set()
    seen_detail: set[str] = set()
    while index_url is not None and index_url not in seen_index:
        if stats.index_pages >= max_pages:
            stats.capped_by = "max_pages"
            return
        if seen_index and _past(deadline):
            stats.capped_by = "time_budget"
            return
        first = not seen_index
        seen_index.add(index_url)
        document = _index_document(index_url, fetcher, stats, first=first)
        if document is None:
            return
        for link in select_links(document, spec.detail_links, index_url):
            if link in seen_detail:
                stats.duplicate_links += 1
                continue
            seen_detail.add(link)
            try:
                allowed = fetcher.allowed(link)
            except FetchError as error:  # robots.txt of another host linked from the index
                stats.pages_failed += 1
                logger.warning("robots.txt unreachable", extra={"url": link, "error": str(error)})
                continue
            if not allowed:
                stats.disallowed_links += 1
                logger.info("skipping link disallowed by robots.txt", extra={"url": link})
                continue
            if stats.records >= max_items:
                stats.capped_by = "max_items"
                return
            if _past(deadline):
                stats.capped_by = "time_budget"
                return
            record = _detail_record(link, spec, fetcher, stats)
            if record is not None:
                stats.records += 1
                yield record
        next_href = select_first(document, spec.pagination)
        index_url = urljoin(index_url, next_href.strip()) if next_href else None


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _index_document(url: str, fetcher: Fetcher, stats: CrawlStats, *, first: bool) -> Any:
    """The parsed index page, or None (counted) when a later one fails; the first must work."""
    try:
        allowed = fetcher.allowed(url)
    except FetchError as error:
        raise ScrapeError(f"site of {url} unreachable: {error}") from error
    if not allowed:
        if first:
            raise ScrapeError(f"robots.txt disallows the start page {url}")
        stats.disallowed_links += 1
        return None
    try:
        response = fetcher.get(url)
        if response.status != 200:
            raise FetchError(f"{url} answered HTTP {response.status}")
        stats.pages_fetched += 1
        stats.index_pages += 1
        return parse_html(response.content, url)
    except (FetchError, PageError) as error:
        if first:
            raise ScrapeError(f"start page unusable: {error}") from error
        stats.pages_failed += 1
        logger.warning("index page failed, crawl ends", extra={"url": url, "error": str(error)})
        return None


def _detail_record(
    url: str, spec: SiteSpec, fetcher: Fetcher, stats: CrawlStats
) -> dict[str, Any] | None:
    try:
        response = fetcher.get(url)
        if response.status != 200:
            raise FetchError(f"{url} answered HTTP {response.status}")
    except FetchError as error:
        stats.pages_failed += 1
        logger.warning("detail page not fetched", extra={"url": url, "error": str(error)})
        return None
    stats.pages_fetched += 1
    try:
        record, field_errors = extract_item(parse_html(response.content, url), spec)
    except PageError as error:
        stats.pages_failed += 1
        logger.warning("detail page not parseable", extra={"url": url, "error": str(error)})
        return None
    except ItemError as error:
        stats.items_failed += 1
        logger.warning("item not extracted", extra={"url": url, "error": str(error)})
        return None
    if field_errors:
        stats.field_errors += len(field_errors)
        logger.warning("optional fields unparseable", extra={"url": url, "errors": field_errors})
    return record | {"source_url": url, "fetched_at": response.fetched_at}
