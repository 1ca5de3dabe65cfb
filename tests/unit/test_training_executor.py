"""The local cloud's training executor: CreateTrainingJob runs the job's script like SageMaker."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud.executors.training import TrainingExecutor
from localcloud.publish import training_sourcedir
from tests.fakes import RecordingCloud
from tests.unit.test_train_fixtures import used_cars_raw, used_cars_run

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = "mlops-artifacts"
CURATED = "mlops-curated"
JOB = "mlops-used-cars-20261127T083000Z-1a2b3c4d"
RUN = "20261127T083000Z-1a2b3c4d"


@pytest.fixture
def cloud(aws: None, tmp_path: Path) -> Iterator[RecordingCloud]:
    fake = RecordingCloud(tmp_path / "cloud")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=ARTIFACTS)
    s3.create_bucket(Bucket=CURATED)
    executor = TrainingExecutor()
    executor.start(fake)
    yield fake
    executor.stop()
    fake.wait()


def upload_run(tmp_path: Path) -> dict[str, str]:
    """A prepared used_cars run in the curated bucket; returns channel → S3 prefix."""
    s3 = boto3.client("s3")
    local = used_cars_run(tmp_path / "prepared", used_cars_raw(300), run_id=RUN)
    uris = {}
    for channel, directory in local.items():
        prefix = f"dataset=used_cars/run_id={RUN}/{channel}/"
        for path in directory.iterdir():
            s3.upload_file(str(path), CURATED, prefix + path.name)
        uris[channel] = f"s3://{CURATED}/{prefix}"
    return uris


def publish_sourcedir(files: dict[str, str] | None = None) -> str:
    """The training sourcedir the local cloud publishes (or one made of ``files``)."""
    if files is None:
        body = training_sourcedir(ROOT)
    else:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        body = buffer.getvalue()
    boto3.client("s3").put_object(Bucket=ARTIFACTS, Key="code/training/sourcedir.tar.gz", Body=body)
    return f"s3://{ARTIFACTS}/code/training/sourcedir.tar.gz"


def create_job(
    channels: dict[str, str],
    sourcedir: str,
    request: dict[str, Any] | None = None,
    **extra_hps: Any,
) -> None:
    hps = {
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": sourcedir,
        "run_id": RUN,
        "max_iter": 50,
        **extra_hps,
    }
    boto3.client("sagemaker").create_training_job(
        TrainingJobName=JOB,
        AlgorithmSpecification={"TrainingImage": "sklearn", "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/sm",
        HyperParameters={k: json.dumps(v) for k, v in hps.items()},
        InputDataConfig=[
            {
                "ChannelName": name,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            }
            for name, uri in channels.items()
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{ARTIFACTS}/models/used_cars/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        Tags=[{"Key": "run_id", "Value": RUN}],
        **(request or {}),
    )


def final_event(cloud: RecordingCloud) -> dict[str, Any]:
    finals = [
        e
        for e in cloud.events
        if e["detail"]["TrainingJobStatus"] in ("Completed", "Failed", "Stopped")
    ]
    assert len(finals) == 1
    return finals[0]


def test_a_job_runs_train_py_and_uploads_model_tar_gz_where_sagemaker_puts_it(
    cloud: RecordingCloud, tmp_path: Path
) -> None:
    create_job(upload_run(tmp_path), publish_sourcedir())
    cloud.wait()

    key = f"models/used_cars/{JOB}/output/model.tar.gz"
    body = boto3.client("s3").get_object(Bucket=ARTIFACTS, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        names = set(archive.getnames())
        evaluation = json.load(archive.extractfile("evaluation.json"))
    assert {"model.joblib", "preprocessing.json", "evaluation.json", "code/inference.py"} <= names
    assert "code/mlops/ml/preprocessing.py" in names
    # The hyperparameters reached the script as --key value.
    assert evaluation["model"]["run_id"] == RUN


def test_describe_training_job_says_completed_with_the_model_artifacts(
    cloud: RecordingCloud, tmp_path: Path
) -> None:
    create_job(upload_run(tmp_path), publish_sourcedir())
    cloud.wait()

    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=JOB)
    assert job["TrainingJobStatus"] == "Completed"
    assert job["SecondaryStatus"] == "Completed"
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == (
        f"s3://{ARTIFACTS}/models/used_cars/{JOB}/output/model.tar.gz"
    )
    assert job["TrainingEndTime"] >= job["TrainingStartTime"]
    assert {m["MetricName"] for m in job["FinalMetricDataList"]} == {
        "test:rmse",
        "test:mae",
        "test:r2",
    }


def test_completion_emits_the_state_change_event_with_aws_field_names(
    cloud: RecordingCloud, tmp_path: Path
) -> None:
    create_job(upload_run(tmp_path), publish_sourcedir())
    cloud.wait()

    event = final_event(cloud)
    detail = event["detail"]
    assert (event["source"], event["detail-type"]) == (
        "aws.sagemaker",
        "SageMaker Training Job State Change",
    )
    assert event["resources"] == [detail["TrainingJobArn"]]
    assert detail["TrainingJobName"] == JOB
    assert detail["TrainingJobStatus"] == "Completed"
    assert detail["ModelArtifacts"]["S3ModelArtifacts"].endswith(f"/{JOB}/output/model.tar.gz")
    assert detail["Tags"] == {"run_id": RUN}
    assert json.loads(detail["HyperParameters"]["run_id"]) == RUN
    assert isinstance(detail["CreationTime"], int)


def test_a_new_job_is_in_progress_until_its_script_finishes(
    cloud: RecordingCloud, tmp_path: Path
) -> None:
    create_job(upload_run(tmp_path), publish_sourcedir())

    first = cloud.events[0]["detail"]
    cloud.wait()
    assert first["TrainingJobStatus"] == "InProgress"
    assert "ModelArtifacts" not in first


def test_a_script_that_raises_fails_the_job_with_its_failure_reason(
    cloud: RecordingCloud, tmp_path: Path
) -> None:
    script = (
        "import os, pathlib\n"
        "out = pathlib.Path(os.environ['SM_OUTPUT_DIR'])\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'failure').write_text('ValueError: the train split has no labelled rows')\n"
        "raise SystemExit(1)\n"
    )
    create_job(upload_run(tmp_path), publish_sourcedir({"train.py": script}))
    cloud.wait()

    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=JOB)
    assert job["TrainingJobStatus"] == "Failed"
    assert "the train split has no labelled rows" in job["FailureReason"]
    assert "ModelArtifacts" not in job
    event = final_event(cloud)
    assert event["detail"]["TrainingJobStatus"] == "Failed"
    assert "no labelled rows" in event["detail"]["FailureReason"]


def test_without_a_failure_file_the_reason_is_the_end_of_stderr(
    cloud: RecordingCloud, tmp_path: Path
) -> None:
    create_job(
        upload_run(tmp_path), publish_sourcedir({"train.py": "raise RuntimeError('boom')\n"})
    )
    cloud.wait()

    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=JOB)
    assert job["TrainingJobStatus"] == "Failed"
    assert "RuntimeError: boom" in job["FailureReason"]


def test_the_script_sees_sagemakers_environment_contract(
    cloud: RecordingCloud, tmp_path: Path
) -> None:
    script = (
        "import json, os, pathlib, sys\n"
        "seen = {k: v for k, v in os.environ.items() if k.startswith('SM_')}\n"
        "seen['argv'] = sys.argv[1:]\n"
        "pathlib.Path(os.environ['SM_MODEL_DIR'], 'env.json').write_text(json.dumps(seen))\n"
    )
    create_job(upload_run(tmp_path), publish_sourcedir({"train.py": script}), learning_rate=0.05)
    cloud.wait()

    key = f"models/used_cars/{JOB}/output/model.tar.gz"
    body = boto3.client("s3").get_object(Bucket=ARTIFACTS, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        seen = json.load(archive.extractfile("env.json"))
    assert Path(seen["SM_CHANNEL_TRAIN"], "part-00000.parquet").name == "part-00000.parquet"
    assert json.loads(seen["SM_CHANNELS"]) == ["preprocessing", "test", "train", "validation"]
    assert json.loads(seen["SM_HPS"]) == {"run_id": RUN, "max_iter": 50, "learning_rate": 0.05}
    assert seen["argv"] == ["--run_id", RUN, "--max_iter", "50", "--learning_rate", "0.05"]
    assert {"SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_OUTPUT_DIR"} <= set(seen)


def test_a_second_job_with_the_same_name_is_refused_as_resource_in_use(
    cloud: RecordingCloud, tmp_path: Path
) -> None:
    channels, sourcedir = upload_run(tmp_path), publish_sourcedir({"train.py": "pass\n"})
    create_job(channels, sourcedir)

    with pytest.raises(boto3.client("sagemaker").exceptions.ClientError, match="ResourceInUse"):
        create_job(channels, sourcedir)
    cloud.wait()


def test_stop_training_job_stops_a_running_job_and_emits_stopped(
    cloud: RecordingCloud, tmp_path: Path
) -> None:
    script = "import time\ntime.sleep(60)\n"
    create_job(upload_run(tmp_path), publish_sourcedir({"train.py": script}))

    boto3.client("sagemaker").stop_training_job(TrainingJobName=JOB)
    cloud.wait()

    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=JOB)
    assert job["TrainingJobStatus"] == "Stopped"
    assert final_event(cloud)["detail"]["TrainingJobStatus"] == "Stopped"


@pytest.mark.parametrize(
    ("sample", "script"),
    [
        ("training_job_completed.json", "pass\n"),
        ("training_job_failed.json", "raise SystemExit('exit code: 1')\n"),
    ],
)
def test_sample_events_have_the_shape_the_executor_emits(
    cloud: RecordingCloud, tmp_path: Path, event: Callable[[str], dict], sample: str, script: str
) -> None:
    expected = event(sample)
    spot = {
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {"S3Uri": f"s3://{ARTIFACTS}/checkpoints/{JOB}/"},
    }
    create_job(upload_run(tmp_path), publish_sourcedir({"train.py": script}), spot)
    cloud.wait()

    emitted = final_event(cloud)
    assert (emitted["source"], emitted["detail-type"]) == (
        expected["source"],
        expected["detail-type"],
    )
    assert emitted["detail"]["TrainingJobStatus"] == expected["detail"]["TrainingJobStatus"]
    assert set(expected["detail"]) <= set(emitted["detail"])
    assert isinstance(expected["detail"]["Tags"], dict) and isinstance(
        emitted["detail"]["Tags"], dict
    )
    assert isinstance(expected["detail"]["CreationTime"], int)
    assert isinstance(emitted["detail"]["CreationTime"], int)


def test_stopped_sample_event_carries_what_the_evaluate_stage_reads(
    event: Callable[[str], dict],
) -> None:
    from functions.evaluate.app import TrainingJobStateChange

    parsed = TrainingJobStateChange.model_validate(event("training_job_stopped.json"))

    assert parsed.detail.TrainingJobStatus == "Stopped"
    assert parsed.detail.run_id == RUN
    assert parsed.detail.FailureReason
    assert not parsed.detail.ModelArtifacts
