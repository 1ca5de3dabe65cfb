"""The training launcher: one CreateTrainingJob per prepared run, checked against moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from mlops import ledger, naming
from mlops.training_launch import launch

RUN = "20261127T083000Z-1a2b3c4d"
DATASET = "used_cars"
ROLE = "arn:aws:iam::123456789012:role/mlops-sagemaker"


@pytest.fixture
def env(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> dict[str, str]:
    names = {
        "CURATED_BUCKET": "mlops-curated",
        "ARTIFACTS_BUCKET": "mlops-artifacts",
        "LEDGER_TABLE": "mlops-ledger",
        "TRAINING_ROLE_ARN": ROLE,
        "STAGE": "dev",
    }
    for key, value in names.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=names["CURATED_BUCKET"])
    s3.create_bucket(Bucket=names["ARTIFACTS_BUCKET"])
    declared_table("RunLedgerTable", names["LEDGER_TABLE"])
    return names


def started_job() -> dict[str, Any]:
    sagemaker = boto3.client("sagemaker")
    name = naming.training_job_name(DATASET, RUN)
    return sagemaker.describe_training_job(TrainingJobName=name)


def channels(job: dict[str, Any]) -> dict[str, str]:
    return {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]
    }


def put_champion(model_data_url: str, status_endpoint: bool = True) -> None:
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model(
        ModelName="mlops-used-cars-dev-v1",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "image", "ModelDataUrl": model_data_url},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="mlops-used-cars-dev-v1",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "mlops-used-cars-dev-v1",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
            }
        ],
    )
    sagemaker.create_endpoint(
        EndpointName=naming.endpoint_name(DATASET, "dev"),
        EndpointConfigName="mlops-used-cars-dev-v1",
    )


def test_job_uses_the_regional_sklearn_image_in_script_mode(env: dict[str, str]) -> None:
    outcome = launch(RUN, DATASET, "1.0.0")

    job = started_job()
    assert outcome.outcome == "Started"
    assert job["TrainingJobName"] == "mlops-used-cars-20261127T083000Z-1a2b3c4d"
    assert job["AlgorithmSpecification"]["TrainingImage"] == (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
    )
    hps = {k: json.loads(v) for k, v in job["HyperParameters"].items()}
    assert hps["sagemaker_program"] == "train.py"
    assert hps["sagemaker_submit_directory"] == (
        "s3://mlops-artifacts/code/training/sourcedir.tar.gz"
    )
    assert hps["sagemaker_region"] == "us-east-1"
    assert (hps["run_id"], hps["dataset"], hps["contract_version"]) == (RUN, DATASET, "1.0.0")
    assert isinstance(hps["max_iter"], int)
    assert job["RoleArn"] == ROLE


def test_channels_point_at_the_runs_curated_splits_and_artifacts(env: dict[str, str]) -> None:
    launch(RUN, DATASET, "1.0.0")

    prefix = f"s3://mlops-curated/dataset=used_cars/run_id={RUN}/"
    assert channels(started_job()) == {
        "train": prefix + "split=train/",
        "validation": prefix + "split=validation/",
        "test": prefix + "split=test/",
        "preprocessing": prefix + "artifacts/",
    }


def test_spot_training_with_checkpoints_and_both_time_limits(env: dict[str, str]) -> None:
    launch(RUN, DATASET, "1.0.0")

    job = started_job()
    name = job["TrainingJobName"]
    assert job["EnableManagedSpotTraining"] is True
    assert job["CheckpointConfig"]["S3Uri"] == f"s3://mlops-artifacts/checkpoints/{name}/"
    stopping = job["StoppingCondition"]
    assert stopping["MaxWaitTimeInSeconds"] >= stopping["MaxRuntimeInSeconds"] > 0
    assert job["OutputDataConfig"]["S3OutputPath"] == "s3://mlops-artifacts/models/used_cars/"


def test_spot_can_be_switched_off_by_configuration(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINING_USE_SPOT", "false")

    launch(RUN, DATASET, "1.0.0")

    job = started_job()
    assert job["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in job["StoppingCondition"]


def test_job_is_tagged_with_its_lineage(env: dict[str, str]) -> None:
    launch(RUN, DATASET, "1.0.0")

    arn = started_job()["TrainingJobArn"]
    tags = {
        t["Key"]: t["Value"] for t in boto3.client("sagemaker").list_tags(ResourceArn=arn)["Tags"]
    }
    assert tags == {
        "run_id": RUN,
        "dataset": DATASET,
        "contract_version": "1.0.0",
        "stage": "dev",
        "mlops:stage": "train",
        "mlops:run_id": RUN,
    }


def test_job_carries_the_cost_allocation_tags_of_its_stage_and_run(env: dict[str, str]) -> None:
    # Given a prepared run; when its training job is launched
    launch(RUN, DATASET, "1.0.0")

    # then AWS's cost allocation can file the job's instance hours under train and the run
    arn = started_job()["TrainingJobArn"]
    tags = boto3.client("sagemaker").list_tags(ResourceArn=arn)["Tags"]
    assert {"Key": "mlops:stage", "Value": "train"} in tags
    assert {"Key": "mlops:run_id", "Value": RUN} in tags


def test_ledger_records_the_train_stage_started_with_the_job_name(env: dict[str, str]) -> None:
    launch(RUN, DATASET, "1.0.0")

    (item,) = [s for s in ledger.stages(RUN) if s["stage"] == "train"]
    assert item["status"] == "STARTED"
    assert item["detail"]["training_job_name"] == naming.training_job_name(DATASET, RUN)


def test_a_duplicate_signal_starts_no_second_job(env: dict[str, str]) -> None:
    launch(RUN, DATASET, "1.0.0")

    second = launch(RUN, DATASET, "1.0.0")

    assert second.outcome == "Duplicate"
    jobs = boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]
    assert len(jobs) == 1


def test_a_retry_after_a_failed_create_starts_the_job(env: dict[str, str]) -> None:
    # An earlier attempt claimed the stage, then failed before CreateTrainingJob.
    ledger.claim(RUN, "train")

    outcome = launch(RUN, DATASET, "1.0.0")

    assert outcome.outcome == "Started"
    assert started_job()["TrainingJobStatus"]


def test_the_model_behind_the_in_service_endpoint_is_the_champion_channel(
    env: dict[str, str],
) -> None:
    url = "s3://mlops-artifacts/models/used_cars/mlops-used-cars-old/output/model.tar.gz"
    put_champion(url)

    outcome = launch(RUN, DATASET, "1.0.0")

    assert outcome.champion_model_url == url
    assert channels(started_job())["champion"] == url


def test_without_an_endpoint_there_is_no_champion_channel(env: dict[str, str]) -> None:
    outcome = launch(RUN, DATASET, "1.0.0")

    assert outcome.champion_model_url is None
    assert "champion" not in channels(started_job())


def test_a_configured_training_image_overrides_the_regional_default(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/our-sklearn:1.9-0"
    monkeypatch.setenv("TRAINING_IMAGE_URI", image)

    launch(RUN, DATASET, "1.0.0")

    assert started_job()["AlgorithmSpecification"]["TrainingImage"] == image


def test_configured_hyperparameters_override_the_defaults(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINING_HYPERPARAMETERS", '{"learning_rate": 0.2, "max_iter": 50}')

    launch(RUN, DATASET, "1.0.0")

    hyperparameters = started_job()["HyperParameters"]
    assert json.loads(hyperparameters["learning_rate"]) == 0.2
    assert json.loads(hyperparameters["max_iter"]) == 50
    assert json.loads(hyperparameters["max_leaf_nodes"]) == 15


class RejectingSageMaker:
    """A SageMaker client whose CreateTrainingJob fails the way the test says."""

    def __init__(self, real: Any, code: str, message: str) -> None:
        self._real, self._code, self._message = real, code, message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def create_training_job(self, **_: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        error = {"Error": {"Code": self._code, "Message": self._message}}
        raise ClientError(error, "CreateTrainingJob")


def rejecting(monkeypatch: pytest.MonkeyPatch, code: str, message: str) -> None:
    from mlops import training_launch

    real = training_launch.client

    def client(service: str) -> Any:
        found = real(service)
        return RejectingSageMaker(found, code, message) if service == "sagemaker" else found

    monkeypatch.setattr(training_launch, "client", client)


def test_a_request_sagemaker_rejects_is_recorded_failed_not_retried(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rejecting(monkeypatch, "ValidationException", "Could not assume role")

    outcome = launch(RUN, DATASET, "1.0.0")

    assert outcome.outcome == "LaunchFailed"
    (item,) = [s for s in ledger.stages(RUN) if s["stage"] == "train"]
    assert item["status"] == "FAILED"
    assert "Could not assume role" in item["reason"]


def test_a_name_collision_from_sagemaker_is_a_duplicate_signal(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rejecting(monkeypatch, "ResourceInUse", "Training job names must be unique")

    assert launch(RUN, DATASET, "1.0.0").outcome == "Duplicate"


def test_a_throttled_request_raises_so_eventbridge_retries(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    rejecting(monkeypatch, "ThrottlingException", "Rate exceeded")

    with pytest.raises(ClientError, match="Rate exceeded"):
        launch(RUN, DATASET, "1.0.0")
