"""The deploy stage: a dataset's endpoint serves what the serving rule chooses, verified.

Every approval change in a model package group, and every pin change, makes the deploy stage
read the registry, choose with ``mlops.serving`` (the newest Approved version, or the pinned
one while it is Approved) and converge the endpoint to it: create, blue/green update, nothing,
or, when no version may serve, delete it. Updates use the template's alarms as automatic
rollback triggers; the endpoint's state change afterwards tells whether the intended version is
really the one serving.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlops import ledger, naming, serving
from mlops.clients import client
from mlops.notifications import notify
from mlops.observability import bind_run, logger
from mlops.settings import Settings, get_settings

STAGE = "deploy"
# The ledger stage recording that a run's model stopped serving because nothing may serve.
OUT_OF_SERVICE = "out_of_service"
VARIANT = "AllTraffic"
# What the deploy stage meant the endpoint to serve; the verification compares against it.
INTENT_CONFIG, INTENT_RUN, INTENT_VERSION = "mlops:config", "mlops:run_id", "mlops:version"
# The cost allocation stage of the endpoint's hours (mlops.naming.cost_tags).
SERVING_COST_STAGE = "serve"
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


class ServingPinDetail(BaseModel):
    """The detail of "Serving Pin Changed" (ours: `mlops pin` / `unpin` put it)."""

    model_config = ConfigDict(extra="allow")

    ModelPackageGroupName: str
    PinnedVersion: int | None = None


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
    outcome: Literal[
        "Ignored",
        "Unchanged",
        "Deploying",
        "AlreadyServing",
        "TakenOutOfService",
        "Verified",
        "RolledBack",
        "Failed",
    ]
    endpoint_name: str | None = None
    endpoint_config_name: str | None = None
    model_package_version: int | None = None
    run_id: str | None = None
    reason: str | None = None
    # What the serving rule chose, e.g. "v5 (newest Approved)".
    serving: str | None = None


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
        if not serving.missing(error):
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
        if not serving.missing(error):
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
        if serving.missing(error):
            return None
        raise


def on_model_package_change(detail: ModelPackageStateDetail) -> DeployOutcome:
    """Any approval change in a group: converge its endpoint to what the serving rule says."""
    return converge(detail.ModelPackageGroupName, package_arn=detail.ModelPackageArn)


def on_pin_change(detail: ServingPinDetail) -> DeployOutcome:
    """A pin set or cleared (`mlops pin` / `unpin`): converge the group's endpoint."""
    return converge(detail.ModelPackageGroupName, asked_for=detail.PinnedVersion)


def _describe_package(arn: str) -> dict[str, Any] | None:
    sagemaker = client("sagemaker")
    try:
        return dict(sagemaker.describe_model_package(ModelPackageName=arn))
    except sagemaker.exceptions.ClientError as error:
        if serving.missing(error):
            return None
        raise


def converge(
    group: str, *, package_arn: str | None = None, asked_for: int | None = None
) -> DeployOutcome:
    """Make the group's endpoint serve the version the serving rule chooses, or none.

    ``asked_for`` is the version the event is about: a person acting on it may retry a
    version whose last update rolled back, an unrelated event may not.
    """
    settings = get_settings()
    registry = serving.read(client("sagemaker"), group)
    described: dict[str, dict[str, Any]] = {}
    if package_arn:
        # ListModelPackages may not show the change that sent this event yet; Describe does.
        package = _describe_package(package_arn)
        if package is not None:
            described[package_arn] = package
            asked_for = int(package["ModelPackageVersion"])
            status = str(package.get("ModelApprovalStatus", ""))
            registry = registry.with_status(asked_for, status, package_arn)
    while True:
        choice = serving.choose(registry)
        logger.info("serving rule", extra={"group": group, "serves": choice.describe()})
        if choice.version is None:
            return _take_out_of_service(registry, choice, described, settings)
        arn = registry.arns[choice.version]
        package = described.get(arn) or _describe_package(arn)
        status = str((package or {}).get("ModelApprovalStatus", "deleted"))
        if package is not None and status == serving.APPROVED:
            return _serve(package, choice, asked_for == choice.version, settings)
        # The listing was behind: decide again without this version (the loop ends, as each
        # pass removes one Approved version).
        registry = registry.with_status(choice.version, status, arn)


def _serve(
    package: dict[str, Any], choice: serving.Choice, asked: bool, settings: Settings
) -> DeployOutcome:
    """Create or blue/green-update the endpoint to serve ``package``; a no-op if it does."""
    group = str(package["ModelPackageGroupName"])
    version = int(package["ModelPackageVersion"])
    dataset = _dataset_of(group, package, settings)
    props = package.get("CustomerMetadataProperties", {})
    run_id = props.get("run_id") or f"{group}-v{version}"
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
    # Every outcome below names the same run, endpoint, config, version and rule.
    outcome = functools.partial(
        DeployOutcome,
        run_id=run_id,
        endpoint_name=endpoint,
        endpoint_config_name=config,
        model_package_version=version,
        serving=choice.describe(),
    )
    sagemaker = client("sagemaker")
    current = _describe_endpoint(endpoint)
    status = (current or {}).get("EndpointStatus")
    if current is not None and status == "InService":
        if current.get("EndpointConfigName") == config:
            return _already_serving(current, run_id, record, outcome)
        served = _served_version(str(current.get("EndpointConfigName")))
        if _intent(current).get(INTENT_CONFIG) == config and not asked:
            # Its last update rolled back (verify_endpoint recorded and notified that); only an
            # event about this very version (approved again, pinned) tries it once more.
            return outcome(
                outcome="Unchanged",
                reason=f"v{version} rolled back on {endpoint}; v{served} keeps serving",
            )
    elif current is not None and status == "Failed":
        # A failed endpoint accepts only DeleteEndpoint, which takes a while: the retry creates.
        sagemaker.delete_endpoint(EndpointName=endpoint)
        raise EndpointBusy(f"deleting failed endpoint {endpoint}; the retry recreates it")
    elif current is not None:
        if status != "Deleting" and _intent(current).get(INTENT_CONFIG) == config:
            # A redelivery while this very deployment is still rolling out.
            return outcome(outcome="Deploying", reason=f"already {status}")
        raise EndpointBusy(f"endpoint {endpoint} is {status}; retry later")

    ledger.start(run_id, STAGE, **record)
    _ensure_model(model, package, run_id, settings)
    _ensure_config(config, model, [{"Key": "run_id", "Value": run_id}], settings)
    intent = _intent_tags(config, run_id, version)
    if current is None:
        sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config, Tags=intent)
        logger.info("endpoint creating", extra=record)
        return outcome(outcome="Deploying")
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


def _intent_tags(config: str, run_id: str, version: int) -> list[dict[str, str]]:
    # INTENT_RUN is also the cost allocation tag naming.COST_RUN_TAG: the endpoint's hours are
    # split by the run whose model it serves; COST_STAGE_TAG files them under serving.
    return [
        {"Key": INTENT_CONFIG, "Value": config},
        {"Key": INTENT_RUN, "Value": run_id},
        {"Key": INTENT_VERSION, "Value": str(version)},
        {"Key": naming.COST_STAGE_TAG, "Value": SERVING_COST_STAGE},
    ]


def _already_serving(
    current: dict[str, Any],
    run_id: str,
    record: dict[str, Any],
    outcome: functools.partial[DeployOutcome],
) -> DeployOutcome:
    """The endpoint is in service on the chosen version: at most bookkeeping is left."""
    version, config = record["model_package_version"], record["endpoint_config_name"]
    if _intent(current).get(INTENT_CONFIG) != config:
        # It serves this version while meant for another (rejected, or rolled back): adopt it.
        client("sagemaker").add_tags(
            ResourceArn=current["EndpointArn"], Tags=_intent_tags(config, run_id, version)
        )
    elif _deploy_status(run_id) == ledger.Status.SUCCEEDED.value:
        return outcome(outcome="AlreadyServing", reason="nothing to change")
    ledger.finish(run_id, STAGE, ledger.Status.SUCCEEDED, **record)
    return outcome(outcome="AlreadyServing")


def _deploy_status(run_id: str) -> str | None:
    return next((s.get("status") for s in ledger.stages(run_id) if s.get("stage") == STAGE), None)


def _group_dataset(
    registry: serving.Registry, described: dict[str, dict[str, Any]], settings: Settings
) -> str | None:
    """The dataset a group's models belong to, from any of its packages."""
    for arn in [*described, *(registry.arns[v] for v in sorted(registry.arns, reverse=True))]:
        package = described.get(arn) or _describe_package(arn)
        if package is not None:
            return _dataset_of(registry.group, package, settings)
    if naming.model_package_group(settings.dataset, settings.stage) == registry.group:
        return settings.dataset
    return None


def _take_out_of_service(
    registry: serving.Registry,
    choice: serving.Choice,
    described: dict[str, dict[str, Any]],
    settings: Settings,
) -> DeployOutcome:
    """No version may serve: record it, tell people, and delete the endpoint."""
    dataset = _group_dataset(registry, described, settings)
    endpoint = naming.endpoint_name(dataset, settings.stage) if dataset else None
    current = _describe_endpoint(endpoint) if endpoint else None
    status = (current or {}).get("EndpointStatus")
    if current is None or status == "Deleting":
        return DeployOutcome(
            outcome="Unchanged",
            endpoint_name=endpoint,
            serving=choice.describe(),
            reason="no Approved version and no endpoint in service",
        )
    if status in _IN_PROGRESS:
        raise EndpointBusy(f"endpoint {endpoint} is {status}; retry later")
    config = str(current.get("EndpointConfigName") or "")
    served = _served_version(config) if config else None
    run_id = _intent(current).get(INTENT_RUN) or f"{registry.group}-v{served}"
    if served is not None and served in registry.arns:
        package = described.get(registry.arns[served]) or _describe_package(registry.arns[served])
        run_id = (package or {}).get("CustomerMetadataProperties", {}).get("run_id") or run_id
    bind_run(run_id, model_package_version=served)
    reason = (
        f"no Approved version left in {registry.group}: endpoint {endpoint} deleted; it served "
        f"v{served}. Approve a version to serve again."
    )
    record = {"endpoint_name": endpoint, "model_package_version": served}
    # Recorded and told before the delete: a retry after a crash repeats the message rather
    # than finding no endpoint and saying nothing.
    ledger.finish(run_id, OUT_OF_SERVICE, ledger.Status.SUCCEEDED, reason=reason, **record)
    notify(f"{endpoint} taken out of service", reason, run_id=run_id, **record)
    client("sagemaker").delete_endpoint(EndpointName=endpoint)
    logger.info("endpoint deleted: nothing may serve", extra=record)
    return DeployOutcome(
        outcome="TakenOutOfService",
        endpoint_name=endpoint,
        endpoint_config_name=config or None,
        model_package_version=served,
        run_id=run_id,
        serving=choice.describe(),
        reason=reason,
    )


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
        if not serving.missing(error):
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
