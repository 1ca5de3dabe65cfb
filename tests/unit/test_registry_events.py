"""ModelRegistryEvents: moto's model registry emits SageMaker's state-change events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from localcloud.executors.registry import STATE_CHANGE, ModelRegistryEvents

GROUP = "mlops-used-cars-dev"


class RecordingCloud:
    """The executor-facing part of LocalCloud, recording emitted events; work runs inline."""

    account_id = "123456789012"
    region = "us-east-1"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, source: str, detail_type: str, detail: dict, resources: list | None = None):
        self.events.append(
            {"source": source, "detail-type": detail_type, "detail": detail, "resources": resources}
        )

    def submit(self, fn: Any, *args: Any, name: str) -> None:
        fn(*args)


@pytest.fixture
def registry(aws: None) -> Iterator[tuple[RecordingCloud, Any]]:
    cloud, executor = RecordingCloud(), ModelRegistryEvents()
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    executor.start(cloud)  # type: ignore[arg-type]
    yield cloud, sagemaker
    executor.stop()


def create(sagemaker: Any, status: str) -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": "image", "ModelDataUrl": "s3://b/model.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={"run_id": "r1", "dataset": "used_cars"},
    )["ModelPackageArn"]


def test_registering_a_package_emits_its_state_change_with_aws_field_names(registry, event) -> None:
    cloud, sagemaker = registry
    arn = create(sagemaker, "PendingManualApproval")
    [emitted] = cloud.events
    assert emitted["source"] == "aws.sagemaker" and emitted["detail-type"] == STATE_CHANGE
    assert emitted["resources"] == [arn]
    detail = emitted["detail"]
    # the same keys as AWS's sample (events/model_package_pending.json) carries
    assert set(event("model_package_pending")["detail"]) - set(detail) <= {
        "ModelPackageDescription",
        "MetadataProperties",
        "ModelMetrics",
        "LastModifiedTime",
        "ModelPackageStatusDetails",
    }
    assert detail["ModelPackageArn"] == arn and detail["ModelPackageVersion"] == 1
    assert detail["ModelApprovalStatus"] == "PendingManualApproval"
    assert detail["CreationTime"].endswith("Z")


def test_approving_a_package_emits_an_approved_event(registry) -> None:
    cloud, sagemaker = registry
    arn = create(sagemaker, "PendingManualApproval")
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    assert [e["detail"]["ModelApprovalStatus"] for e in cloud.events] == [
        "PendingManualApproval",
        "Approved",
    ]


def test_rejecting_an_approved_package_emits_a_rejected_event(registry) -> None:
    # the deploy function's rule matches every status: a rejection can change what serves
    cloud, sagemaker = registry
    arn = create(sagemaker, "Approved")
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    assert [e["detail"]["ModelApprovalStatus"] for e in cloud.events] == ["Approved", "Rejected"]


def test_approving_an_approved_package_again_emits_nothing(registry) -> None:
    # why `mlops approve` of an Approved version says it changes nothing and exits 4
    cloud, sagemaker = registry
    arn = create(sagemaker, "Approved")
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    assert len(cloud.events) == 1


def test_an_update_that_keeps_the_status_emits_nothing(registry) -> None:
    cloud, sagemaker = registry
    arn = create(sagemaker, "Approved")
    sagemaker.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"x": "1"})
    assert len(cloud.events) == 1


def test_approval_keeps_the_metadata_and_a_metadata_update_keeps_the_status(registry) -> None:
    # moto on its own drops both; SageMaker keeps them
    _, sagemaker = registry
    arn = create(sagemaker, "PendingManualApproval")
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    sagemaker.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"note": "ok"})
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["CustomerMetadataProperties"] == {
        "run_id": "r1",
        "dataset": "used_cars",
        "note": "ok",
    }


def test_after_stop_registering_emits_nothing(aws: None) -> None:
    cloud, executor = RecordingCloud(), ModelRegistryEvents()
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    executor.start(cloud)  # type: ignore[arg-type]
    executor.stop()
    create(sagemaker, "Approved")
    assert cloud.events == []


def test_tagging_a_key_again_overwrites_its_value_as_sagemaker_does(registry) -> None:
    # AddTags "adds or overwrites"; moto alone keeps both values of the pin tag
    _, sagemaker = registry
    arn = sagemaker.describe_model_package_group(ModelPackageGroupName=GROUP)[
        "ModelPackageGroupArn"
    ]
    for version in ("1", "2"):
        sagemaker.add_tags(
            ResourceArn=arn, Tags=[{"Key": "mlops:pinned-version", "Value": version}]
        )
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "mlops:pinned-version", "Value": "2"}
    ]
