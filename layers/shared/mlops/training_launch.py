"""Start one SageMaker training job per prepared run (boto3 CreateTrainingJob, no SageMaker SDK).

Script mode on AWS's prebuilt scikit-learn container: the container downloads
``sourcedir.tar.gz`` and runs ``train.py`` with the hyperparameters as arguments and the curated
splits, the preprocessing artifact and, while a model is in production, that model (the
"champion") as input channels.

Duplicates are harmless twice over: the job name is derived from dataset and run id, so a
second CreateTrainingJob collides; and the ledger's ``claim`` lets only one caller through.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Protocol

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from mlops import images, lake, ledger, naming
from mlops.clients import client
from mlops.observability import logger
from mlops.settings import Settings, get_settings

STAGE = "train"
SOURCEDIR_KEY = "code/training/sourcedir.tar.gz"
ENTRY_POINT = "train.py"
SKLEARN_VERSION = images.DEFAULT_SKLEARN_VERSION
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
PARQUET = "application/x-parquet"
SPLITS = ("train", "validation", "test")


class PreparationResult(Protocol):
    """What ``mlops.preparation.record_outcome`` reports about a Glue job run."""

    run_id: str
    dataset: str
    succeeded: bool
    curated_path: str
    manifest: dict[str, Any] | None
    reason: str | None
    skipped: bool


class Hyperparameters(BaseModel):
    """Model hyperparameters passed to train.py (its argparse names).

    Small trees at a low rate: on the 3k-row demo data they reach 1.12x the noise floor
    (0.05, 15 leaves) where sklearn's defaults (0.1, 31 leaves) reach 1.15x.
    """

    model_config = ConfigDict(extra="forbid")

    max_iter: int = Field(default=500, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    max_leaf_nodes: int = Field(default=15, ge=2)
    min_samples_leaf: int = Field(default=20, ge=1)
    l2_regularization: float = Field(default=0.0, ge=0)
    patience: int = Field(default=20, ge=1)
    random_state: int = 42


class LaunchOutcome(BaseModel):
    """What the launcher did for one Glue job state change."""

    outcome: Literal["Started", "Duplicate", "PreparationFailed", "LaunchFailed", "Skipped"]
    run_id: str | None = None
    dataset: str | None = None
    training_job_name: str | None = None
    champion_model_url: str | None = None
    reason: str | None = None


def _encoded(values: dict[str, Any]) -> dict[str, str]:
    # The SageMaker SDK JSON-encodes every hyperparameter value; the training toolkit decodes
    # them back before passing ``--key value`` to the script, so strings arrive unquoted.
    return {key: json.dumps(value) for key, value in values.items()}


def champion_model_url(dataset: str, stage: str) -> str | None:
    """ModelDataUrl of the model behind the in-service endpoint, or None without one."""
    sagemaker = client("sagemaker")
    name = naming.endpoint_name(dataset, stage)
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if _is_not_found(error):
            return None
        raise
    if endpoint.get("EndpointStatus") != "InService":
        status = endpoint.get("EndpointStatus")
        logger.info("endpoint not in service: no champion", extra={"status": status})
        return None
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model_name = config["ProductionVariants"][0]["ModelName"]
    model = sagemaker.describe_model(ModelName=model_name)
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    return container.get("ModelDataUrl")


def _is_not_found(error: ClientError) -> bool:
    message = error.response.get("Error", {}).get("Message", "")
    return "Could not find" in message or "does not exist" in message


def _is_duplicate(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "").lower()
    return code == "ResourceInUse" or "already exist" in message


def _channel(name: str, uri: str, content_type: str | None = None) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }
    if content_type:
        channel["ContentType"] = content_type
    return channel


def training_request(
    *,
    run_id: str,
    dataset: str,
    contract_version: str,
    settings: Settings,
    region: str,
    champion: str | None = None,
    hyperparameters: Hyperparameters | None = None,
    curated_path: str | None = None,
    window_fingerprint: str | None = None,
) -> dict[str, Any]:
    """The CreateTrainingJob request for one prepared run (pure: no AWS calls).

    ``curated_path`` is the run's ``s3://…/dataset=…/run_id=…/`` as the preparation wrote it;
    by default it is derived from the curated bucket setting.
    """
    job = naming.training_job_name(dataset, run_id)
    if curated_path is None:
        bucket = settings.require("curated_bucket")
        curated_path = f"s3://{bucket}/{lake.curated_run_prefix(dataset, run_id)}"
    curated_path = curated_path.rstrip("/") + "/"
    artifacts = settings.require("artifacts_bucket")
    image = settings.training_image_uri or images.sklearn_image_uri(region, SKLEARN_VERSION)
    # The same relative layout as mlops.lake's curated_split_prefix / curated_artifacts_prefix.
    channels = [_channel(split, f"{curated_path}split={split}/", PARQUET) for split in SPLITS]
    channels.append(_channel("preprocessing", f"{curated_path}artifacts/"))
    if champion:
        channels.append(_channel("champion", champion))
    if hyperparameters is None:
        hyperparameters = Hyperparameters.model_validate_json(settings.training_hyperparameters)
    params = hyperparameters.model_dump()
    hps = _encoded(
        {
            "sagemaker_program": ENTRY_POINT,
            "sagemaker_submit_directory": f"s3://{artifacts}/{SOURCEDIR_KEY}",
            "sagemaker_region": region,
            "sagemaker_container_log_level": 20,
            "sagemaker_job_name": job,
            "run_id": run_id,
            "dataset": dataset,
            "contract_version": contract_version,
            **params,
        }
    )
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": settings.training_max_runtime_seconds}
    request: dict[str, Any] = {
        "TrainingJobName": job,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": settings.require("training_role_arn"),
        "HyperParameters": hps,
        "InputDataConfig": channels,
        "OutputDataConfig": {
            "S3OutputPath": f"s3://{artifacts}/{lake.model_output_prefix(dataset)}"
        },
        "ResourceConfig": {
            "InstanceType": settings.training_instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": 10,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": settings.training_use_spot,
        "Tags": [
            {"Key": "run_id", "Value": run_id},
            {"Key": "dataset", "Value": dataset},
            {"Key": "contract_version", "Value": contract_version},
            {"Key": "stage", "Value": settings.stage},
            *naming.cost_tags(STAGE, run_id),
            # Evaluation copies it into the model package: what a later run compares with.
            *(
                [{"Key": "window_fingerprint", "Value": window_fingerprint}]
                if window_fingerprint
                else []
            ),
        ],
    }
    if settings.training_use_spot:
        # Spot capacity can be reclaimed: wait up to MaxWait in total, resume from checkpoints.
        stopping["MaxWaitTimeInSeconds"] = max(
            settings.training_max_wait_seconds, settings.training_max_runtime_seconds
        )
        request["CheckpointConfig"] = {
            "S3Uri": f"s3://{artifacts}/checkpoints/{job}/",
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    return request


def _job_exists(name: str) -> bool:
    try:
        client("sagemaker").describe_training_job(TrainingJobName=name)
    except ClientError as error:
        # DescribeTrainingJob reports an unknown name as a ValidationException.
        if error.response.get("Error", {}).get("Code") == "ValidationException":
            return False
        raise
    return True


def launch(
    run_id: str,
    dataset: str,
    contract_version: str = "",
    curated_path: str | None = None,
    window_fingerprint: str | None = None,
) -> LaunchOutcome:
    """Start the training job of a prepared run once; a duplicate signal starts nothing."""
    settings = get_settings()
    job = naming.training_job_name(dataset, run_id)
    if not ledger.claim(run_id, STAGE, dataset=dataset, training_job_name=job) and _job_exists(job):
        logger.info("duplicate signal: training job already exists", extra={"training_job": job})
        return LaunchOutcome(
            outcome="Duplicate", run_id=run_id, dataset=dataset, training_job_name=job
        )
    # A claim without a job means an earlier attempt failed before creating it: carry on.
    region = client("sagemaker").meta.region_name
    champion = champion_model_url(dataset, settings.stage)
    try:
        request = training_request(
            run_id=run_id,
            dataset=dataset,
            contract_version=contract_version,
            settings=settings,
            region=region,
            champion=champion,
            curated_path=curated_path,
            window_fingerprint=window_fingerprint,
        )
    except images.UnknownImage as error:
        # A deployment problem no retry can fix: record it, do not retry forever.
        ledger.finish(run_id, STAGE, ledger.Status.FAILED, reason=str(error), dataset=dataset)
        return LaunchOutcome(
            outcome="LaunchFailed", run_id=run_id, dataset=dataset, reason=str(error)
        )
    try:
        arn = client("sagemaker").create_training_job(**request)["TrainingJobArn"]
    except ClientError as error:
        if _is_duplicate(error):
            logger.info("duplicate signal: job name collided", extra={"training_job": job})
            return LaunchOutcome(
                outcome="Duplicate", run_id=run_id, dataset=dataset, training_job_name=job
            )
        if error.response.get("Error", {}).get("Code") == "ValidationException":
            # A request SageMaker rejects (bad role, image, instance type) fails every retry
            # the same way: record it instead of retrying into the dead-letter queue.
            reason = f"CreateTrainingJob rejected: {error.response['Error'].get('Message', '')}"
            logger.error("training job not started", extra={"reason": reason})
            ledger.finish(run_id, STAGE, ledger.Status.FAILED, reason=reason, dataset=dataset)
            return LaunchOutcome(
                outcome="LaunchFailed",
                run_id=run_id,
                dataset=dataset,
                training_job_name=job,
                reason=reason,
            )
        raise
    ledger.start(
        run_id,
        STAGE,
        dataset=dataset,
        training_job_name=job,
        training_job_arn=arn,
        champion_model_url=champion,
    )
    logger.info("training job started", extra={"training_job": job, "champion": champion})
    return LaunchOutcome(
        outcome="Started",
        run_id=run_id,
        dataset=dataset,
        training_job_name=job,
        champion_model_url=champion,
    )


def start_training(glue_detail: dict[str, Any]) -> LaunchOutcome:
    """React to a preparation job's state change: train on its run if it succeeded."""
    from mlops.preparation import record_outcome

    prepared: PreparationResult = record_outcome(glue_detail)
    if prepared.skipped:
        # The window's data is what the champion learnt from: the ledger says so, no job.
        logger.info("training skipped", extra={"reason": prepared.reason})
        return LaunchOutcome(
            outcome="Skipped",
            run_id=prepared.run_id,
            dataset=prepared.dataset,
            reason=prepared.reason,
        )
    if not prepared.succeeded:
        # record_outcome has put the failure in the ledger: nothing to train, nothing to retry.
        return LaunchOutcome(
            outcome="PreparationFailed",
            run_id=prepared.run_id,
            dataset=prepared.dataset,
            reason=prepared.reason,
        )
    manifest = prepared.manifest or {}
    return launch(
        prepared.run_id,
        prepared.dataset,
        str(manifest.get("contract_version", "")),
        curated_path=prepared.curated_path,
        window_fingerprint=manifest.get("fingerprint"),
    )
