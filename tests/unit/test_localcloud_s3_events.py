"""localcloud.s3_events: moto's S3 EventBridge events rewritten to the shape AWS documents."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

from localcloud.s3_events import MOTO_EVENT_ID, as_aws_s3_event

RAW = "raw-bucket"
KEY = "used_cars/a+b c.csv"


@pytest.fixture
def moto_delivered(aws: None) -> Any:
    """Upload ``key``; return the "Object Created" event moto delivers through rule → SQS."""
    s3, events, sqs = boto3.client("s3"), boto3.client("events"), boto3.client("sqs")
    s3.create_bucket(Bucket=RAW)
    s3.put_bucket_versioning(Bucket=RAW, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=RAW, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    queue = sqs.create_queue(QueueName="objects")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(
        Name="objects",
        EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]}),
    )
    events.put_targets(Rule="objects", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])

    def deliver(key: str, body: bytes = b"listing_id\nL000001\n") -> tuple[dict[str, Any], Any]:
        put = s3.put_object(Bucket=RAW, Key=key, Body=body)
        [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return json.loads(message["Body"]), put

    return deliver


def moto_event(**object_fields: Any) -> dict[str, Any]:
    """An S3 event the way moto 5.2.5 builds it."""
    obj = {"key": KEY, "size": 8, "eTag": "abc", "version-id": None, "sequencer": "617f"}
    return {
        "version": "0",
        "id": MOTO_EVENT_ID,
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-27T08:30:12Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{RAW}"],
        "detail": {
            "version": "0",
            "bucket": {"name": RAW},
            "object": obj | object_fields,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": "ObjectCreated",
        },
    }


def test_the_etag_field_is_named_as_aws_names_it() -> None:
    obj = as_aws_s3_event(moto_event())["detail"]["object"]
    assert obj["etag"] == "abc" and "eTag" not in obj


def test_the_object_fields_come_in_aws_order() -> None:
    obj = as_aws_s3_event(moto_event(**{"version-id": "v1"}))["detail"]["object"]
    assert list(obj) == ["key", "size", "etag", "version-id", "sequencer"]


def test_a_null_version_id_is_left_out() -> None:
    assert "version-id" not in as_aws_s3_event(moto_event())["detail"]["object"]


def test_the_key_is_delivered_as_the_key_name_itself() -> None:
    assert as_aws_s3_event(moto_event())["detail"]["object"]["key"] == KEY


def test_each_event_gets_its_own_version_4_uuid() -> None:
    first, second = as_aws_s3_event(moto_event()), as_aws_s3_event(moto_event())
    assert first["id"] != second["id"]
    assert uuid.UUID(first["id"]).version == 4


def test_an_epoch_time_becomes_aws_timestamp_text() -> None:
    event = moto_event()
    event["time"] = 1795768212.5
    assert as_aws_s3_event(event)["time"] == "2026-11-27T08:30:12Z"


def test_the_event_given_is_not_modified() -> None:
    event = moto_event()
    before = copy.deepcopy(event)
    as_aws_s3_event(event)
    assert event == before


def test_an_event_already_in_aws_shape_is_unchanged() -> None:
    aws = as_aws_s3_event(moto_event(**{"version-id": "v1"}))
    assert as_aws_s3_event(aws) == aws


@pytest.mark.parametrize(
    "event",
    [
        {"source": "aws.glue", "detail-type": "Glue Job State Change", "detail": {"state": "x"}},
        {"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {}}},
        {"Records": [{"s3": {"object": {"key": "a%2Bb+c.csv"}}}]},
    ],
)
def test_events_other_than_s3_eventbridge_object_events_pass_through(
    event: dict[str, Any],
) -> None:
    assert as_aws_s3_event(event) is event


def test_a_moto_delivered_upload_parses_and_resolves_to_the_uploaded_key(
    moto_delivered: Any,
) -> None:
    from mlops.validation.objects import RawObject, resolve_key

    # given an upload named "a+b c.csv" and the event moto delivers for it
    delivered, put = moto_delivered(KEY)
    # when the local cloud rewrites it and the validate function reads it
    event = as_aws_s3_event(delivered)
    obj = resolve_key(RawObject.from_event(parse(event, S3EventNotificationEventBridgeModel)))
    # then it names the uploaded version under its own key, with its etag
    assert (obj.key, obj.version_id) == (KEY, put["VersionId"])
    assert obj.etag == put["ETag"].strip('"')
