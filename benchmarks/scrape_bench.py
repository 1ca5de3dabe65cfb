"""Scraper throughput against the demo site: pages/s without and with a politeness delay.

Serves the demo site on 127.0.0.1 and crawls it with the bundled ``demo_cars`` spec (robots,
retries, extraction included; no S3). Prints pages/s for politeness 0 (the baseline) and for a
politeness delay, and their ratio; with a delay d the ceiling is 1/d pages/s.

    make bench BENCH=scrape    (or: .venv/bin/python benchmarks/scrape_bench.py [--delay 0.05])
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import demosite
from mlops.scraping import CrawlStats, Fetcher, crawl, load_spec

ROOT = Path(__file__).resolve().parent.parent


def crawl_rate(site: demosite.DemoSite, delay: float, listings: int) -> tuple[float, int, int]:
    """Pages per second of one full crawl, pages fetched, records extracted."""
    spec = load_spec("builtin:demo_cars")
    stats = CrawlStats()
    with Fetcher(spec.http, spec.user_agent, delay) as fetcher:
        started = time.perf_counter()
        for _ in crawl(
            spec, site.start_url, fetcher, max_pages=10_000, max_items=listings, stats=stats
        ):
            pass
        elapsed = time.perf_counter() - started
    return stats.pages_fetched / elapsed, stats.pages_fetched, stats.records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=500)
    parser.add_argument("--delay", type=float, default=0.05, help="politeness delay, seconds")
    args = parser.parse_args()

    with demosite.serve(listings=args.listings, seed=7) as site:
        crawl_rate(site, 0.0, 25)  # warm up imports, lxml and the server threads
        fast, pages, records = crawl_rate(site, 0.0, args.listings)
        polite, _, _ = crawl_rate(site, args.delay, args.listings)

    ceiling = 1.0 / args.delay if args.delay > 0 else float("inf")
    print(f"demo site: {args.listings} listings, {pages} pages per crawl, {records} records")
    print(f"politeness 0.00 s  : {fast:8.1f} pages/s  (baseline)")
    print(
        f"politeness {args.delay:.2f} s  : {polite:8.1f} pages/s  "
        f"ratio {polite / fast:.3f} of baseline (ceiling {ceiling:.1f} pages/s)"
    )


if __name__ == "__main__":
    main()
