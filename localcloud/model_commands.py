"""``mlops approve/reject/pin/unpin/rollback`` and ``mlops predict``: AWS API calls only.

They take a running local cloud (or its AWS endpoint URL, e.g. of ``mlops local up``) and do
what a person does in the SageMaker console or with the AWS CLI, so the same calls would work
against AWS itself. What serves follows ``mlops.serving``: the newest Approved version, or the
pinned one while it is Approved; each command says what will serve as a result, and one that
would change nothing raises ``Unchanged`` instead of succeeding silently.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import boto3

from mlops import naming, serving

RUNTIME_ENV = "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"


class AwsAccount:
    """A real AWS account as a target: the default boto3 credentials and region, one stage."""

    def __init__(self, stage: str | None = None) -> None:
        self.parameters = {"Stage": stage or os.environ.get("STAGE") or "dev"}
        self._session = boto3.session.Session()
        self.region = self._session.region_name

    def client(self, service: str) -> Any:
        return self._session.client(service)


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


class Unchanged(Exception):
    """The command would change nothing; the message says what serves and how to change it."""


class Refused(Exception):
    """The command cannot do what was asked (e.g. pin a version that is not Approved)."""


def _group(target: Any, dataset: str | None) -> str:
    stage, name = _stage_and_dataset(target, dataset)
    return naming.model_package_group(name, stage)


def _serving_now(target: Any, dataset: str | None) -> str:
    """What the endpoint serves now ("v2", or "nothing" without an endpoint)."""
    stage, name = _stage_and_dataset(target, dataset)
    sagemaker = _client(target, "sagemaker")
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=naming.endpoint_name(name, stage))
    except sagemaker.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        # DescribeEndpoint answers a missing endpoint with ValidationException.
        return (
            "nothing" if code in ("ValidationException", "ValidationError") else f"unknown ({code})"
        )
    match = re.search(r"-v(\d+)$", endpoint.get("EndpointConfigName", ""))
    return f"v{match.group(1)}" if match else str(endpoint.get("EndpointConfigName"))


def _consequence(target: Any, dataset: str | None, registry: serving.Registry) -> str:
    """What will serve under the rule, and what serves now if that differs."""
    choice = serving.choose(registry)
    now = _serving_now(target, dataset)
    text = f"will serve: {choice.describe()}"
    if now != (f"v{choice.version}" if choice.version is not None else "nothing"):
        text += f"; serving now: {now} (the deploy function converges it)"
    return text


def _outcome(target: Any, dataset: str | None, done: str, **fields: Any) -> dict[str, Any]:
    registry = serving.read(_client(target, "sagemaker"), _group(target, dataset))
    choice = serving.choose(registry)
    return fields | {
        "serving": choice.describe(),
        "message": f"{done}. {_consequence(target, dataset, registry)}",
    }


def _set_status(
    target: Any, version: int, status: str, dataset: str | None, note: str
) -> dict[str, Any]:
    summary = find_version(target, version, dataset)
    before = summary.get("ModelApprovalStatus")
    if before == status:
        # SageMaker emits no state-change event for an update that keeps the status, so this
        # would change nothing; say what serves instead of exiting 0 silently.
        registry = serving.read(_client(target, "sagemaker"), _group(target, dataset))
        choice = serving.choose(registry)
        hint = ""
        if status == serving.APPROVED and choice.version != version:
            hint = f" To serve v{version}: mlops pin {version}"
        raise Unchanged(
            f"v{version} is already {status}; {choice.describe()} serves.{hint}".rstrip()
        )
    _client(target, "sagemaker").update_model_package(
        ModelPackageArn=summary["ModelPackageArn"],
        ModelApprovalStatus=status,
        ApprovalDescription=note,
    )
    return _outcome(
        target,
        dataset,
        f"v{version}: {before} -> {status}",
        model_package_arn=summary["ModelPackageArn"],
        version=version,
        previous_status=before,
        status=status,
    )


def approve(target: Any, version: int, dataset: str | None = None) -> dict[str, Any]:
    """Approve a version; the newest Approved one serves unless a version is pinned."""
    return _set_status(target, version, "Approved", dataset, "approved with `mlops approve`")


def reject(target: Any, version: int, dataset: str | None = None) -> dict[str, Any]:
    """Reject a version; if it was serving, the next one the rule chooses replaces it."""
    return _set_status(target, version, "Rejected", dataset, "rejected with `mlops reject`")


def _set_pin(target: Any, registry: serving.Registry, version: int | None) -> None:
    """Record the pin on the group and tell the deploy function (tags emit no event)."""
    sagemaker = _client(target, "sagemaker")
    assert registry.group_arn is not None
    if version is None:
        sagemaker.delete_tags(ResourceArn=registry.group_arn, TagKeys=[serving.PIN_TAG])
    else:
        sagemaker.add_tags(
            ResourceArn=registry.group_arn,
            Tags=[{"Key": serving.PIN_TAG, "Value": str(version)}],
        )
    detail = {"ModelPackageGroupName": registry.group, "PinnedVersion": version}
    result = _client(target, "events").put_events(
        Entries=[
            {
                "Source": serving.EVENT_SOURCE,
                "DetailType": serving.PIN_CHANGED,
                "Detail": json.dumps(detail),
                "Resources": [registry.group_arn],
            }
        ]
    )
    if result.get("FailedEntryCount"):
        raise RuntimeError(f"PutEvents refused the pin event: {result['Entries']}")


def _registry(target: Any, dataset: str | None) -> serving.Registry:
    group = _group(target, dataset)
    registry = serving.read(_client(target, "sagemaker"), group)
    if registry.group_arn is None:
        raise ModelVersionNotFound(f"no model package group {group}")
    return registry


def pin(target: Any, version: int, dataset: str | None = None) -> dict[str, Any]:
    """Serve ``version`` (an Approved one) whatever newer versions are approved."""
    registry = _registry(target, dataset)
    status = registry.statuses.get(version)
    if status is None:
        raise ModelVersionNotFound(
            f"no version {version} in model package group {registry.group}; "
            f"versions: {sorted(registry.statuses)}"
        )
    if status != serving.APPROVED:
        raise Refused(
            f"v{version} is {status}; only an Approved version can be pinned "
            f"(mlops approve {version} first)"
        )
    if registry.pinned == version:
        raise Unchanged(f"v{version} is already pinned; {serving.choose(registry).describe()}")
    _set_pin(target, registry, version)
    return _outcome(target, dataset, f"pinned v{version}", pinned=version)


def unpin(target: Any, dataset: str | None = None) -> dict[str, Any]:
    """Clear the pin: the newest Approved version serves again."""
    registry = _registry(target, dataset)
    if registry.pinned is None:
        choice = serving.choose(registry)
        raise Unchanged(f"nothing is pinned; {choice.describe()} serves")
    _set_pin(target, registry, None)
    return _outcome(target, dataset, f"unpinned v{registry.pinned}", pinned=None)


def rollback(target: Any, dataset: str | None = None) -> dict[str, Any]:
    """Pin the newest Approved version older than the one the rule chooses now."""
    registry = _registry(target, dataset)
    choice = serving.choose(registry)
    older = [v for v in registry.approved if choice.version is not None and v < choice.version]
    if not older:
        raise Refused(
            f"{choice.describe()} serves and no older version is Approved to roll back to"
        )
    return pin(target, older[-1], dataset)


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
