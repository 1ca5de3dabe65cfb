"""The start_training handler on AWS's "Glue Job State Change" events (events/glue_job_*.json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from functions.start_training.app import lambda_handler
from mlops import ledger

RUN = "20261127T083000Z-1a2b3c4d"
CURATED = "mlops-curated"
CURATED_PATH = f"s3://{CURATED}/dataset=used_cars/run_id={RUN}/"


@pytest.fixture
def env(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> None:
    settings = {
        "GLUE_JOB_NAME": "mlops-prepare-dev",
        "CURATED_BUCKET": CURATED,
        "ARTIFACTS_BUCKET": "mlops-artifacts",
        "LEDGER_TABLE": "mlops-ledger",
        "TRAINING_ROLE_ARN": "arn:aws:iam::123456789012:role/mlops-sagemaker",
        "STAGE": "dev",
        "DATASET": "used_cars",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=CURATED)
    s3.create_bucket(Bucket="mlops-artifacts")
    declared_table("RunLedgerTable", "mlops-ledger")
    boto3.client("glue").create_job(
        Name="mlops-prepare-dev",
        Role="arn:aws:iam::123456789012:role/mlops-glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://mlops-artifacts/code/glue/prepare.py"},
    )


def glue_event(event: Callable[[str], dict], name: str, with_manifest: bool = True) -> dict:
    """The sample event, pointing at a job run the pipeline started for RUN."""
    run_id = boto3.client("glue").start_job_run(
        JobName="mlops-prepare-dev",
        Arguments={"--run_id": RUN, "--dataset": "used_cars", "--curated_path": CURATED_PATH},
    )["JobRunId"]
    if with_manifest:
        manifest = {
            "run_id": RUN,
            "dataset": "used_cars",
            "contract_version": "1.0.0",
            "counts": {"rows_in": 10, "train": 7, "validation": 2, "test": 1},
        }
        boto3.client("s3").put_object(
            Bucket=CURATED,
            Key=f"dataset=used_cars/run_id={RUN}/_manifest.json",
            Body=json.dumps(manifest).encode(),
        )
    sample = event(name)
    sample["detail"]["jobRunId"] = run_id
    return sample


def metric_names(out: str) -> set[str]:
    """Metric names in the CloudWatch embedded-metric-format lines Powertools printed."""
    names: set[str] = set()
    for line in out.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "_aws" in record:
            for directive in record["_aws"]["CloudWatchMetrics"]:
                names.update(m["Name"] for m in directive["Metrics"])
    return names


def training_jobs() -> list[dict[str, Any]]:
    return boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]


def stage(name: str) -> dict[str, Any]:
    return next(s for s in ledger.stages(RUN) if s["stage"] == name)


def test_succeeded_preparation_starts_the_runs_training_job(
    env: None, event: Callable[[str], dict], lambda_context: Any, capsys: pytest.CaptureFixture
) -> None:
    result = lambda_handler(glue_event(event, "glue_job_succeeded.json"), lambda_context)

    assert result["outcome"] == "Started"
    (job,) = training_jobs()
    assert job["TrainingJobName"] == f"mlops-used-cars-{RUN}"
    assert stage("prepare")["status"] == "SUCCEEDED"
    assert stage("train")["status"] == "STARTED"
    assert metric_names(capsys.readouterr().out) == {"TrainingJobsStarted"}


def test_channels_come_from_the_curated_path_the_preparation_wrote(
    env: None, event: Callable[[str], dict], lambda_context: Any
) -> None:
    lambda_handler(glue_event(event, "glue_job_succeeded.json"), lambda_context)

    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=f"mlops-used-cars-{RUN}")
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]]
    assert all(uri.startswith(CURATED_PATH) for uri in uris)
    assert json.loads(job["HyperParameters"]["contract_version"]) == "1.0.0"


def test_failed_preparation_starts_nothing_and_is_recorded(
    env: None, event: Callable[[str], dict], lambda_context: Any, capsys: pytest.CaptureFixture
) -> None:
    sample = glue_event(event, "glue_job_failed.json", with_manifest=False)

    result = lambda_handler(sample, lambda_context)

    assert result["outcome"] == "PreparationFailed"
    assert training_jobs() == []
    assert stage("prepare")["status"] == "FAILED"
    assert not [s for s in ledger.stages(RUN) if s["stage"] == "train"]
    assert metric_names(capsys.readouterr().out) == {"PreparationFailed"}


def test_a_redelivered_event_is_a_duplicate_signal_with_no_second_job(
    env: None, event: Callable[[str], dict], lambda_context: Any, capsys: pytest.CaptureFixture
) -> None:
    sample = glue_event(event, "glue_job_succeeded.json")
    lambda_handler(sample, lambda_context)
    capsys.readouterr()

    result = lambda_handler(sample, lambda_context)

    assert result["outcome"] == "Duplicate"
    assert len(training_jobs()) == 1
    assert metric_names(capsys.readouterr().out) == {"DuplicateSignals"}
