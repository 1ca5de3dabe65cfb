"""Monitor function: each "Run Validated" run is compared with the champion's training data
(drift) and the champion is scored on the run's fresh labelled rows (quality)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.monitoring.monitor import monitor_run
from mlops.observability import bind_run, logger, metrics, tracer
from mlops.preparation import RunValidatedEvent


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail = parse(event=event, model=RunValidatedEvent).detail
    bind_run(detail.run_id, dataset=detail.dataset)
    # No champion yet and duplicates come back as outcomes; AWS errors raise (retried).
    outcome = monitor_run(detail)
    metrics.add_metric(name=f"Monitor{outcome.outcome.title()}", unit=MetricUnit.Count, value=1)
    if outcome.outcome == "recorded":
        # The drift alarm watches DriftedColumns (input features plus the target), the quality
        # alarm FreshMetricRatio (fresh metric over the approval test metric, > 1 is worse).
        drifted = len(outcome.drifted_features)
        metrics.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=drifted)
        metrics.add_metric(
            name="TargetDrift", unit=MetricUnit.Count, value=int(outcome.target_drift)
        )
        metrics.add_metric(
            name="DriftedColumns", unit=MetricUnit.Count, value=drifted + int(outcome.target_drift)
        )
        metrics.add_metric(
            name="NewCategoryValues", unit=MetricUnit.Count, value=outcome.new_category_values
        )
        if outcome.fresh_metric_ratio is not None:
            metrics.add_metric(
                name="FreshMetricRatio", unit=MetricUnit.NoUnit, value=outcome.fresh_metric_ratio
            )
    return outcome.model_dump(mode="json")
