"""Provisioning template.yaml into moto: every declared resource exists afterwards, with the
settings moto's own CloudFormation would drop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.s3.models import s3_backends

from localcloud.provision import LOCAL_ONLY, Provisioned, Provisioner, plan
from localcloud.template import Template

ROOT = Path(__file__).resolve().parents[2]


def client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")


EXISTS: dict[str, Callable[[Provisioned], Any]] = {
    "AWS::S3::Bucket": lambda p: client("s3").head_bucket(Bucket=p.name),
    "AWS::DynamoDB::Table": lambda p: client("dynamodb").describe_table(TableName=p.name),
    "AWS::SQS::Queue": lambda p: client("sqs").get_queue_url(QueueName=p.name),
    "AWS::SNS::Topic": lambda p: client("sns").get_topic_attributes(TopicArn=p.ref),
    "AWS::IAM::Role": lambda p: client("iam").get_role(RoleName=p.name),
    "AWS::Logs::LogGroup": lambda p: client("logs").describe_log_groups(logGroupNamePrefix=p.name)[
        "logGroups"
    ][0],
    "AWS::Glue::Database": lambda p: client("glue").get_database(Name=p.name),
    "AWS::Glue::Job": lambda p: client("glue").get_job(JobName=p.name),
    "AWS::Glue::SecurityConfiguration": lambda p: client("glue").get_security_configuration(
        Name=p.name
    ),
    "AWS::SageMaker::ModelPackageGroup": lambda p: client("sagemaker").describe_model_package_group(
        ModelPackageGroupName=p.name
    ),
    "AWS::CloudWatch::Alarm": lambda p: client("cloudwatch").describe_alarms(AlarmNames=[p.name])[
        "MetricAlarms"
    ][0],
    "AWS::ApiGatewayV2::Api": lambda p: client("apigatewayv2").get_api(ApiId=p.name),
    "AWS::KinesisFirehose::DeliveryStream": lambda p: client("firehose").describe_delivery_stream(
        DeliveryStreamName=p.name
    ),
}


@pytest.fixture
def provisioned(aws: None) -> tuple[Template, dict[str, Provisioned]]:
    template = Template.load(ROOT)
    planned = plan(template)
    Provisioner(template, client).provision(planned)
    return template, planned


def test_every_resource_of_the_translated_template_is_created_or_run_locally(
    provisioned: tuple[Template, dict[str, Provisioned]],
) -> None:
    template, planned = provisioned
    assert set(planned) == set(template.resources)
    for logical_id, p in planned.items():
        if p.type in LOCAL_ONLY:
            continue
        assert p.type in EXISTS, f"{logical_id}: no check for {p.type}"
        EXISTS[p.type](p)


def test_buckets_that_enable_eventbridge_publish_to_it(
    provisioned: tuple[Template, dict[str, Provisioned]],
) -> None:
    template, planned = provisioned
    for logical_id, resource in template.of_type("AWS::S3::Bucket").items():
        enabled = (
            (resource["Properties"].get("NotificationConfiguration") or {})
            .get("EventBridgeConfiguration", {})
            .get("EventBridgeEnabled")
        )
        # moto keeps the setting but leaves it out of GetBucketNotificationConfiguration.
        bucket = s3_backends["123456789012"]["aws"].buckets[planned[logical_id].name]
        configured = bucket.notification_configuration
        publishes = configured is not None and configured.event_bridge is not None
        assert publishes == bool(enabled), logical_id


def test_the_glue_job_keeps_its_default_arguments_resolved(
    provisioned: tuple[Template, dict[str, Provisioned]],
) -> None:
    _, planned = provisioned
    job = client("glue").get_job(JobName=planned["PreparationJob"].name)["Job"]
    arguments = job["DefaultArguments"]
    assert arguments["--curated_bucket"] == planned["CuratedBucket"].name
    assert arguments["--extra-py-files"] == (
        f"s3://{planned['ArtifactsBucket'].name}/code/glue/mlops.zip"
    )


def test_the_http_api_has_the_template_routes(
    provisioned: tuple[Template, dict[str, Provisioned]],
) -> None:
    _, planned = provisioned
    routes = client("apigatewayv2").get_routes(ApiId=planned["WebApi"].name)["Items"]
    assert {"GET /health", "POST /predictions"} <= {r["RouteKey"] for r in routes}


def test_the_capture_stream_delivers_to_the_capture_bucket_with_its_evaluated_prefix(
    provisioned: tuple[Template, dict[str, Provisioned]],
) -> None:
    # Given the provisioned template, when its capture stream is described, then it is a
    # DirectPut stream into the capture bucket, gzip, with the template's dated prefix.
    _, planned = provisioned
    stream = planned["CaptureDeliveryStream"]

    description = client("firehose").describe_delivery_stream(DeliveryStreamName=stream.name)[
        "DeliveryStreamDescription"
    ]

    assert stream.attributes["Arn"] == description["DeliveryStreamARN"]
    assert description["DeliveryStreamType"] == "DirectPut"
    [destination] = description["Destinations"]
    s3 = destination["ExtendedS3DestinationDescription"]
    assert s3["BucketARN"] == planned["CaptureBucket"].attributes["Arn"]
    assert s3["RoleARN"] == planned["CaptureDeliveryRole"].attributes["Arn"]
    assert s3["Prefix"] == "dataset=used_cars/date=!{timestamp:yyyy-MM-dd}/"
    assert s3["CompressionFormat"] == "GZIP"
