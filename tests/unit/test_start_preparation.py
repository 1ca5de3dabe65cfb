"""StartPreparation: one Glue run per validated run, however often "Run Validated" arrives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from mlops import ledger

JOB = "mlops-prepare-dev"
RUN = "20261127T083000Z-1a2b3c4d"
ARTIFACTS = "mlops-artifacts"
VALIDATED_IN_EVENT = "mlops-validated-123456789012-dev"
CURATED = "mlops-curated"


@pytest.fixture
def env(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> Iterator[Any]:
    """Ledger table, buckets and the preparation job in moto; the function's environment."""
    for name, value in {
        "LEDGER_TABLE": "mlops-ledger",
        "GLUE_JOB_NAME": JOB,
        "VALIDATED_BUCKET": "mlops-validated",
        "CURATED_BUCKET": CURATED,
        "ARTIFACTS_BUCKET": ARTIFACTS,
        "POWERTOOLS_SERVICE_NAME": "start_preparation",
    }.items():
        monkeypatch.setenv(name, value)
    declared_table("RunLedgerTable", "mlops-ledger")
    s3 = boto3.client("s3")
    # The event's validated_path names its bucket: the training window is listed there.
    for bucket in (ARTIFACTS, CURATED, "mlops-validated", VALIDATED_IN_EVENT):
        s3.create_bucket(Bucket=bucket)
    glue = boto3.client("glue")
    glue.create_job(
        Name=JOB,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{ARTIFACTS}/code/glue/prepare.py"},
        ExecutionProperty={"MaxConcurrentRuns": 1},
    )
    yield glue


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from functions.start_preparation.app import lambda_handler

    return lambda_handler(event, context)


def prepare_item(run_id: str = RUN) -> dict[str, Any]:
    return next(s for s in ledger.stages(run_id) if s["stage"] == "prepare")


def job_runs(glue: Any) -> list[dict[str, Any]]:
    return glue.get_job_runs(JobName=JOB)["JobRuns"]


def test_a_validated_run_starts_the_glue_job_with_the_run_arguments(env, event, lambda_context):
    result = handler(event("run_validated.json"), lambda_context)

    (run,) = job_runs(env)
    assert result["status"] == "STARTED"
    assert result["glue_job_run_id"] == run["Id"]
    assert run["Arguments"] == {
        "--run_id": RUN,
        "--dataset": "used_cars",
        "--validated_path": "s3://mlops-validated-123456789012-dev/used_cars/",
        "--curated_path": f"s3://{CURATED}/dataset=used_cars/run_id={RUN}/",
        "--contract_uri": f"s3://{ARTIFACTS}/contracts/resolved/used_cars/{RUN}.json",
        # The default window (TrainingWindowDays 7) holds this run only: nothing else validated.
        "--window_days": "7",
        "--window_runs": f"ingest_date=2026-11-27/run_id={RUN}",
    }


def test_the_contract_the_job_reads_is_frozen_as_json_before_it_starts(env, event, lambda_context):
    handler(event("run_validated.json"), lambda_context)

    body = boto3.client("s3").get_object(
        Bucket=ARTIFACTS, Key=f"contracts/resolved/used_cars/{RUN}.json"
    )["Body"]
    contract = json.loads(body.read())
    assert contract["name"] == "used_cars"
    assert contract["target"] == "price"


def test_the_ledger_records_prepare_started_with_the_job_run(env, event, lambda_context):
    result = handler(event("run_validated.json"), lambda_context)

    item = prepare_item()
    assert item["status"] == "STARTED"
    assert item["detail"]["glue_job_run_id"] == result["glue_job_run_id"]
    assert item["detail"]["curated_prefix"] == result["curated_path"]


def test_a_second_delivery_is_a_duplicate_and_starts_nothing(env, event, lambda_context, capsys):
    first = handler(event("run_validated.json"), lambda_context)
    capsys.readouterr()

    second = handler(event("run_validated.json"), lambda_context)

    assert len(job_runs(env)) == 1
    assert second["status"] == "DUPLICATE"
    assert second["glue_job_run_id"] == first["glue_job_run_id"]
    assert '"DuplicateSignals"' in capsys.readouterr().out


def test_a_run_without_valid_rows_fails_prepare_and_starts_no_job(env, event, lambda_context):
    empty = event("run_validated.json")
    empty["detail"]["rows_valid"] = 0

    result = handler(empty, lambda_context)

    assert result["status"] == "REJECTED"
    assert job_runs(env) == []
    item = prepare_item()
    assert item["status"] == "FAILED"
    assert item["reason"] == f"no valid rows in run {RUN}"


def test_a_dataset_without_a_contract_is_recorded_not_retried(env, event, lambda_context):
    unknown = event("run_validated.json")
    unknown["detail"]["dataset"] = "no_such_dataset"

    result = handler(unknown, lambda_context)

    assert result["status"] == "REJECTED"
    assert job_runs(env) == []
    assert prepare_item()["status"] == "FAILED"
    assert "no_such_dataset" in prepare_item()["reason"]


def test_too_many_concurrent_runs_queue_the_run_instead_of_raising(env, event, lambda_context):
    from moto.moto_api import state_manager

    other = event("run_validated.json")
    other["detail"]["run_id"] = "20261127T070000Z-00000000"
    # moto finishes job runs at once; holding them in STARTING makes MaxConcurrentRuns bite.
    state_manager.set_transition(
        model_name="glue::job_run", transition={"progression": "manual", "times": 10_000}
    )
    try:
        handler(other, lambda_context)
        queued = handler(event("run_validated.json"), lambda_context)
    finally:
        state_manager.unset_transition(model_name="glue::job_run")

    assert queued["status"] == "QUEUED"
    assert prepare_item()["status"] == "QUEUED"
    assert [item.run_id for item in ledger.queued(JOB)] == [RUN]
    assert len(job_runs(env)) == 1


def test_a_claim_without_a_started_job_makes_a_duplicate_retry_later(env, event):
    from mlops.preparation import PreparationInFlight, start_preparation

    ledger.claim(RUN, "prepare", dataset="used_cars")

    with pytest.raises(PreparationInFlight):
        start_preparation(event("run_validated.json")["detail"])
    assert job_runs(env) == []


def test_a_transient_error_before_the_job_starts_releases_the_claim(env, event, monkeypatch):
    from mlops import preparation

    def unreachable(dataset: str) -> Any:
        raise ConnectionError("S3 unreachable")

    with monkeypatch.context() as patched, pytest.raises(ConnectionError):
        patched.setattr(preparation, "load_contract", unreachable)
        preparation.start_preparation(event("run_validated.json")["detail"])

    retried = preparation.start_preparation(event("run_validated.json")["detail"])

    assert retried.status == "STARTED"
    assert len(job_runs(env)) == 1
