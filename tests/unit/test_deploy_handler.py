"""The deploy function in moto: create, blue/green update, pins, no-op events, verify."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from localcloud.executors.endpoint import install_update_endpoint
from mlops import ledger

GROUP = "mlops-used-cars-dev"
ENDPOINT = "mlops-used-cars-dev"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
RUNS = {1: "20261127T083000Z-1a2b3c4d", 2: "20261128T083000Z-2b3c4d5e"}


@pytest.fixture
def cloud(
    aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any
) -> Iterator[dict[str, Any]]:
    """Ledger, SNS read through SQS, the default group, and moto taught UpdateEndpoint."""
    undo = install_update_endpoint()
    declared_table("RunLedgerTable", "ledger")
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="notifications")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"])
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    env = {
        "LEDGER_TABLE": "ledger",
        "STAGE": "dev",
        "DATASET": "used_cars",
        "NOTIFICATION_TOPIC_ARN": topic,
        "SAGEMAKER_EXECUTION_ROLE_ARN": ROLE,
        "SERVERLESS_MEMORY_MB": "2048",
        "SERVERLESS_MAX_CONCURRENCY": "5",
        "ENDPOINT_INSTANCE_TYPE": "",
        "ALARM_NAMES": "mlops-used-cars-dev-5xx,mlops-used-cars-dev-latency",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield {"sagemaker": sagemaker, "sqs": sqs, "queue": queue}
    undo()


def register(cloud: dict[str, Any], version: int, status: str = "Approved") -> str:
    """Register version ``version`` as the evaluate stage would."""
    run_id = RUNS[version]
    return cloud["sagemaker"].create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [
                {
                    "Image": IMAGE,
                    "ModelDataUrl": f"s3://artifacts/models/used_cars/mlops-used-cars-{run_id}/"
                    "output/model.tar.gz",
                    "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                }
            ],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={"run_id": run_id, "dataset": "used_cars"},
    )["ModelPackageArn"]


def package_event(event: Any, name: str, version: int, arn: str) -> dict[str, Any]:
    sample = event(name)
    sample["detail"].update(ModelPackageVersion=version, ModelPackageArn=arn)
    sample["resources"] = [arn]
    return sample


def deploy(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from functions.deploy.app import lambda_handler

    return lambda_handler(event, context)


def deploy_stage(version: int) -> dict[str, Any]:
    return next(s for s in ledger.stages(RUNS[version]) if s["stage"] == "deploy")


def pin(cloud: dict[str, Any], version: int | None) -> None:
    """Set (or clear, with None) the group's pin as `mlops pin` / `unpin` does."""
    from mlops.serving import PIN_TAG

    sagemaker = cloud["sagemaker"]
    group = sagemaker.describe_model_package_group(ModelPackageGroupName=GROUP)
    arn = group["ModelPackageGroupArn"]
    sagemaker.delete_tags(ResourceArn=arn, TagKeys=[PIN_TAG])
    if version is not None:
        sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": PIN_TAG, "Value": str(version)}])


def notifications(cloud: dict[str, Any]) -> list[str]:
    messages = cloud["sqs"].receive_message(QueueUrl=cloud["queue"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"])["Message"] for m in messages.get("Messages", [])]


def test_approved_package_creates_model_serverless_config_and_endpoint(
    cloud, event, lambda_context
) -> None:
    # given version 1 approved (events/model_package_approved.json)
    arn = register(cloud, 1)
    assert event("model_package_approved")["detail"]["ModelPackageArn"] == arn
    # when the approval event arrives
    result = deploy(event("model_package_approved"), lambda_context)
    # then the model, a serverless config named for the version, and the endpoint exist
    sagemaker = cloud["sagemaker"]
    assert result["outcome"] == "Deploying"
    model = sagemaker.describe_model(ModelName="mlops-used-cars-dev-v1")
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == IMAGE
    tags = {
        t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=model["ModelArn"])["Tags"]
    }
    assert tags["model_package_arn"] == arn and tags["run_id"] == RUNS[1]
    assert tags["model_package_version"] == "1" and tags["dataset"] == "used_cars"
    config = sagemaker.describe_endpoint_config(EndpointConfigName="mlops-used-cars-dev-v1")
    [variant] = config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InstanceType" not in variant
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == "mlops-used-cars-dev-v1"
    assert deploy_stage(1)["status"] == "STARTED"


def test_the_endpoint_carries_the_cost_allocation_tags_of_serving_and_its_run(
    cloud, event, lambda_context
) -> None:
    # Given version 1 approved; when deploy creates the endpoint
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    # then its hours can be split by cost allocation under serving and the run it serves
    sagemaker = cloud["sagemaker"]
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    tags = sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    assert {"Key": "mlops:stage", "Value": "serve"} in tags
    assert {"Key": "mlops:run_id", "Value": RUNS[1]} in tags


def test_in_prod_the_config_is_instance_backed_and_verification_adds_autoscaling(
    cloud, event, lambda_context, monkeypatch
) -> None:
    monkeypatch.setenv("ENDPOINT_INSTANCE_TYPE", "ml.m5.large")
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    [variant] = cloud["sagemaker"].describe_endpoint_config(
        EndpointConfigName="mlops-used-cars-dev-v1"
    )["ProductionVariants"]
    assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 2
    # when the endpoint reports IN_SERVICE
    deploy(event("endpoint_in_service"), lambda_context)
    # then the variant scales on invocations per instance
    scaling = boto3.client("application-autoscaling")
    [target] = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == f"endpoint/{ENDPOINT}/variant/AllTraffic"
    [policy] = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    spec = policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert spec["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"


def test_a_second_version_updates_the_endpoint_blue_green_with_alarm_rollback(
    cloud, event, lambda_context
) -> None:
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    arn = register(cloud, 2)
    # when version 2 is approved
    result = deploy(package_event(event, "model_package_approved", 2, arn), lambda_context)
    # then the endpoint is updated (not recreated) with a blue/green policy and the alarms
    endpoint = cloud["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)
    assert result["outcome"] == "Deploying"
    assert endpoint["EndpointConfigName"] == "mlops-used-cars-dev-v2"
    policy = endpoint["LastDeploymentConfig"]
    routing = policy["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "ALL_AT_ONCE"
    assert policy["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] > 0
    assert [a["AlarmName"] for a in policy["AutoRollbackConfiguration"]["Alarms"]] == [
        "mlops-used-cars-dev-5xx",
        "mlops-used-cars-dev-latency",
    ]


def test_an_instance_backed_update_shifts_traffic_by_canary(
    cloud, event, lambda_context, monkeypatch
) -> None:
    monkeypatch.setenv("ENDPOINT_INSTANCE_TYPE", "ml.m5.large")
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    arn = register(cloud, 2)
    deploy(package_event(event, "model_package_approved", 2, arn), lambda_context)
    policy = cloud["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)["LastDeploymentConfig"]
    assert policy["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"


def test_the_canary_is_at_most_half_of_any_instance_count_the_variant_can_have(
    cloud, event, lambda_context, monkeypatch
) -> None:
    # UpdateEndpoint rejects a canary larger than 50% of the variant's instances
    # (TrafficRoutingConfig.CanarySize); the instance count is retained across updates and
    # autoscaling keeps it between its bounds, so the smallest count is the one that matters.
    monkeypatch.setenv("ENDPOINT_INSTANCE_TYPE", "ml.m5.large")
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    deploy(event("endpoint_in_service"), lambda_context)
    arn = register(cloud, 2)
    # when version 2 is deployed as a canary
    deploy(package_event(event, "model_package_approved", 2, arn), lambda_context)
    # then the canary is no more than half of the initial count and of the autoscaling minimum
    sagemaker = cloud["sagemaker"]
    policy = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["LastDeploymentConfig"]
    canary = policy["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["CanarySize"]
    [variant] = sagemaker.describe_endpoint_config(EndpointConfigName="mlops-used-cars-dev-v2")[
        "ProductionVariants"
    ]
    scaling = boto3.client("application-autoscaling")
    [target] = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert canary["Type"] == "INSTANCE_COUNT"
    assert canary["Value"] * 2 <= variant["InitialInstanceCount"]
    assert canary["Value"] * 2 <= target["MinCapacity"]


def test_an_approval_event_of_an_older_version_leaves_the_newest_serving(
    cloud, event, lambda_context
) -> None:
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    arn = register(cloud, 2)
    deploy(package_event(event, "model_package_approved", 2, arn), lambda_context)
    # when version 1's approval is delivered again (late, or redelivered)
    result = deploy(event("model_package_approved"), lambda_context)
    # then the newest Approved version keeps serving: the registry decides, not the event
    endpoint = cloud["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)
    assert result["outcome"] == "AlreadyServing"
    assert result["serving"] == "v2 (newest Approved)"
    assert endpoint["EndpointConfigName"] == "mlops-used-cars-dev-v2"


def test_pinning_an_older_version_redeploys_it_reusing_its_model(
    cloud, event, lambda_context
) -> None:
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    arn = register(cloud, 2)
    deploy(package_event(event, "model_package_approved", 2, arn), lambda_context)
    # when version 1 is pinned (events/serving_pin_changed.json: `mlops pin 1`)
    pin(cloud, 1)
    result = deploy(event("serving_pin_changed"), lambda_context)
    # then the endpoint serves v1 again from the existing model and config
    endpoint = cloud["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)
    assert result["outcome"] == "Deploying" and result["serving"] == "v1 (pinned)"
    assert endpoint["EndpointConfigName"] == "mlops-used-cars-dev-v1"
    assert len(cloud["sagemaker"].list_models()["Models"]) == 2


@pytest.mark.parametrize("sample", ["model_package_pending", "model_package_rejected"])
def test_pending_or_rejected_package_events_deploy_nothing(
    cloud, event, lambda_context, sample
) -> None:
    # given a package registered as pending or rejected (the creation event fires the rule too)
    status = event(sample)["detail"]["ModelApprovalStatus"]
    register(cloud, 1, status=status)
    result = deploy(event(sample), lambda_context)
    assert result["outcome"] == "Unchanged"
    assert result["serving"] == "nothing (no Approved version)"
    assert cloud["sagemaker"].list_models()["Models"] == []
    assert cloud["sagemaker"].list_endpoints()["Endpoints"] == []
    assert ledger.stages(RUNS[1]) == []


def test_a_redelivered_approval_of_the_serving_version_changes_nothing(
    cloud, event, lambda_context
) -> None:
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    result = deploy(event("model_package_approved"), lambda_context)
    assert result["outcome"] == "AlreadyServing"
    assert deploy_stage(1)["status"] == "SUCCEEDED"


def test_in_service_with_the_intended_version_records_success(cloud, event, lambda_context) -> None:
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    result = deploy(event("endpoint_in_service"), lambda_context)
    assert result["outcome"] == "Verified"
    item = deploy_stage(1)
    assert item["status"] == "SUCCEEDED"
    assert item["endpoint_config_name"] == "mlops-used-cars-dev-v1"
    assert item["model_package_version"] == 1


def test_in_service_on_the_old_version_records_the_rollback_and_notifies(
    cloud, event, lambda_context
) -> None:
    # given v2 intended, but the endpoint came back InService on v1 (blue/green rolled back)
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    deploy(event("endpoint_in_service"), lambda_context)
    arn = register(cloud, 2)
    deploy(package_event(event, "model_package_approved", 2, arn), lambda_context)
    cloud["sagemaker"].update_endpoint(
        EndpointName=ENDPOINT, EndpointConfigName="mlops-used-cars-dev-v1"
    )
    notifications(cloud)
    # when IN_SERVICE arrives
    result = deploy(event("endpoint_in_service"), lambda_context)
    # then v2's deployment is recorded as rolled back with v1 still serving
    assert result["outcome"] == "RolledBack"
    item = deploy_stage(2)
    assert item["status"] == "FAILED"
    assert item["reason"].startswith("rolled back; version 1 still serving")
    [message] = notifications(cloud)
    assert "version 1 still serving" in message


def test_a_failed_endpoint_is_recorded_and_notified(cloud, event, lambda_context) -> None:
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    result = deploy(event("endpoint_failed"), lambda_context)
    assert result["outcome"] == "Failed"
    item = deploy_stage(1)
    assert item["status"] == "FAILED" and "ping health check" in item["reason"]
    [message] = notifications(cloud)
    assert "ping health check" in message


def test_a_repeated_failure_event_notifies_once(cloud, event, lambda_context) -> None:
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    deploy(event("endpoint_failed"), lambda_context)
    deploy(event("endpoint_failed"), lambda_context)
    assert len(notifications(cloud)) == 1


def set_endpoint_status(status: str) -> None:
    """Hold the endpoint mid-transition (moto's endpoints are in service at once)."""
    from moto.backends import get_backend

    get_backend("sagemaker")["123456789012"]["us-east-1"].endpoints[
        ENDPOINT
    ].endpoint_status = status


def test_an_in_service_event_that_arrives_during_a_newer_update_is_ignored(
    cloud, event, lambda_context
) -> None:
    # given v1's creation event still in flight while v2's update runs
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    arn = register(cloud, 2)
    deploy(package_event(event, "model_package_approved", 2, arn), lambda_context)
    set_endpoint_status("Updating")
    # when the stale IN_SERVICE arrives
    result = deploy(event("endpoint_in_service"), lambda_context)
    # then nothing is concluded about v2 yet
    assert result["outcome"] == "Ignored"
    assert deploy_stage(2)["status"] == "STARTED"


def test_a_redelivered_approval_during_its_own_rollout_is_not_an_error(
    cloud, event, lambda_context
) -> None:
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    set_endpoint_status("Creating")
    result = deploy(event("model_package_approved"), lambda_context)
    assert result["outcome"] == "Deploying"


def test_approving_another_version_while_the_endpoint_updates_raises_for_a_retry(
    cloud, event, lambda_context
) -> None:
    from mlops.deployment import EndpointBusy

    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    set_endpoint_status("Updating")
    arn = register(cloud, 2)
    with pytest.raises(EndpointBusy):
        deploy(package_event(event, "model_package_approved", 2, arn), lambda_context)


def test_an_approval_after_a_failed_endpoint_replaces_it_on_retry(
    cloud, event, lambda_context
) -> None:
    from mlops.deployment import EndpointBusy

    # given an endpoint whose creation failed
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    set_endpoint_status("Failed")
    # when the approval is delivered, the failed endpoint is deleted and the delivery retried
    with pytest.raises(EndpointBusy):
        deploy(event("model_package_approved"), lambda_context)
    assert cloud["sagemaker"].list_endpoints()["Endpoints"] == []
    result = deploy(event("model_package_approved"), lambda_context)
    # then the retry creates it afresh
    assert result["outcome"] == "Deploying"
    assert cloud["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == (
        "InService"
    )
