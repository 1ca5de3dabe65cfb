"""Bursts never lose a run: what Glue refuses for concurrency waits in the ledger's queue, and
finished Glue runs and the sweep schedule start it (or fail it, past the bound, loudly)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from moto.moto_api import state_manager

from mlops import ledger

JOB = "mlops-prepare-dev"
ARTIFACTS = "mlops-artifacts"
VALIDATED_IN_EVENT = "mlops-validated-123456789012-dev"
TOPIC = "mlops-notifications"


@pytest.fixture
def env(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> Iterator[Any]:
    """The function's environment; a job that runs one at a time and keeps runs RUNNING."""
    sns = boto3.client("sns")
    topic = sns.create_topic(Name=TOPIC)["TopicArn"]
    for name, value in {
        "LEDGER_TABLE": "mlops-ledger",
        "GLUE_JOB_NAME": JOB,
        "VALIDATED_BUCKET": "mlops-validated",
        "CURATED_BUCKET": "mlops-curated",
        "ARTIFACTS_BUCKET": ARTIFACTS,
        "NOTIFICATION_TOPIC_ARN": topic,
        "PREPARATION_MAX_WAIT_MINUTES": "60",
        "POWERTOOLS_SERVICE_NAME": "start_preparation",
    }.items():
        monkeypatch.setenv(name, value)
    declared_table("RunLedgerTable", "mlops-ledger")
    s3 = boto3.client("s3")
    # The event's validated_path names its bucket: the training window is listed there.
    for bucket in (ARTIFACTS, "mlops-curated", "mlops-validated", VALIDATED_IN_EVENT):
        s3.create_bucket(Bucket=bucket)
    glue = boto3.client("glue")
    glue.create_job(
        Name=JOB,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{ARTIFACTS}/code/glue/prepare.py"},
        ExecutionProperty={"MaxConcurrentRuns": 1},
    )
    # moto ends job runs at once; held in their first state, MaxConcurrentRuns bites.
    state_manager.set_transition(
        model_name="glue::job_run", transition={"progression": "manual", "times": 10_000}
    )
    try:
        yield glue
    finally:
        state_manager.unset_transition(model_name="glue::job_run")


def validated(event: Any, run_id: str) -> dict[str, Any]:
    signal = event("run_validated.json")
    signal["detail"]["run_id"] = run_id
    return signal


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from functions.start_preparation.app import lambda_handler

    return lambda_handler(event, context)


def prepare_item(run_id: str) -> dict[str, Any]:
    return next(s for s in ledger.stages(run_id) if s["stage"] == "prepare")


def started_runs(glue: Any) -> list[str]:
    runs = sorted(glue.get_job_runs(JobName=JOB)["JobRuns"], key=lambda r: r["StartedOn"])
    return [r["Arguments"]["--run_id"] for r in runs]


def end_glue_run(run_id: str) -> None:
    """Glue finishes the job run of ``run_id``: its slot is free."""
    from moto.backends import get_backend

    job = get_backend("glue")["123456789012"]["us-east-1"].jobs[JOB]
    next(r for r in job.job_runs if r.arguments["--run_id"] == run_id).status = "SUCCEEDED"


def queue() -> list[str]:
    return [item.run_id for item in ledger.queued(JOB)]


def test_a_run_glue_refuses_for_concurrency_is_queued_and_the_invocation_succeeds(
    env, event, lambda_context
):
    handler(validated(event, "run-a"), lambda_context)

    result = handler(validated(event, "run-b"), lambda_context)

    item = prepare_item("run-b")
    assert result["status"] == "QUEUED"
    assert item["status"] == "QUEUED"
    assert "maximum of preparation jobs" in item["reason"]
    assert item["queued_at"] == result["queued_at"]
    assert queue() == ["run-b"]
    assert started_runs(env) == ["run-a"]


def test_the_queue_lists_runs_oldest_first(env, event, lambda_context):
    for run_id in ("run-a", "run-c", "run-b", "run-d"):
        handler(validated(event, run_id), lambda_context)

    assert queue() == ["run-c", "run-b", "run-d"]


def test_a_redelivered_signal_of_a_queued_run_is_a_duplicate_that_queues_it_once(
    env, event, lambda_context
):
    handler(validated(event, "run-a"), lambda_context)
    first = handler(validated(event, "run-b"), lambda_context)

    again = handler(validated(event, "run-b"), lambda_context)

    assert again["status"] == "DUPLICATE"
    assert queue() == ["run-b"]
    assert prepare_item("run-b")["queued_at"] == first["queued_at"]


def test_a_queued_run_whose_queue_item_was_never_written_is_queued_by_the_redelivery(
    env, event, lambda_context
):
    """The first delivery died between marking the run QUEUED and writing its queue item."""
    from mlops.preparation import RunValidated

    handler(validated(event, "run-a"), lambda_context)
    run = RunValidated.model_validate(validated(event, "run-b")["detail"])
    ledger.claim("run-b", "prepare", dataset=run.dataset)
    ledger.mark_queued("run-b", "prepare", reason="Glue is full", dataset=run.dataset)

    again = handler(validated(event, "run-b"), lambda_context)

    assert again["status"] == "DUPLICATE"
    assert queue() == ["run-b"]


def test_a_finished_glue_run_starts_the_oldest_queued_run_and_leaves_the_rest_waiting(
    env, event, lambda_context
):
    for run_id in ("run-a", "run-b", "run-c"):
        handler(validated(event, run_id), lambda_context)
    end_glue_run("run-a")

    drained = handler(event("glue_job_succeeded.json"), lambda_context)

    assert drained["started"] == ["run-b"]
    assert drained["waiting"] == ["run-c"]
    assert started_runs(env) == ["run-a", "run-b"]
    assert queue() == ["run-c"]
    item = prepare_item("run-b")
    assert item["status"] == "STARTED"
    assert item["detail"]["glue_job_run_id"]


def test_a_failed_glue_run_drains_the_queue_too(env, event, lambda_context):
    for run_id in ("run-a", "run-b"):
        handler(validated(event, run_id), lambda_context)
    end_glue_run("run-a")

    drained = handler(event("glue_job_failed.json"), lambda_context)

    assert drained["started"] == ["run-b"]
    assert queue() == []


def test_a_drain_starts_queued_runs_while_glue_has_free_slots(env, event, lambda_context):
    for run_id in ("run-a", "run-b", "run-c"):
        handler(validated(event, run_id), lambda_context)
    state_manager.unset_transition(model_name="glue::job_run")  # every run now ends at once

    drained = handler(event("preparation_queue_sweep.json"), lambda_context)

    assert drained["started"] == ["run-b", "run-c"]
    assert queue() == []


def test_a_drain_redelivered_after_the_queue_emptied_starts_nothing_twice(
    env, event, lambda_context
):
    for run_id in ("run-a", "run-b"):
        handler(validated(event, run_id), lambda_context)
    end_glue_run("run-a")
    handler(event("glue_job_succeeded.json"), lambda_context)
    end_glue_run("run-b")

    again = handler(event("glue_job_succeeded.json"), lambda_context)

    assert again["started"] == []
    assert started_runs(env) == ["run-a", "run-b"]


def test_an_item_another_drain_holds_is_not_started_again(env, event, lambda_context):
    from mlops.preparation import drain_queue

    for run_id in ("run-a", "run-b"):
        handler(validated(event, run_id), lambda_context)
    end_glue_run("run-a")
    (item,) = ledger.queued(JOB)
    assert ledger.claim_queued(item, "another-drain", 900)

    drained = drain_queue("Glue Job State Change")

    assert drained.started == []
    assert started_runs(env) == ["run-a"]


def test_a_drain_that_dies_between_claim_and_start_leaves_the_run_queued_in_its_place(
    env, event, lambda_context, monkeypatch
):
    from mlops import preparation

    for run_id in ("run-a", "run-b", "run-c"):
        handler(validated(event, run_id), lambda_context)
    end_glue_run("run-a")

    def timed_out(dataset: str) -> Any:
        raise TimeoutError("Task timed out after 60.00 seconds")

    with monkeypatch.context() as patched, pytest.raises(TimeoutError):
        patched.setattr(preparation, "load_contract", timed_out)
        preparation.drain_queue("Glue Job State Change")

    assert queue() == ["run-b", "run-c"]
    assert prepare_item("run-b")["status"] == "QUEUED"
    assert preparation.drain_queue("Glue Job State Change").started == ["run-b"]


def test_a_claim_of_a_drain_killed_outright_expires_and_the_next_drain_starts_the_run(
    env, event, lambda_context
):
    from mlops.preparation import QUEUE_CLAIM_SECONDS, drain_queue

    for run_id in ("run-a", "run-b"):
        handler(validated(event, run_id), lambda_context)
    end_glue_run("run-a")
    (item,) = ledger.queued(JOB)
    # A drain claimed it, then Lambda stopped it (no exception handler ran).
    ledger.claim_queued(item, "dead-drain", QUEUE_CLAIM_SECONDS)
    later = datetime.now(timezone.utc) + timedelta(seconds=QUEUE_CLAIM_SECONDS + 1)

    drained = drain_queue("Scheduled Event", now=later)

    assert drained.started == ["run-b"]
    assert queue() == []


def test_a_run_already_started_elsewhere_is_removed_from_the_queue_not_started_again(
    env, event, lambda_context
):
    from mlops.preparation import drain_queue

    for run_id in ("run-a", "run-b"):
        handler(validated(event, run_id), lambda_context)
    end_glue_run("run-a")
    # Started after StartJobRun but before its queue item was deleted (the drain died there).
    ledger.start("run-b", "prepare", glue_job_run_id="jr_started_before", dataset="used_cars")

    drained = drain_queue("Glue Job State Change")

    assert drained.removed == ["run-b"]
    assert started_runs(env) == ["run-a"]
    assert queue() == []


def _subscribe(topic: str) -> str:
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"])
    return url


def test_a_run_queued_past_the_bound_fails_with_its_reason_and_a_notification(
    env, event, lambda_context
):
    from mlops.preparation import drain_queue

    inbox = _subscribe(boto3.client("sns").list_topics()["Topics"][0]["TopicArn"])
    for run_id in ("run-a", "run-b", "run-c"):
        handler(validated(event, run_id), lambda_context)
    later = datetime.now(timezone.utc) + timedelta(minutes=61)

    drained = drain_queue("Scheduled Event", now=later)

    assert drained.expired == ["run-b", "run-c"]
    assert queue() == []
    item = prepare_item("run-b")
    assert item["status"] == "FAILED"
    assert "waited 61 min for a free Glue run slot" in item["reason"]
    assert "PreparationMaxWaitMinutes" in item["reason"]
    messages = boto3.client("sqs").receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)
    subjects = sorted(json.loads(m["Body"])["Subject"] for m in messages["Messages"])
    assert subjects == [
        "Run run-b: preparation never started",
        "Run run-c: preparation never started",
    ]


def test_a_run_within_the_bound_keeps_waiting_when_glue_is_full(env, event, lambda_context):
    from mlops.preparation import drain_queue

    for run_id in ("run-a", "run-b"):
        handler(validated(event, run_id), lambda_context)
    later = datetime.now(timezone.utc) + timedelta(minutes=59)

    drained = drain_queue("Scheduled Event", now=later)

    assert drained.expired == [] and drained.started == []
    assert drained.waiting == ["run-b"]
    assert prepare_item("run-b")["status"] == "QUEUED"


def test_an_expiry_whose_notification_fails_leaves_the_run_queued_for_the_retry(
    env, event, lambda_context, monkeypatch
):
    from mlops import preparation

    for run_id in ("run-a", "run-b"):
        handler(validated(event, run_id), lambda_context)
    later = datetime.now(timezone.utc) + timedelta(minutes=61)

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("SNS unreachable")

    with monkeypatch.context() as patched, pytest.raises(ConnectionError):
        patched.setattr(preparation, "notify", unreachable)
        preparation.drain_queue("Scheduled Event", now=later)

    assert prepare_item("run-b")["status"] == "QUEUED"
    assert queue() == ["run-b"]
    assert preparation.drain_queue("Scheduled Event", now=later).expired == ["run-b"]
