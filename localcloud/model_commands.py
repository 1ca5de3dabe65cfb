"""``mlops approve``, ``mlops reject`` and ``mlops predict``: AWS API calls only.

They take a running local cloud (or its AWS endpoint URL, e.g. of ``mlops local up``) and do
what a person does in the SageMaker console or with the AWS CLI, so the same calls would work
against AWS itself.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

from mlops import naming

RUNTIME_ENV = "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"


class ModelVersionNotFound(LookupError):
    """No model package with that version in the dataset's group."""


def _stage_and_dataset(target: Any, dataset: str | None) -> tuple[str, str]:
    parameters: dict[str, str] = getattr(target, "parameters", {}) or {}
    stage = parameters.get("Stage") or os.environ.get("STAGE") or "dev"
    name = dataset or parameters.get("DatasetName") or os.environ.get("DATASET") or "used_cars"
    return stage, name


def _session(region: str) -> boto3.session.Session:
    """The local cloud accepts any credentials: use the environment's, else its dummy ones."""
    from localcloud.cloud import DUMMY_CREDENTIALS

    if boto3.session.Session().get_credentials() is not None:
        return boto3.session.Session(region_name=region)
    return boto3.session.Session(
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=region,
    )


def _region(target: Any) -> str:
    return (
        getattr(target, "region", None)
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )


def _client(target: Any, service: str) -> Any:
    """A client of the local cloud object, or bound to an endpoint URL."""
    if hasattr(target, "client"):
        return target.client(service)
    return _session(_region(target)).client(service, endpoint_url=str(target))


def _runtime_client(target: Any, runtime_url: str | None) -> Any:
    url = runtime_url
    if url is None and hasattr(target, "subprocess_env"):
        url = target.subprocess_env().get(RUNTIME_ENV)
    if url is None:
        # A running `mlops local up` (RemoteCloud) records its service endpoints in its state.
        state = getattr(target, "state", None) or {}
        url = (state.get("service_endpoints") or {}).get(RUNTIME_ENV)
    url = url or os.environ.get(RUNTIME_ENV)
    if not url:
        raise RuntimeError(
            f"no SageMaker runtime endpoint: pass runtime_url or set {RUNTIME_ENV} "
            "(printed by `mlops local up`)"
        )
    return _session(_region(target)).client("sagemaker-runtime", endpoint_url=url)


def find_version(target: Any, version: int, dataset: str | None = None) -> dict[str, Any]:
    """The summary of model package ``version`` in the dataset's group."""
    stage, name = _stage_and_dataset(target, dataset)
    group = naming.model_package_group(name, stage)
    sagemaker = _client(target, "sagemaker")
    paginator = sagemaker.get_paginator("list_model_packages")
    seen = []
    for page in paginator.paginate(ModelPackageGroupName=group):
        for summary in page["ModelPackageSummaryList"]:
            if summary.get("ModelPackageVersion") == version:
                return dict(summary)
            seen.append(summary.get("ModelPackageVersion"))
    raise ModelVersionNotFound(
        f"no version {version} in model package group {group}; versions: {sorted(seen)}"
    )


def _set_status(
    target: Any, version: int, status: str, dataset: str | None, note: str
) -> dict[str, Any]:
    summary = find_version(target, version, dataset)
    before = summary.get("ModelApprovalStatus")
    _client(target, "sagemaker").update_model_package(
        ModelPackageArn=summary["ModelPackageArn"],
        ModelApprovalStatus=status,
        ApprovalDescription=note,
    )
    return {
        "model_package_arn": summary["ModelPackageArn"],
        "version": version,
        "previous_status": before,
        "status": status,
    }


def approve(target: Any, version: int, dataset: str | None = None) -> dict[str, Any]:
    """Approve a version: the registry emits the event that deploys it (an older one = rollback)."""
    return _set_status(target, version, "Approved", dataset, "approved with `mlops approve`")


def reject(target: Any, version: int, dataset: str | None = None) -> dict[str, Any]:
    """Reject a version; nothing is deployed."""
    return _set_status(target, version, "Rejected", dataset, "rejected with `mlops reject`")


def predict(
    target: Any,
    payload: dict[str, Any] | list[Any],
    dataset: str | None = None,
    runtime_url: str | None = None,
) -> dict[str, Any]:
    """Invoke the dataset's endpoint with a JSON record (or list of records)."""
    stage, name = _stage_and_dataset(target, dataset)
    response = _runtime_client(target, runtime_url).invoke_endpoint(
        EndpointName=naming.endpoint_name(name, stage),
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps(payload).encode(),
    )
    body = response["Body"].read()
    result = json.loads(body)
    return result if isinstance(result, dict) else {"predictions": result}
