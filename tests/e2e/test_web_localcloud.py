"""The web function behind the real local cloud's HTTP API: template routes, the function's
template environment, moto as AWS. No model is deployed, so the API must say so clearly."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from lxml import html

from mlops import naming
from mlops.contract import bundled_contract
from mlops.web import endpoint, fields

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cloud() -> Iterator[Any]:
    from localcloud.cloud import LocalCloud

    # A fresh cloud is a fresh deployment: nothing a warm web module remembers may carry over.
    endpoint.clear_cache()
    fields.clear_cache()
    with LocalCloud(executors=[], publish=False) as running:
        yield running


def stage_url(cloud: Any, path: str) -> str:
    return f"{cloud.http_api_url}{cloud.parameters['Stage']}/{path}"


def test_health_without_a_deployed_model_is_503_naming_the_endpoint(cloud: Any) -> None:
    response = requests.get(stage_url(cloud, "health"), timeout=30)

    assert response.status_code == 503
    expected = naming.endpoint_name(cloud.parameters["DatasetName"], cloud.parameters["Stage"])
    assert response.json()["endpoint"] == expected
    assert response.json()["endpoint_status"] == "Missing"
    assert response.json()["message"] == "no model deployed; try again later"
    assert int(response.headers["Retry-After"]) > 0


def test_the_form_page_is_served_from_the_contract(cloud: Any) -> None:
    response = requests.get(stage_url(cloud, ""), timeout=30)

    assert response.status_code == 200
    page = html.fromstring(response.text)
    contract = bundled_contract(cloud.parameters["DatasetName"])
    assert contract is not None
    names = page.xpath("//form//*[@name]/@name")
    assert names == contract.features


def test_predictions_are_checked_against_the_contract_before_the_missing_endpoint(
    cloud: Any, event: Any
) -> None:
    valid = json.loads(event("http_post_predictions.json")["body"])

    refused = requests.post(
        stage_url(cloud, "predictions"), json=valid | {"year": "old"}, timeout=30
    )
    unavailable = requests.post(stage_url(cloud, "predictions"), json=valid, timeout=30)

    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["year"]
    assert unavailable.status_code == 503
    assert unavailable.json()["message"] == "no model deployed; try again later"
    assert int(unavailable.headers["Retry-After"]) > 0


def test_a_burst_past_the_stage_limits_of_the_template_gets_429s(cloud: Any) -> None:
    # GET /model: a route no other test here uses, so its bucket starts full.
    declared = cloud.template.sam["Resources"]["WebApi"]["Properties"]["DefaultRouteSettings"]
    burst, rate = int(declared["ThrottlingBurstLimit"]), float(declared["ThrottlingRateLimit"])

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(
            pool.map(
                lambda _: requests.get(stage_url(cloud, "model"), timeout=60), range(3 * burst)
            )
        )
    elapsed = time.monotonic() - started

    throttled = [a for a in answers if a.status_code == 429]
    served = [a for a in answers if a.status_code != 429]
    assert throttled
    assert {a.content for a in throttled} == {b'{"message":"Too Many Requests"}'}
    # The bucket held ``burst`` tokens and refilled at ``rate`` a second, no more.
    assert burst <= len(served) <= burst + rate * elapsed + 1
    assert {a.status_code for a in served} == {503}  # the function answered: no model yet
