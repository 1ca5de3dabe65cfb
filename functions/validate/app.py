"""Validate function: an S3 "Object Created" event on the raw bucket, via EventBridge; and
the end of a validation job run that did not record its object ("Glue Job State Change")."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.observability import logger, metrics, tracer
from mlops.validation.delegation import JobRunEnded, record_job_end
from mlops.validation.objects import handle_object_created


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("detail-type") == "Glue Job State Change":
        # A large object's job run failed, timed out or was stopped: record its object if the
        # job could not (mlops.validation.delegation).
        ended = record_job_end(JobRunEnded.model_validate(event["detail"]))
        if ended is None:
            return {"outcome": "already_recorded"}
        metrics.add_metric(name=ended.metric, unit=MetricUnit.Count, value=1)
        return ended.model_dump(mode="json")
    parsed = parse(event=event, model=S3EventNotificationEventBridgeModel)
    # Idempotent per object version; bad objects come back as an outcome, AWS errors raise.
    result = handle_object_created(parsed, context)
    # A replayed duplicate was counted (and its run emitted) when it was first processed.
    if result.replayed:
        metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
        return result.model_dump(mode="json")
    metrics.add_metric(name=result.metric, unit=MetricUnit.Count, value=1)
    if result.run_emitted:
        metrics.add_metric(name="RunsValidated", unit=MetricUnit.Count, value=1)
    return result.model_dump(mode="json")
