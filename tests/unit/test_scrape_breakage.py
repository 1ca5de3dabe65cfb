"""A broken scrape stops early: when the site's layout no longer matches the spec, the crawl
stops after a minimum sample, lands nothing, records why and tells people (moto, demo site)."""

from __future__ import annotations

import copy
import importlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

import demosite
from functions.scrape import app
from mlops import ledger
from mlops.scraping import ScrapeRequest, ScrapeResult, ScrapeStopped, run_scrape
from mlops.scraping.breakage import Breakage
from mlops.scraping.crawl import CrawlStats
from mlops.scraping.run import ScrapeContinued
from mlops.scraping.spec import BUILTIN_DIR
from mlops.settings import get_settings

# The package exports a function named like the module: fetch the module itself.
crawl_module = importlib.import_module("mlops.scraping.crawl")
RAW, ARTIFACTS = "mlops-raw", "mlops-artifacts"
RUN = "20261211T090000Z-b40ce000"
LISTINGS = 130
# The default plan's redesign: the detail price leaves the demo spec's selector.
LAYOUT_DAY = 11
DEMO_SPEC = (BUILTIN_DIR / "demo_cars.yaml").read_text()
STOPPED_AT_20 = (
    "layout changed? 100% of 20 detail pages lack required field(s) price (threshold 50%)"
)


@pytest.fixture
def lake(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> Any:
    monkeypatch.setenv("RAW_BUCKET", RAW)
    monkeypatch.setenv("ARTIFACTS_BUCKET", ARTIFACTS)
    monkeypatch.setenv("LEDGER_TABLE", "mlops-ledger")
    monkeypatch.setenv("POLITENESS_DELAY_SECONDS", "0")
    for name in ("SITE_SPEC_URI", "SCRAPE_MAX_BROKEN_SHARE", "SCRAPE_BROKEN_MIN_PAGES"):
        monkeypatch.delenv(name, raising=False)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=RAW)
    s3.create_bucket(Bucket=ARTIFACTS)
    declared_table("RunLedgerTable", "mlops-ledger")
    return s3


@pytest.fixture
def inbox(lake: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """An SQS queue subscribed to the notification topic, as an operator's mailbox."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="mlops-notifications")["TopicArn"]
    queue = sqs.create_queue(QueueName="operator-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", topic)
    return queue


@pytest.fixture
def redesigned() -> Iterator[demosite.DemoSite]:
    with demosite.serve(listings=LISTINGS, seed=7, day=LAYOUT_DAY) as running:
        yield running


@pytest.fixture
def usual() -> Iterator[demosite.DemoSite]:
    with demosite.serve(listings=LISTINGS, seed=7) as running:
        yield running


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


def scrape(site: demosite.DemoSite, **options: Any) -> Any:
    request = ScrapeRequest(**{"run_id": RUN, "start_url": site.start_url} | options)
    return run_scrape(request, sleep=lambda _: None)


def raw_keys(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=RAW).get("Contents", [])]


def detail_fetches(site: demosite.DemoSite) -> Counter[str]:
    return Counter(p for p in site.requested_paths() if p.startswith("/listing/"))


def stats(pages: int, broken: int, **missing: int) -> CrawlStats:
    return CrawlStats(
        records=pages - broken,
        items_failed=broken,
        missing_required=missing or ({"price": broken} if broken else {}),
    )


def received(queue: str) -> list[dict[str, Any]]:
    messages = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


# ------------------------------------------------------------------ the judgement
def test_every_page_broken_below_the_minimum_sample_does_not_stop_the_crawl() -> None:
    # given a crawl that has read 19 detail pages, none of them with a price
    broken_start = stats(pages=19, broken=19)

    # when it is judged with the default bound (20 pages, 50%)
    reason = Breakage().judge(broken_start)

    # then it goes on: 19 pages are too few to call the layout broken
    assert reason is None


def test_a_share_of_broken_pages_above_the_threshold_stops_the_crawl() -> None:
    # given 11 of 20 detail pages without a price
    # when the crawl is judged
    reason = Breakage(max_share=0.5, min_pages=20).judge(stats(pages=20, broken=11))

    # then it stops, naming the share
    assert reason is not None and reason.startswith("layout changed? 55% of 20 detail pages")


def test_a_share_of_broken_pages_at_the_threshold_does_not_stop_the_crawl() -> None:
    # given exactly half of 20 detail pages without a price
    # when the crawl is judged against a 50% threshold
    reason = Breakage(max_share=0.5, min_pages=20).judge(stats(pages=20, broken=10))

    # then it goes on: only more than the threshold stops it
    assert reason is None


def test_the_reason_names_the_share_the_pages_the_fields_and_the_threshold() -> None:
    # given 20 detail pages, all without a price
    # when the crawl is judged
    reason = Breakage().judge(stats(pages=20, broken=20))

    # then the reason says what was seen and against which bound
    assert reason == STOPPED_AT_20


def test_the_reason_lists_the_most_often_missing_field_first_and_keeps_close_shares_apart() -> None:
    # given 101 of 200 pages broken, most without a price, a few without a year too
    broken = stats(pages=200, broken=101, year=3, price=101)

    # when the crawl is judged against 50%
    reason = Breakage(max_share=0.5, min_pages=20).judge(broken)

    # then the share is not rounded onto the threshold, and price comes before year
    assert reason == (
        "layout changed? 50.5% of 200 detail pages lack required field(s) price, year "
        "(threshold 50%)"
    )


def test_the_bound_comes_from_scrape_max_broken_share_and_scrape_broken_min_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given the template's settings in the environment
    monkeypatch.setenv("SCRAPE_MAX_BROKEN_SHARE", "0.2")
    monkeypatch.setenv("SCRAPE_BROKEN_MIN_PAGES", "50")

    # when the bound is read from the settings
    bound = Breakage.from_settings(get_settings())

    # then both are used, and without them the defaults are 50% of at least 20 pages
    assert bound == Breakage(max_share=0.2, min_pages=50)
    monkeypatch.delenv("SCRAPE_MAX_BROKEN_SHARE")
    monkeypatch.delenv("SCRAPE_BROKEN_MIN_PAGES")
    assert Breakage.from_settings(get_settings()) == Breakage(max_share=0.5, min_pages=20)


# ------------------------------------------------------------------ a crawl of the site
def test_a_crawl_of_the_redesigned_site_stops_after_the_minimum_sample(
    lake: Any, redesigned: Any
) -> None:
    # given the demo site on its layout-change day (no detail page has p.price)
    # when it is scraped
    result = scrape(redesigned)

    # then the crawl stopped after 20 detail pages, not the site's 130
    assert isinstance(result, ScrapeStopped)
    assert result.reason == STOPPED_AT_20
    assert sum(detail_fetches(redesigned).values()) == 20


def test_a_stopped_crawl_lands_nothing_in_the_raw_zone(lake: Any, redesigned: Any) -> None:
    # given the demo site on its layout-change day
    # when it is scraped
    scrape(redesigned)

    # then no part and no manifest is in the raw zone: nothing looks complete to validation
    assert raw_keys(lake) == []


def test_a_stopped_crawl_is_failed_in_the_ledger_with_the_share_in_its_reason(
    lake: Any, redesigned: Any
) -> None:
    # given the demo site on its layout-change day
    # when it is scraped
    scrape(redesigned)

    # then the scrape stage is FAILED with the reason and the counts behind it
    (item,) = ledger.stages(RUN)
    assert item["status"] == "FAILED"
    assert item["reason"] == STOPPED_AT_20
    assert item["counts"]["pages_read"] == item["counts"]["pages_broken"] == 20
    assert item["counts"]["records"] == 0 and item["counts"]["parts"] == 0
    assert item["missing_required"] == {"price": 20}
    assert item["dataset"] == "used_cars"


def test_a_stopped_crawl_notifies_people_with_the_reason(
    lake: Any, inbox: str, redesigned: Any
) -> None:
    # given an operator subscribed to the notification topic
    # when the redesigned site is scraped
    scrape(redesigned)

    # then one message says the scrape stopped, why, and that the served model is unchanged
    (message,) = received(inbox)
    assert message["Subject"] == "Scrape of used_cars stopped: site layout changed?"
    assert STOPPED_AT_20 in message["Message"]
    assert "the model in production is unchanged" in message["Message"]
    assert f'"run_id": "{RUN}"' in message["Message"]


def test_a_stopped_crawl_gives_the_site_lease_back(lake: Any, redesigned: Any) -> None:
    # given the redesigned site
    # when it is scraped and stops early
    scrape(redesigned)

    # then the next crawl of the site is not kept waiting for the lease to expire
    assert isinstance(scrape(redesigned, run_id="20261211T100000Z-b40ce001"), ScrapeStopped)


def test_a_good_day_with_a_few_broken_pages_lands_the_rest(lake: Any, usual: Any) -> None:
    # given a spec that requires the mileage, which 2 of the 130 listings do not show
    spec = DEMO_SPEC.replace("required: [listing_id,", "required: [mileage, listing_id,")
    lake.put_object(Bucket=ARTIFACTS, Key="specs/mileage.yaml", Body=spec.encode())

    # when the usual site is scraped
    result = scrape(usual, spec_uri=f"s3://{ARTIFACTS}/specs/mileage.yaml")

    # then the two are skipped as before and the run lands
    assert isinstance(result, ScrapeResult)
    assert (result.items_failed, result.records) == (2, LISTINGS - 2)
    assert ledger.stages(RUN)[0]["status"] == "SUCCEEDED"


def test_the_broken_page_counts_carry_over_a_continuation(
    lake: Any, redesigned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given invocations with time for 8 pages each, so no invocation alone reads 20 detail pages
    clock = PagesPerCall(monkeypatch, pages=8)
    handovers: list[str] = []

    # when the crawl of the redesigned site continues from invocation to invocation
    def invoke(**options: Any) -> Any:
        request = ScrapeRequest(
            run_id=RUN, start_url=redesigned.start_url, time_budget_seconds=600, **options
        )
        return run_scrape(
            request, sleep=lambda _: None, continue_with=lambda run, _: handovers.append(run)
        )

    result = invoke()
    while isinstance(result, ScrapeContinued):
        clock.next_invocation()
        result = invoke(continuation=True)

    # then it stopped in a later invocation, judged on the 20 pages of all of them together
    assert isinstance(result, ScrapeStopped)
    assert len(handovers) >= 2 and result.invocations == len(handovers) + 1
    assert result.reason == STOPPED_AT_20
    assert sum(detail_fetches(redesigned).values()) == 20


def test_a_retry_of_a_stopped_crawl_reports_again_without_a_request(
    lake: Any, inbox: str, redesigned: Any
) -> None:
    # given a crawl that stopped (a retry or a duplicate event delivers its run again)
    first = scrape(redesigned)
    requests = len(redesigned.request_log)

    # when the same run is invoked again
    again = scrape(redesigned)

    # then it reports the same stop, fetches nothing, and the ledger keeps the reason
    assert again == first
    assert len(redesigned.request_log) == requests
    assert ledger.stages(RUN)[0]["reason"] == STOPPED_AT_20
    assert len(received(inbox)) == 2


def test_a_failed_notification_is_retried_without_fetching_and_the_reason_stays(
    lake: Any, redesigned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a notification topic that refuses the first publish
    run_module = importlib.import_module("mlops.scraping.run")
    published: list[str] = []

    def flaky_notify(subject: str, message: str, **attributes: Any) -> str:
        if not published:
            published.append("refused")
            raise RuntimeError("SNS unavailable")
        published.append(subject)
        return "message-id"

    monkeypatch.setattr(run_module, "notify", flaky_notify)
    with pytest.raises(RuntimeError, match="SNS unavailable"):
        scrape(redesigned)
    requests = len(redesigned.request_log)

    # when Lambda retries the invocation
    retried = scrape(redesigned)

    # then the retry notifies without a request, and the ledger's reason was never overwritten
    assert isinstance(retried, ScrapeStopped)
    assert published == ["refused", "Scrape of used_cars stopped: site layout changed?"]
    assert len(redesigned.request_log) == requests
    assert ledger.stages(RUN)[0]["reason"] == STOPPED_AT_20


def test_the_handler_returns_a_stopped_crawl_instead_of_raising_into_retries(
    lake: Any, redesigned: Any, event: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the schedule's event pointed at the redesigned site
    monkeypatch.setenv("SITE_SPEC_URI", "builtin:demo_cars")
    scheduled = copy.deepcopy(event("scheduled.json"))
    scheduled["detail"]["start_url"] = redesigned.start_url

    # when the scrape function handles it
    summary = app.lambda_handler(scheduled, lambda_context)

    # then it returns (Lambda does not retry) with the reason, and the run is FAILED
    assert summary["stopped"] is True and summary["reason"] == STOPPED_AT_20
    assert ledger.stages(summary["run_id"])[0]["status"] == "FAILED"
