"""What the web API does, independent of HTTP: predict, describe the model, report health."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from mlops import naming
from mlops.observability import bind_run, logger, metrics
from mlops.settings import get_settings
from mlops.web import capture, endpoint
from mlops.web.fields import FieldError, FormSpec, RowsRejected, load_spec, validate_rows
from mlops.web.models import (
    MAX_BATCH_ROWS,
    HealthResponse,
    ModelResponse,
    ModelVersion,
    PredictionResponse,
)


class BatchTooLarge(ValueError):
    """More rows than one request may carry (HTTP 413)."""


def endpoint_name() -> str:
    """The endpoint serving the configured dataset in this stage."""
    settings = get_settings()
    return settings.endpoint_name or naming.endpoint_name(settings.dataset, settings.stage)


def form_spec() -> FormSpec:
    return load_spec(get_settings().dataset)


def predict(rows: list[Any], request_id: str | None = None) -> PredictionResponse:
    """Predictions for ``rows`` after checking them against the contract."""
    if len(rows) > MAX_BATCH_ROWS:
        raise BatchTooLarge(
            f"a request may carry at most {MAX_BATCH_ROWS} rows; this one has {len(rows)}"
        )
    if not rows:
        raise RowsRejected([FieldError(message="the request contains no rows")])
    spec = form_spec()
    clean = validate_rows(rows, spec)
    name = endpoint_name()
    served = endpoint.served_model(name)
    # The served model's run id links each prediction log line to the pipeline run behind it.
    bind_run(served.run_id or "unknown", request_id=request_id, model_version=served.version)
    answer = endpoint.invoke(name, clean)
    metrics.add_metric(name="RowsPredicted", unit=MetricUnit.Count, value=len(clean))
    response = PredictionResponse(
        predictions=answer.predictions,
        probabilities=answer.probabilities,
        target=spec.target,
        model=ModelVersion(
            endpoint=name,
            version=served.version,
            model_package_arn=served.model_package_arn,
            run_id=served.run_id,
            # The artifact reports its own training time; the deploy tag wins when present.
            trained_at=served.trained_at or (answer.model or {}).get("trained_at") or None,
        ),
    )
    # Once the answer is built, and never at its expense: capture logs and counts its own
    # failures and is bounded by its client's timeouts (mlops.web.capture).
    capture.capture(
        rows=clean,
        predictions=answer.predictions,
        probabilities=answer.probabilities,
        features=[field.name for field in spec.fields],
        served=served,
        request_id=request_id,
    )
    return response


def model_info() -> ModelResponse:
    """The served model's version, lineage and evaluation."""
    served = endpoint.served_model(endpoint_name())
    evaluation = (
        endpoint.evaluation_of(served.model_package_arn) if served.model_package_arn else None
    )
    return ModelResponse(
        **served.model_dump(exclude={"endpoint_config", "model_name"}),
        registered_at=(evaluation or {}).get("registered_at"),
        evaluation=evaluation,
    )


def health() -> tuple[HealthResponse, int]:
    """Whether the endpoint can serve, with the HTTP status to answer: 200 when it is InService
    and its model server answers (``endpoint.reachable``), else 503."""
    name = endpoint_name()
    try:
        served = endpoint.served_model(name)
    except endpoint.EndpointNotInService as exc:
        return _unhealthy(exc, endpoint_status=exc.model.endpoint_status, version=exc.model.version)
    except endpoint.EndpointMissing as exc:
        return _unhealthy(exc, endpoint_status="Missing")
    except endpoint.EndpointUnavailable as exc:
        return _unhealthy(exc, endpoint_status="Unknown")
    if not endpoint.reachable(name):
        unreachable = endpoint.EndpointUnreachable(f"endpoint {name}: the model server is down")
        return _unhealthy(
            unreachable, endpoint_status=served.endpoint_status, version=served.version
        )
    metrics.add_metric(name="HealthOk", unit=MetricUnit.Count, value=1)
    body = HealthResponse(
        status="ok",
        endpoint=name,
        endpoint_status=served.endpoint_status,
        version=served.version,
        model_answers=True,
    )
    return body, 200


def _unhealthy(
    exc: endpoint.EndpointUnavailable, endpoint_status: str, version: str | None = None
) -> tuple[HealthResponse, int]:
    # The client reads the public message; the detail (error codes, exception text) is logged.
    logger.warning("endpoint cannot serve", extra={"error": str(exc)})
    metrics.add_metric(name="HealthUnavailable", unit=MetricUnit.Count, value=1)
    body = HealthResponse(
        status="unavailable",
        endpoint=endpoint_name(),
        endpoint_status=endpoint_status,
        version=version,
        model_answers=False,
        message=exc.public_message,
        retry_after=exc.retry_after,
    )
    return body, 503
