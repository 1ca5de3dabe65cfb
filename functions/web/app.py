"""Web function: the HTML form, the JSON prediction API, model info and health (HTTP API v2)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.observability import logger, metrics, tracer
from mlops.web import api


# clear_state: a warm container must not carry one request's model run id into the next.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Route the API Gateway event (parsed by Powertools' HTTP API resolver) to its handler."""
    return api.resolve(event, context)
