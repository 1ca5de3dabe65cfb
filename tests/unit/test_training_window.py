"""The training window and the unchanged-window skip, on the functions' side (moto).

start_preparation chooses the window's partitions and hands the champion's fingerprint to the
Glue job (tests/unit/test_prepare_window_glue.py runs the job itself); record_outcome and
start_training turn the job's skipped manifest into a SKIPPED ledger item and no training job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from mlops import ledger

JOB = "mlops-prepare-dev"
RUN = "20261127T083000Z-1a2b3c4d"  # events/run_validated.json: ingest date 2026-11-27
ARTIFACTS = "mlops-artifacts"
VALIDATED = "mlops-validated-123456789012-dev"  # the event's validated_path
CURATED = "mlops-curated"
GROUP = "mlops-used-cars-dev"
PRINT = "sha256:" + "ab" * 32


@pytest.fixture
def env(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> Iterator[Any]:
    """Ledger table, buckets and the preparation job in moto; the function's environment."""
    for name, value in {
        "LEDGER_TABLE": "mlops-ledger",
        "GLUE_JOB_NAME": JOB,
        "VALIDATED_BUCKET": VALIDATED,
        "CURATED_BUCKET": CURATED,
        "ARTIFACTS_BUCKET": ARTIFACTS,
        "STAGE": "dev",
        "TRAINING_WINDOW_DAYS": "3",
        "POWERTOOLS_SERVICE_NAME": "start_preparation",
    }.items():
        monkeypatch.setenv(name, value)
    declared_table("RunLedgerTable", "mlops-ledger")
    for bucket in (ARTIFACTS, CURATED, VALIDATED):
        boto3.client("s3").create_bucket(Bucket=bucket)
    glue = boto3.client("glue")
    glue.create_job(
        Name=JOB,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{ARTIFACTS}/code/glue/prepare.py"},
        ExecutionProperty={"MaxConcurrentRuns": 3},
    )
    yield glue


def validated_run(
    run_id: str, day: str, *, status: str = "SUCCEEDED", at: str | None = None, rows: int = 10
) -> None:
    """A run's partition in the validated zone and its validate item in the ledger."""
    key = f"used_cars/ingest_date={day}/run_id={run_id}/src-0123456789abcdef-0.parquet"
    boto3.client("s3").put_object(Bucket=VALIDATED, Key=key, Body=b"PAR1")
    item: dict[str, Any] = {"run_id": run_id, "stage": "validate", "status": status}
    if at:
        item |= {"ended_at": at, "counts": {"rows_valid": rows}}
    boto3.resource("dynamodb").Table("mlops-ledger").put_item(Item=item)


@pytest.fixture
def start(event: Any, lambda_context: Any) -> Any:
    """Deliver "Run Validated" to the function; the arguments of the job run it started."""
    from functions.start_preparation.app import lambda_handler

    def deliver() -> dict[str, Any]:
        lambda_handler(event("run_validated.json"), lambda_context)
        (run,) = boto3.client("glue").get_job_runs(JobName=JOB)["JobRuns"]
        return run["Arguments"]

    return deliver


def champion(fingerprint: str | None, run_id: str = "20261126T083000Z-0000aaaa") -> None:
    """An Approved model package in the stage's group, as evaluation registers one."""
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    properties = {"run_id": run_id} | ({"window_fingerprint": fingerprint} if fingerprint else {})
    sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": "img", "ModelDataUrl": "s3://a/model.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties=properties,
    )


def test_the_window_holds_the_validated_runs_of_its_days_oldest_first_and_this_run_last(env, start):
    # given validated runs on the window's three dates (the 25th to the 27th), two on the 26th
    validated_run(RUN, "2026-11-27", at="2026-11-27T08:40:00.000+00:00")
    validated_run("r-25", "2026-11-25", at="2026-11-25T08:40:00.000+00:00")
    validated_run("r-26-late", "2026-11-26", at="2026-11-26T20:00:00.000+00:00")
    validated_run("r-26-early", "2026-11-26", at="2026-11-26T08:40:00.000+00:00")

    # when this run's preparation starts
    arguments = start()

    # then the job reads those partitions, by date then validation order, this run last
    assert arguments["--window_runs"].split(",") == [
        "ingest_date=2026-11-25/run_id=r-25",
        "ingest_date=2026-11-26/run_id=r-26-early",
        "ingest_date=2026-11-26/run_id=r-26-late",
        f"ingest_date=2026-11-27/run_id={RUN}",
    ]
    assert arguments["--window_days"] == "3"


def test_runs_outside_the_days_still_validating_or_validated_after_this_run_are_left_out(
    env, start
):
    # given a run before the window, one still receiving objects, and one validated later
    validated_run(RUN, "2026-11-27", at="2026-11-27T08:40:00.000+00:00")
    validated_run("r-24", "2026-11-24", at="2026-11-24T08:40:00.000+00:00")
    validated_run("r-open", "2026-11-26", status="STARTED")
    validated_run("r-later", "2026-11-27", at="2026-11-27T09:00:00.000+00:00")

    # when this run's preparation starts, then its window is its own partition only
    assert start()["--window_runs"] == f"ingest_date=2026-11-27/run_id={RUN}"


def test_a_window_of_zero_days_prepares_the_run_alone(env, start, monkeypatch):
    # given TrainingWindowDays 0 and an earlier validated run on the same day
    monkeypatch.setenv("TRAINING_WINDOW_DAYS", "0")
    validated_run("r-27", "2026-11-27", at="2026-11-27T07:00:00.000+00:00")

    # when the run's preparation starts, then the job gets no window: it reads the run's rows
    arguments = start()
    assert "--window_runs" not in arguments
    assert arguments["--window_days"] == "0"


def test_a_first_run_with_no_champion_is_never_compared(env, start):
    # given no model package group yet (the first run of the dataset)
    # when the run's preparation starts, then the job gets no fingerprint to skip on
    assert "--champion_fingerprint" not in start()


def test_the_served_champions_fingerprint_goes_to_the_job(env, start):
    # given an Approved champion registered with its window's fingerprint
    champion(PRINT)

    # when the run's preparation starts
    arguments = start()

    # then the job compares with it, and the ledger says what was compared
    assert arguments["--champion_fingerprint"] == PRINT
    assert arguments["--champion_run_id"] == "20261126T083000Z-0000aaaa"
    prepare = next(s for s in ledger.stages(RUN) if s["stage"] == "prepare")
    assert prepare["detail"]["window"]["champion_fingerprint"] == PRINT


def test_a_champion_registered_without_a_fingerprint_is_never_matched(env, start):
    # given a champion from before fingerprints existed
    champion(None)

    # when the run's preparation starts, then nothing can make the job skip
    assert "--champion_fingerprint" not in start()


def skipped_job(glue: Any, event: Any) -> dict[str, Any]:
    """A job run that ended SUCCEEDED after writing only a skipped manifest."""
    prefix = f"dataset=used_cars/run_id={RUN}/"
    job_run_id = glue.start_job_run(
        JobName=JOB,
        Arguments={
            "--run_id": RUN,
            "--dataset": "used_cars",
            "--curated_path": f"s3://{CURATED}/{prefix}",
        },
    )["JobRunId"]
    manifest = {
        "run_id": RUN,
        "dataset": "used_cars",
        "status": "skipped",
        "reason": f"window unchanged since the champion (run r-26) (fingerprint {PRINT})",
        "fingerprint": PRINT,
        "counts": {"rows_in": 30, "rows_dropped": 0, "duplicates_dropped": 20, "rows_unique": 10},
        "window": {"days": 3, "runs": [{"run_id": RUN, "ingest_date": "2026-11-27", "rows": 30}]},
    }
    boto3.client("s3").put_object(
        Bucket=CURATED, Key=f"{prefix}_manifest.json", Body=json.dumps(manifest)
    )
    detail = event("glue_job_succeeded.json")["detail"]
    return detail | {"jobName": JOB, "jobRunId": job_run_id}


def test_a_skipped_window_is_recorded_with_its_reason_and_trains_nothing(env, event):
    from mlops.training_launch import start_training

    # given the Glue job found the window unchanged since the champion
    detail = skipped_job(env, event)

    # when its state change reaches start_training
    outcome = start_training(detail)

    # then prepare is SKIPPED with the reason and the fingerprint, and no training job exists
    prepare = next(s for s in ledger.stages(RUN) if s["stage"] == "prepare")
    assert prepare["status"] == "SKIPPED"
    assert prepare["reason"] == (
        f"window unchanged since the champion (run r-26) (fingerprint {PRINT})"
    )
    assert prepare["fingerprint"] == PRINT
    assert outcome.outcome == "Skipped"
    assert boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    assert [s["stage"] for s in ledger.stages(RUN)] == ["prepare"]


def test_the_training_job_carries_its_windows_fingerprint_for_the_registry():
    from mlops.settings import Settings
    from mlops.training_launch import training_request

    # given a prepared run whose manifest has a fingerprint
    settings = Settings(
        curated_bucket=CURATED,
        artifacts_bucket=ARTIFACTS,
        training_role_arn="arn:aws:iam::123456789012:role/train",
    )

    # when its training job is requested
    request = training_request(
        run_id=RUN,
        dataset="used_cars",
        contract_version="1.0.0",
        settings=settings,
        region="us-east-1",
        window_fingerprint=PRINT,
    )

    # then the job is tagged with it (evaluation copies job tags into the package metadata)
    assert {"Key": "window_fingerprint", "Value": PRINT} in request["Tags"]
