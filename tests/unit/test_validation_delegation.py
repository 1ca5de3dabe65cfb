"""Delegation: an object stored over VALIDATION_GLUE_MIN_BYTES goes to the validation Glue job,
which records it when done; the function writes nothing and leaves the run open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.moto_api import state_manager

from mlops.contract import load_contract
from mlops.runs import run_id_for_object
from mlops.validation import completion
from mlops.validation.delegation import GlueBusy
from mlops.validation.objects import RawObject, validate_object

JOB = "mlops-validate-dev"
RAW = "mlops-raw"
KEY = "used_cars/big.csv"
THRESHOLD = 1000


@pytest.fixture
def glue(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> Iterator[Any]:
    """The validate function's environment, its buckets and ledger, and the job in moto, whose
    runs stay in their first state (moto ends them at once) so MaxConcurrentRuns bites."""
    for name, value in {
        "LEDGER_TABLE": "mlops-ledger",
        "RAW_BUCKET": RAW,
        "VALIDATED_BUCKET": "mlops-validated",
        "QUARANTINE_BUCKET": "mlops-quarantine",
        "ARTIFACTS_BUCKET": "mlops-artifacts",
        "VALIDATION_GLUE_MIN_BYTES": str(THRESHOLD),
        "VALIDATION_GLUE_JOB_NAME": JOB,
        "POWERTOOLS_SERVICE_NAME": "validate",
    }.items():
        monkeypatch.setenv(name, value)
    declared_table("RunLedgerTable", "mlops-ledger")
    s3 = boto3.client("s3")
    for bucket in (RAW, "mlops-validated", "mlops-quarantine", "mlops-artifacts"):
        s3.create_bucket(Bucket=bucket)
    client = boto3.client("glue")
    client.create_job(
        Name=JOB,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://mlops-artifacts/code/glue/validate.py"},
        ExecutionProperty={"MaxConcurrentRuns": 1},
    )
    state_manager.set_transition(
        model_name="glue::job_run", transition={"progression": "manual", "times": 10_000}
    )
    try:
        yield client
    finally:
        state_manager.unset_transition(model_name="glue::job_run")


def large(key: str = KEY, version_id: str = "v1", size: int = THRESHOLD + 1) -> RawObject:
    return RawObject(
        bucket=RAW,
        key=key,
        version_id=version_id,
        etag="0123abcd",
        size=size,
        event_time=datetime(2026, 12, 3, 19, 0, tzinfo=timezone.utc),
    )


def runs(glue: Any) -> list[dict[str, Any]]:
    return glue.get_job_runs(JobName=JOB)["JobRuns"]


def test_an_object_over_the_threshold_starts_the_job_with_the_object_and_its_run(
    glue: Any,
) -> None:
    # given an uploaded object stored one byte over the threshold
    obj = large()

    # when it is validated
    result = validate_object(obj)

    # then one run of the validation job validates that version, into the object's run
    (run,) = runs(glue)
    assert run["Arguments"] == {
        "--raw_path": f"s3://{RAW}/{KEY}",
        "--bucket": RAW,
        "--key": KEY,
        "--version_id": "v1",
        "--etag": "0123abcd",
        "--size": str(THRESHOLD + 1),
        "--event_time": "2026-12-03T19:00:00+00:00",
        "--run_id": result.run_id,
        "--dataset": "used_cars",
        "--ingest_date": "2026-12-03",
    }
    assert (result.outcome, result.metric) == ("delegated", "ObjectsDelegated")
    assert run["Id"] in (result.reason or "")


def test_a_delegated_object_is_not_a_validated_part_so_its_run_stays_open(glue: Any) -> None:
    # given an object handed to the job
    result = validate_object(large())

    # then the run's item names the job run, and counts no part yet
    item = completion.run_item(result.run_id)
    assert item["delegated"][KEY]["job_run_id"] == runs(glue)[0]["Id"]
    assert item["delegated"][KEY]["version"] == "v1"
    assert not item.get("parts") and item.get("part_counts") in (None, {})
    assert item["status"] == "STARTED" and "completion" not in item
    # and nothing was written to the zones
    for bucket in ("mlops-validated", "mlops-quarantine"):
        assert boto3.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_an_object_at_the_threshold_stays_with_the_function(glue: Any) -> None:
    # given an object of exactly the threshold's size, which no longer exists
    obj = large(version_id=None, size=THRESHOLD)

    # when it is validated
    result = validate_object(obj)

    # then the function handled it (here: missing) and no job run started
    assert result.outcome == "missing"
    assert runs(glue) == []


def test_a_redelivered_event_finds_the_live_run_and_starts_no_second(glue: Any) -> None:
    # given an object whose job run is still going
    first = validate_object(large())

    # when the same version's event arrives again (a retry past the idempotency record)
    again = validate_object(large())

    # then it answers with the same job run
    assert len(runs(glue)) == 1
    assert again.outcome == "delegated" and again.reason == first.reason


def test_a_new_version_of_the_key_gets_a_run_of_its_own(glue: Any) -> None:
    # given a key whose first version the job has validated (moto's runs end at once here)
    state_manager.set_transition(
        model_name="glue::job_run", transition={"progression": "immediate"}
    )
    validate_object(large())

    # when a second version of the key is uploaded
    validate_object(large(version_id="v2"))

    # then a second run validates that version
    versions = sorted(r["Arguments"]["--version_id"] for r in runs(glue))
    assert versions == ["v1", "v2"]


def test_glue_refusing_the_run_raises_so_lambda_retries_the_event(glue: Any) -> None:
    # given the job's only run slot taken by another object
    validate_object(large(key="used_cars/other.csv"))

    # when Glue refuses the next run
    with pytest.raises(GlueBusy, match="no free run slot"):
        validate_object(large())

    # then nothing is recorded for the refused object: the retried event starts it afresh
    item = completion.run_item(run_id_for_object(KEY, "v1"))
    assert KEY not in (item.get("delegated") or {})


def test_other_aws_errors_from_glue_raise_as_they_are(glue: Any) -> None:
    # given no job of the configured name
    glue.delete_job(JobName=JOB)

    # then starting it raises AWS's error, to be retried and dead-lettered
    with pytest.raises(ClientError) as raised:
        validate_object(large())
    assert raised.value.response["Error"]["Code"] == "EntityNotFoundException"


def test_the_contract_version_the_job_validates_against_is_named(glue: Any) -> None:
    result = validate_object(large())

    assert load_contract("used_cars").version in (result.reason or "")


# ------------------------------------------------------------- a job run that ended badly


def ended(event: Any, job_run_id: str) -> dict[str, Any]:
    """The sample "Glue Job State Change" (TIMEOUT) of the validation job, for ``job_run_id``."""
    sample = event("validation_job_failed.json")
    sample["detail"]["jobRunId"] = job_run_id
    return sample


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from functions.validate.app import lambda_handler

    return lambda_handler(event, context)


@pytest.fixture
def stored(glue: Any) -> RawObject:
    """An uploaded object over the threshold (unversioned bucket), handed to the job."""
    boto3.client("s3").put_object(Bucket=RAW, Key=KEY, Body=b"listing_id\n" * 100)
    obj = large(version_id=None)
    validate_object(obj)
    return obj


def test_a_job_run_that_timed_out_leaves_its_object_unreadable_with_glues_reason(
    glue: Any, stored: RawObject, event: Any, lambda_context: Any
) -> None:
    # given the job run validating an object, killed at its timeout before recording it
    (run,) = runs(glue)

    # when its state change reaches the validate function
    result = handler(ended(event, run["Id"]), lambda_context)

    # then the object is recorded unreadable with the state and Glue's message, so its run
    # (a lone upload) completes instead of waiting for a part that is not coming
    assert result["outcome"] == "unreadable"
    assert "ended TIMEOUT" in result["reason"] and "timed out after 60 minutes" in result["reason"]
    item = completion.run_item(result["run_id"])
    assert item["part_counts"][KEY]["outcome"] == "unreadable"
    assert item["status"] == "SUCCEEDED" and item["completion"] == "emitted"
    # and a second delivery of the same state change records nothing more
    assert handler(ended(event, run["Id"]), lambda_context) == {"outcome": "already_recorded"}


def test_a_job_run_that_recorded_its_object_is_left_alone(
    glue: Any, stored: RawObject, event: Any, lambda_context: Any
) -> None:
    # given the job run recorded its object, then failed (the script re-raises after that)
    from mlops.validation.delegation import mark_finished

    (run,) = runs(glue)
    run_id = run_id_for_object(KEY, stored.version)
    mark_finished(run_id, KEY, run["Id"])

    # when its FAILED state change arrives
    result = handler(ended(event, run["Id"]), lambda_context)

    # then nothing is recorded over what the job recorded
    assert result == {"outcome": "already_recorded"}
    assert KEY not in (completion.run_item(run_id).get("part_counts") or {})


def test_the_end_of_a_run_for_an_older_version_changes_nothing(
    glue: Any, stored: RawObject, event: Any, lambda_context: Any
) -> None:
    # given the key's object handed to a newer job run since (the ledger names that one)
    (first,) = runs(glue)
    run_id = run_id_for_object(KEY, stored.version)
    state_manager.set_transition(
        model_name="glue::job_run", transition={"progression": "immediate"}
    )
    glue.start_job_run(JobName=JOB, Arguments=first["Arguments"])
    table = boto3.resource("dynamodb").Table("mlops-ledger")
    table.update_item(
        Key={"run_id": run_id, "stage": "validate"},
        UpdateExpression="SET delegated.#k.job_run_id = :other",
        ExpressionAttributeNames={"#k": KEY},
        ExpressionAttributeValues={":other": "jr_newer"},
    )

    # when the first run's state change arrives
    result = handler(ended(event, first["Id"]), lambda_context)

    # then it is not that run's object any more: nothing is recorded
    assert result == {"outcome": "already_recorded"}
