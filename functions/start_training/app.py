"""Start training: a succeeded preparation (Glue job state change) starts one training job."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.observability import bind_run, logger, metrics, tracer
from mlops.preparation import GlueJobStateChangeEvent
from mlops.training_launch import start_training

METRIC = {
    "Started": "TrainingJobsStarted",
    "Duplicate": "DuplicateSignals",
    "PreparationFailed": "PreparationFailed",
    "LaunchFailed": "TrainingLaunchFailed",
    "Skipped": "TrainingSkipped",
}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail = parse(event=event, model=GlueJobStateChangeEvent).detail
    bind_run(detail.jobRunId, glue_job=detail.jobName, glue_state=detail.state)
    outcome = start_training(detail.model_dump(mode="json"))
    if outcome.run_id:
        bind_run(outcome.run_id, training_job=outcome.training_job_name)
    logger.info("start_training outcome", extra=outcome.model_dump(mode="json"))
    metrics.add_metric(name=METRIC[outcome.outcome], unit=MetricUnit.Count, value=1)
    return outcome.model_dump(mode="json")
