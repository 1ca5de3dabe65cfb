"""The local cloud's Glue executor: StartJobRun runs glue/prepare.py on local Spark like Glue."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest

from localcloud.executors.glue import GlueExecutor, error_message
from mlops.contract import bundled_contract
from tests.fakes import RecordingCloud

ROOT = Path(__file__).resolve().parents[2]
JOB = "mlops-prepare-dev"
RUN = "20261127T083000Z-1a2b3c4d"
VALIDATED = "mlops-validated"
CURATED = "mlops-curated"
ARTIFACTS = "mlops-artifacts"


@pytest.fixture
def cloud(aws: None, tmp_path: Path) -> Iterator[RecordingCloud]:
    fake = RecordingCloud(tmp_path / "cloud", {"PreparationJob": JOB})
    s3 = boto3.client("s3")
    for bucket in (VALIDATED, CURATED, ARTIFACTS):
        s3.create_bucket(Bucket=bucket)
    boto3.client("glue").create_job(
        Name=JOB,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{ARTIFACTS}/code/glue/prepare.py"},
        ExecutionProperty={"MaxConcurrentRuns": 3},
        Timeout=30,
    )
    contract = bundled_contract("used_cars").model_dump(mode="json")
    s3.put_object(Bucket=ARTIFACTS, Key=f"contracts/resolved/{RUN}.json", Body=json.dumps(contract))
    # Glue reads the script from its ScriptLocation before it runs anything.
    script = (ROOT / "glue" / "prepare.py").read_bytes()
    s3.put_object(Bucket=ARTIFACTS, Key="code/glue/prepare.py", Body=script)
    executor = GlueExecutor()
    executor.start(fake)
    yield fake
    fake.wait()
    executor.stop()


def put_validated(run_id: str, rows: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    rows.to_parquet(buffer)
    key = f"used_cars/ingest_date=2026-11-27/run_id={run_id}/src-0123-part.snappy.parquet"
    boto3.client("s3").put_object(Bucket=VALIDATED, Key=key, Body=buffer.getvalue())


def validated_rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "listing_id": [f"L{i:06d}" for i in range(n)],
            "make": rng.choice(["toyota", "ford", "bmw"], n),
            "model": rng.choice(["corolla", "focus", "x3"], n),
            "year": rng.integers(2000, 2026, n),
            "mileage": rng.integers(0, 200_000, n),
            "fuel": rng.choice(["petrol", "diesel"], n),
            "transmission": rng.choice(["manual", "automatic"], n),
            "engine_size": rng.uniform(1.0, 3.0, n).round(1),
            "body": rng.choice(["sedan", "suv"], n),
            "posted_date": pd.Timestamp("2026-11-01"),
            "price": rng.uniform(2_000, 40_000, n).round(2),
            "source_url": "http://127.0.0.1/listing",
            "fetched_at": "2026-11-27T08:00:00Z",
            "ingest_time": pd.Timestamp("2026-11-27 08:30:00"),
        }
    )


def start_run(run_id: str) -> str:
    return boto3.client("glue").start_job_run(
        JobName=JOB,
        Arguments={
            "--run_id": run_id,
            "--dataset": "used_cars",
            "--validated_path": f"s3://{VALIDATED}/used_cars/",
            "--curated_path": f"s3://{CURATED}/dataset=used_cars/run_id={run_id}/",
            "--contract_uri": f"s3://{ARTIFACTS}/contracts/resolved/{RUN}.json",
        },
    )["JobRunId"]


def curated_keys(run_id: str) -> list[str]:
    listing = boto3.client("s3").list_objects_v2(
        Bucket=CURATED, Prefix=f"dataset=used_cars/run_id={run_id}/"
    )
    return [item["Key"] for item in listing.get("Contents", [])]


def test_a_job_run_writes_the_curated_run_to_s3_and_emits_succeeded(cloud):
    put_validated(RUN, validated_rows(120))
    put_validated("20261126T080000Z-00000000", validated_rows(50))

    job_run_id = start_run(RUN)
    cloud.wait()

    keys = curated_keys(RUN)
    prefix = f"dataset=used_cars/run_id={RUN}/"
    for split in ("train", "validation", "test"):
        assert any(k.startswith(f"{prefix}split={split}/") and k.endswith(".parquet") for k in keys)
    for artifact in ("preprocessing.json", "profile.json", "contract.json"):
        assert f"{prefix}artifacts/{artifact}" in keys
    assert not [k for k in keys if k.rsplit("/", 1)[-1].startswith((".", "_SUCCESS"))]
    body = boto3.client("s3").get_object(Bucket=CURATED, Key=f"{prefix}_manifest.json")["Body"]
    assert json.loads(body.read())["counts"]["rows_in"] == 120
    (emitted,) = cloud.events
    assert emitted["source"] == "aws.glue"
    assert emitted["detail-type"] == "Glue Job State Change"
    assert emitted["detail"] == {
        "jobName": JOB,
        "severity": "INFO",
        "state": "SUCCEEDED",
        "jobRunId": job_run_id,
        "message": "Job run succeeded",
    }
    described = boto3.client("glue").get_job_run(JobName=JOB, RunId=job_run_id)["JobRun"]
    assert described["JobRunState"] == "SUCCEEDED"


def test_an_empty_run_fails_with_the_reason_in_the_event_and_the_job_run(cloud):
    job_run_id = start_run("20261127T090000Z-deadbeef")
    cloud.wait()

    (emitted,) = cloud.events
    assert emitted["detail"]["state"] == "FAILED"
    assert emitted["detail"]["severity"] == "ERROR"
    assert "no validated rows" in emitted["detail"]["message"]
    described = boto3.client("glue").get_job_run(JobName=JOB, RunId=job_run_id)["JobRun"]
    assert described["JobRunState"] == "FAILED"
    assert described["ErrorMessage"].startswith("PreparationFailed: run 20261127T090000Z-deadbeef")
    assert curated_keys("20261127T090000Z-deadbeef") == []


def test_stop_gives_start_job_run_back_to_moto(aws, tmp_path):
    from moto.backends import get_backend

    fake = RecordingCloud(tmp_path, {"PreparationJob": JOB})
    backend = get_backend("glue")[fake.account_id][fake.region]
    executor = GlueExecutor()
    executor.start(fake)
    hooked = "start_job_run" in vars(backend)

    executor.stop()

    assert hooked
    assert "start_job_run" not in vars(backend)


def test_the_error_message_is_the_exception_that_ended_the_script():
    stderr = (
        "26/11/27 08:00:00 WARN NativeCodeLoader: Unable to load native-hadoop library\n"
        "Traceback (most recent call last):\n"
        '  File "prepare.py", line 1, in <module>\n'
        "__main__.PreparationFailed: no usable rows in run r1\n"
    )

    assert error_message(stderr) == "PreparationFailed: no usable rows in run r1"
