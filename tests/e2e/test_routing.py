"""Every sample event in events/ reaches exactly the function template.yaml routes it to.

EventBridge-shaped events are put on the local cloud's default bus (moto matches the mirrored
rules and queues them, the dispatcher re-checks the template's own pattern); handlers are
replaced by a recorder so no stage logic runs. HTTP API events are routed by route key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud

EVENTS = Path(__file__).resolve().parents[2] / "events"

# Sample event file → the functions that must receive it (and no other).
EXPECTED: dict[str, set[str]] = {
    "scheduled.json": {"ScrapeFunction"},
    "scrape_continues.json": {"ScrapeFunction"},
    "s3_object_created.json": {"ValidateFunction"},
    "run_validated.json": {"StartPreparationFunction", "MonitorFunction"},
    # Training starts on success; every terminal state frees a slot for the preparation queue.
    "glue_job_succeeded.json": {"StartTrainingFunction", "StartPreparationFunction"},
    "glue_job_failed.json": {"StartTrainingFunction", "StartPreparationFunction"},
    # A validation job run that failed: validate records its object if the job could not.
    "validation_job_failed.json": {"ValidateFunction"},
    "preparation_queue_sweep.json": {"StartPreparationFunction"},
    "training_job_completed.json": {"EvaluateFunction"},
    "training_job_failed.json": {"EvaluateFunction"},
    "training_job_stopped.json": {"EvaluateFunction"},
    "model_package_approved.json": {"DeployFunction"},
    "endpoint_in_service.json": {"DeployFunction"},
    "endpoint_failed.json": {"DeployFunction"},
    "model_package_pending.json": {"DeployFunction"},
    "model_package_rejected.json": {"DeployFunction"},
    "serving_pin_changed.json": {"DeployFunction"},
    "http_get_root.json": {"WebFunction"},
    "http_post_predictions.json": {"WebFunction"},
    "http_get_model.json": {"WebFunction"},
    "http_get_health.json": {"WebFunction"},
}

SAMPLES = sorted(p.name for p in EVENTS.glob("*.json"))


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(executors=[], http_api=False, publish=False) as running:
        yield running


@pytest.fixture
def delivered(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(cloud, "invoke", lambda function, event: calls.append((function, event)))
    return calls


def as_deployed(cloud: LocalCloud, event: dict[str, Any]) -> dict[str, Any]:
    """The sample as it would look in this stack: S3 events name this stack's raw bucket."""
    event = json.loads(json.dumps(event))
    if event.get("source") == "aws.s3":
        event["detail"]["bucket"]["name"] = cloud.resources["RawBucket"]
        event["resources"] = [f"arn:aws:s3:::{cloud.resources['RawBucket']}"]
    return event


def put_on_bus(cloud: LocalCloud, event: dict[str, Any]) -> None:
    result = cloud.client("events").put_events(
        Entries=[
            {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
                "Resources": event.get("resources", []),
            }
        ]
    )
    assert result["FailedEntryCount"] == 0


def test_every_sample_event_has_an_expected_route() -> None:
    assert SAMPLES, "events/ has no sample events"
    missing = [name for name in SAMPLES if name not in EXPECTED]
    assert not missing, f"add the expected target of {missing} to EXPECTED"


@pytest.mark.parametrize("name", [n for n in SAMPLES if not n.startswith("http_")])
def test_an_eventbridge_sample_reaches_only_its_function(
    name: str, cloud: LocalCloud, delivered: list[tuple[str, dict]]
) -> None:
    event = as_deployed(cloud, json.loads((EVENTS / name).read_text()))

    put_on_bus(cloud, event)
    assert cloud.wait_quiescent(timeout=30)
    via_bus = {function for function, _ in delivered}

    if event["detail-type"] == "Scheduled Event":
        # Schedules deliver straight to their rule's target, never through the bus.
        assert via_bus == set()
        cloud.fire_schedule(next(iter(EXPECTED[name])), event["detail"])
        assert cloud.wait_quiescent(timeout=30)
        assert {function for function, _ in delivered} == EXPECTED[name]
        assert delivered[-1][1]["detail"] == event["detail"]
        return
    assert via_bus == EXPECTED[name]
    for _, received in delivered:
        assert received["detail"] == event["detail"]
        assert received["detail-type"] == event["detail-type"]
        # The full AWS envelope (moto's own delivery drops "account").
        assert received["account"] == cloud.account_id
        assert list(received) == list(event)


@pytest.mark.parametrize("name", [n for n in SAMPLES if n.startswith("http_")])
def test_an_http_sample_is_routed_by_its_route_key(name: str, cloud: LocalCloud) -> None:
    event = json.loads((EVENTS / name).read_text())
    assert event["version"] == "2.0"
    assert {cloud.http_routes.get(event["routeKey"])} == EXPECTED[name]
