"""A broken scrape stops early, on the strict local cloud: the demo site's layout-change day
makes the spec's price selector miss, so the crawl stops after its minimum sample, lands
nothing, is FAILED with the share in its reason, notifies, and the served model stays."""

from __future__ import annotations

import json
import time

import pytest

import demosite
from localcloud import model_commands
from localcloud.cloud import LocalCloud
from localcloud.ledger_view import LedgerView
from tests.e2e.test_deploy_local import EXECUTORS, RECORDS, expected, fitted, register

pytestmark = pytest.mark.e2e

LISTINGS = 300
# The default plan's redesign: the detail price leaves p.price, the demo spec's selector.
LAYOUT_DAY = 11
STOPPED = "layout changed? 100% of 20 detail pages lack required field(s) price (threshold 50%)"


def subscribe_inbox(cloud: LocalCloud) -> str:
    """An SQS queue subscribed to the notification topic: the operator's mailbox."""
    sqs, sns = cloud.client("sqs"), cloud.client("sns")
    topic = cloud.provisioned["NotificationTopic"].attributes["Arn"]
    inbox = sqs.create_queue(QueueName="operator-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])
    return inbox


def served(cloud: LocalCloud) -> tuple[str, list[float]]:
    """The endpoint's configuration and what it answers."""
    endpoint = cloud.client("sagemaker").list_endpoints()["Endpoints"][0]["EndpointName"]
    config = cloud.client("sagemaker").describe_endpoint(EndpointName=endpoint)
    return config["EndpointConfigName"], model_commands.predict(cloud, RECORDS)["predictions"]


def test_a_scrape_of_the_redesigned_site_stops_early_and_the_served_model_stays() -> None:
    started = time.monotonic()
    with (
        LocalCloud(
            parameters={"PolitenessDelaySeconds": "0"},
            executors=EXECUTORS,
            http_api=False,
            publish=False,
        ) as cloud,
        demosite.serve(listings=LISTINGS) as site,
    ):
        # given a served model, an operator subscribed to notifications, and the demo site on
        # its layout-change day
        model = fitted(slope=500)
        register(cloud, 1, model, "Approved")
        before = served(cloud)
        inbox = subscribe_inbox(cloud)
        site.set_day(LAYOUT_DAY)
        invoked_before = len(cloud.invocations)

        # when the schedule fires the scrape
        cloud.fire_schedule("ScrapeFunction", {"start_url": site.start_url})
        assert cloud.wait_quiescent(timeout=60)

        view = LedgerView(cloud.client("dynamodb"), cloud.resources["RunLedgerTable"])
        (scrape,) = [item for item in view.items() if item.stage == "scrape"]
        stages = [item.stage for item in view.run(scrape.run_id)]
        raw = cloud.client("s3").list_objects_v2(Bucket=cloud.resources["RawBucket"])
        messages = cloud.client("sqs").receive_message(QueueUrl=inbox, WaitTimeSeconds=2)
        after_invocations = cloud.invocations[invoked_before:]
        after = served(cloud)
        detail_pages = [p for p in site.requested_paths() if p.startswith("/listing/")]
        dead_letters = list(cloud.dead_letters)

    # then the scrape ran once, without a retry, and stopped after its 20-page sample
    assert [(i["function"], i["ok"]) for i in after_invocations] == [("ScrapeFunction", True)]
    assert len(detail_pages) == 20 and dead_letters == []
    # it is FAILED with the share in its reason, and it is the run's only stage
    assert (scrape.status, scrape.reason) == ("FAILED", STOPPED)
    assert stages == ["scrape"]
    # nothing is in the raw zone for that run: no part, no manifest
    assert raw.get("Contents", []) == []
    # people were told why
    (message,) = messages["Messages"]
    body = json.loads(message["Body"])
    assert body["Subject"] == "Scrape of used_cars stopped: site layout changed?"
    assert STOPPED in body["Message"] and scrape.run_id in body["Message"]
    # and the endpoint serves the same configuration and answers as before
    assert after == before and after[1] == pytest.approx(expected(model))
    assert time.monotonic() - started < 60
