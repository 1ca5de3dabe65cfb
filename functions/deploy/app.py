"""Deploy: approval and pin changes converge the endpoint; endpoint state changes verify it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.deployment import (
    EndpointStateDetail,
    ModelPackageStateDetail,
    ServingPinDetail,
    on_model_package_change,
    on_pin_change,
    verify_endpoint,
)
from mlops.observability import bind_run, logger, metrics, tracer
from mlops.serving import PIN_CHANGED

ENDPOINT_STATE_CHANGE = "SageMaker Endpoint State Change"


class ModelPackageStateChange(EventBridgeModel):
    detail: ModelPackageStateDetail


class EndpointStateChange(EventBridgeModel):
    detail: EndpointStateDetail


class ServingPinChange(EventBridgeModel):
    detail: ServingPinDetail


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("detail-type") == ENDPOINT_STATE_CHANGE:
        endpoint = parse(event=event, model=EndpointStateChange).detail
        bind_run(endpoint.EndpointName, endpoint_status=endpoint.EndpointStatus)
        outcome = verify_endpoint(endpoint)
    elif event.get("detail-type") == PIN_CHANGED:
        pin = parse(event=event, model=ServingPinChange).detail
        bind_run(pin.ModelPackageGroupName, pinned=pin.PinnedVersion)
        outcome = on_pin_change(pin)
    else:
        package = parse(event=event, model=ModelPackageStateChange).detail
        bind_run(package.ModelPackageArn, approval=package.ModelApprovalStatus)
        outcome = on_model_package_change(package)
    metrics.add_metric(name=f"Deploy{outcome.outcome}", unit=MetricUnit.Count, value=1)
    return outcome.model_dump(mode="json")
