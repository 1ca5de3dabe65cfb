"""The scrape handler on AWS's "Scheduled Event" envelope (events/scheduled.json)."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from pydantic import ValidationError

import demosite
from functions.scrape import app
from mlops import ledger, runs
from mlops.scraping.spec import BUILTIN_DIR

RAW = "mlops-raw"


@pytest.fixture
def lake(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> Any:
    monkeypatch.setenv("RAW_BUCKET", RAW)
    monkeypatch.setenv("ARTIFACTS_BUCKET", "mlops-artifacts")
    monkeypatch.setenv("LEDGER_TABLE", "mlops-ledger")
    monkeypatch.setenv("SITE_SPEC_URI", "builtin:demo_cars")
    monkeypatch.setenv("POLITENESS_DELAY_SECONDS", "0")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=RAW)
    s3.create_bucket(Bucket="mlops-artifacts")
    declared_table("RunLedgerTable", "mlops-ledger")
    return s3


@pytest.fixture
def site() -> Iterator[demosite.DemoSite]:
    with demosite.serve(listings=40, seed=3) as running:
        yield running


def scheduled(event: Any, **detail: Any) -> dict[str, Any]:
    """The sample Scheduled Event with ``detail`` overrides, as the local cloud sends it."""
    sample = copy.deepcopy(event("scheduled.json"))
    sample["detail"].update(detail)
    return sample


def emitted_metrics(output: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = document[metric["Name"]]
                    values[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return values


def test_the_sample_is_a_real_scheduled_event_without_overrides(event: Any) -> None:
    parsed = app.ScheduledEvent.model_validate(event("scheduled.json"))

    assert (parsed.source, parsed.detail_type) == ("aws.events", "Scheduled Event")
    assert parsed.resources[0].startswith("arn:aws:events:us-east-1:123456789012:rule/")
    assert parsed.detail == app.ScrapeOverrides()


def test_a_scheduled_event_lands_the_site_and_records_the_run(
    lake: Any, site: Any, event: Any, lambda_context: Any
) -> None:
    summary = app.lambda_handler(scheduled(event, start_url=site.start_url), lambda_context)

    assert runs.is_minted(summary["run_id"])
    assert summary["records"] == 40
    assert summary["pages"] == 40 + 2
    assert summary["parts"] == 1
    manifest = json.loads(lake.get_object(Bucket=RAW, Key=summary["manifest_key"])["Body"].read())
    assert manifest["records"] == 40
    (item,) = ledger.stages(summary["run_id"])
    assert item["stage"] == "scrape" and item["status"] == "SUCCEEDED"
    assert item["counts"]["records"] == 40


def test_detail_overrides_cap_the_crawl_and_name_the_dataset(
    lake: Any, site: Any, event: Any, lambda_context: Any
) -> None:
    overrides = {"start_url": site.start_url, "max_items": 7, "dataset": "cars_sample"}

    summary = app.lambda_handler(scheduled(event, **overrides), lambda_context)

    assert summary["records"] == 7
    assert summary["dataset"] == "cars_sample"
    assert summary["manifest_key"].startswith("dataset=cars_sample/")


def test_the_handler_emits_one_metric_per_outcome(
    lake: Any, site: Any, event: Any, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    app.lambda_handler(scheduled(event, start_url=site.start_url, max_items=5), lambda_context)

    values = emitted_metrics(capsys.readouterr().out)
    assert values["ItemsScraped"] == 5
    assert values["PagesFetched"] == 6
    assert values["PageErrors"] == 0


def test_a_failed_run_is_counted_and_re_raised_for_the_retry_policy(
    lake: Any,
    event: Any,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An impatient copy of the demo spec from S3, so the test does not wait out the backoff.
    impatient = (
        (BUILTIN_DIR / "demo_cars.yaml").read_text().replace("max_retries: 5", "max_retries: 0")
    )
    lake.create_bucket(Bucket="mlops-artifacts")
    lake.put_object(Bucket="mlops-artifacts", Key="specs/impatient.yaml", Body=impatient.encode())
    monkeypatch.setenv("SITE_SPEC_URI", "s3://mlops-artifacts/specs/impatient.yaml")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = scheduled(event, start_url=f"http://127.0.0.1:{closed_port}/listings?page=1")

    with pytest.raises(Exception, match="unreachable"):
        app.lambda_handler(unreachable, lambda_context)

    assert emitted_metrics(capsys.readouterr().out)["ScrapeRunsFailed"] == 1
    assert "Contents" not in lake.list_objects_v2(Bucket=RAW)


def test_an_unknown_override_is_rejected_and_counted_before_any_run_starts(
    lake: Any, event: Any, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValidationError, match="max_page"):
        app.lambda_handler(scheduled(event, max_page=3), lambda_context)

    assert emitted_metrics(capsys.readouterr().out)["InvalidEvents"] == 1
    assert ledger.latest_runs() == []


def test_a_crawl_nearly_out_of_time_hands_over_to_a_new_invocation(
    lake: Any, site: Any, event: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an invocation with about a second left and a polite crawl of 40 listings
    class NearlyOutOfTime(type(lambda_context)):
        def get_remaining_time_in_millis(self) -> int:
            return 1300

    handovers: list[tuple[str, str]] = []
    monkeypatch.setattr(
        app, "continue_crawl", lambda run, dataset: handovers.append((run, dataset))
    )
    slow = scheduled(event, start_url=site.start_url, politeness_delay_seconds=0.1)

    # when the handler runs
    summary = app.lambda_handler(slow, NearlyOutOfTime())

    # then it checkpointed part of the crawl and asked for its continuation; nothing landed
    assert summary["continues"] is True
    assert 0 < summary["records"] < 40
    assert handovers == [(summary["run_id"], "used_cars")]
    assert lake.list_objects_v2(Bucket=RAW).get("KeyCount") == 0


def test_the_continuation_is_a_scrape_continues_event_on_the_bus(aws: None) -> None:
    from mlops.scraping.continuation import continue_crawl

    # given a rule on the default bus that forwards the event to a queue
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue = sqs.create_queue(QueueName="continues")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    pattern = {"source": ["mlops.scrape"], "detail-type": ["Scrape Continues"]}
    events.put_rule(Name="continues", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="continues", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])

    # when a crawl hands over
    continue_crawl("run-1", "used_cars")

    # then the event names the run to resume
    message = sqs.receive_message(QueueUrl=queue)["Messages"][0]
    assert json.loads(message["Body"])["detail"] == {"run_id": "run-1", "dataset": "used_cars"}


def test_a_scheduled_event_while_the_site_is_being_crawled_exits_cleanly_as_skipped(
    lake: Any,
    site: Any,
    event: Any,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlops.scraping.run import LEASE_SECONDS, lease_name, site_of

    # given another invocation crawling the same site (it holds the site's lease)
    busy = "20261127T080000Z-aaaaaaaa"
    assert ledger.claim_lease(lease_name(site_of(site.start_url)), busy, LEASE_SECONDS).won

    # when the schedule fires again
    summary = app.lambda_handler(scheduled(event, start_url=site.start_url), lambda_context)

    # then the handler returns (no error for the retry policy and the DLQ), fetches and lands
    # nothing, and the ledger records the run as skipped with the reason
    assert summary["skipped"] is True and busy in summary["reason"]
    assert site.requested_paths() == []
    assert "Contents" not in lake.list_objects_v2(Bucket=RAW)
    (item,) = ledger.stages(summary["run_id"])
    assert item["status"] == "SKIPPED" and item["reason"] == summary["reason"]
    assert emitted_metrics(capsys.readouterr().out)["ScrapeRunsSkipped"] == 1
