"""Deploy: an approved model package goes to the endpoint; endpoint state changes verify it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.deployment import (
    EndpointStateDetail,
    ModelPackageStateDetail,
    deploy_model_package,
    verify_endpoint,
)
from mlops.observability import bind_run, logger, metrics, tracer

ENDPOINT_STATE_CHANGE = "SageMaker Endpoint State Change"


class ModelPackageStateChange(EventBridgeModel):
    detail: ModelPackageStateDetail


class EndpointStateChange(EventBridgeModel):
    detail: EndpointStateDetail


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("detail-type") == ENDPOINT_STATE_CHANGE:
        endpoint = parse(event=event, model=EndpointStateChange).detail
        bind_run(endpoint.EndpointName, endpoint_status=endpoint.EndpointStatus)
        outcome = verify_endpoint(endpoint)
    else:
        package = parse(event=event, model=ModelPackageStateChange).detail
        bind_run(package.ModelPackageArn, approval=package.ModelApprovalStatus)
        outcome = deploy_model_package(package)
    metrics.add_metric(name=f"Deploy{outcome.outcome}", unit=MetricUnit.Count, value=1)
    return outcome.model_dump(mode="json")
