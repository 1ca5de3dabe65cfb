"""The local cloud's function runtime: template environment, Lambda context, captured output,
retries then the dead-letter queue, scheduled events."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

import localcloud.cloud as cloud_module
from localcloud.cloud import LocalCloud, find_run_id
from localcloud.runtime import FunctionImportError


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(executors=[], http_api=False, publish=False) as running:
        yield running


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace every function's code by a recorder whose behaviour a test sets."""
    seen: dict[str, Any] = {"calls": [], "fail": None}

    def stub(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen["calls"].append({"event": event, "env": dict(os.environ), "context": context})
        print("handler output line")
        if seen["fail"]:
            raise seen["fail"]
        return {"ok": True}

    monkeypatch.setattr(cloud_module, "load_handler", lambda spec: stub)
    return seen


def template_retries(cloud: LocalCloud, function: str) -> int:
    """MaximumRetryAttempts of the function's EventInvokeConfig in template.yaml."""
    for resource in cloud.template.of_type("AWS::Lambda::EventInvokeConfig").values():
        if resource["Properties"]["FunctionName"] == {"Ref": function}:
            return int(resource["Properties"]["MaximumRetryAttempts"])
    return 2  # Lambda's default for asynchronous invocation


def test_a_handler_sees_its_template_variables_with_physical_names(
    cloud: LocalCloud, handler: dict[str, Any]
) -> None:
    cloud.invoke("ValidateFunction", {"id": "e1"})
    env = handler["calls"][-1]["env"]
    assert env["RAW_BUCKET"] == cloud.resources["RawBucket"]
    assert env["LEDGER_TABLE"] == cloud.resources["RunLedgerTable"]
    assert env["GLUE_DATABASE"] == cloud.resources["GlueDatabase"]
    assert env["AWS_ENDPOINT_URL"] == cloud.endpoint_url
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == cloud.functions["ValidateFunction"].name


def test_a_handler_does_not_see_variables_the_template_gives_other_functions(
    cloud: LocalCloud, handler: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAW_BUCKET", "leaked-from-the-shell")
    cloud.invoke("WebFunction", {"id": "e2"})
    env = handler["calls"][-1]["env"]
    assert "RAW_BUCKET" not in env
    assert env["ARTIFACTS_BUCKET"] == cloud.resources["ArtifactsBucket"]
    assert os.environ["RAW_BUCKET"] == "leaked-from-the-shell"


def test_the_context_carries_the_function_name_memory_and_remaining_time(
    cloud: LocalCloud, handler: dict[str, Any]
) -> None:
    cloud.invoke("ScrapeFunction", {"id": "e3"})
    context = handler["calls"][-1]["context"]
    spec = cloud.functions["ScrapeFunction"]
    assert context.function_name == spec.name
    assert context.memory_limit_in_mb == spec.memory
    assert 0 < context.get_remaining_time_in_millis() <= spec.timeout * 1000
    assert context.aws_request_id


def test_handler_output_goes_to_the_function_log_not_the_console(
    cloud: LocalCloud, handler: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    cloud.invoke("EvaluateFunction", {"id": "e4"})
    assert "handler output line" not in capsys.readouterr().out
    assert "handler output line" in (cloud.log_dir / "EvaluateFunction.log").read_text()


def test_a_failing_event_is_retried_then_dead_lettered_and_recorded(
    cloud: LocalCloud, handler: dict[str, Any]
) -> None:
    handler["fail"] = RuntimeError("boom")
    event = {
        "id": "e5",
        "detail-type": "Glue Job State Change",
        "detail": {"jobName": "mlops-prepare-dev", "arguments": {"--run_id": "run-42"}},
    }
    delivered = cloud.invoke_async("StartTrainingFunction", event)

    assert not delivered
    assert len(handler["calls"]) == 1 + template_retries(cloud, "StartTrainingFunction")
    dlq = cloud.functions["StartTrainingFunction"].dead_letter_arn.rsplit(":", 1)[1]
    sqs = cloud.client("sqs")
    url = sqs.get_queue_url(QueueName=dlq)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(messages[0]["Body"]) == event
    assert "boom" in messages[0]["MessageAttributes"]["ErrorMessage"]["StringValue"]
    item = cloud.client("dynamodb").get_item(
        TableName=cloud.resources["RunLedgerTable"],
        Key={"run_id": {"S": "run-42"}, "stage": {"S": "dlq:StartTrainingFunction"}},
    )["Item"]
    assert item["status"]["S"] == "FAILED"
    assert "boom" in item["reason"]["S"]


def test_a_function_whose_code_is_missing_fails_clearly(cloud: LocalCloud) -> None:
    spec = cloud.functions["ScrapeFunction"]
    original = spec.code_dir
    spec.code_dir = "functions/not_written_yet/"
    try:
        with pytest.raises(FunctionImportError, match=r"functions/not_written_yet/app\.py"):
            cloud.invoke("ScrapeFunction", {"id": "e6"})
    finally:
        spec.code_dir = original


def test_a_fired_schedule_delivers_a_scheduled_event_to_its_function(
    cloud: LocalCloud, handler: dict[str, Any]
) -> None:
    sent = cloud.fire_schedule("scrape", {"start_url": "http://127.0.0.1:9/listings?page=1"})
    assert cloud.wait_quiescent(timeout=30)
    call = handler["calls"][-1]
    assert call["event"] == sent
    assert call["event"]["detail-type"] == "Scheduled Event"
    assert call["event"]["source"] == "aws.events"
    assert call["env"]["AWS_LAMBDA_FUNCTION_NAME"] == cloud.functions["ScrapeFunction"].name


@pytest.mark.parametrize(
    ("event", "run_id"),
    [
        ({"detail": {"run_id": "r1"}}, "r1"),
        ({"detail": {"object": {"key": "dataset%3Dx/run_id%3Dr2/part-0.jsonl.gz"}}}, "r2"),
        ({"detail": {"Tags": [{"Key": "run_id", "Value": "r3"}]}}, "r3"),
        ({"detail": {"state": "FAILED"}}, None),
    ],
)
def test_the_run_id_of_an_event_is_found_wherever_it_travels(event: dict, run_id: str) -> None:
    assert find_run_id(event) == run_id


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 day)", 86400), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600)],
)
def test_rate_expressions_give_the_interval_between_firings(expression: str, seconds: int) -> None:
    assert cloud_module.rate_seconds(expression) == seconds


def test_cron_schedules_are_not_fired_on_a_timer_locally() -> None:
    assert cloud_module.rate_seconds("cron(0 12 * * ? *)") is None


def test_each_function_logs_under_its_own_service_name(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops.observability import logger

    def logs(event: dict[str, Any], context: Any) -> None:
        logger.info("marker", extra={"marker": event["id"]})

    monkeypatch.setattr(cloud_module, "load_handler", lambda spec: logs)
    for function in ("ValidateFunction", "DeployFunction"):
        cloud.invoke(function, {"id": f"svc-{function}"})

        lines = (cloud.log_dir / f"{function}.log").read_text().splitlines()
        record = next(json.loads(x) for x in reversed(lines) if f"svc-{function}" in x)
        expected = cloud.functions[function].environment["POWERTOOLS_SERVICE_NAME"]
        assert record["service"] == expected
