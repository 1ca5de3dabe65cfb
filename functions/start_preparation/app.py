"""StartPreparation function: "Run Validated" starts (or queues) the run's Glue preparation job;
a finished Glue run of the job and the queue sweep schedule drain the queue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.observability import bind_run, logger, metrics, tracer
from mlops.preparation import (
    PreparationSignal,
    RunValidatedSignal,
    drain_queue,
    start_preparation,
)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    signal = parse(event=event, model=PreparationSignal).root
    if isinstance(signal, RunValidatedSignal):
        bind_run(signal.detail.run_id, dataset=signal.detail.dataset)
        # Duplicates, zero-row and queued runs come back as outcomes; AWS errors raise.
        result = start_preparation(signal.detail)
        metrics.add_metric(name=result.metric, unit=MetricUnit.Count, value=1)
        return result.model_dump(mode="json")
    drained = drain_queue(signal.detail_type)
    metrics.add_metric(
        name="PreparationsStartedFromQueue", unit=MetricUnit.Count, value=len(drained.started)
    )
    metrics.add_metric(
        name="PreparationsExpiredInQueue", unit=MetricUnit.Count, value=len(drained.expired)
    )
    return drained.model_dump(mode="json")
