"""The registry champion evaluation falls back to is the version the serving rule serves."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from mlops.evaluation import registry
from mlops.serving import PIN_TAG

GROUP = "mlops-used-cars-dev"


@pytest.fixture
def sagemaker(aws: None) -> Any:
    client = boto3.client("sagemaker")
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    for _ in range(3):
        client.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [{"Image": "image", "ModelDataUrl": "s3://b/model.tar.gz"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )
    return client


def test_the_champion_is_the_newest_approved_version(sagemaker: Any) -> None:
    assert registry.champion(GROUP)["ModelPackageVersion"] == 3


def test_the_champion_is_the_pinned_version_while_a_pin_holds(sagemaker: Any) -> None:
    arn = sagemaker.describe_model_package_group(ModelPackageGroupName=GROUP)[
        "ModelPackageGroupArn"
    ]
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": PIN_TAG, "Value": "1"}])

    assert registry.champion(GROUP)["ModelPackageVersion"] == 1


def test_a_group_that_does_not_exist_has_no_champion(aws: None) -> None:
    assert registry.champion("mlops-nothing-dev") is None
