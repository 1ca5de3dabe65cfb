"""record_outcome: a Glue Job State Change records the prepare stage (start_training calls it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from mlops import ledger
from mlops.preparation import record_outcome

JOB = "mlops-prepare-dev"
RUN = "20261127T083000Z-1a2b3c4d"
CURATED = "mlops-curated"
PREFIX = f"dataset=used_cars/run_id={RUN}/"
COUNTS = {
    "rows_in": 3000,
    "duplicates_dropped": 40,
    "rows_dropped": 12,
    "train": 2060,
    "validation": 440,
    "test": 448,
}


@pytest.fixture
def glue(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> Iterator[Any]:
    monkeypatch.setenv("LEDGER_TABLE", "mlops-ledger")
    declared_table("RunLedgerTable", "mlops-ledger")
    boto3.client("s3").create_bucket(Bucket=CURATED)
    client = boto3.client("glue")
    client.create_job(
        Name=JOB,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://artifacts/code/glue/prepare.py"},
        ExecutionProperty={"MaxConcurrentRuns": 3},
    )
    yield client


def started_run(glue: Any, event: Any, sample: str, **arguments: str) -> dict[str, Any]:
    """A job run started as the launcher starts it; the sample event pointed at it."""
    job_run_id = glue.start_job_run(
        JobName=JOB,
        Arguments={
            "--run_id": RUN,
            "--dataset": "used_cars",
            "--curated_path": f"s3://{CURATED}/{PREFIX}",
            **arguments,
        },
    )["JobRunId"]
    detail = event(sample)["detail"]
    detail["jobRunId"] = job_run_id
    return detail


def write_manifest() -> None:
    manifest = {"run_id": RUN, "dataset": "used_cars", "contract_version": "1.0.0"}
    body = json.dumps(manifest | {"counts": COUNTS})
    boto3.client("s3").put_object(Bucket=CURATED, Key=f"{PREFIX}_manifest.json", Body=body)


def prepare_item() -> dict[str, Any]:
    return next(s for s in ledger.stages(RUN) if s["stage"] == "prepare")


def test_a_succeeded_job_records_prepare_with_the_manifest_counts(glue, event):
    detail = started_run(glue, event, "glue_job_succeeded.json")
    write_manifest()

    outcome = record_outcome(detail)

    assert outcome.succeeded
    assert (outcome.run_id, outcome.dataset) == (RUN, "used_cars")
    assert outcome.manifest["counts"] == COUNTS
    item = prepare_item()
    assert item["status"] == "SUCCEEDED"
    assert item["counts"] == COUNTS
    assert item["glue_job_run_id"] == detail["jobRunId"]


def test_a_finished_job_records_what_glue_bills_it_for(glue, event):
    # Given a job run of 2 G.1X workers that Glue says ran for its ExecutionTime
    glue.delete_job(JobName=JOB)
    glue.create_job(
        Name=JOB,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://artifacts/code/glue/prepare.py"},
        WorkerType="G.1X",
        NumberOfWorkers=2,
    )
    detail = started_run(glue, event, "glue_job_succeeded.json")
    write_manifest()
    described = glue.get_job_run(JobName=JOB, RunId=detail["jobRunId"])["JobRun"]

    # when its state change is recorded
    record_outcome(detail)

    # then the prepare item carries the execution time and workers mlops.costs prices
    item = prepare_item()
    assert item["glue_execution_seconds"] == described["ExecutionTime"]
    assert (item["glue_worker_type"], item["glue_workers"]) == ("G.1X", 2)


def test_the_outcome_names_the_training_channels(glue, event):
    detail = started_run(glue, event, "glue_job_succeeded.json")
    write_manifest()

    outcome = record_outcome(detail)

    assert outcome.channel("train") == f"s3://{CURATED}/{PREFIX}split=train/"
    assert outcome.channel("artifacts") == f"s3://{CURATED}/{PREFIX}artifacts/"


def test_a_failed_job_records_prepare_failed_with_the_job_message(glue, event):
    detail = started_run(glue, event, "glue_job_failed.json")

    outcome = record_outcome(detail)

    assert not outcome.succeeded
    assert "no usable rows" in outcome.reason
    item = prepare_item()
    assert item["status"] == "FAILED"
    assert item["reason"] == outcome.reason


def test_a_succeeded_job_without_its_manifest_raises_for_a_retry(glue, event):
    detail = started_run(glue, event, "glue_job_succeeded.json")

    with pytest.raises(RuntimeError, match=r"_manifest\.json is missing"):
        record_outcome(detail)


def test_a_job_run_the_pipeline_did_not_start_is_refused_by_name(glue, event):
    detail = event("glue_job_succeeded.json")["detail"]
    detail["jobRunId"] = glue.start_job_run(JobName=JOB)["JobRunId"]

    with pytest.raises(ValueError, match="--run_id"):
        record_outcome(detail)
