"""The SageMaker Model Registry side of evaluation: groups, packages, the current champion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlops.clients import client
from mlops.observability import logger

# CustomerMetadataProperties values are capped at 256 characters by the API.
_VALUE_MAX = 256


def ensure_group(group: str, dataset: str) -> None:
    """Create the model package group of a user dataset; the template declares the default one."""
    sagemaker = client("sagemaker")
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        return
    except sagemaker.exceptions.ClientError as error:
        if error.response["Error"]["Code"] not in ("ValidationException", "ResourceNotFound"):
            raise
    logger.info("creating model package group", extra={"group": group, "dataset": dataset})
    sagemaker.create_model_package_group(
        ModelPackageGroupName=group,
        ModelPackageGroupDescription=f"Models trained on {dataset} (created by the pipeline).",
        Tags=[{"Key": "dataset", "Value": dataset}],
    )


def packages(group: str, approval: str | None = None) -> Iterator[dict[str, Any]]:
    """Summaries of the group's versions, newest first."""
    sagemaker = client("sagemaker")
    kwargs: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 100,
    }
    if approval:
        kwargs["ModelApprovalStatus"] = approval
    while True:
        page = sagemaker.list_model_packages(**kwargs)
        yield from page.get("ModelPackageSummaryList", [])
        if not page.get("NextToken"):
            return
        kwargs["NextToken"] = page["NextToken"]


def describe(arn: str) -> dict[str, Any]:
    return dict(client("sagemaker").describe_model_package(ModelPackageName=arn))


def find_by_training_job(group: str, training_job: str) -> dict[str, Any] | None:
    """The package already registered for ``training_job`` (a redelivered event), if any."""
    try:
        for summary in packages(group):
            package = describe(summary["ModelPackageArn"])
            if package.get("CustomerMetadataProperties", {}).get("training_job") == training_job:
                return package
    except client("sagemaker").exceptions.ClientError as error:
        if error.response["Error"]["Code"] != "ValidationException":
            raise
    return None


def champion(group: str) -> dict[str, Any] | None:
    """The newest Approved package: the one the deploy stage put in production."""
    try:
        for summary in packages(group, approval="Approved"):
            return describe(summary["ModelPackageArn"])
    except client("sagemaker").exceptions.ClientError as error:
        if error.response["Error"]["Code"] != "ValidationException":
            raise
    return None


def metadata(values: dict[str, Any]) -> dict[str, str]:
    """CustomerMetadataProperties: strings only, None dropped, each within the API's limit."""
    return {k: str(v)[:_VALUE_MAX] for k, v in values.items() if v is not None and str(v) != ""}


def register(
    group: str,
    *,
    image: str,
    model_data_url: str,
    status: str,
    description: str,
    statistics_uri: str,
    properties: dict[str, str],
    generated_by: str,
    tags: dict[str, str],
) -> dict[str, Any]:
    """Create one model package version; returns its description (ARN, version, …)."""
    sagemaker = client("sagemaker")
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=description[:1024],
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [
                {
                    "Image": image,
                    "ModelDataUrl": model_data_url,
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    },
                }
            ],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large", "ml.c5.large"],
        },
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": statistics_uri}
            }
        },
        MetadataProperties={"GeneratedBy": generated_by},
        CustomerMetadataProperties=properties,
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )["ModelPackageArn"]
    return describe(arn)
