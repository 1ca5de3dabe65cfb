"""A scrape run against the demo site served on 127.0.0.1, landing in a moto raw bucket."""

from __future__ import annotations

import gzip
import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

import demosite
from mlops import ledger
from mlops.clients import client
from mlops.scraping import ScrapeError, ScrapeRequest, SpecError, run_scrape
from mlops.scraping.spec import BUILTIN_DIR

RAW = "mlops-raw"
RUN = "20261127T090000Z-0badcafe"
# 130 listings: 6 index pages; page 5 features a listing of page 4 again, and page 1 carries
# a staff preview link under /admin/.
LISTINGS = 130
DEMO_SPEC = (BUILTIN_DIR / "demo_cars.yaml").read_text()


@pytest.fixture
def lake(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> Any:
    monkeypatch.setenv("RAW_BUCKET", RAW)
    monkeypatch.setenv("LEDGER_TABLE", "mlops-ledger")
    monkeypatch.setenv("ARTIFACTS_BUCKET", "mlops-artifacts")
    monkeypatch.delenv("SITE_SPEC_URI", raising=False)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=RAW)
    s3.create_bucket(Bucket="mlops-artifacts")
    declared_table("RunLedgerTable", "mlops-ledger")
    return s3


@pytest.fixture
def site() -> Iterator[demosite.DemoSite]:
    with demosite.serve(listings=LISTINGS, seed=7) as running:
        yield running


class Sleeps(list):
    """A stand-in for time.sleep that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def keys(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=RAW).get("Contents", [])]


def landed_records(s3: Any, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    records = []
    for part in manifest["parts"]:
        body = s3.get_object(Bucket=RAW, Key=part["key"])["Body"].read()
        records.extend(json.loads(line) for line in gzip.decompress(body).splitlines())
    return records


def manifest_of(s3: Any, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=RAW, Key=key)["Body"].read())


def scrape(site: demosite.DemoSite, **options: Any) -> Any:
    sleep = options.pop("sleep", Sleeps())
    run_id = options.pop("run_id", RUN)
    request = ScrapeRequest(run_id=run_id, start_url=site.start_url, **options)
    return run_scrape(request, sleep=sleep)


def put_spec(s3: Any, text: str) -> str:
    s3.put_object(Bucket="mlops-artifacts", Key="specs/custom.yaml", Body=text.encode())
    return "s3://mlops-artifacts/specs/custom.yaml"


def test_demo_spec_extracts_every_field_of_every_listing_as_published(lake: Any, site: Any) -> None:
    result = scrape(site)

    records = landed_records(lake, manifest_of(lake, result.manifest_key))
    published = site.catalogue.published
    assert sorted(r["listing_id"] for r in records) == sorted(published)
    for record in records:
        assert {k: record[k] for k in published[record["listing_id"]]} == published[
            record["listing_id"]
        ]


def test_each_record_carries_its_source_url_and_fetch_time(lake: Any, site: Any) -> None:
    result = scrape(site, max_items=3)

    for record in landed_records(lake, manifest_of(lake, result.manifest_key)):
        assert record["source_url"] == f"{site.url}listing/{record['listing_id']}"
        assert record["fetched_at"].startswith("20") and record["fetched_at"].endswith("+00:00")


def test_pages_disallowed_by_robots_are_never_requested(lake: Any, site: Any) -> None:
    result = scrape(site)

    paths = site.requested_paths()
    assert paths[0] == "/robots.txt"
    assert not [path for path in paths if path.startswith("/admin/")]
    assert manifest_of(lake, result.manifest_key)["disallowed_links"] >= 1


def test_the_crawl_reuses_one_connection_and_names_itself_honestly(lake: Any, site: Any) -> None:
    scrape(site)

    assert site.connections == 1
    (agent,) = site.user_agents
    # Names the crawler, its version and what it is for (a site spec adds a contact URL).
    assert re.match(r"^serverless-mlops-scraper/\d+\.\d+ \(.+\)$", agent)


def test_a_listing_linked_from_two_index_pages_is_fetched_once(lake: Any, site: Any) -> None:
    result = scrape(site)

    detail_paths = [p for p in site.requested_paths() if p.startswith("/listing/")]
    assert len(detail_paths) == len(set(detail_paths)) == LISTINGS
    assert manifest_of(lake, result.manifest_key)["duplicate_links"] >= 1


def test_429_and_503_answers_are_retried_until_every_page_is_fetched(lake: Any) -> None:
    with demosite.serve(listings=LISTINGS, seed=7, flaky=0.3) as flaky:
        result = scrape(flaky)
        statuses = [status for _, status in flaky.request_log]

    assert 429 in statuses and 503 in statuses
    assert result.records == LISTINGS
    assert result.pages_failed == 0


def test_retry_after_of_a_429_is_honoured(lake: Any) -> None:
    sleeps = Sleeps()
    with demosite.serve(listings=30, seed=7, flaky=0.5, retry_after=2) as flaky:
        scrape(flaky, sleep=sleeps)
        throttled = sum(1 for _, status in flaky.request_log if status == 429)

    assert throttled > 0
    assert sleeps.count(2.0) == throttled


def test_503_answers_back_off_exponentially_from_the_spec_backoff(lake: Any) -> None:
    sleeps = Sleeps()
    with demosite.serve(listings=30, seed=7, flaky=0.5, retry_after=2) as flaky:
        scrape(flaky, sleep=sleeps)
        unavailable = sum(1 for _, status in flaky.request_log if status == 503)

    backoffs = [seconds for seconds in sleeps if seconds != 2.0]
    assert len(backoffs) == unavailable > 0
    # the demo spec's backoff is 0.2 s, doubled per attempt on the same URL
    assert set(backoffs) <= {0.2, 0.4} and 0.4 in backoffs


def test_politeness_delay_spaces_out_requests(lake: Any, site: Any) -> None:
    sleeps = Sleeps()

    scrape(site, max_items=5, politeness_delay_seconds=0.5, sleep=sleeps)

    # every request after the first waits for whatever is left of the delay
    assert len(sleeps) == len(site.request_log) - 1
    assert all(0 < seconds <= 0.5 for seconds in sleeps)


@pytest.mark.parametrize(
    ("spec_text", "message"),
    [
        ("fields: [unclosed", "not valid YAML"),
        (
            DEMO_SPEC.replace("required: [listing_id,", "required: [vin, listing_id,"),
            "required fields without a selector: vin",
        ),
    ],
)
def test_a_bad_spec_fails_clearly_before_any_request(
    lake: Any, site: Any, spec_text: str, message: str
) -> None:
    uri = put_spec(lake, spec_text)

    with pytest.raises(SpecError, match=message):
        scrape(site, spec_uri=uri)

    assert site.request_log == []
    assert keys(lake) == []
    (item,) = ledger.stages(RUN)
    assert item["status"] == "FAILED" and message in item["reason"]


def test_a_page_that_fails_to_parse_is_counted_and_the_run_goes_on(lake: Any) -> None:
    with demosite.serve(listings=LISTINGS, seed=7, broken=["/listing/L000004"]) as broken:
        result = scrape(broken)

    manifest = manifest_of(lake, result.manifest_key)
    assert manifest["pages_failed"] == result.pages_failed == 1
    assert manifest["records"] == LISTINGS - 1
    assert "L000004" not in {r["listing_id"] for r in landed_records(lake, manifest)}


def test_an_item_missing_a_required_field_is_counted_and_skipped(lake: Any, site: Any) -> None:
    spec = DEMO_SPEC.replace("required: [listing_id,", "required: [mileage, listing_id,")
    without_mileage = [i for i, p in site.catalogue.published.items() if p["mileage"] is None]

    result = scrape(site, spec_uri=put_spec(lake, spec))

    assert without_mileage, "the demo catalogue should have listings without mileage"
    assert result.items_failed == len(without_mileage)
    assert result.records == LISTINGS - len(without_mileage)


def test_an_unreachable_start_url_fails_the_run_and_lands_nothing(lake: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = ScrapeRequest(run_id=RUN, start_url=f"http://127.0.0.1:{port}/listings?page=1")

    with pytest.raises(ScrapeError, match=f"127.0.0.1:{port}.*unreachable"):
        run_scrape(request, sleep=Sleeps())

    assert keys(lake) == []
    (item,) = ledger.stages(RUN)
    assert item["status"] == "FAILED" and "unreachable" in item["reason"]
    assert (item["counts"]["records"], item["counts"]["parts"]) == (0, 0)
    assert item["dataset"] == "used_cars"


def test_parts_are_bounded_and_the_manifest_counts_match_them(lake: Any, site: Any) -> None:
    result = scrape(site, part_max_records=40)

    manifest = manifest_of(lake, result.manifest_key)
    assert [part["records"] for part in manifest["parts"]] == [40, 40, 40, 10]
    assert manifest["records"] == sum(p["records"] for p in manifest["parts"]) == LISTINGS
    assert len(landed_records(lake, manifest)) == LISTINGS
    assert sorted(keys(lake)) == sorted(
        [p["key"] for p in manifest["parts"]] + [result.manifest_key]
    )


def test_parts_are_also_bounded_in_bytes(lake: Any, site: Any) -> None:
    result = scrape(site, part_max_bytes=16 * 1024)

    manifest = manifest_of(lake, result.manifest_key)
    for part in manifest["parts"]:
        body = lake.get_object(Bucket=RAW, Key=part["key"])["Body"].read()
        assert len(gzip.decompress(body)) <= 16 * 1024
    assert len(manifest["parts"]) > 1


def test_the_manifest_is_written_after_every_part(lake: Any, site: Any) -> None:
    written: list[str] = []

    def landed(params: dict[str, Any], **_: Any) -> None:
        if params["Bucket"] == RAW:
            written.append(params["Key"])

    for operation in ("PutObject", "CopyObject"):
        client("s3").meta.events.register(f"before-parameter-build.s3.{operation}", landed)

    result = scrape(site, part_max_records=50)

    assert written[-1] == result.manifest_key
    assert len(written) == 4


def test_the_manifest_has_the_agreed_shape(lake: Any, site: Any) -> None:
    result = scrape(site)

    manifest = manifest_of(lake, result.manifest_key)
    assert result.manifest_key == (
        f"dataset=used_cars/ingest_date={result.ingest_date}/run_id={RUN}/_manifest.json"
    )
    assert manifest["complete"] is True
    assert (manifest["run_id"], manifest["dataset"]) == (RUN, "used_cars")
    assert manifest["source"] == site.start_url
    assert manifest["pages_fetched"] == result.pages_fetched == LISTINGS + 6
    assert {"started_at", "finished_at", "duration_seconds", "items_failed"} <= set(manifest)


def test_item_and_page_caps_stop_the_crawl(lake: Any, site: Any) -> None:
    by_items = scrape(site, max_items=30, run_id="20261127T090000Z-00000001")
    by_pages = scrape(site, max_pages=2, run_id="20261127T090000Z-00000002")

    assert by_items.records == 30
    assert manifest_of(lake, by_items.manifest_key)["capped_by"] == "max_items"
    assert by_pages.records == 50
    assert manifest_of(lake, by_pages.manifest_key)["capped_by"] == "max_pages"


def test_the_ledger_records_the_agreed_counts(lake: Any, site: Any) -> None:
    result = scrape(site, part_max_records=100)

    (item,) = ledger.stages(RUN)
    assert item["status"] == "SUCCEEDED"
    assert item["counts"] == {
        "pages_fetched": result.pages_fetched,
        "pages_failed": 0,
        "items_failed": 0,
        "records": LISTINGS,
        "parts": 2,
    }
    assert item["dataset"] == "used_cars"
    assert item["manifest_key"] == result.manifest_key


def test_a_spent_time_budget_stops_the_crawl_and_lands_what_it_has(lake: Any, site: Any) -> None:
    # real politeness sleeps of 0.1 s make the crawl outlast a 1 s budget by far
    result = scrape(site, politeness_delay_seconds=0.1, time_budget_seconds=1.0, sleep=time.sleep)

    manifest = manifest_of(lake, result.manifest_key)
    assert manifest["capped_by"] == "time_budget"
    assert 0 < result.records < LISTINGS
    assert manifest["records"] == result.records
