"""Schemathesis against the local HTTP API's own OpenAPI document: requests generated from the
schema (valid ones, and invalid ones for the request bodies), sent through the local HTTP API
to the real web handler, with a served model behind a fake SageMaker runtime.

No answer may be a 5xx, and every answer must be one the document declares (status, content
type, headers, body schema). Bounded and deterministic: a fixed number of examples per
operation, generated from a fixed seed, no example database; offline.

Throttling is off for this run (``serve_http_api(..., throttle=False)``, the knob
``localcloud/http_api.py`` documents): the fuzzer sends bursts well past the stage's limits,
and a 429 from the stand-in for API Gateway would say nothing about the web app.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from localcloud.http_api import HttpApiServer, serve_http_api
from mlops.web import endpoint, fields
from tests.e2e.test_web_browser import WebCloud
from tests.unit.test_web_api import FakeRuntime, deploy_model

pytestmark = pytest.mark.e2e

SEED = 20261203
EXAMPLES = {GenerationMode.POSITIVE: 75, GenerationMode.NEGATIVE: 75}
# Explicit, so that no schemathesis.toml lying around changes the run. An invalid body must be
# refused with one of the rejections /predictions documents (413: over 100 rows).
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {"expected-statuses": ["400", "413", "415", "422"]},
        },
        "generation": {"database": "none"},
    }
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def one_price_per_row(rows: list[dict[str, Any]]) -> tuple[int, bytes]:
    return 200, json.dumps({"predictions": [1000.0] * len(rows)}).encode()


@pytest.fixture
def api(aws: None, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpApiServer]:
    endpoint.clear_cache()
    fields.clear_cache()
    runtime = FakeRuntime(one_price_per_row)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    deploy_model(version="3")
    try:
        with serve_http_api(WebCloud(lambda_context), throttle=False) as server:
            yield server
    finally:
        runtime.stop()
        endpoint.clear_cache()
        fields.clear_cache()


def fuzz(operation: Any, mode: GenerationMode, checks: list[Any]) -> Counter[int]:
    """Run ``operation``'s generated cases; the statuses they got."""
    statuses: Counter[int] = Counter()

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        statuses[case.call_and_validate(checks=checks).status_code] += 1

    run()
    return statuses


def test_generated_requests_get_no_5xx_and_only_answers_the_document_declares(
    api: HttpApiServer,
) -> None:
    schema = schemathesis.openapi.from_url(f"{api.stage_url}openapi.json", config=CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{o.method.upper()} {o.path}" for o in operations} == {
        "POST /predictions",
        "GET /model",
        "GET /health",
    }

    seen: dict[str, Counter[int]] = {}
    for operation in operations:
        key = f"{operation.method.upper()} {operation.path}"
        seen[key] = fuzz(operation, GenerationMode.POSITIVE, CHECKS)
        if operation.body:
            seen[key] += fuzz(
                operation, GenerationMode.NEGATIVE, [*CHECKS, negative_data_rejection]
            )

    # The run reached the model and the refusals, not only one of them.
    assert {200, 422} <= set(seen["POST /predictions"])
    assert set(seen["GET /health"]) == set(seen["GET /model"]) == {200}
