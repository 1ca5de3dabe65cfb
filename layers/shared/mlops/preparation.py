"""Preparation stage: start one Glue run per validated run, and record how it ended.

``start_preparation`` reacts to "Run Validated": it claims the run's ``prepare`` stage in the
ledger (a redelivered signal becomes a no-op), resolves the dataset's contract into
``s3://<artifacts>/contracts/resolved/<dataset>/<run_id>.json`` (the Glue job reads that
exact version, even if the user's contract changes while the job runs), and starts the job.

``record_outcome`` reacts to "Glue Job State Change" (called first by start_training): it
reads the run back from the job run's arguments and the curated ``_manifest.json`` and
records the ``prepare`` outcome with its counts, or the job's error message.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field

from mlops import lake, ledger
from mlops.clients import client, resource
from mlops.contract import ContractError, load_contract
from mlops.observability import logger
from mlops.settings import get_settings

STAGE = "prepare"
SUCCEEDED_STATES = ("SUCCEEDED",)


class PreparationThrottled(RuntimeError):
    """Glue refused another concurrent run; raised so EventBridge retries later."""


class PreparationInFlight(RuntimeError):
    """Another delivery holds the run's claim but has not started a job run yet."""


class RunValidated(BaseModel):
    """Detail of our "Run Validated" event (emitted once per run by the validate stage)."""

    model_config = ConfigDict(extra="ignore")

    run_id: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    contract_version: str | None = None
    validated_path: str = Field(pattern=r"^s3://")
    rows_valid: int = Field(ge=0)
    rows_quarantined: int = Field(default=0, ge=0)
    objects: int = Field(default=0, ge=0)
    ingest_date: str | None = None


class RunValidatedEvent(EventBridgeModel):
    detail: RunValidated


class GlueJobStateChange(BaseModel):
    """Detail of AWS's "Glue Job State Change" event."""

    model_config = ConfigDict(extra="ignore")

    jobName: str
    severity: str | None = None
    state: str
    jobRunId: str
    message: str | None = None


class GlueJobStateChangeEvent(EventBridgeModel):
    detail: GlueJobStateChange


class PreparationStart(BaseModel):
    """What ``start_preparation`` did with one delivery of "Run Validated"."""

    run_id: str
    dataset: str
    status: Literal["STARTED", "DUPLICATE", "REJECTED"]
    glue_job_run_id: str | None = None
    curated_path: str | None = None
    contract_uri: str | None = None
    reason: str | None = None

    @property
    def metric(self) -> str:
        return {
            "STARTED": "PreparationsStarted",
            "DUPLICATE": "DuplicateSignals",
            "REJECTED": "PreparationsRejected",
        }[self.status]


class PreparationOutcome(BaseModel):
    """How a run's preparation ended, with where its curated data and artifacts are."""

    run_id: str
    dataset: str
    glue_job_run_id: str
    state: str
    succeeded: bool
    curated_path: str
    manifest: dict[str, Any] | None = None
    reason: str | None = None

    def channel(self, name: str) -> str:
        """S3 URI of a training channel: ``train``, ``validation``, ``test`` or ``artifacts``."""
        if name == "artifacts":
            return f"{self.curated_path}artifacts/"
        return f"{self.curated_path}split={name}/"


def curated_path(bucket: str, dataset: str, run_id: str) -> str:
    return f"s3://{bucket}/{lake.curated_run_prefix(dataset, run_id)}"


def resolved_contract_key(dataset: str, run_id: str) -> str:
    """Where the launcher freezes the contract a run is prepared with."""
    return f"contracts/resolved/{dataset}/{run_id}.json"


def start_preparation(detail: RunValidated | dict[str, Any]) -> PreparationStart:
    """Start the Glue job for a validated run, once, however often the signal arrives."""
    run = detail if isinstance(detail, RunValidated) else RunValidated.model_validate(detail)
    settings = get_settings()
    if run.rows_valid == 0:
        reason = f"no valid rows in run {run.run_id}"
        ledger.finish(
            run.run_id,
            STAGE,
            ledger.Status.FAILED,
            counts={"rows_in": 0, "train": 0, "validation": 0, "test": 0},
            reason=reason,
            dataset=run.dataset,
        )
        logger.warning("preparation rejected", extra={"reason": reason})
        return PreparationStart(
            run_id=run.run_id, dataset=run.dataset, status="REJECTED", reason=reason
        )

    if not ledger.claim(run.run_id, STAGE, dataset=run.dataset):
        return _duplicate(run)

    try:
        contract = load_contract(run.dataset)
        job_run_id, curated, contract_uri = _start_job(run, contract.model_dump(mode="json"))
    except ContractError as exc:
        # Retrying cannot fix a missing or broken contract: record it, do not raise.
        reason = f"contract for {run.dataset}: {exc}"
        ledger.finish(run.run_id, STAGE, ledger.Status.FAILED, reason=reason, dataset=run.dataset)
        logger.error("preparation rejected", extra={"reason": reason})
        return PreparationStart(
            run_id=run.run_id, dataset=run.dataset, status="REJECTED", reason=reason
        )
    except BaseException:
        # No job run exists (a transient S3/Glue error or throttling): give the claim back so
        # EventBridge's retry can start one.
        _release_claim(run.run_id, settings.require("ledger_table"))
        raise
    ledger.start(
        run.run_id,
        STAGE,
        glue_job_run_id=job_run_id,
        dataset=run.dataset,
        curated_prefix=curated,
        contract_uri=contract_uri,
        contract_version=contract.version,
        validated_path=run.validated_path,
    )
    logger.info("preparation started", extra={"glue_job_run_id": job_run_id})
    return PreparationStart(
        run_id=run.run_id,
        dataset=run.dataset,
        status="STARTED",
        glue_job_run_id=job_run_id,
        curated_path=curated,
        contract_uri=contract_uri,
    )


def _start_job(run: RunValidated, contract: dict[str, Any]) -> tuple[str, str, str]:
    """Freeze the contract, start the job run; returns (job run id, curated path, contract uri)."""
    settings = get_settings()
    if run.contract_version and str(contract["version"]) != run.contract_version:
        logger.warning(
            "contract changed since validation",
            extra={"validated_with": run.contract_version, "preparing_with": contract["version"]},
        )
    artifacts = settings.require("artifacts_bucket")
    key = resolved_contract_key(run.dataset, run.run_id)
    client("s3").put_object(
        Bucket=artifacts,
        Key=key,
        Body=json.dumps(contract, indent=2).encode(),
        ContentType="application/json",
    )
    contract_uri = f"s3://{artifacts}/{key}"
    curated = curated_path(settings.require("curated_bucket"), run.dataset, run.run_id)
    glue = client("glue")
    try:
        response = glue.start_job_run(
            JobName=settings.require("glue_job_name"),
            Arguments={
                "--run_id": run.run_id,
                "--dataset": run.dataset,
                "--validated_path": run.validated_path,
                "--curated_path": curated,
                "--contract_uri": contract_uri,
            },
        )
    except glue.exceptions.ConcurrentRunsExceededException as exc:
        raise PreparationThrottled(
            f"Glue is already running its maximum of preparation jobs; run {run.run_id} "
            "will be retried"
        ) from exc
    return response["JobRunId"], curated, contract_uri


def _duplicate(run: RunValidated) -> PreparationStart:
    item = next((s for s in ledger.stages(run.run_id) if s["stage"] == STAGE), {})
    job_run_id = (item.get("detail") or {}).get("glue_job_run_id") or item.get("glue_job_run_id")
    if item.get("status") == ledger.Status.STARTED.value and not job_run_id:
        # The first delivery is between its claim and StartJobRun (or died there): retry later.
        raise PreparationInFlight(f"run {run.run_id} is claimed but its Glue job has not started")
    logger.info("duplicate Run Validated ignored", extra={"status": item.get("status")})
    return PreparationStart(
        run_id=run.run_id,
        dataset=run.dataset,
        status="DUPLICATE",
        glue_job_run_id=job_run_id,
        reason=f"prepare is already {item.get('status', 'claimed')}",
    )


def _release_claim(run_id: str, table_name: str) -> None:
    """Delete a claim that never started a job run (no-op once a job run id is recorded)."""
    table = resource("dynamodb").Table(table_name)
    try:
        table.delete_item(
            Key={"run_id": run_id, "stage": STAGE},
            ConditionExpression="#s = :started AND attribute_not_exists(detail.glue_job_run_id)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":started": ledger.Status.STARTED.value},
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        logger.info("claim kept: a job run was already recorded")


def record_outcome(detail: GlueJobStateChange | dict[str, Any]) -> PreparationOutcome:
    """Record a finished Glue run in the ledger and say where its outputs are."""
    change = (
        detail
        if isinstance(detail, GlueJobStateChange)
        else GlueJobStateChange.model_validate(detail)
    )
    job_run = client("glue").get_job_run(JobName=change.jobName, RunId=change.jobRunId)["JobRun"]
    arguments = job_run.get("Arguments") or {}
    missing = [k for k in ("--run_id", "--dataset", "--curated_path") if not arguments.get(k)]
    if missing:
        raise ValueError(
            f"Glue job run {change.jobRunId} of {change.jobName} was not started by the "
            f"pipeline: no {', '.join(missing)} argument"
        )
    run_id, dataset = arguments["--run_id"], arguments["--dataset"]
    curated = arguments["--curated_path"].rstrip("/") + "/"
    succeeded = change.state in SUCCEEDED_STATES
    manifest = _read_manifest(curated, change.jobRunId) if succeeded else None
    reason = None
    if not succeeded:
        reason = job_run.get("ErrorMessage") or change.message or f"Glue job run {change.state}"
    ledger.finish(
        run_id,
        STAGE,
        ledger.Status.SUCCEEDED if succeeded else ledger.Status.FAILED,
        counts=manifest["counts"] if manifest else None,
        reason=reason,
        glue_job_run_id=change.jobRunId,
        curated_prefix=curated,
        dataset=dataset,
    )
    return PreparationOutcome(
        run_id=run_id,
        dataset=dataset,
        glue_job_run_id=change.jobRunId,
        state=change.state,
        succeeded=succeeded,
        curated_path=curated,
        manifest=manifest,
        reason=reason,
    )


def _read_manifest(curated: str, job_run_id: str) -> dict[str, Any]:
    bucket, _, prefix = curated.removeprefix("s3://").partition("/")
    key = f"{prefix}{lake.MANIFEST}"
    s3 = client("s3")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey as exc:
        # Retryable: the job wrote its manifest last, so the outputs may still be landing.
        raise RuntimeError(
            f"Glue job run {job_run_id} succeeded but s3://{bucket}/{key} is missing"
        ) from exc
    return json.loads(body)
