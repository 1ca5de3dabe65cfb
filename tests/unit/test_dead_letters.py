"""Dead letters are visible and redrivable: read without being consumed, tied to their runs,
sent back to their functions only once Lambda accepts them; `mlops status` shows them, the
runs waiting for a preparation slot and each failed object's reason."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from localcloud import dead_letters
from localcloud.cli import status_text
from localcloud.ledger_view import LedgerView

RESOURCES = {
    "ValidateDLQ": "mlops-validate-dlq",
    "ValidateFunction": "mlops-validate",
    "StartPreparationDLQ": "mlops-start-preparation-dlq",
    "StartPreparationFunction": "mlops-start-preparation",
}


@pytest.fixture
def sqs(aws: None) -> Any:
    client = boto3.client("sqs")
    for logical_id, name in RESOURCES.items():
        if logical_id.endswith("DLQ"):
            client.create_queue(QueueName=name)
    return client


def queues(sqs: Any) -> list[dead_letters.DeadLetterQueue]:
    return dead_letters.dead_letter_queues(sqs, RESOURCES)


def url(sqs: Any, logical_id: str) -> str:
    return sqs.get_queue_url(QueueName=RESOURCES[logical_id])["QueueUrl"]


def lambda_dead_letter(sqs: Any, event: dict[str, Any], error: str) -> None:
    """What Lambda writes after an asynchronous invocation failed every attempt."""
    sqs.send_message(
        QueueUrl=url(sqs, "StartPreparationDLQ"),
        MessageBody=json.dumps(event),
        MessageAttributes={
            "RequestID": {"DataType": "String", "StringValue": "9f0c"},
            "ErrorCode": {"DataType": "Number", "StringValue": "200"},
            "ErrorMessage": {"DataType": "String", "StringValue": error},
        },
    )


def eventbridge_dead_letter(sqs: Any, event: dict[str, Any]) -> None:
    """What EventBridge writes when it could not deliver the event to the function."""
    rule = "arn:aws:events:us-east-1:123456789012:rule/mlops-dev-ValidateFunctionRawObjectCreated"
    sqs.send_message(
        QueueUrl=url(sqs, "ValidateDLQ"),
        MessageBody=json.dumps(event),
        MessageAttributes={
            "RULE_ARN": {"DataType": "String", "StringValue": rule},
            "ERROR_CODE": {"DataType": "String", "StringValue": "NO_PERMISSIONS"},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": "not authorized"},
        },
    )


class AcceptingLambda:
    """Lambda's Invoke answering 202 (Event) and recording what it was sent."""

    def __init__(self, status: int = 202, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.status, self.error = status, error

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error:
            raise self.error
        return {"StatusCode": self.status}


def visible(sqs: Any, logical_id: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url(sqs, logical_id), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_each_functions_dlq_is_found_in_the_template_with_its_function():
    mapping = dead_letters.function_queues()

    assert mapping["StartPreparationDLQ"] == "StartPreparationFunction"
    assert mapping["ValidateDLQ"] == "ValidateFunction"
    assert mapping["MonitorDLQ"] == "MonitorFunction"
    assert len(mapping) == 7


def test_reading_dead_letters_leaves_every_message_visible(sqs, event):
    for n in range(12):
        run = event("run_validated.json")
        run["detail"]["run_id"] = f"run-{n:02d}"
        lambda_dead_letter(sqs, run, "PreparationThrottled: Glue is full")

    letters = dead_letters.read(sqs, queues(sqs))

    assert sorted(letter.run_id for letter in letters) == [f"run-{n:02d}" for n in range(12)]
    assert visible(sqs, "StartPreparationDLQ") == 12


def test_a_lambda_dead_letter_carries_its_run_and_the_handlers_error(sqs, event):
    lambda_dead_letter(sqs, event("run_validated.json"), "PreparationThrottled: Glue is full")

    (letter,) = dead_letters.read(sqs, queues(sqs))

    assert letter.run_id == event("run_validated.json")["detail"]["run_id"]
    assert letter.detail_type == "Run Validated"
    assert letter.error == "PreparationThrottled: Glue is full"
    assert letter.rule_arn is None
    assert letter.sent_at and letter.sent_at.isdigit()  # epoch milliseconds, as SQS says


def test_an_s3_event_eventbridge_could_not_deliver_is_tied_to_the_run_its_object_makes(sqs, event):
    s3_event = event("s3_object_created.json")
    eventbridge_dead_letter(sqs, s3_event)

    (letter,) = dead_letters.read(sqs, queues(sqs))

    assert letter.run_id == "20261127T083000Z-1a2b3c4d"
    assert letter.error == "NO_PERMISSIONS: not authorized"
    assert letter.rule_arn and "ValidateFunctionRawObjectCreated" in letter.rule_arn
    assert "undelivered by EventBridge" in letter.line()


def test_an_upload_outside_a_run_prefix_is_tied_to_the_run_validate_derives_for_it(event):
    from mlops.runs import run_id_for_object

    upload = event("s3_object_created.json")
    upload["detail"]["object"]["key"] = "cars.csv"

    run_id = dead_letters.run_of(upload)

    assert run_id == run_id_for_object("cars.csv", upload["detail"]["object"]["version-id"])
    assert run_id.startswith("upload-")


def test_a_glue_state_change_is_tied_to_the_run_its_job_run_prepared(aws, event):
    glue = boto3.client("glue")
    glue.create_job(Name="mlops-prepare-dev", Role="r", Command={"Name": "glueetl"})
    run = glue.start_job_run(JobName="mlops-prepare-dev", Arguments={"--run_id": "run-7"})
    change = event("glue_job_failed.json")
    change["detail"]["jobRunId"] = run["JobRunId"]

    assert dead_letters.run_of(change, glue) == "run-7"


def test_redrive_invokes_the_function_asynchronously_with_the_event_then_deletes_it(sqs, event):
    signal = event("run_validated.json")
    lambda_dead_letter(sqs, signal, "PreparationThrottled: Glue is full")
    client = AcceptingLambda()

    (done,) = dead_letters.redrive(sqs, client, queues(sqs))

    assert done.action == "redriven"
    assert client.calls == [
        {
            "FunctionName": "mlops-start-preparation",
            "InvocationType": "Event",
            "Payload": json.dumps(signal).encode(),
        }
    ]
    assert visible(sqs, "StartPreparationDLQ") == 0


def test_a_message_lambda_did_not_accept_stays_in_its_queue(sqs, event):
    lambda_dead_letter(sqs, event("run_validated.json"), "boom")
    client = AcceptingLambda(error=RuntimeError("TooManyRequestsException"))

    (done,) = dead_letters.redrive(sqs, client, queues(sqs))

    assert done.action == "failed"
    assert "message kept" in done.detail
    assert visible(sqs, "StartPreparationDLQ") == 1


def test_redrive_of_one_run_leaves_the_other_runs_messages_visible(sqs, event):
    for run_id in ("run-a", "run-b"):
        signal = event("run_validated.json")
        signal["detail"]["run_id"] = run_id
        lambda_dead_letter(sqs, signal, "boom")
    client = AcceptingLambda()

    done = dead_letters.redrive(sqs, client, queues(sqs), run_id="run-b")

    assert [d.letter.run_id for d in done] == ["run-b"]
    assert [letter.run_id for letter in dead_letters.read(sqs, queues(sqs))] == ["run-a"]


def test_a_dry_run_sends_and_deletes_nothing(sqs, event):
    lambda_dead_letter(sqs, event("run_validated.json"), "boom")
    client = AcceptingLambda()

    (done,) = dead_letters.redrive(sqs, client, queues(sqs), dry_run=True)

    assert done.action == "would redrive"
    assert client.calls == []
    assert visible(sqs, "StartPreparationDLQ") == 1


def test_redrive_of_one_queue_by_name_leaves_the_others(sqs, event):
    lambda_dead_letter(sqs, event("run_validated.json"), "boom")
    eventbridge_dead_letter(sqs, event("s3_object_created.json"))

    done = dead_letters.redrive(sqs, AcceptingLambda(), queues(sqs), queue="ValidateDLQ")

    assert [d.letter.queue.logical_id for d in done] == ["ValidateDLQ"]
    assert visible(sqs, "StartPreparationDLQ") == 1


def test_an_unknown_queue_is_refused_with_the_known_ones(sqs):
    with pytest.raises(dead_letters.UnknownQueue, match="StartPreparationDLQ"):
        dead_letters.redrive(sqs, AcceptingLambda(), queues(sqs), queue="NoSuchDLQ")


# ---------------------------------------------------------------------- status
@pytest.fixture
def view(aws: None, declared_table: Any, monkeypatch: pytest.MonkeyPatch) -> LedgerView:
    monkeypatch.setenv("LEDGER_TABLE", "mlops-ledger")
    declared_table("RunLedgerTable", "mlops-ledger")
    return LedgerView(boto3.client("dynamodb"), "mlops-ledger")


def test_status_shows_the_reason_of_each_rejected_or_unreadable_object(view):
    from mlops.validation.completion import PartOutcome, record_part

    outcomes = [
        PartOutcome(key="raw/notes.txt", outcome="rejected", reason="unsupported format: .txt"),
        PartOutcome(key="raw/broken.csv.gz", outcome="unreadable", reason="BadGzipFile: not gzip"),
        PartOutcome(key="raw/good.csv", outcome="validated", rows_in=3, rows_valid=3),
    ]
    for part in outcomes:
        # As the validate stage records each object of a run (the manifest not yet seen).
        record_part(
            "run-a",
            "used_cars",
            part,
            owner=part.key,
            contract_version="1",
            ingest_date="2026-12-03",
            alone=False,
        )

    text = status_text(view, "run-a")

    assert "      unreadable: raw/broken.csv.gz  BadGzipFile: not gzip" in text
    assert "      rejected: raw/notes.txt  unsupported format: .txt" in text
    assert "good.csv" not in text


def test_status_shows_a_queued_run_and_how_long_it_has_waited(view):
    from mlops import ledger

    ledger.claim("run-b", "prepare", dataset="used_cars")
    queued_at = ledger.mark_queued("run-b", "prepare", reason="Glue is full", dataset="used_cars")
    ledger.enqueue("mlops-prepare-dev", "run-b", queued_at, {}, reason="Glue is full")
    now = datetime.fromisoformat(queued_at) + timedelta(minutes=4, seconds=5)

    text = status_text(view, "run-b", now=now)

    (prepare,) = [line for line in text.splitlines() if line.startswith("  prepare ")]
    assert prepare.split() == ["prepare", "QUEUED", "waiting", "4m05s", "Glue", "is", "full"]
    assert "Waiting for a free preparation slot (oldest first):" in text
    assert f"  run-b{' ' * 31} waiting 4m05s    since {queued_at}" in text
    assert "queue#" not in text


def test_status_shows_the_runs_dead_letters_and_how_to_replay_them(view, sqs, event):
    signal = event("run_validated.json")
    lambda_dead_letter(sqs, signal, "PreparationThrottled: Glue is full\nTraceback …")
    letters = dead_letters.read(sqs, queues(sqs))
    run_id = signal["detail"]["run_id"]

    text = status_text(view, run_id, letters)

    assert f"Dead-lettered events of this run: 1 (replay: mlops redrive --run {run_id})" in text
    assert "StartPreparationDLQ" in text and "PreparationThrottled: Glue is full" in text
    assert "Traceback" not in text


def test_queue_items_are_no_run_of_the_ledger_view(view):
    from mlops import ledger

    ledger.enqueue(
        "mlops-prepare-dev", "run-c", datetime.now(timezone.utc).isoformat(), {}, reason="r"
    )

    assert view.latest_run() is None
    assert [q.run_id for q in view.queued()] == ["run-c"]


def test_a_deployed_stacks_queues_and_functions_are_found_by_their_logical_ids(aws):
    template = {
        "Resources": {
            "StartPreparationDLQ": {"Type": "AWS::SQS::Queue"},
            "ValidateDLQ": {"Type": "AWS::SQS::Queue"},
        }
    }
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName="mlops-dev", TemplateBody=json.dumps(template))

    resources = dead_letters.stack_resources(cloudformation, "mlops-dev")

    assert set(resources) == {"StartPreparationDLQ", "ValidateDLQ"}
    assert resources["ValidateDLQ"].startswith("https://")  # a queue's physical id is its URL
