"""The deploy stage: an approved model package goes live on its dataset's endpoint, verified.

Approving any version deploys it, so approving an older one is the rollback. Updates are
blue/green with the template's alarms as automatic rollback triggers; the endpoint's state
change afterwards tells whether the intended version is really the one serving.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlops import ledger, naming
from mlops.clients import client
from mlops.notifications import notify
from mlops.observability import bind_run, logger
from mlops.settings import Settings, get_settings

STAGE = "deploy"
VARIANT = "AllTraffic"
# What the deploy stage meant the endpoint to serve; the verification compares against it.
INTENT_CONFIG, INTENT_RUN, INTENT_VERSION = "mlops:config", "mlops:run_id", "mlops:version"
# Instance-backed (prod) endpoints scale on invocations per instance within these bounds.
# At least two: a blue/green canary "must be less than or equal to 50% of the variant's total
# instance count" (SageMaker API Reference, TrafficRoutingConfig.CanarySize), so a one-instance
# variant rejects every canary update; two also spread the endpoint over Availability Zones.
MIN_INSTANCES, MAX_INSTANCES, INVOCATIONS_PER_INSTANCE = 2, 4, 100.0
CANARY_INSTANCES = 1
_VERSION_SUFFIX = re.compile(r"-v(\d+)$")
_IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")


class EndpointBusy(RuntimeError):
    """The endpoint is creating or updating; retry later (EventBridge redelivers)."""


class ModelPackageStateDetail(BaseModel):
    """The detail of "SageMaker Model Package State Change"."""

    model_config = ConfigDict(extra="allow")

    ModelPackageGroupName: str
    ModelPackageVersion: int | None = None
    ModelPackageArn: str
    ModelPackageName: str | None = None
    ModelApprovalStatus: str | None = None


class EndpointStateDetail(BaseModel):
    """The detail of "SageMaker Endpoint State Change"."""

    model_config = ConfigDict(extra="allow")

    EndpointName: str
    EndpointArn: str = ""
    EndpointConfigName: str | None = None
    EndpointStatus: str
    FailureReason: str | None = None
    Tags: dict[str, str] = Field(default_factory=dict)


class DeployOutcome(BaseModel):
    outcome: Literal["Ignored", "Deploying", "AlreadyServing", "Verified", "RolledBack", "Failed"]
    endpoint_name: str | None = None
    endpoint_config_name: str | None = None
    model_package_version: int | None = None
    run_id: str | None = None
    reason: str | None = None


def _missing(error: Exception) -> bool:
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code in ("ValidationException", "ResourceNotFound", "ValidationError")


def _dataset_of(group: str, package: dict[str, Any], settings: Settings) -> str:
    dataset = package.get("CustomerMetadataProperties", {}).get("dataset")
    if dataset:
        return str(dataset)
    if naming.model_package_group(settings.dataset, settings.stage) == group:
        return settings.dataset
    raise ValueError(f"cannot tell the dataset of model package group {group}")


def _ensure_model(name: str, package: dict[str, Any], run_id: str, settings: Settings) -> None:
    sagemaker = client("sagemaker")
    try:
        sagemaker.describe_model(ModelName=name)
        return  # redelivery or rollback to a version deployed before: reuse it
    except sagemaker.exceptions.ClientError as error:
        if not _missing(error):
            raise
    container = package["InferenceSpecification"]["Containers"][0]
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=settings.require("sagemaker_execution_role_arn"),
        PrimaryContainer={
            "Image": container["Image"],
            "ModelDataUrl": container["ModelDataUrl"],
            "Environment": container.get("Environment", {}),
        },
        Tags=[{"Key": k, "Value": v} for k, v in _model_tags(package, run_id).items()],
    )


def _model_tags(package: dict[str, Any], run_id: str) -> dict[str, str]:
    """What the web app shows about the served model, read from the model's tags."""
    props = package.get("CustomerMetadataProperties", {})
    tags = {
        "model_package_arn": package["ModelPackageArn"],
        "model_package_version": str(package.get("ModelPackageVersion")),
        "run_id": run_id,
        "dataset": props.get("dataset"),
        "trained_at": props.get("trained_at"),
    }
    return {k: str(v) for k, v in tags.items() if v}


def production_variant(model: str, settings: Settings) -> dict[str, Any]:
    """Serverless unless ENDPOINT_INSTANCE_TYPE is set (prod)."""
    if settings.endpoint_instance_type:
        return {
            "VariantName": VARIANT,
            "ModelName": model,
            "InstanceType": settings.endpoint_instance_type,
            "InitialInstanceCount": MIN_INSTANCES,
            "InitialVariantWeight": 1.0,
        }
    return {
        "VariantName": VARIANT,
        "ModelName": model,
        "ServerlessConfig": {
            "MemorySizeInMB": settings.serverless_memory_mb,
            "MaxConcurrency": settings.serverless_max_concurrency,
        },
    }


def _ensure_config(name: str, model: str, tags: list[dict[str, str]], settings: Settings) -> None:
    sagemaker = client("sagemaker")
    try:
        sagemaker.describe_endpoint_config(EndpointConfigName=name)
        return
    except sagemaker.exceptions.ClientError as error:
        if not _missing(error):
            raise
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[production_variant(model, settings)],
        Tags=tags,
    )


def deployment_config(settings: Settings) -> dict[str, Any]:
    """Blue/green: all at once for serverless, a canary for instances; alarms roll it back."""
    if settings.endpoint_instance_type:
        routing = {
            "Type": "CANARY",
            "CanarySize": {"Type": "INSTANCE_COUNT", "Value": CANARY_INSTANCES},
            "WaitIntervalInSeconds": 300,
        }
    else:
        # Serverless endpoints support only all-at-once traffic shifting.
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": 300,
            "MaximumExecutionTimeoutInSeconds": 1800,
        }
    }
    alarms = [name.strip() for name in settings.alarm_names.split(",") if name.strip()]
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def _describe_endpoint(name: str) -> dict[str, Any] | None:
    sagemaker = client("sagemaker")
    try:
        return dict(sagemaker.describe_endpoint(EndpointName=name))
    except sagemaker.exceptions.ClientError as error:
        if _missing(error):
            return None
        raise


def deploy_model_package(detail: ModelPackageStateDetail) -> DeployOutcome:
    """Create or blue/green-update the endpoint to serve an Approved package; others are ignored."""
    if detail.ModelApprovalStatus != "Approved":
        # The rule filters on Approved, but a creation or rejection event must never deploy.
        logger.info("not an approval; ignored", extra={"status": detail.ModelApprovalStatus})
        return DeployOutcome(outcome="Ignored", reason=f"status {detail.ModelApprovalStatus}")
    settings = get_settings()
    package = client("sagemaker").describe_model_package(ModelPackageName=detail.ModelPackageArn)
    if package.get("ModelApprovalStatus") != "Approved":
        return DeployOutcome(outcome="Ignored", reason="package is no longer Approved")
    version = int(package.get("ModelPackageVersion") or detail.ModelPackageVersion or 0)
    dataset = _dataset_of(detail.ModelPackageGroupName, package, settings)
    props = package.get("CustomerMetadataProperties", {})
    run_id = props.get("run_id") or f"{detail.ModelPackageGroupName}-v{version}"
    bind_run(run_id, model_package_version=version)
    endpoint = naming.endpoint_name(dataset, settings.stage)
    model = naming.model_name(dataset, version, settings.stage)
    config = naming.endpoint_config_name(dataset, version, settings.stage)
    record = {
        "dataset": dataset,
        "endpoint_name": endpoint,
        "model_package_version": version,
        "endpoint_config_name": config,
    }
    ledger.start(run_id, STAGE, **record)

    # Every outcome below names the same run, endpoint, config and version.
    outcome = functools.partial(
        DeployOutcome,
        run_id=run_id,
        endpoint_name=endpoint,
        endpoint_config_name=config,
        model_package_version=version,
    )
    _ensure_model(model, package, run_id, settings)
    intent = [
        {"Key": INTENT_CONFIG, "Value": config},
        {"Key": INTENT_RUN, "Value": run_id},
        {"Key": INTENT_VERSION, "Value": str(version)},
    ]
    _ensure_config(config, model, [{"Key": "run_id", "Value": run_id}], settings)
    sagemaker = client("sagemaker")
    current = _describe_endpoint(endpoint)
    if current and current.get("EndpointStatus") == "Failed":
        # A failed endpoint accepts only DeleteEndpoint, which takes a while: the retry creates.
        sagemaker.delete_endpoint(EndpointName=endpoint)
        raise EndpointBusy(f"deleting failed endpoint {endpoint}; the retry recreates it")
    if current is None:
        sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config, Tags=intent)
        logger.info("endpoint creating", extra=record)
        return outcome(outcome="Deploying")
    if current.get("EndpointConfigName") == config and current.get("EndpointStatus") == "InService":
        sagemaker.add_tags(ResourceArn=current["EndpointArn"], Tags=intent)
        ledger.finish(run_id, STAGE, ledger.Status.SUCCEEDED, **record)
        return outcome(outcome="AlreadyServing")
    if current.get("EndpointStatus") != "InService":
        if _intent(current).get(INTENT_CONFIG) == config:
            # A redelivery while this very deployment is still rolling out.
            return outcome(outcome="Deploying", reason=f"already {current.get('EndpointStatus')}")
        raise EndpointBusy(f"endpoint {endpoint} is {current.get('EndpointStatus')}; retry later")
    sagemaker.add_tags(ResourceArn=current["EndpointArn"], Tags=intent)
    update: dict[str, Any] = {}
    if settings.endpoint_instance_type:
        # Keep the instance count autoscaling reached instead of the config's initial count.
        update["RetainAllVariantProperties"] = True
    sagemaker.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=config,
        DeploymentConfig=deployment_config(settings),
        **update,
    )
    logger.info(
        "endpoint updating (blue/green)", extra=record | {"from": current.get("EndpointConfigName")}
    )
    return outcome(outcome="Deploying")


def _intent(endpoint: dict[str, Any]) -> dict[str, str]:
    """The endpoint's tags (the deploy intent among them); the last value of a key wins."""
    tags = client("sagemaker").list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    return {t["Key"]: t["Value"] for t in tags}


def _served_version(config_name: str) -> int | None:
    """The package version an endpoint config serves (its model's tag, else its name)."""
    sagemaker = client("sagemaker")
    try:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        tags = {
            t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=model["ModelArn"])["Tags"]
        }
        if tags.get("model_package_version", "").isdigit():
            return int(tags["model_package_version"])
    except sagemaker.exceptions.ClientError as error:
        if not _missing(error):
            raise
    match = _VERSION_SUFFIX.search(config_name)
    return int(match.group(1)) if match else None


def _register_autoscaling(endpoint: str) -> None:
    resource = f"endpoint/{endpoint}/variant/{VARIANT}"
    scaling = client("application-autoscaling")
    scaling.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        MinCapacity=MIN_INSTANCES,
        MaxCapacity=MAX_INSTANCES,
    )
    scaling.put_scaling_policy(
        PolicyName=f"{endpoint}-invocations-per-instance",
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": INVOCATIONS_PER_INSTANCE,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
        },
    )


def _fail(run_id: str, reason: str, record: dict[str, Any], subject: str) -> None:
    """Record a failed deployment and tell people, once per reason (events can repeat)."""
    previous = next((s for s in ledger.stages(run_id) if s.get("stage") == STAGE), {})
    ledger.finish(run_id, STAGE, ledger.Status.FAILED, reason=reason, **record)
    if previous.get("status") == ledger.Status.FAILED.value and previous.get("reason") == reason:
        return
    notify(subject, reason, run_id=run_id, **record)


def verify_endpoint(detail: EndpointStateDetail) -> DeployOutcome:
    """Check that the endpoint serves the version the deploy stage intended, and record it."""
    settings = get_settings()
    endpoint = _describe_endpoint(detail.EndpointName)
    if endpoint is None:
        return DeployOutcome(
            outcome="Ignored", endpoint_name=detail.EndpointName, reason="endpoint no longer exists"
        )
    if endpoint.get("EndpointStatus") in _IN_PROGRESS:
        # An older transition's event: the endpoint has moved on; its own event will follow.
        return DeployOutcome(
            outcome="Ignored",
            endpoint_name=detail.EndpointName,
            reason=f"stale event; endpoint is {endpoint['EndpointStatus']}",
        )
    tags = _intent(endpoint)
    intended, run_id = tags.get(INTENT_CONFIG), tags.get(INTENT_RUN)
    if not intended or not run_id:
        return DeployOutcome(
            outcome="Ignored",
            endpoint_name=detail.EndpointName,
            reason="endpoint was not deployed by this pipeline",
        )
    version = int(tags[INTENT_VERSION]) if tags.get(INTENT_VERSION, "").isdigit() else None
    bind_run(run_id, model_package_version=version)
    served = endpoint.get("EndpointConfigName")
    record = {
        "endpoint_name": detail.EndpointName,
        "model_package_version": version,
        "endpoint_config_name": intended,
    }
    outcome = {
        "endpoint_name": detail.EndpointName,
        "endpoint_config_name": served,
        "model_package_version": version,
        "run_id": run_id,
    }

    if detail.EndpointStatus in ("FAILED", "UPDATE_ROLLBACK_FAILED"):
        reason = detail.FailureReason or endpoint.get("FailureReason") or detail.EndpointStatus
        keeps = "; the previous model keeps serving" if served and served != intended else ""
        _fail(
            run_id,
            f"{detail.EndpointStatus}: {reason}{keeps}",
            record,
            f"Deployment of v{version} to {detail.EndpointName} failed",
        )
        return DeployOutcome(outcome="Failed", reason=reason, **outcome)
    if detail.EndpointStatus != "IN_SERVICE":
        return DeployOutcome(outcome="Ignored", reason=f"status {detail.EndpointStatus}", **outcome)
    if served != intended:
        serving = _served_version(served) if served else None
        reason = f"rolled back; version {serving} still serving"
        if endpoint.get("FailureReason"):
            reason += f" ({endpoint['FailureReason']})"
        _fail(
            run_id, reason, record, f"Deployment of v{version} to {detail.EndpointName} rolled back"
        )
        return DeployOutcome(outcome="RolledBack", reason=reason, **outcome)
    if settings.endpoint_instance_type:
        _register_autoscaling(detail.EndpointName)
    ledger.finish(run_id, STAGE, ledger.Status.SUCCEEDED, **record)
    return DeployOutcome(outcome="Verified", **outcome)
