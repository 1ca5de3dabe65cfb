"""Hand an object too large for one Lambda invocation to the validation Glue job.

``validate_object`` calls ``delegate`` for an object stored larger than
``VALIDATION_GLUE_MIN_BYTES``. The job (``glue/validate.py``) runs the same checks through
Spark and then does everything the function would have done: rows to the zones, the report,
and ``completion.record_part``. So this module writes nothing to the zones and does not record
the part: the run cannot complete before the job has validated the object.

What it does record, on the run's validate item, is ``delegated.<key>`` = {version_id,
job_name, job_run_id, at}: the operator sees which job run holds the object, and a second
delivery of the same version (Lambda retried after StartJobRun succeeded but before the
idempotency record was saved) finds the run still going and starts no second one. The window
left is a crash between StartJobRun and that write: the retry starts a second run of the same
object version, which writes the same files (keyed by the source key) and records the same part.

The job marks the entry ``finished`` (its job run id) once it has recorded the object,
whatever the outcome. A job run that ends without getting there (killed at its Timeout,
stopped, failed before its own error handling ran) is caught by its "Glue Job State Change":
``record_job_end`` records the object ``unreadable`` with Glue's state and message, so the run
is never left waiting silently for a part that will not come.

When Glue refuses the run (``ConcurrentRunsExceededException``: every run slot of the job is
taken), ``GlueBusy`` is raised: the function fails, Lambda retries the event (its idempotency
record is released on failure), and after the retries the event waits in the function's
dead-letter queue (alarmed; ``mlops redrive``). Nothing is lost, and no second queue and
drain have to be kept for a case the job's MaxConcurrentRuns makes rare (objects over the
threshold are the exception, and each run takes minutes).
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from mlops import ledger
from mlops.clients import client, resource
from mlops.observability import logger
from mlops.settings import get_settings
from mlops.validation.completion import STAGE, closed_reason, run_item

if TYPE_CHECKING:
    from mlops.contract import Contract
    from mlops.validation.objects import ObjectResult, RawObject

# States of a job run that is validating the object, or has: no second run is started.
LIVE_STATES = ("STARTING", "RUNNING", "WAITING", "SUCCEEDED")


class GlueBusy(RuntimeError):
    """Every run slot of the validation job is taken: raised so Lambda retries the event."""


class JobRunEnded(BaseModel):
    """The ``detail`` of a "Glue Job State Change" event (AWS's field names)."""

    jobName: str
    jobRunId: str
    state: str
    message: str = ""


def job_arguments(obj: RawObject, dataset: str, run_id: str, ingest_date: str) -> dict[str, str]:
    """The job run's ``--KEY value`` arguments: the object version and where it belongs."""
    arguments = {
        "--raw_path": obj.uri,
        "--bucket": obj.bucket,
        "--key": obj.key,
        "--etag": obj.etag,
        "--size": str(int(obj.size or 0)),
        "--event_time": obj.event_time.astimezone(timezone.utc).isoformat(),
        "--run_id": run_id,
        "--dataset": dataset,
        "--ingest_date": ingest_date,
    }
    if obj.version_id:
        # Glue refuses an empty argument value; an unversioned object has none.
        arguments["--version_id"] = obj.version_id
    return arguments


def delegate(
    obj: RawObject, dataset: str, run_id: str, ingest_date: str, contract: Contract
) -> ObjectResult:
    """Start (or find) the Glue job run validating ``obj``; the part stays open until it ends."""
    from mlops.validation.objects import METRIC_OF_OUTCOME, ObjectResult

    job_name = get_settings().require("validation_glue_job_name")
    job_run_id = _live_run(run_id, obj, job_name)
    if job_run_id is None:
        try:
            job_run_id = client("glue").start_job_run(
                JobName=job_name,
                Arguments=job_arguments(obj, dataset, run_id, ingest_date),
            )["JobRunId"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConcurrentRunsExceededException":
                raise GlueBusy(
                    f"{job_name} has no free run slot for {obj.uri}; the event is retried"
                ) from exc
            raise
        _record(run_id, dataset, obj, job_name, job_run_id)
        logger.info(
            "object handed to the validation job",
            extra={"job_name": job_name, "job_run_id": job_run_id, "size": obj.size},
        )
    else:
        logger.info(
            "object already being validated by the job",
            extra={"job_name": job_name, "job_run_id": job_run_id},
        )
    return ObjectResult(
        outcome="delegated",
        metric=METRIC_OF_OUTCOME["delegated"],
        run_id=run_id,
        dataset=dataset,
        key=obj.key,
        version=obj.version,
        reason=f"validated by Glue job {job_name}, run {job_run_id} (contract {contract.version})",
    )


def _live_run(run_id: str, obj: RawObject, job_name: str) -> str | None:
    """The job run already validating this object version, if one is going or succeeded."""
    earlier = (run_item(run_id).get("delegated") or {}).get(obj.key) or {}
    if earlier.get("version") != obj.version or earlier.get("job_name") != job_name:
        return None
    try:
        state = client("glue").get_job_run(JobName=job_name, RunId=earlier["job_run_id"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "EntityNotFoundException":
            return None
        raise
    return earlier["job_run_id"] if state["JobRun"]["JobRunState"] in LIVE_STATES else None


def _record(run_id: str, dataset: str, obj: RawObject, job_name: str, job_run_id: str) -> None:
    """Note on the run's validate item which job run holds the object (not a part: not done)."""
    table = resource("dynamodb").Table(get_settings().require("ledger_table"))
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    common: dict[str, Any] = {
        "Key": {"run_id": run_id, "stage": STAGE},
        "ExpressionAttributeNames": {"#status": "status"},
    }
    # DynamoDB sets a path inside a map only once the map exists: two updates.
    table.update_item(
        UpdateExpression=(
            "SET delegated = if_not_exists(delegated, :nothing), dataset = :ds, "
            "started_at = if_not_exists(started_at, :now), updated_at = :now, "
            "#status = if_not_exists(#status, :started)"
        ),
        ExpressionAttributeValues={
            ":nothing": {},
            ":ds": dataset,
            ":now": now,
            ":started": ledger.Status.STARTED.value,
        },
        **common,
    )
    common["ExpressionAttributeNames"] = {"#k": obj.key}
    table.update_item(
        UpdateExpression="SET delegated.#k = :d",
        ExpressionAttributeValues={
            ":d": {
                "version": obj.version,
                "version_id": obj.version_id,
                "job_name": job_name,
                "job_run_id": job_run_id,
                "at": now,
            }
        },
        **common,
    )


def mark_finished(run_id: str, key: str, job_run_id: str) -> None:
    """The job has recorded its object: a later state change of its run has nothing to do."""
    table = resource("dynamodb").Table(get_settings().require("ledger_table"))
    # A failed condition: not this run's object any more (a newer version was delegated
    # since), or a run started by hand. Nothing to mark either way.
    with contextlib.suppress(table.meta.client.exceptions.ConditionalCheckFailedException):
        table.update_item(
            Key={"run_id": run_id, "stage": STAGE},
            UpdateExpression="SET delegated.#k.finished = :id",
            ConditionExpression="delegated.#k.job_run_id = :id",
            ExpressionAttributeNames={"#k": key},
            ExpressionAttributeValues={":id": job_run_id},
        )


def record_job_end(detail: JobRunEnded) -> ObjectResult | None:
    """Record the object of a job run that ended without recording it; None if it did.

    Only the run the ledger names for the key counts (an older version's run is nobody's
    concern now), and only while it has not marked the entry finished.
    """
    from mlops.observability import bind_run
    from mlops.validation import objects

    glue_run = client("glue").get_job_run(JobName=detail.jobName, RunId=detail.jobRunId)["JobRun"]
    arguments = glue_run.get("Arguments") or {}
    obj = objects.RawObject(
        bucket=arguments["--bucket"],
        key=arguments["--key"],
        version_id=arguments.get("--version_id"),
        etag=arguments.get("--etag", ""),
        size=int(arguments.get("--size") or 0) or None,
        event_time=datetime.fromisoformat(arguments["--event_time"]),
    )
    run_id, dataset = arguments["--run_id"], arguments["--dataset"]
    bind_run(run_id, dataset=dataset, object_key=obj.key, job_run_id=detail.jobRunId)
    item = run_item(run_id)
    entry = (item.get("delegated") or {}).get(obj.key) or {}
    if entry.get("job_run_id") != detail.jobRunId or entry.get("finished") == detail.jobRunId:
        logger.info(
            "validation job run ended with its object recorded",
            extra={"job_run_id": detail.jobRunId, "state": detail.state},
        )
        return None
    closed = closed_reason(item, owner=f"{obj.key}#{obj.version}")
    if closed:
        result = objects.refuse(obj, dataset, run_id, closed)
    else:
        error = glue_run.get("ErrorMessage") or detail.message or "no message"
        reason = f"validation job run {detail.jobRunId} ended {detail.state}: {error}"[:1000]
        result = objects.unreadable(obj, dataset, run_id, arguments["--ingest_date"], None, reason)
    mark_finished(run_id, obj.key, detail.jobRunId)
    return result
