"""The web function's API, invoked with the sample HTTP API events against moto and a fake
SageMaker runtime (a 127.0.0.1 server answering like ``InvokeEndpoint``)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from copy import deepcopy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from lxml import html

from mlops import naming
from mlops.clients import client
from mlops.contract import load_contract
from mlops.web import endpoint, fields
from mlops.web.models import MAX_BATCH_ROWS

ACCOUNT = "123456789012"
REGION = "us-east-1"
ENDPOINT = naming.endpoint_name("used_cars", "dev")

Answer = Callable[[list[dict[str, Any]]], tuple[int, bytes]]


MODEL_TRAINED_AT = "2026-11-27T07:59:00+00:00"


def echo_prices(rows: list[dict[str, Any]]) -> tuple[int, bytes]:
    """A model whose prediction is derived from the row, so order and count can be checked."""
    predictions = [1000.0 + row["mileage"] / 10 for row in rows]
    identity = {"dataset": "used_cars", "trained_at": MODEL_TRAINED_AT}
    return 200, json.dumps({"predictions": predictions, "model": identity}).encode()


class FakeRuntime:
    """The SageMaker runtime API's ``POST /endpoints/<name>/invocations`` on 127.0.0.1."""

    def __init__(self, answer: Answer = echo_prices) -> None:
        self.answer = answer
        self.requests: list[tuple[str, list[dict[str, Any]]]] = []
        self.custom_attributes: list[str] = []
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                rows = json.loads(self.rfile.read(length))
                name = self.path.split("/")[2]
                runtime.requests.append((name, rows))
                if attributes := self.headers.get("x-amzn-sagemaker-custom-attributes"):
                    runtime.custom_attributes.append(attributes)
                status, body = runtime.answer(rows)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def runtime_error(code: str) -> Answer:
    """The runtime API's own error (no model server involved), e.g. ServiceUnavailable."""
    status = {"ServiceUnavailable": 503, "ModelNotReadyException": 429}[code]
    body = json.dumps({"__type": code, "message": "The service is unavailable."}).encode()
    return lambda rows: (status, body)


def model_error(status: int, message: str) -> Answer:
    """The runtime's ModelError for a model container that answered ``status``."""
    error = {
        "__type": "ModelError",
        "Message": f"Received error ({status}) from primary with message {message}",
        "OriginalStatusCode": status,
        "OriginalMessage": message,
    }
    return lambda rows: (424, json.dumps(error).encode())


def deploy_model(
    version: str = "3",
    run_id: str = "20261127T080000Z-0a1b2c3d",
    trained_at: str | None = "2026-11-27T08:05:00+00:00",
    package_arn: str | None = None,
) -> None:
    """An endpoint in moto serving a model tagged the way the deploy function tags it."""
    sagemaker = client("sagemaker")
    name = f"{ENDPOINT}-v{version}"
    tags = {"model_package_version": version, "run_id": run_id}
    if trained_at:
        tags["trained_at"] = trained_at
    if package_arn:
        tags["model_package_arn"] = package_arn
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sagemaker",
        PrimaryContainer={"Image": "sklearn-inference:1.9-0"},
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=name)


def set_endpoint_status(status: str) -> None:
    from moto.sagemaker.models import sagemaker_backends

    sagemaker_backends[ACCOUNT][REGION].endpoints[ENDPOINT].endpoint_status = status


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    endpoint.clear_cache()
    fields.clear_cache()
    yield
    endpoint.clear_cache()
    fields.clear_cache()


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRuntime]:
    fake = FakeRuntime()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", fake.url)
    yield fake
    fake.stop()


@pytest.fixture
def web(aws: None, lambda_context: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from functions.web.app import lambda_handler

    def call(event: dict[str, Any]) -> dict[str, Any]:
        return lambda_handler(event, lambda_context)

    return call


def post(event: Callable[[str], dict[str, Any]], body: Any) -> dict[str, Any]:
    """The sample POST /predictions event carrying ``body``."""
    request = deepcopy(event("http_post_predictions.json"))
    request["body"] = body if isinstance(body, str) else json.dumps(body)
    return request


def get(event: Callable[[str], dict[str, Any]], path: str) -> dict[str, Any]:
    """The sample GET /model event re-pointed at ``path`` (same stage, same API)."""
    request = deepcopy(event("http_get_model.json"))
    request["routeKey"] = request["requestContext"]["routeKey"] = f"GET {path}"
    request["rawPath"] = request["requestContext"]["http"]["path"] = f"/dev{path}"
    return request


def sample_row(event: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    return json.loads(event("http_post_predictions.json")["body"])


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


# ---------------------------------------------------------------- POST /predictions


def test_a_single_row_is_predicted_by_the_served_model_and_names_its_version(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model(version="7", run_id="20261127T080000Z-77777777")

    response = web(event("http_post_predictions.json"))

    assert response["statusCode"] == 200
    answer = body_of(response)
    row = sample_row(event)
    assert answer["predictions"] == [1000.0 + row["mileage"] / 10]
    assert answer["model"]["version"] == "7"
    assert answer["model"]["run_id"] == "20261127T080000Z-77777777"
    assert answer["target"] == load_contract("used_cars").target
    assert runtime.requests == [(ENDPOINT, [row])]


def test_the_training_time_comes_from_the_model_answer_when_the_endpoint_lacks_the_tag(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model(trained_at=None)

    response = web(event("http_post_predictions.json"))

    assert body_of(response)["model"]["trained_at"] == MODEL_TRAINED_AT


@pytest.mark.parametrize("shape", ["instances", "list"])
def test_a_batch_gets_one_prediction_per_row_in_request_order(
    web: Any, runtime: FakeRuntime, event: Any, shape: str
) -> None:
    deploy_model()
    rows = [sample_row(event) | {"mileage": mileage} for mileage in (90_000, 10_000, 50_000)]
    body = {"instances": rows} if shape == "instances" else rows

    response = web(post(event, body))

    assert response["statusCode"] == 200
    assert body_of(response)["predictions"] == [1000.0 + r["mileage"] / 10 for r in rows]
    assert runtime.requests[0][1] == rows


def test_category_aliases_and_spacing_reach_the_model_in_canonical_form(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()
    contract = load_contract("used_cars")
    alias, canonical = next(iter(contract.columns["make"].aliases.items()))

    response = web(post(event, sample_row(event) | {"make": f" {alias.upper()} "}))

    assert response["statusCode"] == 200
    assert runtime.requests[0][1][0]["make"] == canonical


def test_invalid_rows_are_refused_with_every_field_error_and_never_reach_the_model(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()
    contract = load_contract("used_cars")
    features = contract.features
    ranged = next(n for n in features if contract.columns[n].max is not None)
    listed = next(n for n in features if contract.columns[n].allowed and n != ranged)
    needed = next(n for n in features if contract.columns[n].required and n not in (ranged, listed))
    good = sample_row(event)
    bad = {k: v for k, v in good.items() if k != needed}
    bad |= {ranged: contract.columns[ranged].max + 1, listed: "steam", "not_a_column": 10}

    response = web(post(event, {"instances": [good, bad]}))

    assert response["statusCode"] == 422
    errors = {(e["row"], e["field"]): e["message"] for e in body_of(response)["errors"]}
    assert set(errors) == {(1, ranged), (1, listed), (1, needed), (1, "not_a_column")}
    assert f"{contract.columns[ranged].max:g}" in errors[(1, ranged)]
    assert errors[(1, needed)] == "is required"
    assert errors[(1, "not_a_column")] == "unknown field"
    assert runtime.requests == []


def test_contract_columns_that_are_not_features_are_accepted_and_not_sent_to_the_model(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()
    contract = load_contract("used_cars")
    extras = {contract.target: 12345.0, contract.keys[0]: "L000001"}

    response = web(post(event, sample_row(event) | extras))

    assert response["statusCode"] == 200
    assert set(runtime.requests[0][1][0]) == set(contract.features)


def test_a_batch_over_the_limit_is_refused_with_413_naming_the_limit(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()

    response = web(post(event, [sample_row(event)] * (MAX_BATCH_ROWS + 1)))

    assert response["statusCode"] == 413
    assert str(MAX_BATCH_ROWS) in body_of(response)["message"]
    assert runtime.requests == []


@pytest.mark.parametrize("body", ["{not json", "42", '["a row?"]'])
def test_a_body_that_is_not_rows_is_a_422_with_a_clear_message(
    web: Any, runtime: FakeRuntime, event: Any, body: str
) -> None:
    deploy_model()

    response = web(post(event, body))

    assert response["statusCode"] == 422
    answer = body_of(response)
    assert "instances" in answer["message"]
    assert answer["errors"]
    assert (
        answer["request_id"] == event("http_post_predictions.json")["requestContext"]["requestId"]
    )


# What no 5xx answer may show: exception text, socket errors, AWS error codes, addresses.
INTERNALS = re.compile(
    r"Errno|refused|Traceback|Exception|Error\b|ValidationError|ServiceUnavailable|arn:|"
    r"127\.0\.0\.1|https?://|invocations|Could not find",
    re.IGNORECASE,
)


def assert_no_internals(response: dict[str, Any]) -> None:
    assert not INTERNALS.search(response["body"]), response["body"]


def assert_retry_later(response: dict[str, Any]) -> None:
    assert response["statusCode"] == 503
    assert int(response["headers"]["Retry-After"]) > 0
    assert_no_internals(response)


def test_no_deployed_endpoint_answers_503_no_model_deployed_with_retry_after(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    response = web(event("http_post_predictions.json"))

    assert_retry_later(response)
    assert body_of(response)["message"] == "no model deployed; try again later"
    assert (
        body_of(response)["request_id"]
        == event("http_post_predictions.json")["requestContext"]["requestId"]
    )


def test_an_endpoint_that_is_not_in_service_answers_503_naming_its_status(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()
    set_endpoint_status("Updating")

    response = web(event("http_post_predictions.json"))

    assert_retry_later(response)
    assert "Updating" in body_of(response)["message"]
    assert runtime.requests == []


def test_a_runtime_that_refuses_connections_answers_503_without_the_socket_error(
    web: Any, event: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stopped = FakeRuntime()
    stopped.stop()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", stopped.url)
    deploy_model()

    response = web(event("http_post_predictions.json"))

    assert_retry_later(response)
    assert body_of(response)["message"] == "the model is not answering right now; try again later"
    # The detail is for the operators: logged with the request id.
    [logged] = [r for r in caplog.records if r.getMessage() == "endpoint unavailable"]
    assert "cannot be reached" in logged.error
    assert logged.request_id == body_of(response)["request_id"]


@pytest.mark.parametrize("code", ["ServiceUnavailable", "ModelNotReadyException"])
def test_the_runtime_saying_no_model_server_can_answer_is_a_503_with_retry_after(
    web: Any, runtime: FakeRuntime, event: Any, code: str
) -> None:
    deploy_model()
    runtime.answer = runtime_error(code)

    response = web(event("http_post_predictions.json"))

    assert_retry_later(response)
    assert code not in response["body"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (lambda rows: (200, b"<html>oops</html>"), "not JSON"),
        (lambda rows: (200, json.dumps({"predictions": [1.0] * (len(rows) + 1)}).encode()), "2"),
        (lambda rows: (200, json.dumps({"result": [1.0]}).encode()), "predictions"),
    ],
    ids=["not-json", "wrong-count", "no-predictions"],
)
def test_a_malformed_model_answer_is_a_502_whose_reason_is_logged_not_returned(
    web: Any,
    runtime: FakeRuntime,
    event: Any,
    answer: Answer,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deploy_model()
    runtime.answer = answer

    response = web(event("http_post_predictions.json"))

    assert response["statusCode"] == 502
    assert reason not in body_of(response)["message"]
    assert_no_internals(response)
    [logged] = [r for r in caplog.records if r.getMessage() == "malformed model answer"]
    assert reason in logged.error


def test_a_model_that_fails_with_a_5xx_is_a_502_without_its_error_text(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()
    runtime.answer = model_error(500, "KeyError: 'mileage' at /opt/ml/code/inference.py")

    response = web(event("http_post_predictions.json"))

    assert response["statusCode"] == 502
    assert "KeyError" not in response["body"] and "/opt/ml" not in response["body"]
    assert_no_internals(response)


# ---------------------------------------------------------------- GET /model, GET /health


def test_model_reports_version_run_training_time_and_the_package_evaluation(
    web: Any, event: Any
) -> None:
    evaluation = {"task": "regression", "metric": "rmse", "candidate": {"rmse": 2100.5, "r2": 0.91}}
    # The evaluate stage's statistics document: evaluation, decision and lineage.
    document = {"evaluation": evaluation, "decision": {"status": "Approved"}, "lineage": {}}
    s3 = client("s3")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="evaluations/e.json", Body=json.dumps(document))
    sagemaker = client("sagemaker")
    group = naming.model_package_group("used_cars", "dev")
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    package_arn = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": "s3://artifacts/evaluations/e.json",
                }
            }
        },
    )["ModelPackageArn"]
    deploy_model(version="4", trained_at="2026-11-26T22:00:00+00:00", package_arn=package_arn)

    response = web(event("http_get_model.json"))

    assert response["statusCode"] == 200
    info = body_of(response)
    assert (info["version"], info["trained_at"]) == ("4", "2026-11-26T22:00:00+00:00")
    assert info["model_package_arn"] == package_arn
    assert info["evaluation"]["metric"] == "rmse"
    assert info["evaluation"]["values"] == evaluation["candidate"]
    assert info["registered_at"]


def test_model_omits_evaluation_when_the_package_cannot_be_read(web: Any, event: Any) -> None:
    deploy_model(package_arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/x/1")

    response = web(event("http_get_model.json"))

    assert response["statusCode"] == 200
    assert body_of(response)["evaluation"] is None


def test_health_is_200_with_the_served_version_when_in_service_and_answering(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model(version="5")

    response = web(event("http_get_health.json"))

    assert response["statusCode"] == 200
    assert body_of(response) == {
        "status": "ok",
        "endpoint": ENDPOINT,
        "endpoint_status": "InService",
        "version": "5",
        "model_answers": True,
        "message": None,
        "retry_after": None,
    }
    assert "Retry-After" not in response["headers"]


@pytest.mark.parametrize("status", ["Creating", "Updating", "Failed"])
def test_health_is_503_with_the_status_and_version_when_not_in_service(
    web: Any, runtime: FakeRuntime, event: Any, status: str
) -> None:
    deploy_model(version="4")
    set_endpoint_status(status)

    response = web(event("http_get_health.json"))

    assert_retry_later(response)
    health = body_of(response)
    assert (health["status"], health["endpoint_status"]) == ("unavailable", status)
    assert health["version"] == "4"
    assert runtime.requests == []  # no probe of an endpoint that is not InService


def test_health_without_an_endpoint_says_no_model_deployed_with_503(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    response = web(event("http_get_health.json"))

    assert_retry_later(response)
    health = body_of(response)
    assert health["endpoint_status"] == "Missing"
    assert health["message"] == "no model deployed; try again later"


def test_health_is_503_when_the_endpoint_is_in_service_but_its_model_server_is_down(
    web: Any, event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = FakeRuntime()
    stopped.stop()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", stopped.url)
    deploy_model(version="5")

    response = web(event("http_get_health.json"))

    assert_retry_later(response)
    health = body_of(response)
    assert (health["endpoint_status"], health["version"]) == ("InService", "5")
    assert health["model_answers"] is False
    assert health["message"] == "the model is not answering right now; try again later"


def test_health_probes_with_a_marked_empty_batch_and_a_refusal_counts_as_answering(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()
    runtime.answer = model_error(400, '{"message": "no records in the request"}')

    response = web(event("http_get_health.json"))

    assert response["statusCode"] == 200
    assert runtime.requests == [(ENDPOINT, [])]
    assert runtime.custom_attributes == [endpoint.PROBE_ATTRIBUTE]


def test_health_trusts_a_recent_prediction_instead_of_probing_again(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()
    web(event("http_post_predictions.json"))
    runtime.answer = runtime_error("ServiceUnavailable")

    first = web(event("http_get_health.json"))
    failed = web(event("http_post_predictions.json"))
    second = web(event("http_get_health.json"))

    assert first["statusCode"] == 200
    assert failed["statusCode"] == 503
    assert second["statusCode"] == 503  # the failure this container just saw, no probe needed
    assert [rows for _, rows in runtime.requests if rows == []] == []


def test_health_probes_again_once_what_it_saw_is_older_than_its_window(
    web: Any, runtime: FakeRuntime, event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy_model()
    runtime.answer = runtime_error("ServiceUnavailable")
    down = web(event("http_get_health.json"))
    runtime.answer = echo_prices
    monkeypatch.setattr(endpoint, "_REACHABILITY_TTL_SECONDS", 0.0)

    up = web(event("http_get_health.json"))

    assert (down["statusCode"], up["statusCode"]) == (503, 200)


# ---------------------------------------------------------------- page, OpenAPI, docs


def test_openapi_lists_the_routes_and_a_row_schema_generated_from_the_contract(
    web: Any, event: Any
) -> None:
    response = web(get(event, "/openapi.json"))

    assert response["statusCode"] == 200
    document = body_of(response)
    assert {"/predictions", "/model", "/health"} <= set(document["paths"])
    responses = document["paths"]["/predictions"]["post"]["responses"]
    assert {"200", "413", "422", "502", "503"} <= set(responses)
    schemas = document["components"]["schemas"]
    assert {"PredictionResponse", "ErrorResponse", "ModelResponse", "HealthResponse"} <= set(
        schemas
    )
    contract = load_contract("used_cars")
    row = schemas["Row"]
    features = list(row["properties"])[: len(contract.features)]
    assert features == contract.features
    assert set(row["required"]) == {n for n in contract.features if contract.columns[n].required}
    assert document["servers"] == [{"url": "/dev"}]


def test_docs_serve_swagger_ui_without_any_external_asset(web: Any, event: Any) -> None:
    response = web(get(event, "/docs"))

    assert response["statusCode"] == 200
    page = html.fromstring(response["body"])
    assert page.xpath("//div[@id='swagger-ui']")
    assert not page.xpath("//script[@src] | //link[@href]")


def test_docs_serve_the_spec_as_json_on_request(web: Any, event: Any) -> None:
    request = get(event, "/docs")
    request["rawQueryString"] = "format=json"
    request["queryStringParameters"] = {"format": "json"}

    response = web(request)

    assert response["statusCode"] == 200
    assert "/predictions" in body_of(response)["paths"]


def test_root_page_has_a_form_field_per_feature_with_the_contract_ranges_and_options(
    web: Any, event: Any
) -> None:
    response = web(event("http_get_root.json"))

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"].startswith("text/html")
    page = html.fromstring(response["body"])
    contract = load_contract("used_cars")
    for name in contract.features:
        column = contract.columns[name]
        (element,) = page.xpath(f"//form//*[@name='{name}']")
        assert ("required" in element.attrib) == column.required, name
        if column.allowed:
            options = [o for o in element.xpath("./option/@value") if o]
            assert options == [str(v) for v in column.allowed], name
        elif column.type in ("int", "float"):
            assert element.get("type") == "number"
            assert float(element.get("min")) == column.min
            assert float(element.get("max")) == column.max
            assert element.get("step") == ("1" if column.type == "int" else "any")
    for name in set(contract.columns) - set(contract.features):
        assert not page.xpath(f"//form//*[@name='{name}']")


def test_root_page_escapes_contract_text(
    web: Any, event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract = load_contract("used_cars").model_dump()
    contract["columns"]["model"]["description"] = "<script>alert('x')</script>"
    monkeypatch.setenv("ARTIFACTS_BUCKET", "artifacts")
    s3 = client("s3")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="contracts/used_cars.yaml", Body=json.dumps(contract))

    response = web(event("http_get_root.json"))

    assert response["statusCode"] == 200
    assert "<script>alert" not in response["body"]
    assert "&lt;script&gt;alert" in response["body"]


def test_the_page_calls_the_api_under_the_stage_prefix(web: Any, event: Any) -> None:
    request = event("http_get_root.json")

    response = web(request)

    page = html.fromstring(response["body"])
    (config,) = page.xpath("//script[@id='config']/text()")
    assert json.loads(config)["base"] == "/" + request["requestContext"]["stage"]


def test_an_unknown_route_is_a_json_404(web: Any, event: Any) -> None:
    response = web(get(event, "/admin"))

    assert response["statusCode"] == 404
    assert body_of(response)["message"] == "Not Found"


# ---------------------------------------------------------------- bad requests: 4xx, never 5xx


def with_content_type(request: dict[str, Any], content_type: str) -> dict[str, Any]:
    request["headers"]["content-type"] = content_type
    return request


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/octet-stream",
        "application/xml",
        "application/x-www-form-urlencoded",
    ],
)
def test_a_body_in_another_media_type_is_a_415_asking_for_json(
    web: Any, runtime: FakeRuntime, event: Any, content_type: str
) -> None:
    deploy_model()
    request = with_content_type(deepcopy(event("http_post_predictions.json")), content_type)

    response = web(request)

    assert response["statusCode"] == 415
    assert "application/json" in body_of(response)["message"]
    assert runtime.requests == []


def test_an_integer_too_large_for_any_float_is_a_422_on_its_field(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()
    body = event("http_post_predictions.json")["body"].replace("2018", "1" * 401)

    response = web(post(event, body))

    assert response["statusCode"] == 422
    assert body_of(response)["errors"] == [
        {"row": 0, "field": "year", "message": "is too large a number"}
    ]
    assert runtime.requests == []


def test_an_integer_over_pythons_digit_limit_is_a_422_not_valid_json(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()
    body = event("http_post_predictions.json")["body"].replace("2018", "1" * 5000)

    response = web(post(event, body))

    assert response["statusCode"] == 422
    assert "not valid JSON" in body_of(response)["errors"][0]["message"]


def test_json_nested_deeper_than_the_decoder_goes_is_a_422_saying_so(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()

    response = web(post(event, "[" * 100_000 + "]" * 100_000))

    assert response["statusCode"] == 422
    assert body_of(response)["errors"][0]["message"].endswith("nested too deeply")


def test_a_body_that_is_not_utf8_text_is_a_400(web: Any, runtime: FakeRuntime, event: Any) -> None:
    deploy_model()
    request = post(event, base64.b64encode(b"\xff\xfe{}").decode())
    request["isBase64Encoded"] = True

    response = web(request)

    assert response["statusCode"] == 400
    assert "UTF-8" in body_of(response)["message"]


def test_an_empty_list_is_a_422_as_the_openapi_schema_says(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()
    document = body_of(web(get(event, "/openapi.json")))
    request_schema = document["components"]["schemas"]["PredictionRequest"]
    (as_list,) = [b for b in request_schema["anyOf"] if b.get("type") == "array"]

    response = web(post(event, []))

    assert as_list["minItems"] == 1 and as_list["maxItems"] == MAX_BATCH_ROWS
    assert response["statusCode"] == 422
    assert runtime.requests == []


def test_the_row_schema_refuses_unknown_fields_as_the_api_does(web: Any, event: Any) -> None:
    contract = load_contract("used_cars")

    row = body_of(web(get(event, "/openapi.json")))["components"]["schemas"]["Row"]

    assert row["additionalProperties"] is False
    assert contract.target in row["properties"]  # accepted and dropped, so documented


# ---------------------------------------------------------------- security headers


@pytest.mark.parametrize(
    "path", ["/", "/model", "/health", "/openapi.json", "/docs", "/no-such-route"]
)
def test_every_answer_carries_the_security_headers(web: Any, event: Any, path: str) -> None:
    response = web(get(event, path))

    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_an_error_answer_carries_the_security_headers(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    response = web(post(event, "{not json"))

    assert response["statusCode"] == 422
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"
    assert response["headers"]["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_page_policy_runs_its_own_inline_script_and_style_and_nothing_else(
    web: Any, event: Any
) -> None:
    response = web(event("http_get_root.json"))

    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response["headers"]["Content-Security-Policy"].split(";")
    )
    page = html.fromstring(response["body"])
    (script,) = page.xpath("//script[not(@type)]/text()")
    (style,) = page.xpath("//style/text()")
    assert policy["script-src"] == f"'sha256-{sha256_b64(script)}'"
    assert policy["style-src"] == f"'sha256-{sha256_b64(style)}'"
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert not page.xpath("//*[@style]")  # a style attribute would need 'unsafe-inline'


def sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def model_refuses_year(rows: list[dict[str, Any]]) -> tuple[int, bytes]:
    """The runtime's ModelError for a model container that answered 400 with field errors."""
    refusal = {
        "message": "some values do not satisfy the model's contract",
        "errors": [{"row": 0, "field": "year", "message": "must be a whole number from 1995"}],
    }
    error = {
        "__type": "ModelError",
        "Message": f"Received client error (400) from primary with message {refusal}",
        "OriginalStatusCode": 400,
        "OriginalMessage": json.dumps(refusal),
    }
    return 424, json.dumps(error).encode()


def test_a_model_that_refuses_the_rows_with_a_4xx_is_a_422_with_its_field_errors(
    web: Any, runtime: FakeRuntime, event: Any
) -> None:
    deploy_model()
    runtime.answer = model_refuses_year

    response = web(event("http_post_predictions.json"))

    assert response["statusCode"] == 422
    assert body_of(response)["errors"] == [
        {"row": 0, "field": "year", "message": "must be a whole number from 1995"}
    ]


def test_the_docs_policy_runs_only_their_own_scripts_and_lets_swagger_style_its_elements(
    web: Any, event: Any
) -> None:
    response = web(get(event, "/docs"))

    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response["headers"]["Content-Security-Policy"].split(";")
    )
    scripts = html.fromstring(response["body"]).xpath("//script/text()")
    assert policy["script-src"].split() == [f"'sha256-{sha256_b64(s)}'" for s in scripts]
    # 'unsafe-inline' is ignored beside a hash, and Swagger UI sets style attributes.
    assert policy["style-src"] == "'unsafe-inline'"
    assert policy["frame-ancestors"] == "'none'"
