"""Scraper throughput against the demo site: pages/s without and with a politeness delay,
and with the crawl checkpointed as the scrape function runs it.

Serves the demo site on 127.0.0.1 and crawls it with the bundled ``demo_cars`` spec (robots,
retries, extraction included; no S3). Prints pages/s for politeness 0 (the baseline), for a
politeness delay (with a delay d the ceiling is 1/d pages/s), and for ``run_scrape`` itself,
which logs every page visit to its checkpoint and lands the run in S3 (moto, in process: this
measures the checkpoint's own cost, not a network's), each with its ratio to the baseline.

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


def checkpointed_rate(site: demosite.DemoSite, listings: int) -> float:
    """Pages per second of ``run_scrape`` (checkpoint per visit, parts, landing) on moto."""
    import os

    import boto3
    from moto import mock_aws

    from mlops.scraping import ScrapeRequest, run_scrape

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        RAW_BUCKET="bench-raw",
        ARTIFACTS_BUCKET="bench-artifacts",
        LEDGER_TABLE="bench-ledger",
        POLITENESS_DELAY_SECONDS="0",
    )
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in ("bench-raw", "bench-artifacts"):
            s3.create_bucket(Bucket=bucket)
        boto3.client("dynamodb").create_table(
            TableName="bench-ledger",
            KeySchema=[
                {"AttributeName": "run_id", "KeyType": "HASH"},
                {"AttributeName": "stage", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "run_id", "AttributeType": "S"},
                {"AttributeName": "stage", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        request = ScrapeRequest(run_id="bench", start_url=site.start_url, max_items=listings)
        started = time.perf_counter()
        result = run_scrape(request)
        elapsed = time.perf_counter() - started
    return result.pages_fetched / elapsed  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=500)
    parser.add_argument("--delay", type=float, default=0.05, help="politeness delay, seconds")
    args = parser.parse_args()

    with demosite.serve(listings=args.listings, seed=7) as site:
        crawl_rate(site, 0.0, 25)  # warm up imports, lxml and the server threads
        fast, pages, records = crawl_rate(site, 0.0, args.listings)
        polite, _, _ = crawl_rate(site, args.delay, args.listings)
        checkpointed = checkpointed_rate(site, args.listings)

    ceiling = 1.0 / args.delay if args.delay > 0 else float("inf")
    print(f"demo site: {args.listings} listings, {pages} pages per crawl, {records} records")
    print(f"politeness 0.00 s  : {fast:8.1f} pages/s  (baseline)")
    print(
        f"politeness {args.delay:.2f} s  : {polite:8.1f} pages/s  "
        f"ratio {polite / fast:.3f} of baseline (ceiling {ceiling:.1f} pages/s)"
    )
    print(
        f"checkpointed run  : {checkpointed:8.1f} pages/s  "
        f"ratio {checkpointed / fast:.3f} of baseline (a visit log per page, parts, landing)"
    )


if __name__ == "__main__":
    main()
