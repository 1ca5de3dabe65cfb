"""The one place handlers get their Logger, Tracer and Metrics from."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ServerlessMLOps")

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=NAMESPACE)


def bind_run(run_id: str, **keys: object) -> None:
    """Use the run id as the correlation id of every log line that follows."""
    logger.set_correlation_id(run_id)
    logger.append_keys(run_id=run_id, **keys)
