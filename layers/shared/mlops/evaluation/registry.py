"""The SageMaker Model Registry side of evaluation: groups, packages, the current champion."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

from mlops.clients import client
from mlops.observability import logger

# CustomerMetadataProperties (SageMaker API, shapes CustomerMetadataMap/Key/Value): at most 50
# entries; keys 1-128 and values 1-256 characters, both matching [\p{L}\p{Z}\p{N}_.:\/=+\-@]*.
# Lengths are Java string lengths (UTF-16 code units).
APPROVED = "Approved"
_ENTRIES_MAX = 50
_KEY_MAX = 128
_VALUE_MAX = 256
_ALLOWED_PUNCTUATION = frozenset("_.:/=+-@")
_ALLOWED_CATEGORIES = frozenset("LZN")  # \p{L} letters, \p{Z} separators, \p{N} numbers


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


def packages(group: str) -> Iterator[dict[str, Any]]:
    """Summaries of the group's versions, newest first."""
    sagemaker = client("sagemaker")
    kwargs: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 100,
    }
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
    """The package the serving rule puts in production: newest Approved, or the pinned one."""
    from mlops import serving

    registry = serving.read(client("sagemaker"), group)
    choice = serving.choose(registry)
    if choice.version is None:
        return None
    return describe(registry.arns[choice.version])


def _legal(char: str) -> bool:
    return char in _ALLOWED_PUNCTUATION or unicodedata.category(char)[0] in _ALLOWED_CATEGORIES


def _conform(text: str, replacement: str, limit: int) -> str:
    """``text`` with each run of disallowed characters replaced, cut to ``limit`` UTF-16 units.

    No replacement at either end nor next to a ``replacement`` already there; legal text comes
    back unchanged (apart from the cut).
    """
    out: list[str] = []
    units = 0
    pending = False  # a run of disallowed characters precedes ``char``
    for char in text:
        if not _legal(char):
            pending = True
            continue
        chars = [char]
        if pending and out and replacement not in (out[-1], char):
            chars.insert(0, replacement)
        pending = False
        width = sum(2 if ord(c) > 0xFFFF else 1 for c in chars)
        if units + width > limit:
            break
        out.extend(chars)
        units += width
    return "".join(out)


def metadata(values: Mapping[Any, Any]) -> dict[str, str]:
    """``values`` as legal CustomerMetadataProperties for CreateModelPackage/UpdateModelPackage.

    None and empty values are dropped; everything else becomes a string. Characters outside the
    API's pattern become a space in values and ``_`` in keys (one per run); keys are cut to 128
    and values to 256 characters; keys made equal by that get a ``_2``, ``_3``… suffix. Past 50
    entries the rest are dropped with a warning. Conforming a conforming dict changes nothing.
    """
    out: dict[str, str] = {}
    dropped: list[str] = []
    for raw_key, raw_value in values.items():
        if raw_value is None:
            continue
        value = _conform(str(raw_value), " ", _VALUE_MAX)
        if not value:
            continue
        key = _conform(str(raw_key), "_", _KEY_MAX) or "_"
        unique, n = key, 1
        while unique in out:
            n += 1
            suffix = f"_{n}"
            unique = _conform(key, "_", _KEY_MAX - len(suffix)) + suffix
        if len(out) == _ENTRIES_MAX:
            dropped.append(unique)
            continue
        out[unique] = value
    if dropped:
        logger.warning(
            "model package metadata over the API's 50 entries; dropped",
            extra={"dropped": dropped},
        )
    return out


def register(
    group: str,
    *,
    image: str,
    model_data_url: str,
    status: str,
    description: str,
    statistics_uri: str,
    properties: Mapping[str, Any],
    generated_by: str,
    tags: dict[str, str],
) -> dict[str, Any]:
    """Create one model package version; returns its description (ARN, version, …).

    An approved package is created pending and then approved, as a person approving in the
    console does: AWS documents "SageMaker Model Package State Change" for status changes, not
    for creation, and the deploy stage starts from that event. (If AWS also emits one on
    creation, it says PendingManualApproval, which the deploy rule ignores.)
    """
    sagemaker = client("sagemaker")
    created_as = "PendingManualApproval" if status == APPROVED else status
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=description[:1024],
        ModelApprovalStatus=created_as,
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
        CustomerMetadataProperties=metadata(properties),
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )["ModelPackageArn"]
    if status == APPROVED:
        approve(arn)
    return describe(arn)


def approve(arn: str) -> None:
    """Approve a package the evaluation decided to approve (the event then deploys it)."""
    client("sagemaker").update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus=APPROVED,
        ApprovalDescription="Approved automatically: the evaluation's decision.",
    )


def approval_unfinished(package: Mapping[str, Any]) -> bool:
    """A package the evaluation decided to approve that is still pending: the evaluation that
    registered it died between creating and approving it."""
    decided = package.get("CustomerMetadataProperties", {}).get("decision")
    return decided == APPROVED and package.get("ModelApprovalStatus") == "PendingManualApproval"
