"""The scraper: declarative site specs, polite fetching, extraction, and landing in the raw zone."""

from __future__ import annotations

from mlops.scraping.crawl import CrawlStats, ScrapeError, crawl
from mlops.scraping.fetch import Fetcher, FetchError
from mlops.scraping.run import (
    ScrapeRequest,
    ScrapeResult,
    ScrapeSkipped,
    ScrapeStopped,
    run_scrape,
)
from mlops.scraping.spec import SiteSpec, SpecError, load_spec, parse_spec

__all__ = [
    "CrawlStats",
    "FetchError",
    "Fetcher",
    "ScrapeError",
    "ScrapeRequest",
    "ScrapeResult",
    "ScrapeSkipped",
    "ScrapeStopped",
    "SiteSpec",
    "SpecError",
    "crawl",
    "load_spec",
    "parse_spec",
    "run_scrape",
]
