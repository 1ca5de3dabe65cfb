"""One crawl at a time per site: the scrape lease in the run ledger (moto DynamoDB)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

import demosite
from mlops import ledger
from mlops.scraping import ScrapeRequest, ScrapeResult, ScrapeSkipped, run_scrape
from mlops.scraping.run import LEASE_SECONDS, lease_name, site_of

RAW = "mlops-raw"
SITE = "scrape:http://127.0.0.1:8080"
T0 = 1_795_000_000.0  # an arbitrary "now", in epoch seconds


@pytest.fixture
def table(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> Any:
    monkeypatch.setenv("LEDGER_TABLE", "mlops-ledger")
    declared_table("RunLedgerTable", "mlops-ledger")
    return boto3.resource("dynamodb").Table("mlops-ledger")


@pytest.fixture
def lake(table: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("RAW_BUCKET", RAW)
    monkeypatch.setenv("ARTIFACTS_BUCKET", "mlops-artifacts")
    monkeypatch.setenv("POLITENESS_DELAY_SECONDS", "0")
    monkeypatch.delenv("SITE_SPEC_URI", raising=False)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=RAW)
    s3.create_bucket(Bucket="mlops-artifacts")
    return s3


@pytest.fixture
def site() -> Iterator[demosite.DemoSite]:
    with demosite.serve(listings=12, seed=5) as running:
        yield running


def scrape(site: demosite.DemoSite, run_id: str) -> ScrapeResult | ScrapeSkipped:
    request = ScrapeRequest(run_id=run_id, start_url=site.start_url, max_items=5)
    return run_scrape(request, sleep=lambda _: None)


def hold(site: demosite.DemoSite, owner: str, *, claimed_at: float) -> None:
    """``owner`` took the site's lease at ``claimed_at`` and never gave it back (a crash)."""
    name = lease_name(site_of(site.start_url))
    assert ledger.claim_lease(name, owner, LEASE_SECONDS, now=claimed_at).won


def scrape_item(run_id: str) -> dict[str, Any]:
    return next(item for item in ledger.stages(run_id) if item["stage"] == "scrape")


# --- the lease itself --------------------------------------------------------------------


def test_of_two_claims_on_one_site_only_the_first_wins(table: Any) -> None:
    # given a first crawl that claimed the site
    first = ledger.claim_lease(SITE, "run-a", 60, now=T0)
    # when a second crawl claims it while the lease runs
    second = ledger.claim_lease(SITE, "run-b", 60, now=T0 + 1)
    # then only the first holds it, and the loser learns who does and until when
    assert first.won and not second.won
    assert (second.owner, second.expires_at) == ("run-a", T0 + 60)


def test_an_expired_lease_can_be_taken_over(table: Any) -> None:
    # given a lease that ran out
    ledger.claim_lease(SITE, "run-a", 60, now=T0)
    # when another crawl claims the site after its expiry
    taken = ledger.claim_lease(SITE, "run-b", 60, now=T0 + 61)
    # then the new crawl holds it
    assert taken.won and taken.owner == "run-b"
    assert not ledger.claim_lease(SITE, "run-c", 60, now=T0 + 62).won


def test_leases_of_different_sites_do_not_exclude_each_other(table: Any) -> None:
    assert ledger.claim_lease("scrape:http://a.example", "run-a", 60, now=T0).won
    assert ledger.claim_lease("scrape:http://b.example", "run-b", 60, now=T0).won


def test_a_release_by_a_non_owner_changes_nothing(table: Any) -> None:
    # given a lease held by run-a
    ledger.claim_lease(SITE, "run-a", 60, now=T0)
    # when run-b tries to release it
    released = ledger.release_lease(SITE, "run-b")
    # then nothing is released and run-a still holds the site
    assert released is False
    assert ledger.claim_lease(SITE, "run-c", 60, now=T0 + 1).owner == "run-a"


def test_a_release_by_the_owner_frees_the_site_at_once(table: Any) -> None:
    ledger.claim_lease(SITE, "run-a", 60, now=T0)
    assert ledger.release_lease(SITE, "run-a") is True
    assert ledger.claim_lease(SITE, "run-b", 60, now=T0 + 1).won


def test_a_late_release_does_not_free_a_lease_taken_over_by_another(table: Any) -> None:
    # given run-a's lease expired and run-b took the site over
    ledger.claim_lease(SITE, "run-a", 60, now=T0)
    ledger.claim_lease(SITE, "run-b", 60, now=T0 + 61)
    # when run-a finally releases
    assert ledger.release_lease(SITE, "run-a") is False
    # then run-b still holds the site
    assert ledger.claim_lease(SITE, "run-c", 60, now=T0 + 62).owner == "run-b"


def test_a_lease_is_not_listed_as_a_run(table: Any) -> None:
    ledger.claim_lease(SITE, "run-a", 60)
    ledger.start("run-a", "scrape")
    assert ledger.latest_runs() == ["run-a"]


# --- the lease around a crawl ------------------------------------------------------------


def test_a_crawl_while_another_holds_the_site_is_skipped_without_a_request(
    lake: Any, site: demosite.DemoSite
) -> None:
    # given a crawl of the site in progress
    hold(site, "20261127T080000Z-aaaaaaaa", claimed_at=time.time())
    # when another run starts
    result = scrape(site, "20261127T080100Z-bbbbbbbb")
    # then it fetches nothing, lands nothing and is recorded SKIPPED with the reason
    assert isinstance(result, ScrapeSkipped)
    assert result.holder == "20261127T080000Z-aaaaaaaa"
    assert site.requested_paths() == []
    assert "Contents" not in lake.list_objects_v2(Bucket=RAW)
    item = scrape_item("20261127T080100Z-bbbbbbbb")
    assert item["status"] == "SKIPPED"
    assert "another crawl of http://127.0.0.1" in item["reason"]
    assert "20261127T080000Z-aaaaaaaa" in item["reason"]


def test_a_crash_between_claim_and_release_is_recovered_after_the_lease_expires(
    lake: Any, site: demosite.DemoSite
) -> None:
    # given a crawl that claimed the site and crashed before releasing it, longer ago than
    # the lease lasts
    hold(site, "20261127T080000Z-aaaaaaaa", claimed_at=time.time() - LEASE_SECONDS - 1)
    # when the next run starts
    result = scrape(site, "20261127T090000Z-bbbbbbbb")
    # then it takes the site over and lands
    assert isinstance(result, ScrapeResult) and result.records == 5
    assert scrape_item("20261127T090000Z-bbbbbbbb")["status"] == "SUCCEEDED"


def test_a_finished_crawl_gives_the_site_back(lake: Any, site: demosite.DemoSite) -> None:
    scrape(site, "20261127T080000Z-aaaaaaaa")
    assert isinstance(scrape(site, "20261127T080100Z-bbbbbbbb"), ScrapeResult)


def test_a_failed_crawl_gives_the_site_back_for_its_retry(
    lake: Any, site: demosite.DemoSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a crawl that fails after taking the site
    monkeypatch.setenv("RAW_BUCKET", "no-such-bucket")
    with pytest.raises(Exception, match="NoSuchBucket"):
        scrape(site, "20261127T080000Z-aaaaaaaa")
    # when the retry runs
    monkeypatch.setenv("RAW_BUCKET", RAW)
    result = scrape(site, "20261127T080100Z-bbbbbbbb")
    # then the site is free
    assert isinstance(result, ScrapeResult)
