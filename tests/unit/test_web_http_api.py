"""The local HTTP API: real HTTP requests become API Gateway payload v2.0 events and the
function's result becomes the HTTP answer."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from localcloud.http_api import HttpApiServer, Throttle, TokenBucket, serve_http_api

ROOT = Path(__file__).resolve().parents[2]


class RecordingCloud:
    """Stands in for LocalCloud: records each invocation and answers with ``result``."""

    project_root = ROOT
    account_id = "123456789012"
    parameters = {"Stage": "dev"}
    resources = {"WebApi": "abc123defg"}

    def __init__(self, result: Any = None) -> None:
        self.result = result
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        self.calls.append((function, event))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def cloud() -> RecordingCloud:
    return RecordingCloud({"statusCode": 200, "headers": {}, "body": "{}"})


@pytest.fixture
def api(cloud: RecordingCloud) -> Iterator[HttpApiServer]:
    with serve_http_api(cloud) as server:
        yield server


def test_a_request_reaches_the_function_as_a_payload_v2_event(
    api: HttpApiServer, cloud: RecordingCloud
) -> None:
    requests.post(
        f"{api.stage_url}predictions?b=2&a=1&a=3",
        json={"year": 2018},
        headers={"X-Custom": "yes", "Cookie": "session=abc; theme=dark"},
        timeout=10,
    )

    ((function, event),) = cloud.calls
    assert function == "WebFunction"
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /predictions"
    assert event["rawPath"] == "/dev/predictions"
    assert event["rawQueryString"] == "b=2&a=1&a=3"
    assert event["queryStringParameters"] == {"a": "1,3", "b": "2"}
    assert event["headers"]["x-custom"] == "yes"
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert event["headers"]["x-forwarded-port"] == api.url.rstrip("/").rpartition(":")[2]
    assert all(name == name.lower() for name in event["headers"])
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert json.loads(event["body"]) == {"year": 2018}
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == "/dev/predictions"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["http"]["userAgent"] == event["headers"]["user-agent"]
    assert (context["stage"], context["routeKey"]) == ("dev", "POST /predictions")
    assert (context["apiId"], context["accountId"]) == ("abc123defg", "123456789012")
    assert context["requestId"] and context["timeEpoch"] > 0 and context["time"]


def test_a_request_without_the_stage_prefix_arrives_on_the_default_stage(
    api: HttpApiServer, cloud: RecordingCloud
) -> None:
    requests.get(f"{api.url}health", timeout=10)

    ((_, event),) = cloud.calls
    assert (event["rawPath"], event["routeKey"]) == ("/health", "GET /health")
    assert event["requestContext"]["stage"] == "$default"
    assert "queryStringParameters" not in event and "body" not in event


def test_the_function_result_maps_back_to_status_headers_cookies_and_body(
    api: HttpApiServer, cloud: RecordingCloud
) -> None:
    cloud.result = {
        "statusCode": 422,
        "headers": {"Content-Type": "application/json", "X-Trace": "t1"},
        "cookies": ["a=1; Path=/"],
        "body": json.dumps({"message": "bad"}),
        "isBase64Encoded": False,
    }

    response = requests.post(f"{api.url}predictions", json={}, timeout=10)

    assert response.status_code == 422
    assert response.headers["x-trace"] == "t1"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["set-cookie"] == "a=1; Path=/"
    assert response.headers["apigw-requestid"] == cloud.calls[0][1]["requestContext"]["requestId"]
    assert response.json() == {"message": "bad"}


def test_a_base64_result_is_decoded_and_a_binary_request_is_encoded(
    api: HttpApiServer, cloud: RecordingCloud
) -> None:
    payload = bytes(range(256))
    cloud.result = {
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream"},
        "body": base64.b64encode(payload).decode(),
        "isBase64Encoded": True,
    }

    response = requests.post(
        f"{api.url}predictions",
        data=payload,
        headers={"content-type": "application/octet-stream"},
        timeout=10,
    )

    assert response.content == payload
    event = cloud.calls[0][1]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_a_result_without_status_code_is_a_200_json_answer(
    api: HttpApiServer, cloud: RecordingCloud
) -> None:
    cloud.result = {"ok": True}

    response = requests.get(f"{api.url}model", timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"ok": True}


def test_a_route_not_in_the_template_is_404_and_never_invokes_the_function(
    api: HttpApiServer, cloud: RecordingCloud
) -> None:
    unknown_path = requests.get(f"{api.stage_url}admin", timeout=10)
    wrong_method = requests.delete(f"{api.stage_url}predictions", timeout=10)

    assert (unknown_path.status_code, unknown_path.json()) == (404, {"message": "Not Found"})
    assert (wrong_method.status_code, wrong_method.json()) == (404, {"message": "Not Found"})
    assert cloud.calls == []


def test_a_function_error_is_a_bare_500_like_api_gateway(
    api: HttpApiServer, cloud: RecordingCloud
) -> None:
    cloud.result = RuntimeError("secret detail")

    response = requests.get(f"{api.url}health", timeout=10)

    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert "secret" not in response.text


def test_a_cors_preflight_is_answered_from_the_template_without_the_function(
    api: HttpApiServer, cloud: RecordingCloud
) -> None:
    response = requests.options(
        f"{api.url}predictions",
        headers={"Origin": "http://example.test", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert cloud.calls == []


def test_the_routes_served_are_the_template_routes_of_the_function(api: HttpApiServer) -> None:
    from samtranslator.yaml_helper import yaml_parse

    sam = yaml_parse((ROOT / "template.yaml").read_text())
    events = sam["Resources"]["WebFunction"]["Properties"]["Events"].values()
    declared = {f"{e['Properties']['Method']} {e['Properties']['Path']}" for e in events}

    assert {route.key for route in api.routes} == declared


def test_the_web_function_answers_through_the_server(lambda_context: Any) -> None:
    from functions.web.app import lambda_handler

    class WebCloud(RecordingCloud):
        def invoke(self, function: str, event: dict[str, Any]) -> Any:
            return lambda_handler(event, lambda_context)

    with serve_http_api(WebCloud()) as server:
        response = requests.get(f"{server.stage_url}openapi.json", timeout=10)

    assert response.status_code == 200
    assert response.json()["servers"] == [{"url": "/dev"}]


def test_stop_releases_the_port(cloud: RecordingCloud) -> None:
    server = serve_http_api(cloud)
    url = server.url

    server.stop()
    server.stop()

    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}health", timeout=2)


def preflight_from(api: HttpApiServer, origin: str) -> requests.Response:
    return requests.options(
        f"{api.url}predictions",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )


def test_cors_allows_only_the_origins_of_the_cors_allowed_origins_parameter() -> None:
    cloud = RecordingCloud({"statusCode": 200, "headers": {}, "body": "{}"})
    cloud.parameters = {"Stage": "prod", "CorsAllowedOrigins": "https://a.test,https://b.test"}

    with serve_http_api(cloud) as api:
        allowed = preflight_from(api, "https://b.test")
        refused = preflight_from(api, "https://elsewhere.test")

    assert allowed.headers["access-control-allow-origin"] == "https://b.test"
    assert "access-control-allow-origin" not in refused.headers


def test_prod_names_its_cors_origins_and_never_allows_every_origin() -> None:
    from localcloud.template import samconfig_parameters

    origins = samconfig_parameters(ROOT, "prod")["CorsAllowedOrigins"].split(",")

    assert origins and "*" not in origins
    assert all(origin.startswith("https://") for origin in origins)


# ---------------------------------------------------------------- throttling


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_token_bucket_lets_a_burst_through_then_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)

    burst = [bucket.take() for _ in range(4)]
    clock.now = 0.5  # one token back at 2 a second
    after_half_a_second = [bucket.take(), bucket.take()]
    clock.now = 100.0  # never more than the burst
    after_a_long_pause = [bucket.take() for _ in range(4)]

    assert burst == [True, True, True, False]
    assert after_half_a_second == [True, False]
    assert after_a_long_pause == [True, True, True, False]


def template_with_throttling(burst: int, rate: float) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    sam = copy.deepcopy(yaml_parse((ROOT / "template.yaml").read_text()))
    settings = sam["Resources"]["WebApi"]["Properties"]["DefaultRouteSettings"]
    settings |= {"ThrottlingBurstLimit": burst, "ThrottlingRateLimit": rate}
    return sam


def test_the_stage_limits_are_read_from_the_template() -> None:
    from samtranslator.yaml_helper import yaml_parse

    sam = yaml_parse((ROOT / "template.yaml").read_text())
    declared = sam["Resources"]["WebApi"]["Properties"]["DefaultRouteSettings"]

    throttle = Throttle.of(sam, "WebApi")

    assert throttle is not None
    assert throttle.default == (
        float(declared["ThrottlingRateLimit"]),
        int(declared["ThrottlingBurstLimit"]),
    )


def test_each_route_has_its_own_bucket_and_a_route_setting_overrides_the_default() -> None:
    throttle = Throttle(default=(0.0, 1), per_route={"POST /predictions": (0.0, 2)})

    health = [throttle.admit("GET /health") for _ in range(2)]
    predictions = [throttle.admit("POST /predictions") for _ in range(3)]

    assert health == [True, False]
    assert predictions == [True, True, False]


class ThrottledCloud(RecordingCloud):
    def __init__(self, sam: dict[str, Any]) -> None:
        super().__init__({"statusCode": 200, "headers": {}, "body": "{}"})
        self.template = type("Template", (), {"sam": sam})()


def burst(api: HttpApiServer, count: int) -> list[requests.Response]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(
            pool.map(lambda _: requests.get(f"{api.stage_url}health", timeout=10), range(count))
        )


def test_requests_past_the_burst_get_api_gateways_429_and_never_reach_the_function() -> None:
    cloud = ThrottledCloud(template_with_throttling(burst=5, rate=0.001))

    with serve_http_api(cloud, throttle=True) as api:
        answers = burst(api, 12)

    throttled = [a for a in answers if a.status_code == 429]
    assert len(throttled) == 7
    assert {a.content for a in throttled} == {b'{"message":"Too Many Requests"}'}
    assert all(a.headers["content-type"] == "application/json" for a in throttled)
    assert len(cloud.calls) == 5


def test_throttling_can_be_turned_off_for_load_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = ThrottledCloud(template_with_throttling(burst=1, rate=0.001))
    monkeypatch.setenv("LOCALCLOUD_API_THROTTLING", "0")

    with serve_http_api(cloud) as api:
        answers = burst(api, 4)

    assert [a.status_code for a in answers] == [200] * 4
