"""Evaluate: a finished SageMaker training job becomes a decided model package in the registry."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.evaluation import TrainingJobDetail, evaluate_training_job
from mlops.observability import bind_run, logger, metrics, tracer


class TrainingJobStateChange(EventBridgeModel):
    detail: TrainingJobDetail


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    job = parse(event=event, model=TrainingJobStateChange).detail
    bind_run(job.run_id or job.TrainingJobName, training_job=job.TrainingJobName)
    outcome = evaluate_training_job(job)
    metrics.add_metric(name=f"Evaluation{outcome.outcome}", unit=MetricUnit.Count, value=1)
    return outcome.model_dump(mode="json")
