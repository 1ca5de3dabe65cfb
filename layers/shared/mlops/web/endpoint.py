"""The SageMaker endpoint behind the web app: which model it serves, whether it is up, predictions.

The served version is read from the endpoint itself (endpoint → endpoint config → model →
tags set by the deploy function), not from the registry, so the answer names the model that
actually produced the prediction.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from mlops.clients import client
from mlops.web.fields import FieldError, RowsRejected

# Endpoint status is re-read this often; a deploy switches versions within this window.
_STATUS_TTL_SECONDS = 10.0
# How long this container trusts what it last saw of the model server (a prediction's or a
# probe's outcome) before /health probes again: the same window as the status above.
_REACHABILITY_TTL_SECONDS = 10.0
# The runtime's own answers when no model server behind an InService endpoint can take the
# request (SageMaker is replacing an unhealthy instance, a serverless one is still starting).
_UNREACHABLE_CODES = {
    "ModelNotReadyException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalDependencyException",
}
# Busy, or gone between DescribeEndpoint and InvokeEndpoint (a delete): unavailable, not dead.
_UNAVAILABLE_CODES = {"ThrottlingException", "ValidationError", "ValidationException"}
# Marks /health's probes (InvokeEndpoint's CustomAttributes reach the container as the
# X-Amzn-SageMaker-Custom-Attributes header) so they can be told from real traffic.
PROBE_ATTRIBUTE = "mlops-health-probe"


class EndpointUnavailable(RuntimeError):
    """The endpoint is missing, not InService, or cannot be reached (HTTP 503).

    ``str(exc)`` is the detail for the logs; ``public_message`` is all a client is told, and
    ``retry_after`` (seconds) when to ask again.
    """

    public_message = "no model can answer right now; try again later"
    retry_after = 30


class EndpointMissing(EndpointUnavailable):
    """No endpoint of that name exists: nothing has been deployed yet."""

    public_message = "no model deployed; try again later"
    retry_after = 60


class EndpointUnreachable(EndpointUnavailable):
    """The endpoint is InService but no model server behind it answers."""

    public_message = "the model is not answering right now; try again later"
    retry_after = 10


class MalformedModelAnswer(RuntimeError):
    """The model answered something the API cannot return: not JSON, wrong shape (HTTP 502)."""


class ServedModel(BaseModel):
    """The model an endpoint serves, from the tags the deploy function put on it."""

    endpoint: str
    endpoint_status: str
    endpoint_config: str | None = None
    model_name: str | None = None
    version: str | None = None
    model_package_arn: str | None = None
    run_id: str | None = None
    dataset: str | None = None
    trained_at: str | None = None


class EndpointNotInService(EndpointUnavailable):
    """The endpoint exists but is not InService (Creating, Updating, Failed …)."""

    def __init__(self, model: ServedModel) -> None:
        super().__init__(f"endpoint {model.endpoint} is {model.endpoint_status}, not InService")
        self.model = model
        self.public_message = f"the model endpoint is {model.endpoint_status}; try again later"


class Prediction(BaseModel):
    predictions: list[Any]
    probabilities: list[Any] | None = None
    model: dict[str, Any] | None = None


_lock = threading.Lock()
_status_cache: dict[str, tuple[float, dict[str, Any]]] = {}
# Endpoint configs and models are immutable in SageMaker, so their chain is cached for good.
_chain_cache: dict[str, dict[str, Any]] = {}
# endpoint → (when, whether its model server answered): this container's last sight of it.
_reachability: dict[str, tuple[float, bool]] = {}


def clear_cache() -> None:
    """Forget cached endpoint descriptions and reachability (tests; a new moto account)."""
    with _lock:
        _status_cache.clear()
        _chain_cache.clear()
        _reachability.clear()


def _saw(name: str, answered: bool) -> None:
    with _lock:
        _reachability[name] = (time.monotonic(), answered)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe_endpoint(name: str) -> dict[str, Any]:
    now = time.monotonic()
    with _lock:
        cached = _status_cache.get(name)
    if cached and now - cached[0] < _STATUS_TTL_SECONDS:
        return cached[1]
    try:
        description = client("sagemaker").describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if _error_code(exc) in ("ValidationException", "ResourceNotFound"):
            raise EndpointMissing(
                f"endpoint {name} does not exist (no model deployed yet)"
            ) from exc
        raise EndpointUnavailable(
            f"endpoint {name} cannot be described: {_error_code(exc)}"
        ) from exc
    except BotoCoreError as exc:
        raise EndpointUnavailable(f"endpoint {name} cannot be described: {exc}") from exc
    with _lock:
        _status_cache[name] = (now, description)
    return description


def _tags_of_config(config_name: str) -> dict[str, Any]:
    with _lock:
        if config_name in _chain_cache:
            return _chain_cache[config_name]
    sagemaker = client("sagemaker")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    variants = config.get("ProductionVariants") or []
    model_name = variants[0].get("ModelName") if variants else None
    tags: dict[str, str] = {}
    if model_name:
        model = sagemaker.describe_model(ModelName=model_name)
        listed = sagemaker.list_tags(ResourceArn=model["ModelArn"]).get("Tags", [])
        tags = {tag["Key"]: tag["Value"] for tag in listed}
    chain = {"model_name": model_name, "tags": tags}
    with _lock:
        _chain_cache[config_name] = chain
    return chain


def served_model(name: str) -> ServedModel:
    """What ``name`` serves and its status; raises EndpointUnavailable if it cannot serve."""
    description = _describe_endpoint(name)
    status = str(description.get("EndpointStatus", "Unknown"))
    config_name = description.get("EndpointConfigName")
    chain: dict[str, Any] = {"model_name": None, "tags": {}}
    if config_name:
        try:
            chain = _tags_of_config(config_name)
        except (ClientError, BotoCoreError) as exc:
            raise EndpointUnavailable(
                f"endpoint {name} configuration cannot be read: {exc}"
            ) from exc
    tags = chain["tags"]
    model = ServedModel(
        endpoint=name,
        endpoint_status=status,
        endpoint_config=config_name,
        model_name=chain["model_name"],
        version=tags.get("model_package_version"),
        model_package_arn=tags.get("model_package_arn"),
        run_id=tags.get("run_id"),
        dataset=tags.get("dataset"),
        trained_at=tags.get("trained_at"),
    )
    if status != "InService":
        raise EndpointNotInService(model)
    return model


def invoke(name: str, rows: list[dict[str, Any]]) -> Prediction:
    """The model's answer for ``rows``; raises EndpointUnavailable or MalformedModelAnswer."""
    try:
        raw = _invoke(name, json.dumps(rows).encode())
    except ClientError as exc:
        code = _error_code(exc)
        if code == "ModelError":
            _saw(name, answered=True)  # the container answered, if with an error
            if 400 <= _original_status(exc) < 500:
                raise _refusal(exc) from exc
            raise MalformedModelAnswer(f"the model failed on this request: {exc}") from exc
        raise
    _saw(name, answered=True)
    return parse_answer(raw, expected=len(rows))


def _invoke(name: str, body: bytes, **extra: Any) -> bytes:
    """InvokeEndpoint's body; the runtime's "no model server" answers and connection failures
    become EndpointUnreachable (remembered for /health), other refusals EndpointUnavailable."""
    try:
        response = client("sagemaker-runtime").invoke_endpoint(
            EndpointName=name,
            ContentType="application/json",
            Accept="application/json",
            Body=body,
            **extra,
        )
        return bytes(response["Body"].read())
    except ClientError as exc:
        code = _error_code(exc)
        if code in _UNREACHABLE_CODES:
            _saw(name, answered=False)
            raise EndpointUnreachable(f"endpoint {name} cannot serve now ({code})") from exc
        if code in _UNAVAILABLE_CODES:
            raise EndpointUnavailable(f"endpoint {name} cannot serve now ({code})") from exc
        raise
    except BotoCoreError as exc:
        # Connection refused, timeouts, closed connections: the endpoint is not reachable.
        _saw(name, answered=False)
        raise EndpointUnreachable(f"endpoint {name} cannot be reached: {exc}") from exc


def reachable(name: str) -> bool:
    """Whether a model server behind InService endpoint ``name`` answers.

    DescribeEndpoint cannot tell: SageMaker keeps an endpoint InService while it replaces a
    dead instance. So this container trusts its own last invocation for a few seconds (free,
    and exactly what clients just saw) and otherwise probes: an InvokeEndpoint with an empty
    batch, which the model's input check refuses (a 4xx ModelError) before predicting. Any
    answer from the container, refusal included, proves it alive; only the runtime's own
    "no model server" errors or a failed connection mean it is not. A probe costs one
    millisecond-long invocation at most every few seconds, however often /health is polled,
    and is marked (``CustomAttributes``) so that it can be told from real traffic.
    """
    with _lock:
        seen = _reachability.get(name)
    if seen and time.monotonic() - seen[0] < _REACHABILITY_TTL_SECONDS:
        return seen[1]
    try:
        _invoke(name, b"[]", CustomAttributes=PROBE_ATTRIBUTE)
    except EndpointUnreachable:
        return False
    except EndpointUnavailable:
        return True  # throttled or deleted meanwhile: the next status read says which
    except ClientError as exc:
        if _error_code(exc) != "ModelError":
            raise
    _saw(name, answered=True)
    return True


def _original_status(exc: ClientError) -> int:
    """The status the model container answered (a ModelError's ``OriginalStatusCode``)."""
    value = exc.response.get(
        "OriginalStatusCode", exc.response.get("Error", {}).get("OriginalStatusCode")
    )
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _refusal(exc: ClientError) -> RowsRejected:
    """The model's own client error (its contract refused the rows) as a 422's field errors."""
    message = exc.response.get("OriginalMessage") or exc.response.get("Error", {}).get(
        "OriginalMessage", ""
    )
    try:
        body = json.loads(message)
    except (TypeError, ValueError):
        body = {}
    errors = []
    for error in (body.get("errors") if isinstance(body, dict) else None) or []:
        if isinstance(error, dict) and error.get("message"):
            row, field = error.get("row"), error.get("field")
            errors.append(
                FieldError(
                    row=row if isinstance(row, int) else None,
                    field=str(field) if field is not None else None,
                    message=str(error["message"]),
                )
            )
    reason = body.get("message") if isinstance(body, dict) else None
    return RowsRejected(
        errors or [FieldError(message=f"the model refused the rows: {reason or message}")]
    )


def parse_answer(raw: bytes, expected: int) -> Prediction:
    """The model's JSON answer checked for shape: one prediction (and probability) per row."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MalformedModelAnswer("the model's answer is not JSON") from None
    if isinstance(document, list):
        document = {"predictions": document}
    if not isinstance(document, dict) or not isinstance(document.get("predictions"), list):
        raise MalformedModelAnswer("the model's answer has no 'predictions' list")
    try:
        answer = Prediction.model_validate(document)
    except ValueError as exc:
        raise MalformedModelAnswer(f"the model's answer has the wrong shape: {exc}") from None
    if len(answer.predictions) != expected:
        raise MalformedModelAnswer(
            f"the model answered {len(answer.predictions)} predictions for {expected} rows"
        )
    if answer.probabilities is not None and len(answer.probabilities) != expected:
        raise MalformedModelAnswer(
            f"the model answered {len(answer.probabilities)} probabilities for {expected} rows"
        )
    return answer


def _flatten_quality(document: dict[str, Any]) -> dict[str, float]:
    """Metrics from SageMaker's model-quality statistics (``{"…_metrics": {m: {value}}}``)."""
    metrics: dict[str, float] = {}
    for key, group in document.items():
        if key.endswith("_metrics") and isinstance(group, dict):
            for name, value in group.items():
                if isinstance(value, dict) and isinstance(value.get("value"), int | float):
                    metrics[name] = float(value["value"])
    return metrics


def _read_s3_json(uri: str) -> dict[str, Any]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    document = json.loads(body)
    return document if isinstance(document, dict) else {}


def evaluation_of(model_package_arn: str) -> dict[str, Any] | None:
    """The evaluation recorded with a model package, None if it cannot be read.

    Reads ``ModelMetrics.ModelQuality.Statistics`` (the evaluate stage's document, or
    SageMaker's statistics format) and the package's approval and registration time; the page
    and API work without it, so a failure only omits the metrics.
    """
    try:
        package = client("sagemaker").describe_model_package(ModelPackageName=model_package_arn)
    except (ClientError, BotoCoreError):
        return None
    created = package.get("CreationTime")
    summary: dict[str, Any] = {
        "approval": package.get("ModelApprovalStatus"),
        "registered_at": created.isoformat() if hasattr(created, "isoformat") else created,
    }
    uri = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    try:
        document = _read_s3_json(uri) if uri else {}
    except (ClientError, BotoCoreError, ValueError):
        document = {}
    inner = document.get("evaluation") if isinstance(document.get("evaluation"), dict) else document
    if isinstance(inner.get("candidate"), dict):
        summary |= {
            "metric": inner.get("metric"),
            "task": inner.get("task"),
            "values": inner["candidate"],
            "baseline": inner.get("baseline"),
            "champion": inner.get("champion"),
            "test_rows": inner.get("test_rows"),
        }
    elif flattened := _flatten_quality(inner):
        summary["values"] = flattened
    return summary
