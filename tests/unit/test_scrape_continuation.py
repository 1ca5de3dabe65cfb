"""A crawl longer than one invocation: checkpoints, hand-over, crash recovery (moto S3)."""

from __future__ import annotations

import gzip
import importlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import pytest

import demosite
from functions.scrape import app
from mlops import ledger
from mlops.scraping import ScrapeError, ScrapeRequest, ScrapeResult, run_scrape
from mlops.scraping.checkpoint import PREFIX
from mlops.scraping.run import ScrapeContinued

# The package exports a function named like the module: fetch the module itself.
crawl_module = importlib.import_module("mlops.scraping.crawl")
RAW, ARTIFACTS = "mlops-raw", "mlops-artifacts"
RUN = "20261203T090000Z-c0ffee00"
LISTINGS = 130


@pytest.fixture
def lake(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> Any:
    monkeypatch.setenv("RAW_BUCKET", RAW)
    monkeypatch.setenv("ARTIFACTS_BUCKET", ARTIFACTS)
    monkeypatch.setenv("LEDGER_TABLE", "mlops-ledger")
    monkeypatch.setenv("POLITENESS_DELAY_SECONDS", "0")
    monkeypatch.delenv("SITE_SPEC_URI", raising=False)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=RAW)
    s3.create_bucket(Bucket=ARTIFACTS)
    declared_table("RunLedgerTable", "mlops-ledger")
    return s3


@pytest.fixture
def site() -> Iterator[demosite.DemoSite]:
    with demosite.serve(listings=LISTINGS, seed=7) as running:
        yield running


class Handovers(list):
    """Stands in for the "Scrape Continues" event: remembers each hand-over."""

    def __call__(self, run_id: str, dataset: str) -> None:
        self.append(run_id)


class PagesPerCall:
    """A clock for the crawl's deadline: each invocation may visit ``pages`` pages."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, pages: int) -> None:
        self.pages, self.visited = pages, 0
        original = crawl_module._past

        def past(deadline: float | None) -> bool:
            if deadline is None:
                return original(deadline)
            self.visited += 1
            return self.visited > self.pages

        monkeypatch.setattr(crawl_module, "_past", past)

    def next_invocation(self) -> None:
        self.visited = 0


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    found = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [o["Key"] for o in found]


def landed_ids(s3: Any, result: ScrapeResult) -> list[str]:
    ids = []
    for key in result.part_keys:
        body = gzip.decompress(s3.get_object(Bucket=RAW, Key=key)["Body"].read())
        ids += [json.loads(line)["listing_id"] for line in body.splitlines()]
    return ids


def invoke(site: demosite.DemoSite, handovers: Handovers, **options: Any) -> Any:
    request = ScrapeRequest(
        run_id=RUN,
        start_url=site.start_url,
        time_budget_seconds=600,
        part_max_records=25,
        **options,
    )
    return run_scrape(request, sleep=lambda _: None, continue_with=handovers)


def crawl_to_the_end(site: demosite.DemoSite, clock: PagesPerCall) -> tuple[Any, Handovers]:
    handovers = Handovers()
    result = invoke(site, handovers)
    while isinstance(result, ScrapeContinued):
        clock.next_invocation()
        result = invoke(site, handovers, continuation=True)
    return result, handovers


def detail_fetches(site: demosite.DemoSite) -> Counter[str]:
    return Counter(p for p in site.requested_paths() if p.startswith("/listing/"))


def test_a_crawl_out_of_time_hands_over_and_the_next_invocations_finish_it(
    lake: Any, site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given invocations that each have time for 40 pages, for a site of 130 listings
    clock = PagesPerCall(monkeypatch, pages=40)

    # when the crawl runs and continues until it lands
    result, handovers = crawl_to_the_end(site, clock)

    # then several invocations made one crawl: every listing landed once, none fetched twice
    assert isinstance(result, ScrapeResult)
    assert len(handovers) >= 3
    assert sorted(landed_ids(lake, result)) == sorted(site.catalogue.published)
    assert max(detail_fetches(site).values()) == 1
    manifest = json.loads(lake.get_object(Bucket=RAW, Key=result.manifest_key)["Body"].read())
    assert manifest["invocations"] == len(handovers) + 1
    assert manifest["capped_by"] is None


def test_the_raw_zone_sees_nothing_until_the_crawl_is_complete(
    lake: Any, site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    PagesPerCall(monkeypatch, pages=40)

    first = invoke(site, Handovers())

    assert isinstance(first, ScrapeContinued)
    assert keys(lake, RAW) == []
    assert keys(lake, ARTIFACTS, f"{PREFIX}{RUN}/")  # the checkpoint holds the crawl so far


def test_a_landed_crawl_marks_its_checkpoint_landed(
    lake: Any, site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = PagesPerCall(monkeypatch, pages=40)

    result, _ = crawl_to_the_end(site, clock)

    state = json.loads(
        lake.get_object(Bucket=ARTIFACTS, Key=f"{PREFIX}{RUN}/state.json")["Body"].read()
    )
    assert state["landed"]["manifest_key"] == result.manifest_key


def test_a_retry_after_landing_records_the_run_a_dying_invocation_did_not(
    lake: Any, site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a crawl that landed but whose last invocation died before its ledger write
    clock = PagesPerCall(monkeypatch, pages=1000)
    with (
        mock.patch("mlops.scraping.run._record_landed", side_effect=SystemExit("killed")),
        pytest.raises(SystemExit),
    ):
        crawl_to_the_end(site, clock)

    # when Lambda retries it
    invoke(site, Handovers())

    # then the ledger has the run as landed
    item = next(i for i in ledger.stages(RUN) if i["stage"] == "scrape")
    assert item["status"] == "SUCCEEDED" and item["counts"]["records"] == LISTINGS


def test_a_crash_midway_resumes_from_the_checkpoint_without_refetching(
    lake: Any, site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an invocation that dies (as a killed process would) at its 57th page visit
    original = crawl_module._detail_visit
    visits = {"n": 0}

    def dies_midway(url: str, spec: Any, fetcher: Any) -> Any:
        visits["n"] += 1
        if visits["n"] == 57:
            raise SystemExit("killed")
        return original(url, spec, fetcher)

    monkeypatch.setattr(crawl_module, "_detail_visit", dies_midway)
    with pytest.raises(SystemExit):
        invoke(site, Handovers())

    # when Lambda retries the same event
    result = invoke(site, Handovers())

    # then the crawl finishes with every listing, and no listing page was requested twice
    assert isinstance(result, ScrapeResult)
    assert sorted(landed_ids(lake, result)) == sorted(site.catalogue.published)
    assert max(detail_fetches(site).values()) == 1


def test_a_retry_after_the_crawl_landed_returns_it_without_a_request(
    lake: Any, site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = PagesPerCall(monkeypatch, pages=1000)
    landed, _ = crawl_to_the_end(site, clock)
    requests_before = len(site.requested_paths())

    again = invoke(site, Handovers(), continuation=True)

    assert again == landed
    assert len(site.requested_paths()) == requests_before


def test_a_continuation_without_a_checkpoint_fails_clearly(lake: Any, site: Any) -> None:
    with pytest.raises(ScrapeError, match="no crawl checkpoint"):
        invoke(site, Handovers(), continuation=True)
    assert site.requested_paths() == []


def test_the_site_lease_is_kept_across_a_hand_over_and_given_back_at_the_end(
    lake: Any, site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = PagesPerCall(monkeypatch, pages=40)
    invoke(site, Handovers())
    other = ScrapeRequest(run_id="another-run", start_url=site.start_url)

    skipped = run_scrape(other, sleep=lambda _: None)

    assert getattr(skipped, "holder", None) == RUN
    clock.next_invocation()
    clock.pages = 1000
    invoke(site, Handovers(), continuation=True)
    assert isinstance(run_scrape(other, sleep=lambda _: None), ScrapeResult)


def test_politeness_holds_across_invocations(
    lake: Any, site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a crawl with a 5 s delay that hands over right after a request
    clock = PagesPerCall(monkeypatch, pages=2)
    handovers = Handovers()
    request = ScrapeRequest(
        run_id=RUN, start_url=site.start_url, time_budget_seconds=600, politeness_delay_seconds=5
    )
    run_scrape(request, sleep=lambda _: None, continue_with=handovers)

    # when the next invocation starts at once
    clock.next_invocation()
    waits: list[float] = []
    resumed = request.model_copy(update={"continuation": True})
    run_scrape(resumed, sleep=waits.append, continue_with=handovers)

    # then its first request still waits out most of the delay
    assert waits and 4.0 < waits[0] <= 5.0


def test_the_ledger_shows_a_continuing_crawl_as_started_with_its_progress(
    lake: Any, site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a crawl that handed over once
    clock = PagesPerCall(monkeypatch, pages=40)
    invoke(site, Handovers())
    started = next(i for i in ledger.stages(RUN) if i["stage"] == "scrape")["started_at"]

    # when its next invocation hands over too
    clock.next_invocation()
    invoke(site, Handovers(), continuation=True)

    # then the stage is still the one started with the crawl, with its progress so far
    item = next(i for i in ledger.stages(RUN) if i["stage"] == "scrape")
    assert item["status"] == "STARTED" and item["started_at"] == started
    assert item["detail"]["invocations"] == 2
    assert 0 < item["detail"]["records_so_far"] < LISTINGS


def test_the_handler_keeps_a_quarter_of_a_short_timeout_for_landing(lambda_context: Any) -> None:
    class Twenty(type(lambda_context)):
        def get_remaining_time_in_millis(self) -> int:
            return 20_000

    assert app.time_budget(Twenty()) == pytest.approx(15.0)
    assert app.time_budget(lambda_context) >= 1.0


def test_the_handler_continues_a_crawl_from_a_continuation_event(
    lake: Any, site: Any, monkeypatch: pytest.MonkeyPatch, event: Any, lambda_context: Any
) -> None:
    # given a crawl that handed over after 40 pages
    clock = PagesPerCall(monkeypatch, pages=40)
    invoke(site, Handovers())
    clock.pages = 1000
    clock.next_invocation()
    continues = event("scrape_continues.json")
    continues["detail"]["run_id"] = RUN

    # when the handler receives the "Scrape Continues" event
    summary = app.lambda_handler(continues, lambda_context)

    # then it resumed the same run and landed it
    assert summary["run_id"] == RUN
    assert summary["records"] == len(site.catalogue.published)
