"""Preparation stage: start one Glue run per validated run, and record how it ended.

``start_preparation`` reacts to "Run Validated": it claims the run's ``prepare`` stage in the
ledger (a redelivered signal becomes a no-op), resolves the dataset's contract into
``s3://<artifacts>/contracts/resolved/<dataset>/<run_id>.json`` (the Glue job reads that
exact version, even if the user's contract changes while the job runs), and starts the job.
When Glue refuses the run for the job's MaxConcurrentRuns, the run is queued instead (ledger
``prepare`` QUEUED with the reason, and an item in the job's queue) and nothing is raised.

The run is prepared on a **window**: the validated partitions of its dataset whose ingest
date is within TRAINING_WINDOW_DAYS ending at its own (``training_window``: listed by prefix,
never the whole dataset; only runs whose validation SUCCEEDED, and none validated after this
run), oldest first, this run last. The Glue job keeps the newest copy of each key. The served
champion's window fingerprint (its model package metadata) goes to the job too, which skips a
window whose data is the same (``record_outcome`` then records ``prepare`` SKIPPED).

``drain_queue`` reacts to a terminal "Glue Job State Change" of the job (a slot came free) and
to a schedule: it fails runs that waited longer than PREPARATION_MAX_WAIT_MINUTES (with a
notification) and starts the oldest queued runs until Glue refuses again.

``record_outcome`` reacts to "Glue Job State Change" (called first by start_training): it
reads the run back from the job run's arguments and the curated ``_manifest.json`` and
records the ``prepare`` outcome with its counts, or the job's error message.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, RootModel

from mlops import lake, ledger, naming
from mlops.clients import client, resource
from mlops.contract import ContractError, load_contract
from mlops.notifications import notify
from mlops.observability import logger
from mlops.settings import get_settings

STAGE = "prepare"
SUCCEEDED_STATES = ("SUCCEEDED",)
# Lambda's longest timeout: a drain that holds a claim is dead once its claim expires.
QUEUE_CLAIM_SECONDS = 900


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


class RunValidatedSignal(RunValidatedEvent):
    detail_type: Literal["Run Validated"] = Field(alias="detail-type")


class GlueRunEndedSignal(GlueJobStateChangeEvent):
    detail_type: Literal["Glue Job State Change"] = Field(alias="detail-type")


class QueueSweepSignal(EventBridgeModel):
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    detail: dict[str, Any] = Field(default_factory=dict)


class PreparationSignal(
    RootModel[
        Annotated[
            RunValidatedSignal | GlueRunEndedSignal | QueueSweepSignal,
            Field(discriminator="detail_type"),
        ]
    ]
):
    """What start_preparation receives: a run to start, a freed Glue slot, or the sweep."""


class PreparationStart(BaseModel):
    """What ``start_preparation`` did with one delivery of "Run Validated"."""

    run_id: str
    dataset: str
    status: Literal["STARTED", "DUPLICATE", "REJECTED", "QUEUED"]
    glue_job_run_id: str | None = None
    curated_path: str | None = None
    contract_uri: str | None = None
    reason: str | None = None
    queued_at: str | None = None

    @property
    def metric(self) -> str:
        return {
            "STARTED": "PreparationsStarted",
            "DUPLICATE": "DuplicateSignals",
            "REJECTED": "PreparationsRejected",
            "QUEUED": "PreparationsQueued",
        }[self.status]


class QueueDrain(BaseModel):
    """What one drain of the preparation queue did."""

    trigger: str
    started: list[str] = Field(default_factory=list)
    expired: list[str] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list)
    # Items whose run had already started or ended (a redelivered enqueue, a crash): removed.
    removed: list[str] = Field(default_factory=list)
    waiting: list[str] = Field(default_factory=list)


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
    # The job found the window's data unchanged since the champion: nothing to train.
    skipped: bool = False

    def channel(self, name: str) -> str:
        """S3 URI of a training channel: ``train``, ``validation``, ``test`` or ``artifacts``."""
        if name == "artifacts":
            return f"{self.curated_path}artifacts/"
        return f"{self.curated_path}split={name}/"


class WindowRun(BaseModel):
    """One validated run of a training window."""

    run_id: str
    ingest_date: str
    rows_valid: int | None = None
    validated_at: str | None = None

    @property
    def partition(self) -> str:
        return f"ingest_date={self.ingest_date}/run_id={self.run_id}"


def training_window(run: RunValidated, days: int) -> list[WindowRun]:
    """The runs ``run`` is prepared on, oldest first and ``run`` last ([] = its rows only).

    The validated zone's ``ingest_date=`` prefixes of the ``days`` dates ending at the run's
    own are listed (one delimited ListObjectsV2 each: partition pruning, not a scan); a run
    found there counts once its validation SUCCEEDED (a run still receiving objects would be
    read half-written) and if it was validated no later than this run (a run prepared late,
    from the queue, reads what it would have read on time; runs of one day come in
    validation order).
    """
    if days <= 0 or not run.ingest_date:
        return []
    end = date.fromisoformat(run.ingest_date)
    bucket, _, root = run.validated_path.removeprefix("s3://").partition("/")
    own = _validate_item(run.run_id)
    # Not recorded yet (validate finishes its item just after emitting): nothing is later.
    own_at = own.get("ended_at") or datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    found: list[WindowRun] = []
    paginator = client("s3").get_paginator("list_objects_v2")
    for offset in range(days - 1, -1, -1):
        day = (end - timedelta(days=offset)).isoformat()
        prefix = f"{root.rstrip('/')}/ingest_date={day}/"
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                segment = common["Prefix"][len(prefix) :].strip("/")
                if not segment.startswith("run_id=") or segment == f"run_id={run.run_id}":
                    continue
                other = _validate_item(segment.removeprefix("run_id="))
                validated_at = other.get("ended_at")
                if other.get("status") != ledger.Status.SUCCEEDED.value or not validated_at:
                    continue
                if validated_at > own_at:
                    continue
                found.append(
                    WindowRun(
                        run_id=segment.removeprefix("run_id="),
                        ingest_date=day,
                        rows_valid=(other.get("counts") or {}).get("rows_valid"),
                        validated_at=validated_at,
                    )
                )
    found.sort(key=lambda r: (r.ingest_date, r.validated_at or "", r.run_id))
    return [
        *found,
        WindowRun(
            run_id=run.run_id,
            ingest_date=run.ingest_date,
            rows_valid=run.rows_valid,
            validated_at=own.get("ended_at"),
        ),
    ]


def _validate_item(run_id: str) -> dict[str, Any]:
    return next((s for s in ledger.stages(run_id) if s["stage"] == "validate"), {})


def champion_fingerprint(dataset: str) -> tuple[str | None, str | None]:
    """(window fingerprint, run id) of the model the serving rule serves, if it has one.

    A first run (no group, no Approved version) and a champion registered before fingerprints
    existed both give None: such a run is never skipped.
    """
    from mlops.evaluation import registry

    package = registry.champion(naming.model_package_group(dataset, get_settings().stage))
    properties = (package or {}).get("CustomerMetadataProperties") or {}
    return properties.get("window_fingerprint"), properties.get("run_id")


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
        try:
            job_run_id, curated, contract_uri, window = _start_job(
                run, contract.model_dump(mode="json")
            )
        except PreparationThrottled as exc:
            return _queue(run, str(exc))
    except ContractError as exc:
        # Retrying cannot fix a missing or broken contract: record it, do not raise.
        reason = f"contract for {run.dataset}: {exc}"
        ledger.finish(run.run_id, STAGE, ledger.Status.FAILED, reason=reason, dataset=run.dataset)
        logger.error("preparation rejected", extra={"reason": reason})
        return PreparationStart(
            run_id=run.run_id, dataset=run.dataset, status="REJECTED", reason=reason
        )
    except BaseException:
        # No job run exists (a transient S3/Glue error): give the claim back so the retry
        # can start one. A run already QUEUED keeps its item (the release is a no-op).
        _release_claim(run.run_id, settings.require("ledger_table"))
        raise
    _record_started(run, job_run_id, curated, contract_uri, contract.version, window)
    return PreparationStart(
        run_id=run.run_id,
        dataset=run.dataset,
        status="STARTED",
        glue_job_run_id=job_run_id,
        curated_path=curated,
        contract_uri=contract_uri,
    )


def _start_job(run: RunValidated, contract: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    """Freeze the contract, start the job run on the run's window.

    Returns (job run id, curated path, contract uri, the window as the ledger records it).
    """
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
    days = settings.training_window_days
    runs = training_window(run, days)
    fingerprint, champion_run = champion_fingerprint(run.dataset)
    arguments = {
        "--run_id": run.run_id,
        "--dataset": run.dataset,
        "--validated_path": run.validated_path,
        "--curated_path": curated,
        "--contract_uri": contract_uri,
        "--window_days": str(days),
    }
    if runs:
        arguments["--window_runs"] = ",".join(r.partition for r in runs)
    if fingerprint:
        arguments["--champion_fingerprint"] = fingerprint
        if champion_run:
            arguments["--champion_run_id"] = champion_run
    window = {
        "days": days,
        "runs": [r.model_dump(exclude_none=True) for r in runs],
        "champion_fingerprint": fingerprint,
        "champion_run_id": champion_run,
    }
    glue = client("glue")
    try:
        response = glue.start_job_run(
            JobName=settings.require("glue_job_name"), Arguments=arguments
        )
    except glue.exceptions.ConcurrentRunsExceededException as exc:
        raise PreparationThrottled(
            f"Glue is already running its maximum of preparation jobs; run {run.run_id} "
            "waits for a free slot"
        ) from exc
    return response["JobRunId"], curated, contract_uri, window


def _record_started(
    run: RunValidated,
    job_run_id: str,
    curated: str,
    contract_uri: str,
    version: Any,
    window: dict[str, Any],
) -> None:
    ledger.start(
        run.run_id,
        STAGE,
        glue_job_run_id=job_run_id,
        dataset=run.dataset,
        curated_prefix=curated,
        contract_uri=contract_uri,
        contract_version=version,
        validated_path=run.validated_path,
        window={k: v for k, v in window.items() if v is not None},
    )
    logger.info("preparation started", extra={"glue_job_run_id": job_run_id})


def _queue_name() -> str:
    """One queue per Glue job: MaxConcurrentRuns is the job's, whatever the dataset."""
    return get_settings().require("glue_job_name")


def _queue(run: RunValidated, reason: str) -> PreparationStart:
    """Park a run Glue refused for concurrency; the next drain starts it."""
    # The ledger first: its queued_at (set once) is the queue position, so a retry after a
    # failure between the two writes puts the same item in the same place.
    queued_at = ledger.mark_queued(run.run_id, STAGE, reason=reason, dataset=run.dataset)
    ledger.enqueue(_queue_name(), run.run_id, queued_at, run.model_dump(mode="json"), reason=reason)
    logger.warning("preparation queued", extra={"reason": reason, "queued_at": queued_at})
    return PreparationStart(
        run_id=run.run_id,
        dataset=run.dataset,
        status="QUEUED",
        reason=reason,
        queued_at=queued_at,
    )


def _prepare_item(run_id: str) -> dict[str, Any]:
    return next((s for s in ledger.stages(run_id) if s["stage"] == STAGE), {})


def _duplicate(run: RunValidated) -> PreparationStart:
    item = _prepare_item(run.run_id)
    job_run_id = (item.get("detail") or {}).get("glue_job_run_id") or item.get("glue_job_run_id")
    if item.get("status") == ledger.Status.STARTED.value and not job_run_id:
        # The first delivery is between its claim and StartJobRun (or died there): retry later.
        raise PreparationInFlight(f"run {run.run_id} is claimed but its Glue job has not started")
    if item.get("status") == ledger.Status.QUEUED.value and item.get("queued_at"):
        # The first delivery may have died between marking the run QUEUED and enqueuing it.
        ledger.enqueue(
            _queue_name(),
            run.run_id,
            item["queued_at"],
            run.model_dump(mode="json"),
            reason=item.get("reason") or "waiting for a free Glue run slot",
        )
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
    skipped = bool(manifest and manifest.get("status") == "skipped")
    reason = manifest.get("reason") if manifest and skipped else None
    if not succeeded:
        reason = job_run.get("ErrorMessage") or change.message or f"Glue job run {change.state}"
    status = ledger.Status.SUCCEEDED if succeeded else ledger.Status.FAILED
    if skipped:
        status = ledger.Status.SKIPPED
    # What Glue bills the run for (mlops.costs): its execution time and its workers.
    billing = {
        name: job_run[key]
        for name, key in (
            ("glue_execution_seconds", "ExecutionTime"),
            ("glue_worker_type", "WorkerType"),
            ("glue_workers", "NumberOfWorkers"),
        )
        if job_run.get(key) is not None
    }
    # The window read and its fingerprint: what a model trained on this run learnt from.
    lineage = {k: (manifest or {}).get(k) for k in ("fingerprint", "window")}
    ledger.finish(
        run_id,
        STAGE,
        status,
        counts=manifest["counts"] if manifest else None,
        reason=reason,
        glue_job_run_id=change.jobRunId,
        curated_prefix=curated,
        dataset=dataset,
        **billing,
        **{k: v for k, v in lineage.items() if v is not None},
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
        skipped=skipped,
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


def drain_queue(trigger: str, *, now: datetime | None = None) -> QueueDrain:
    """Fail runs queued past the bound, then start the oldest queued runs while Glue has slots.

    Each item is claimed before anything is done with it, so concurrent drains never start
    one run twice; an item is deleted only after its run's outcome is in the ledger.
    """
    settings = get_settings()
    now = now or datetime.now(timezone.utc)
    max_wait = settings.preparation_max_wait_minutes
    owner = str(uuid.uuid4())
    result = QueueDrain(trigger=trigger)
    full = False
    for item in ledger.queued(_queue_name()):
        if not ledger.claim_queued(item, owner, QUEUE_CLAIM_SECONDS, now=now.timestamp()):
            continue  # another drain has it (or just removed it)
        try:
            state = _prepare_item(item.run_id)
        except BaseException:
            ledger.release_queued(item, owner)  # not held for QUEUE_CLAIM_SECONDS for nothing
            raise
        if state.get("status") != ledger.Status.QUEUED.value:
            # Already started or ended (by another path), or never recorded: nothing to start.
            ledger.dequeue(item, owner)
            result.removed.append(item.run_id)
            continue
        if item.waited_seconds(now) > max_wait * 60:
            try:
                _expire(item, max_wait, now)
            except BaseException:
                ledger.release_queued(item, owner)
                raise
            ledger.dequeue(item, owner)
            result.expired.append(item.run_id)
            continue
        if full:
            ledger.release_queued(item, owner)
            result.waiting.append(item.run_id)
            continue
        outcome = _start_queued(item, owner)
        if outcome == "FULL":
            full = True
            result.waiting.append(item.run_id)
        elif outcome == "REJECTED":
            result.rejected.append(item.run_id)
        else:
            result.started.append(item.run_id)
    if result.started or result.expired or result.rejected:
        logger.info("preparation queue drained", extra=result.model_dump())
    return result


def _start_queued(item: ledger.QueuedRun, owner: str) -> Literal["STARTED", "FULL", "REJECTED"]:
    run = RunValidated.model_validate(item.payload)
    try:
        contract = load_contract(run.dataset)
        try:
            job_run_id, curated, contract_uri, window = _start_job(
                run, contract.model_dump(mode="json")
            )
        except PreparationThrottled:
            ledger.release_queued(item, owner)
            return "FULL"
    except ContractError as exc:
        reason = f"contract for {run.dataset}: {exc}"
        ledger.finish(run.run_id, STAGE, ledger.Status.FAILED, reason=reason, dataset=run.dataset)
        ledger.dequeue(item, owner)
        return "REJECTED"
    except BaseException:
        # No job run exists: the item goes back in its place for the retry or the next drain.
        ledger.release_queued(item, owner)
        raise
    _record_started(run, job_run_id, curated, contract_uri, contract.version, window)
    ledger.dequeue(item, owner)
    return "STARTED"


def _expire(item: ledger.QueuedRun, max_wait: int, now: datetime) -> None:
    dataset = str(item.payload.get("dataset", ""))
    minutes = int(item.waited_seconds(now) // 60)
    reason = (
        f"waited {minutes} min for a free Glue run slot (queued at {item.queued_at}); "
        f"the bound is {max_wait} min (PreparationMaxWaitMinutes): {item.reason}"
    )
    # Notified before the run is failed: a failed publish leaves the run QUEUED for the retry
    # (at least once), where failing it first would let the retry drop it without a word.
    notify(
        f"Run {item.run_id}: preparation never started",
        f"Run {item.run_id} of {dataset} was not prepared: it {reason}. Upload the data again "
        "or raise the job's MaxConcurrentRuns.",
        run_id=item.run_id,
        dataset=dataset,
        queued_at=item.queued_at,
    )
    ledger.finish(item.run_id, STAGE, ledger.Status.FAILED, reason=reason, dataset=dataset)
    logger.error("queued preparation expired", extra={"run_id": item.run_id, "reason": reason})
