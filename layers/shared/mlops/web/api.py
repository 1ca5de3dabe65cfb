"""HTTP wiring of the web app: routes, request/response models, error answers, OpenAPI, docs.

Every failure becomes a JSON ``ErrorResponse`` with a clear message and the request id. A 5xx
answer says what happened in fixed words only (no exception text, error code or address); the
detail is logged with the request id. A 503 says when to retry (``Retry-After``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import Server
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit

from mlops.observability import logger, metrics
from mlops.web import endpoint, service
from mlops.web.fields import FieldError, RowsRejected, row_json_schema
from mlops.web.models import (
    MAX_BATCH_ROWS,
    ErrorResponse,
    HealthResponse,
    ModelResponse,
    PredictionRequest,
    PredictionResponse,
)
from mlops.web.page import render_page

TITLE = "serverless-mlops prediction API"
API_VERSION = "1.0.0"
JSON = "application/json"


def _json_body(text: str) -> Any:
    """``json.loads``, with what it cannot read reported as invalid JSON (a 422), not a 500:
    nesting deeper than the decoder's recursion limit, or an integer over Python's digit limit."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise json.JSONDecodeError(f"unreadable number: {exc}", text, 0) from None


app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=_json_body)

# Headers on every answer. API answers are JSON: nothing in them may load or run anything, and
# no page may frame them. The HTML pages get their own Content-Security-Policy (``_csp_for``).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Strict-Transport-Security": "max-age=31536000",
}
_INLINE = re.compile(r"<(script|style)(\s[^>]*)?>(.*?)</\1>", re.DOTALL | re.IGNORECASE)


def _csp_for(html: str, *, inline_style_attributes: bool = False) -> str:
    """A Content-Security-Policy for one generated page: its own inline scripts and styles (by
    hash) and calls back to this API; no other origin, no plugin, no framing."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for tag, attributes, body in _INLINE.findall(html):
        if tag.lower() == "script" and "application/json" in (attributes or ""):
            continue  # data, never executed
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
        hashes[tag.lower()].append(f"'sha256-{digest}'")
    scripts = " ".join(hashes["script"]) or "'none'"
    styles = " ".join(hashes["style"]) or "'none'"
    if inline_style_attributes:  # browsers ignore 'unsafe-inline' beside a hash: no hashes then
        styles = "'unsafe-inline'"
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {scripts}",
            f"style-src {styles}",
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _html(body: str, *, inline_style_attributes: bool = False) -> Response[str]:
    csp = _csp_for(body, inline_style_attributes=inline_style_attributes)
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=body,
        headers={"Content-Security-Policy": csp},
    )


class UnsupportedMediaType(ValueError):
    """A request body in a media type other than JSON (HTTP 415)."""


def _errors(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"model": ErrorResponse}}}


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before asking again",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _unavailable_answer(description: str, model: Any = ErrorResponse) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"model": model}}, "headers": RETRY_AFTER}


def _request_id() -> str | None:
    try:
        return app.current_event.request_context.request_id
    except (AttributeError, KeyError):
        return None


def _base_path() -> str:
    """The stage prefix of this request's URL (``/dev``), empty on a ``$default`` stage."""
    context = app.current_event.request_context
    stage = context.stage
    if stage and stage != "$default" and context.http.path.startswith(f"/{stage}"):
        return f"/{stage}"
    return ""


def _error(
    status: int,
    message: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = ErrorResponse(message=message, errors=errors or [], request_id=_request_id())
    return Response(status_code=status, content_type=JSON, body=body, headers=headers)


@app.get("/", include_in_schema=False)
def page() -> Response[str]:
    html = render_page(service.form_spec(), base_path=_base_path())
    metrics.add_metric(name="FormPagesServed", unit=MetricUnit.Count, value=1)
    return _html(html)


@app.post(
    "/predictions",
    summary="Predict the target for one row or a batch of rows",
    description=(
        f'Send one row object, a list of rows or `{{"instances": [...]}}` (at most '
        f"{MAX_BATCH_ROWS} rows). Rows are checked against the dataset contract: a missing "
        "required field, a value out of range, an unknown option or an unknown field is a 422 "
        "listing every error with its row index and field."
    ),
    responses={
        200: {"description": "one prediction per row and the model that made them"},
        413: _errors("more rows than one request may carry"),
        415: _errors("a body that is not application/json"),
        422: _errors("rows that do not satisfy the contract, with per-field errors"),
        502: _errors("the model failed or answered something malformed"),
        503: _unavailable_answer(
            "no model can answer right now (none deployed, not InService, "
            "or its model server does not answer)"
        ),
    },
)
def predictions(body: Annotated[PredictionRequest, Body()]) -> PredictionResponse:
    _require_json()
    return service.predict(body.rows(), request_id=_request_id())


def _require_json() -> None:
    # Powertools also parses form and multipart bodies; the API takes JSON only.
    kind = (app.current_event.headers.get("content-type") or JSON).split(";")[0].strip().lower()
    if kind != JSON:
        raise UnsupportedMediaType(kind)


@app.get(
    "/model",
    summary="The served model: version, training run, when trained, evaluation metrics",
    responses={
        200: {"description": "the served model"},
        503: _unavailable_answer("no model is served right now"),
    },
)
def model() -> ModelResponse:
    info = service.model_info()
    metrics.add_metric(name="ModelInfoServed", unit=MetricUnit.Count, value=1)
    return info


@app.get(
    "/health",
    summary="Whether the endpoint can serve (200) or not (503), and the version it serves",
    responses={
        200: {"description": "the endpoint is InService and its model server answers"},
        503: _unavailable_answer(
            "no model deployed, the endpoint not InService, or its model server not answering",
            model=HealthResponse,
        ),
    },
)
def health() -> Response[HealthResponse]:
    body, status = service.health()
    headers = {"Retry-After": str(body.retry_after)} if body.retry_after else None
    return Response(status_code=status, content_type=JSON, body=body, headers=headers)


def openapi_document(base_path: str) -> dict[str, Any]:
    """The OpenAPI document, with the row schema generated from the dataset contract."""
    document = json.loads(
        app.get_openapi_json_schema(
            title=TITLE,
            version=API_VERSION,
            servers=[Server(url=base_path or "/")],
            description="Predictions from the model the serverless MLOps pipeline deployed.",
        )
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    try:
        schemas["Row"] = row_json_schema(service.form_spec())
    except Exception:  # the generic row schema still documents the API without a contract
        logger.warning("contract unavailable; OpenAPI row schema left generic", exc_info=True)
    return document


@app.get("/openapi.json", include_in_schema=False)
def openapi() -> Response[str]:
    body = json.dumps(openapi_document(_base_path()))
    metrics.add_metric(name="ApiDocsServed", unit=MetricUnit.Count, value=1)
    return Response(status_code=200, content_type=JSON, body=body)


@cache
def _swagger_assets() -> tuple[str, str]:
    # Powertools ships the Swagger UI bundle: inlining it keeps /docs working offline.
    from aws_lambda_powertools.event_handler import openapi as powertools_openapi

    folder = Path(powertools_openapi.__file__).parent / "swagger_ui"
    return (
        (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (folder / "swagger-ui.min.css").read_text(encoding="utf-8"),
    )


@app.get("/docs", include_in_schema=False)
def docs() -> Response[str]:
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    spec = json.dumps(openapi_document(_base_path())).replace("</", "<\\/")
    metrics.add_metric(name="ApiDocsServed", unit=MetricUnit.Count, value=1)
    query = app.current_event.query_string_parameters or {}
    if query.get("format") == "json":  # the spec link Swagger UI shows under the title
        return Response(status_code=200, content_type=JSON, body=spec)
    script, style = _swagger_assets()
    html = generate_swagger_html(spec, script, style, "", None)
    # Swagger UI sets style attributes as it renders: its styles need 'unsafe-inline'.
    return _html(html, inline_style_attributes=True)


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response:
    # Values are checked by the contract; what fails here is the body's shape, so one error
    # per row (or for the whole body) says more than pydantic's per-union-branch details.
    invalid = [e for e in exc.errors() if e.get("type") == "json_invalid"]
    if invalid:
        reason = (invalid[0].get("ctx") or {}).get("error")
        message = "the request body is not valid JSON" + (f": {reason}" if reason else "")
        errors = [FieldError(message=message)]
    else:
        rows = sorted({p for e in exc.errors() for p in e.get("loc", ()) if isinstance(p, int)})
        errors = [FieldError(row=row, message="each row must be a JSON object") for row in rows]
        errors = errors or [FieldError(message="the body is neither a row nor a list of rows")]
    metrics.add_metric(name="PredictionRequestsRejected", unit=MetricUnit.Count, value=1)
    return _error(422, 'send one row object, a list of rows or {"instances": [rows]}', errors)


@app.exception_handler([RequestUnsupportedContentType, UnsupportedMediaType])
def _unsupported_media_type(exc: Exception) -> Response:
    metrics.add_metric(name="PredictionRequestsRejected", unit=MetricUnit.Count, value=1)
    kind = (app.current_event.headers.get("content-type") or "").split(";")[0].strip()
    return _error(415, f"send the rows as {JSON}, not {kind or 'an unnamed media type'}")


@app.exception_handler([UnicodeDecodeError, binascii.Error])
def _undecodable(exc: Exception) -> Response:
    # A base64 body (API Gateway encodes binary ones) that is not UTF-8 text.
    metrics.add_metric(name="PredictionRequestsRejected", unit=MetricUnit.Count, value=1)
    return _error(400, "the request body is not UTF-8 text")


@app.exception_handler(RowsRejected)
def _rows_rejected(exc: RowsRejected) -> Response:
    metrics.add_metric(name="PredictionRequestsRejected", unit=MetricUnit.Count, value=1)
    return _error(422, "some values do not satisfy the dataset contract", exc.errors)


@app.exception_handler(service.BatchTooLarge)
def _too_large(exc: service.BatchTooLarge) -> Response:
    metrics.add_metric(name="PredictionRequestsRejected", unit=MetricUnit.Count, value=1)
    return _error(413, str(exc))


@app.exception_handler(endpoint.EndpointUnavailable)
def _unavailable(exc: endpoint.EndpointUnavailable) -> Response:
    logger.warning(
        "endpoint unavailable",
        extra={"request_id": _request_id(), "error": str(exc), "cause": repr(exc.__cause__)},
    )
    metrics.add_metric(name="EndpointUnavailable", unit=MetricUnit.Count, value=1)
    retry = {"Retry-After": str(exc.retry_after)}
    return _error(503, exc.public_message, headers=retry)


@app.exception_handler(endpoint.MalformedModelAnswer)
def _malformed(exc: endpoint.MalformedModelAnswer) -> Response:
    logger.error("malformed model answer", extra={"request_id": _request_id(), "error": str(exc)})
    metrics.add_metric(name="MalformedModelAnswers", unit=MetricUnit.Count, value=1)
    return _error(502, "the model could not answer this request; quote the request id to report it")


@app.not_found
def _not_found(exc: NotFoundError) -> Response:
    metrics.add_metric(name="RoutesNotFound", unit=MetricUnit.Count, value=1)
    return _error(404, "Not Found")


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response:
    logger.exception("unhandled error in the web app", extra={"request_id": _request_id()})
    metrics.add_metric(name="WebErrors", unit=MetricUnit.Count, value=1)
    return _error(500, "internal error; quote the request id when reporting it")


def with_security_headers(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with ``SECURITY_HEADERS`` added where a route did not set its own."""
    headers = result.setdefault("headers", {})
    present = {name.lower() for name in headers}
    for name, value in SECURITY_HEADERS.items():
        if name.lower() not in present:
            headers[name] = value
    return result


def resolve(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one API Gateway HTTP API (payload v2.0) event, every answer with the security
    headers (errors and 404s included)."""
    return with_security_headers(app.resolve(event, context))
