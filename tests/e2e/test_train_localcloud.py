"""Preparation done → start_training → training executor → "Training Job State Change" → evaluate.

A prepared used_cars run (by the preparation's own pandas pipeline) is put in the curated
bucket, a Glue job run is recorded for it, and AWS's "Glue Job State Change" is emitted: from
there the template's rules, the start_training function, the published sourcedir's train.py
under the training executor, and the evaluate rule do the rest.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.cloud import LocalCloud
from mlops import naming
from tests.unit.test_train_fixtures import used_cars_raw, used_cars_run

pytestmark = pytest.mark.e2e

RUN = "20261127T083000Z-e2e00001"
NEXT_RUN = "20261128T083000Z-e2e00002"
JOB = naming.training_job_name("used_cars", RUN)


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    executors = ["localcloud.executors.training:TrainingExecutor"]
    with LocalCloud(executors=executors, http_api=False, publish=True) as running:
        yield running


def put_prepared_run(cloud: LocalCloud, tmp_path: Path, run: str = RUN, seed: int = 0) -> str:
    """Curated splits, artifacts and manifest of a run, as the Glue job writes them."""
    s3 = cloud.client("s3")
    bucket = cloud.resources["CuratedBucket"]
    prefix = f"dataset=used_cars/run_id={run}/"
    local = used_cars_run(tmp_path / run, used_cars_raw(400, seed=seed), run_id=run)
    for channel, directory in local.items():
        folder = "artifacts" if channel == "preprocessing" else f"split={channel}"
        for path in directory.iterdir():
            s3.upload_file(str(path), bucket, f"{prefix}{folder}/{path.name}")
    manifest = {"run_id": run, "dataset": "used_cars", "contract_version": "1.0.0", "counts": {}}
    s3.put_object(Bucket=bucket, Key=f"{prefix}_manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://{bucket}/{prefix}"


def prepared_signal(cloud: LocalCloud, curated_path: str, run: str = RUN) -> None:
    job_name = cloud.resources["PreparationJob"]
    job_run = cloud.client("glue").start_job_run(
        JobName=job_name,
        Arguments={"--run_id": run, "--dataset": "used_cars", "--curated_path": curated_path},
    )["JobRunId"]
    cloud.emit(
        "aws.glue",
        "Glue Job State Change",
        {"jobName": job_name, "severity": "INFO", "state": "SUCCEEDED", "jobRunId": job_run,
         "message": "Job run succeeded"},
    )  # fmt: skip


def test_a_prepared_run_is_trained_and_its_completion_reaches_evaluate(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    prepared_signal(cloud, put_prepared_run(cloud, tmp_path))

    assert cloud.wait_quiescent(timeout=240)
    job = cloud.client("sagemaker").describe_training_job(TrainingJobName=JOB)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    bucket = cloud.resources["ArtifactsBucket"]
    key = f"models/used_cars/{JOB}/output/model.tar.gz"
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{bucket}/{key}"
    body = cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        evaluation = json.load(archive.extractfile("evaluation.json"))
    assert evaluation["candidate"]["rmse"] < evaluation["baseline"]["rmse"]
    assert evaluation["model"]["run_id"] == RUN
    called = {record["function"] for record in cloud.invocations}
    assert {"StartTrainingFunction", "EvaluateFunction"} <= called


def serve(cloud: LocalCloud, model_data_url: str) -> None:
    """Put a model behind the stage's endpoint (moto reports it InService at once)."""
    sagemaker = cloud.client("sagemaker")
    name = naming.endpoint_name("used_cars", "dev")
    sagemaker.create_model(
        ModelName=f"{name}-v1",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
        PrimaryContainer={"Image": "sklearn", "ModelDataUrl": model_data_url},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{name}-v1",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": f"{name}-v1",
                             "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}],
    )  # fmt: skip
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-v1")


def test_the_model_in_production_is_scored_as_champion_on_the_next_runs_test_rows(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    prepared_signal(cloud, put_prepared_run(cloud, tmp_path))
    assert cloud.wait_quiescent(timeout=240)
    sagemaker = cloud.client("sagemaker")
    first = sagemaker.describe_training_job(TrainingJobName=JOB)["ModelArtifacts"]
    serve(cloud, first["S3ModelArtifacts"])

    prepared_signal(cloud, put_prepared_run(cloud, tmp_path, NEXT_RUN, seed=1), NEXT_RUN)
    assert cloud.wait_quiescent(timeout=240)

    second = sagemaker.describe_training_job(
        TrainingJobName=naming.training_job_name("used_cars", NEXT_RUN)
    )
    champion = next(c for c in second["InputDataConfig"] if c["ChannelName"] == "champion")
    assert champion["DataSource"]["S3DataSource"]["S3Uri"] == first["S3ModelArtifacts"]
    bucket, key = second["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").split("/", 1)
    body = cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        evaluation = json.load(archive.extractfile("evaluation.json"))
    assert evaluation["champion_note"] == "scored on the same test rows"
    assert evaluation["champion"]["rmse"] < evaluation["baseline"]["rmse"]


def test_a_failing_training_is_recorded_with_its_failure_reason(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    curated_path = put_prepared_run(cloud, tmp_path)
    # An artifact naming a feature the curated splits lack: train.py must fail, loudly.
    bucket, prefix = curated_path.removeprefix("s3://").split("/", 1)
    s3 = cloud.client("s3")
    key = f"{prefix}artifacts/preprocessing.json"
    artifact = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    artifact["feature_names"].append("num__not_a_column")
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(artifact).encode())

    prepared_signal(cloud, curated_path)
    assert cloud.wait_quiescent(timeout=240)

    job = cloud.client("sagemaker").describe_training_job(TrainingJobName=JOB)
    assert job["TrainingJobStatus"] == "Failed"
    assert "num__not_a_column" in job["FailureReason"]
    ledger = cloud.client("dynamodb").get_item(
        TableName=cloud.resources["RunLedgerTable"],
        Key={"run_id": {"S": RUN}, "stage": {"S": "train"}},
    )["Item"]
    assert ledger["status"]["S"] == "FAILED"
    assert "num__not_a_column" in ledger["reason"]["S"]
