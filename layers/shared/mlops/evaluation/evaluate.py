"""The evaluate stage: a finished training job becomes a registered, decided model package."""

from __future__ import annotations

import json
import re
import tarfile
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlops import lake, ledger, naming
from mlops.clients import client
from mlops.evaluation import registry
from mlops.evaluation.decision import Bounds, Decision, Evaluation, Status, decide
from mlops.evaluation.report import render_html
from mlops.notifications import notify
from mlops.observability import logger
from mlops.settings import get_settings

STAGE = "evaluate"
_SKLEARN_TAG = re.compile(r":(\d+\.\d+-\d+)-")


class InvalidTrainingOutput(ValueError):
    """The job's artifact lacks a usable evaluation.json: retrying cannot fix it."""


class TrainingJobDetail(BaseModel):
    """The fields of a "SageMaker Training Job State Change" detail (DescribeTrainingJob shape)."""

    model_config = ConfigDict(extra="allow")

    TrainingJobName: str
    TrainingJobArn: str = ""
    TrainingJobStatus: str
    SecondaryStatus: str | None = None
    FailureReason: str | None = None
    ModelArtifacts: dict[str, str] = Field(default_factory=dict)
    AlgorithmSpecification: dict[str, Any] = Field(default_factory=dict)
    HyperParameters: dict[str, str] = Field(default_factory=dict)
    InputDataConfig: list[dict[str, Any]] = Field(default_factory=list)
    Tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("Tags", mode="before")
    @classmethod
    def _tags_as_dict(cls, value: Any) -> Any:
        # Events carry a map; DescribeTrainingJob/ListTags carry [{Key, Value}].
        if isinstance(value, list):
            return {t["Key"]: t["Value"] for t in value}
        return value or {}

    def lineage(self, name: str) -> str | None:
        """A lineage value from the job's tags, else its hyperparameters."""
        value = self.Tags.get(name) or self.HyperParameters.get(name)
        return value.strip('"') if isinstance(value, str) else value

    @property
    def run_id(self) -> str | None:
        return self.lineage("run_id")

    def trained_at(self) -> str | None:
        """When training ended (ISO 8601 UTC); events carry epoch milliseconds."""
        ended = (self.model_extra or {}).get("TrainingEndTime")
        if isinstance(ended, int | float):
            moment = datetime.fromtimestamp(ended / 1000, tz=timezone.utc)
            return moment.isoformat(timespec="seconds")
        return str(ended) if ended else None

    def curated_prefix(self) -> str | None:
        """The curated run the job trained on (its train channel without ``split=…``)."""
        for channel in self.InputDataConfig:
            uri = channel.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri")
            if uri:
                return uri.split("split=")[0] if "split=" in uri else uri
        return None


class EvaluationOutcome(BaseModel):
    """What the stage did, for the handler's metric and the caller."""

    run_id: str
    dataset: str
    outcome: Literal[
        "Approved",
        "PendingManualApproval",
        "Rejected",
        "TrainingFailed",
        "InvalidEvaluation",
        "Duplicate",
        "Ignored",
    ]
    model_package_arn: str | None = None
    model_package_version: int | None = None
    report_url: str | None = None
    reason: str | None = None


def _resolve_tags(job: TrainingJobDetail) -> TrainingJobDetail:
    """Events from some sources omit tags: read them from the job when run_id is missing."""
    if job.run_id or not job.TrainingJobArn:
        return job
    tags = client("sagemaker").list_tags(ResourceArn=job.TrainingJobArn).get("Tags", [])
    merged = {t["Key"]: t["Value"] for t in tags} | job.Tags
    return job.model_copy(update={"Tags": merged})


def read_evaluation(model_data_url: str) -> dict[str, Any]:
    """Stream model.tar.gz from S3 and extract only ``evaluation.json``."""
    url = urlparse(model_data_url)
    body = client("s3").get_object(Bucket=url.netloc, Key=url.path.lstrip("/"))["Body"]
    with tarfile.open(fileobj=body, mode="r|gz") as archive:
        for member in archive:
            if member.isfile() and member.name.lstrip("./") == "evaluation.json":
                handle = archive.extractfile(member)
                if handle is None:
                    break
                return json.loads(handle.read())
    raise InvalidTrainingOutput(f"{model_data_url} contains no evaluation.json")


def acceptance_thresholds(dataset: str) -> dict[str, Bounds]:
    """The contract's ``acceptance`` section (metric → {min, max}); empty when it has none."""
    try:
        from mlops.contract import load_contract
    except ImportError:
        logger.warning("mlops.contract is not available; no absolute thresholds applied")
        return {}
    contract = load_contract(dataset)
    section = (
        contract.get("acceptance")
        if isinstance(contract, dict)
        else getattr(contract, "acceptance", None)
    )
    if not section:
        return {}
    out = {}
    for metric, bounds in dict(section).items():
        raw = bounds.model_dump() if isinstance(bounds, BaseModel) else dict(bounds)
        out[metric] = Bounds(min=raw.get("min"), max=raw.get("max"))
    return out


def inference_image(job: TrainingJobDetail, region: str) -> str:
    """AWS's sklearn inference image matching the training image's version, else the latter."""
    training_image = str(job.AlgorithmSpecification.get("TrainingImage", ""))
    try:
        from mlops.images import sklearn_image_uri

        match = _SKLEARN_TAG.search(training_image)
        if match:
            return sklearn_image_uri(region, match.group(1), scope="inference")
        return sklearn_image_uri(region, scope="inference")
    except (ImportError, ValueError, OSError) as error:
        logger.warning(
            "no sklearn inference image; using the training image", extra={"error": str(error)}
        )
    if training_image:
        return training_image
    return get_settings().require("inference_image_uri")


def _with_registry_champion(
    evaluation: dict[str, Any], group: str
) -> tuple[dict[str, Any], str | None]:
    """Fill a missing champion from the registry's newest Approved package (its stored metric)."""
    if evaluation.get("champion"):
        return evaluation, evaluation.get("champion_note") or "scored on the same test set"
    package = registry.champion(group)
    if not package:
        return evaluation, None
    props = package.get("CustomerMetadataProperties", {})
    metric = evaluation.get("metric")
    if props.get("metric") != metric or props.get("candidate") is None:
        return evaluation, None
    champion = {metric: float(props["candidate"])}
    version = package.get("ModelPackageVersion")
    return evaluation | {"champion": champion}, f"registry v{version} scored on its own test set"


def _put(bucket: str, key: str, body: str, content_type: str) -> str:
    client("s3").put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType=content_type)
    return f"s3://{bucket}/{key}"


def _billing(job: TrainingJobDetail) -> dict[str, Any]:
    """What SageMaker bills the job for (mlops.costs), as far as its state change says."""
    extra = job.model_extra or {}
    resources = extra.get("ResourceConfig") or {}
    billing = {
        "billable_seconds": extra.get("BillableTimeInSeconds"),
        "instance_type": resources.get("InstanceType"),
        "instance_count": resources.get("InstanceCount"),
        "spot": extra.get("EnableManagedSpotTraining"),
    }
    return {k: v for k, v in billing.items() if v is not None}


def _training_failed(job: TrainingJobDetail, run_id: str, dataset: str) -> EvaluationOutcome:
    reason = job.FailureReason or f"training job {job.TrainingJobStatus.lower()}"
    seconds = job.model_extra.get("TrainingTimeInSeconds") if job.model_extra else None
    ledger.finish(
        run_id,
        "train",
        ledger.Status.FAILED,
        counts={"seconds": seconds} if seconds is not None else None,
        reason=reason,
        dataset=dataset,
        training_job_name=job.TrainingJobName,
        **_billing(job),
    )
    ledger.finish(run_id, STAGE, ledger.Status.FAILED, reason=reason, dataset=dataset)
    notify(
        f"Training {job.TrainingJobStatus.lower()}: {dataset} run {run_id}",
        f"SageMaker training job {job.TrainingJobName} ended {job.TrainingJobStatus}: {reason}\n"
        "Nothing was registered; the model in production is unchanged.",
        run_id=run_id,
        dataset=dataset,
        training_job=job.TrainingJobName,
    )
    return EvaluationOutcome(
        run_id=run_id, dataset=dataset, outcome="TrainingFailed", reason=reason
    )


def _training_succeeded(job: TrainingJobDetail, run_id: str, dataset: str) -> None:
    """The training stage ends with this event; evaluate is the one that hears it."""
    seconds = job.model_extra.get("TrainingTimeInSeconds") if job.model_extra else None
    ledger.finish(
        run_id,
        "train",
        ledger.Status.SUCCEEDED,
        counts={"seconds": seconds} if seconds is not None else None,
        dataset=dataset,
        training_job_name=job.TrainingJobName,
        model_data_url=job.ModelArtifacts.get("S3ModelArtifacts"),
        **_billing(job),
    )


def _already_evaluated(run_id: str) -> dict[str, Any] | None:
    """The finished evaluate item of a run, if a previous delivery completed it."""
    for item in ledger.stages(run_id):
        if item.get("stage") == STAGE and item.get("status") != ledger.Status.STARTED.value:
            return item
    return None


def _record_decision(
    run_id: str, dataset: str, decision: Decision, package: dict[str, Any], report_url: str
) -> None:
    status = ledger.Status.PENDING if decision.status is Status.PENDING else ledger.Status.SUCCEEDED
    ledger.finish(
        run_id,
        STAGE,
        status,
        reason=decision.reason,
        dataset=dataset,
        decision=decision.status.value,
        model_package_arn=package["ModelPackageArn"],
        model_package_version=package.get("ModelPackageVersion"),
        metric=decision.metric,
        candidate=decision.candidate,
        baseline=decision.baseline,
        champion=decision.champion,
        report_url=report_url,
    )


def _tell_people(
    run_id: str, dataset: str, decision: Decision, package: dict[str, Any], report_url: str
) -> None:
    version = package.get("ModelPackageVersion")
    facts = {
        "run_id": run_id,
        "dataset": dataset,
        "model_package_arn": package["ModelPackageArn"],
        "report_url": report_url,
    }
    if decision.status is Status.PENDING:
        notify(
            f"Model v{version} of {dataset} awaits approval",
            f"Model package version {version} ({decision.metric} {decision.candidate:.6g}) awaits "
            f"approval: {decision.reason}.\nApprove it in the SageMaker console (Model Registry "
            f"→ {package.get('ModelPackageGroupName')} → version {version} → Update status → "
            f"Approved), or locally with `mlops approve {version}`; "
            f"reject with `mlops reject {version}`.\n"
            f"Report: {report_url}",
            **facts,
        )
    elif decision.status is Status.REJECTED:
        notify(
            f"Model v{version} of {dataset} rejected",
            f"Model package version {version} was rejected: {decision.reason}.\n"
            f"Report: {report_url}",
            **facts,
        )


def evaluate_training_job(job: TrainingJobDetail) -> EvaluationOutcome:
    """Decide and register the model of a finished training job, exactly once per run."""
    settings = get_settings()
    job = _resolve_tags(job)
    run_id = job.run_id
    if not run_id:
        raise ValueError(
            f"training job {job.TrainingJobName} carries no run_id tag or hyperparameter"
        )
    dataset = job.lineage("dataset") or settings.dataset
    if job.TrainingJobStatus not in ("Completed", "Failed", "Stopped"):
        logger.info(
            "training job not finished; nothing to do", extra={"status": job.TrainingJobStatus}
        )
        return EvaluationOutcome(
            run_id=run_id,
            dataset=dataset,
            outcome="Ignored",
            reason=f"status {job.TrainingJobStatus}",
        )

    if not ledger.claim(run_id, STAGE, dataset=dataset, training_job=job.TrainingJobName):
        done = _already_evaluated(run_id)
        if done:
            logger.info(
                "run already evaluated; duplicate event ignored",
                extra={"status": done.get("status")},
            )
            return EvaluationOutcome(
                run_id=run_id,
                dataset=dataset,
                outcome="Duplicate",
                model_package_arn=done.get("model_package_arn"),
                model_package_version=done.get("model_package_version"),
                reason=f"already {done.get('status')}",
            )
    if job.TrainingJobStatus != "Completed":
        return _training_failed(job, run_id, dataset)
    _training_succeeded(job, run_id, dataset)

    group = naming.model_package_group(dataset, settings.stage)
    registry.ensure_group(group, dataset)
    existing = registry.find_by_training_job(group, job.TrainingJobName)
    if existing:
        # A previous delivery registered the package but died before recording it.
        logger.info(
            "package already registered for this training job",
            extra={"arn": existing["ModelPackageArn"]},
        )
        if registry.approval_unfinished(existing):
            registry.approve(existing["ModelPackageArn"])
            existing = registry.describe(existing["ModelPackageArn"])
        ledger.finish(
            run_id,
            STAGE,
            ledger.Status.SUCCEEDED,
            dataset=dataset,
            decision=existing.get("ModelApprovalStatus"),
            model_package_arn=existing["ModelPackageArn"],
            model_package_version=existing.get("ModelPackageVersion"),
        )
        return EvaluationOutcome(
            run_id=run_id,
            dataset=dataset,
            outcome="Duplicate",
            model_package_arn=existing["ModelPackageArn"],
            model_package_version=existing.get("ModelPackageVersion"),
        )

    model_data_url = job.ModelArtifacts.get("S3ModelArtifacts")
    try:
        if not model_data_url:
            raise InvalidTrainingOutput(
                "the completed job reports no ModelArtifacts.S3ModelArtifacts"
            )
        raw = read_evaluation(model_data_url)
        raw, champion_source = _with_registry_champion(raw, group)
        evaluation = Evaluation.model_validate(raw)
        decision = decide(
            evaluation,
            settings.approval_policy,
            acceptance_thresholds(dataset),
            settings.champion_margin,
        )
    except (InvalidTrainingOutput, ValidationError, ValueError, tarfile.TarError) as error:
        reason = f"cannot evaluate: {error}"
        ledger.finish(run_id, STAGE, ledger.Status.FAILED, reason=reason, dataset=dataset)
        notify(
            f"Evaluation failed: {dataset} run {run_id}",
            reason,
            run_id=run_id,
            dataset=dataset,
            training_job=job.TrainingJobName,
        )
        return EvaluationOutcome(
            run_id=run_id, dataset=dataset, outcome="InvalidEvaluation", reason=reason
        )

    bucket = settings.require("artifacts_bucket")
    prefix = lake.evaluation_report_prefix(dataset, run_id)
    lineage = {
        "run_id": run_id,
        "dataset": dataset,
        "contract_version": job.lineage("contract_version"),
        "training_job": job.TrainingJobName,
        "model_data_url": model_data_url,
        "curated_prefix": job.curated_prefix(),
        "trained_at": job.trained_at(),
        "champion_source": champion_source,
        # The training window's fingerprint (a job tag): preparation skips a later window
        # whose data is the same while this model is the champion.
        "window_fingerprint": job.lineage("window_fingerprint"),
    }
    report_url = f"s3://{bucket}/{prefix}report.html"
    statistics_uri = _put(
        bucket,
        f"{prefix}evaluation.json",
        json.dumps(
            {
                "evaluation": evaluation.model_dump(mode="json"),
                "decision": decision.model_dump(mode="json"),
                "lineage": lineage,
            },
            indent=2,
        ),
        "application/json",
    )
    _put(bucket, f"{prefix}report.html", render_html(evaluation, decision, lineage), "text/html")

    package = registry.register(
        group,
        image=inference_image(job, client("sagemaker").meta.region_name),
        model_data_url=model_data_url,
        status=decision.status.value,
        description=(
            f"{dataset} run {run_id}: {decision.metric} {decision.candidate:.6g} "
            f"(baseline {decision.baseline}, champion {decision.champion}). "
            f"{decision.status.value}: {decision.reason}"
        ),
        statistics_uri=statistics_uri,
        properties=registry.metadata(
            lineage
            | {
                "metric": decision.metric,
                "candidate": decision.candidate,
                "baseline": decision.baseline,
                "champion": decision.champion,
                "improvement_vs_champion": decision.improvement_vs_champion,
                "decision": decision.status.value,
                "report_url": report_url,
            }
        ),
        generated_by=job.TrainingJobArn or job.TrainingJobName,
        tags={"run_id": run_id, "dataset": dataset},
    )
    _record_decision(run_id, dataset, decision, package, report_url)
    _tell_people(run_id, dataset, decision, package, report_url)
    return EvaluationOutcome(
        run_id=run_id,
        dataset=dataset,
        outcome=decision.status.value,
        model_package_arn=package["ModelPackageArn"],
        model_package_version=package.get("ModelPackageVersion"),
        report_url=report_url,
        reason=decision.reason,
    )
