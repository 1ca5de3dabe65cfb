"""StartPreparation function: a "Run Validated" event starts the run's Glue preparation job."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.observability import bind_run, logger, metrics, tracer
from mlops.preparation import RunValidatedEvent, start_preparation


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = parse(event=event, model=RunValidatedEvent)
    bind_run(parsed.detail.run_id, dataset=parsed.detail.dataset)
    # Duplicates and zero-row runs come back as outcomes; AWS errors and throttling raise.
    result = start_preparation(parsed.detail)
    metrics.add_metric(name=result.metric, unit=MetricUnit.Count, value=1)
    return result.model_dump(mode="json")
