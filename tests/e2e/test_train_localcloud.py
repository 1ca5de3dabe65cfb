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
JOB = naming.training_job_name("used_cars", RUN)


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    executors = ["localcloud.executors.training:TrainingExecutor"]
    with LocalCloud(executors=executors, http_api=False, publish=True) as running:
        yield running


def put_prepared_run(cloud: LocalCloud, tmp_path: Path) -> str:
    """Curated splits, artifacts and manifest of RUN, as the Glue job writes them."""
    s3 = cloud.client("s3")
    bucket = cloud.resources["CuratedBucket"]
    prefix = f"dataset=used_cars/run_id={RUN}/"
    local = used_cars_run(tmp_path, used_cars_raw(400), run_id=RUN)
    for channel, directory in local.items():
        folder = "artifacts" if channel == "preprocessing" else f"split={channel}"
        for path in directory.iterdir():
            s3.upload_file(str(path), bucket, f"{prefix}{folder}/{path.name}")
    manifest = {"run_id": RUN, "dataset": "used_cars", "contract_version": "1.0.0", "counts": {}}
    s3.put_object(Bucket=bucket, Key=f"{prefix}_manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://{bucket}/{prefix}"


def prepared_signal(cloud: LocalCloud, curated_path: str) -> None:
    job_name = cloud.resources["PreparationJob"]
    job_run = cloud.client("glue").start_job_run(
        JobName=job_name,
        Arguments={"--run_id": RUN, "--dataset": "used_cars", "--curated_path": curated_path},
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
