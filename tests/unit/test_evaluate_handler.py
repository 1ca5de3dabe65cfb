"""The evaluate function in moto: register, report, ledger, notifications, redelivery."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import load_event

from localcloud.executors.registry import ModelRegistryEvents
from mlops import ledger
from tests.fakes import RecordingCloud

ROOT = Path(__file__).resolve().parents[2]
GROUP = "mlops-used-cars-dev"
RUN_ID = "20261127T083000Z-1a2b3c4d"
JOB = f"mlops-used-cars-{RUN_ID}"
ARTIFACTS = "mlops-dev-artifacts-123456789012"  # as in the sample events
MODEL_KEY = f"models/used_cars/{JOB}/output/model.tar.gz"


def evaluation_json(candidate: float = 1200.0, champion: float | None = None) -> dict[str, Any]:
    return {
        "task": "regression",
        "metric": "rmse",
        "candidate": {"rmse": candidate, "mae": candidate * 0.7, "r2": 0.91},
        "baseline": {"rmse": 8000.0, "mae": 6000.0, "r2": 0.0},
        "champion": None if champion is None else {"rmse": champion},
        "test_rows": 4,
        "sample": {"y_true": [10000, 12000, 9000, 20000], "y_pred": [10500, 11800, 9400, 19000]},
        "feature_importance": {"year": 0.5, "mileage": 0.3, "make": 0.2},
    }


def model_tarball(evaluation: dict[str, Any] | None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        files = {"model.joblib": b"not a real model"}
        if evaluation is not None:
            files["evaluation.json"] = json.dumps(evaluation).encode()
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


SAMPLES = {
    "Completed": "training_job_completed.json",
    "Failed": "training_job_failed.json",
    "Stopped": "training_job_stopped.json",
}


def training_event(
    status: str = "Completed", job: str = JOB, run_id: str = RUN_ID
) -> dict[str, Any]:
    """The sample event for ``status``, moved to another job/run when asked."""
    sample = load_event(SAMPLES[status])
    text = json.dumps(sample).replace(JOB, job).replace(RUN_ID, run_id)
    return json.loads(text)


@pytest.fixture
def cloud(
    aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """Ledger, artifacts bucket, the default model package group, SNS read through SQS, and
    the registry's state-change events (with SageMaker's metadata-merging updates)."""
    registry_events, recorder = ModelRegistryEvents(), RecordingCloud(tmp_path)
    registry_events.start(recorder)
    declared_table("RunLedgerTable", "ledger")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=ARTIFACTS)
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="notifications")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    for name, value in {
        "LEDGER_TABLE": "ledger",
        "ARTIFACTS_BUCKET": ARTIFACTS,
        "STAGE": "dev",
        "DATASET": "used_cars",
        "NOTIFICATION_TOPIC_ARN": topic,
        "APPROVAL_POLICY": "auto",
        "CHAMPION_MARGIN": "0.0",
    }.items():
        monkeypatch.setenv(name, value)
    yield {
        "s3": s3,
        "sqs": sqs,
        "queue": queue,
        "sagemaker": boto3.client("sagemaker"),
        "events": recorder,
    }
    recorder.wait()
    registry_events.stop()


def upload_model(cloud: dict[str, Any], evaluation: dict[str, Any] | None, job: str = JOB) -> None:
    key = MODEL_KEY.replace(JOB, job)
    cloud["s3"].put_object(Bucket=ARTIFACTS, Key=key, Body=model_tarball(evaluation))


def notifications(cloud: dict[str, Any]) -> list[str]:
    messages = cloud["sqs"].receive_message(QueueUrl=cloud["queue"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"])["Message"] for m in messages.get("Messages", [])]


def packages(cloud: dict[str, Any], group: str = GROUP) -> list[dict[str, Any]]:
    sagemaker = cloud["sagemaker"]
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=group)[
        "ModelPackageSummaryList"
    ]
    return [
        sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries
    ]


def stage(run_id: str, name: str) -> dict[str, Any]:
    return next(item for item in ledger.stages(run_id) if item["stage"] == name)


def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from functions.evaluate.app import lambda_handler

    return lambda_handler(event, context)


def test_completed_job_registers_an_approved_package_with_metrics_and_lineage(
    cloud, lambda_context
) -> None:
    # given a finished job whose model beats the baseline and no champion exists
    upload_model(cloud, evaluation_json(candidate=1200.0))
    # when the state change arrives
    result = invoke(training_event("Completed"), lambda_context)
    # then one Approved package points at the model, its evaluation and its run
    [package] = packages(cloud)
    assert result["outcome"] == "Approved"
    assert package["ModelApprovalStatus"] == "Approved"
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == f"s3://{ARTIFACTS}/{MODEL_KEY}"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert "sagemaker-scikit-learn" in container["Image"]
    assert set(package["InferenceSpecification"]["SupportedContentTypes"]) == {
        "application/json",
        "text/csv",
    }
    props = package["CustomerMetadataProperties"]
    assert props["run_id"] == RUN_ID and props["training_job"] == JOB
    assert props["contract_version"] == "1.0.0"
    assert props["trained_at"].startswith("2026-11-27T")
    train_channel = training_event()["detail"]["InputDataConfig"][0]["DataSource"]
    assert props["curated_prefix"] == train_channel["S3DataSource"]["S3Uri"].split("split=")[0]
    assert float(props["candidate"]) == 1200.0 and float(props["baseline"]) == 8000.0
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert (
        statistics
        == f"s3://{ARTIFACTS}/evaluations/dataset=used_cars/run_id={RUN_ID}/evaluation.json"
    )


def test_an_approved_package_becomes_approved_through_a_state_change_the_deploy_rule_sees(
    cloud, lambda_context
) -> None:
    # given a model good enough to approve
    upload_model(cloud, evaluation_json(candidate=1200.0))
    # when it is evaluated
    invoke(training_event("Completed"), lambda_context)
    cloud["events"].wait()
    # then it was created pending and approved by an update: the event deploy waits for
    # comes from a status change, whether or not AWS emits one on creation
    statuses = [e["detail"]["ModelApprovalStatus"] for e in cloud["events"].events]
    assert statuses == ["PendingManualApproval", "Approved"]


def test_a_retry_finishes_an_approval_the_crashed_attempt_left_pending(
    cloud, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops.evaluation import registry

    # given an evaluation that died after creating its approved package but before approving
    upload_model(cloud, evaluation_json(candidate=1200.0))
    with monkeypatch.context() as patched, pytest.raises(RuntimeError):
        patched.setattr(registry, "approve", _crash)
        invoke(training_event("Completed"), lambda_context)
    assert packages(cloud)[0]["ModelApprovalStatus"] == "PendingManualApproval"
    # when Lambda retries the event
    invoke(training_event("Completed"), lambda_context)
    # then the same package ends Approved, and no second one exists
    [package] = packages(cloud)
    assert package["ModelApprovalStatus"] == "Approved"


def _crash(arn: str) -> None:
    raise RuntimeError("the function died here")


def test_completed_job_uploads_an_evaluation_report_and_an_html_page_with_plots(
    cloud, lambda_context
) -> None:
    upload_model(cloud, evaluation_json())
    invoke(training_event(), lambda_context)
    prefix = f"evaluations/dataset=used_cars/run_id={RUN_ID}/"
    report = json.loads(
        cloud["s3"].get_object(Bucket=ARTIFACTS, Key=prefix + "evaluation.json")["Body"].read()
    )
    page = (
        cloud["s3"].get_object(Bucket=ARTIFACTS, Key=prefix + "report.html")["Body"].read().decode()
    )
    assert report["decision"]["status"] == "Approved"
    assert report["evaluation"]["candidate"]["rmse"] == 1200.0
    assert page.count("<svg") == 3  # predicted vs actual, residuals, feature importance
    assert "Predicted vs actual" in page and "mileage" in page


def test_completed_job_records_the_decision_in_the_ledger(cloud, lambda_context) -> None:
    upload_model(cloud, evaluation_json())
    invoke(training_event(), lambda_context)
    item = stage(RUN_ID, "evaluate")
    assert item["status"] == "SUCCEEDED"
    assert item["decision"] == "Approved"
    assert item["model_package_version"] == 1
    assert item["candidate"] == 1200.0 and item["baseline"] == 8000.0
    assert item["report_url"].endswith("report.html")


def test_completed_job_records_the_training_stage_as_succeeded(cloud, lambda_context) -> None:
    upload_model(cloud, evaluation_json())
    invoke(training_event(), lambda_context)
    item = stage(RUN_ID, "train")
    detail = training_event()["detail"]
    assert item["status"] == "SUCCEEDED"
    assert item["counts"] == {"seconds": detail["TrainingTimeInSeconds"]}
    assert item["model_data_url"] == detail["ModelArtifacts"]["S3ModelArtifacts"]


def test_a_finished_job_records_what_sagemaker_bills_it_for(cloud, lambda_context) -> None:
    # Given a completed spot training job whose state change carries its billable time
    upload_model(cloud, evaluation_json())
    detail = training_event()["detail"]

    # when evaluate hears it
    invoke(training_event(), lambda_context)

    # then the train item carries what mlops.costs prices: billable seconds, instance, spot
    item = stage(RUN_ID, "train")
    assert item["billable_seconds"] == detail["BillableTimeInSeconds"]
    assert item["instance_type"] == detail["ResourceConfig"]["InstanceType"]
    assert item["spot"] is True


def test_a_model_worse_than_the_baseline_is_registered_rejected_with_the_reason(
    cloud, lambda_context
) -> None:
    upload_model(cloud, evaluation_json(candidate=9000.0))
    invoke(training_event(), lambda_context)
    [package] = packages(cloud)
    assert package["ModelApprovalStatus"] == "Rejected"
    item = stage(RUN_ID, "evaluate")
    assert item["status"] == "SUCCEEDED" and "baseline" in item["reason"]


def test_pending_decision_notifies_how_to_approve(cloud, lambda_context, monkeypatch) -> None:
    # given the manual approval policy
    monkeypatch.setenv("APPROVAL_POLICY", "manual")
    upload_model(cloud, evaluation_json())
    invoke(training_event(), lambda_context)
    [package] = packages(cloud)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert stage(RUN_ID, "evaluate")["status"] == "PENDING"
    [message] = notifications(cloud)
    assert "mlops approve 1" in message and "SageMaker console" in message


def test_champion_from_the_registry_is_compared_when_the_evaluation_has_none(
    cloud, lambda_context
) -> None:
    # given an approved champion with a lower error than the new candidate
    upload_model(cloud, evaluation_json(candidate=1000.0))
    invoke(training_event(), lambda_context)
    second = "20261128T083000Z-2b3c4d5e"
    upload_model(cloud, evaluation_json(candidate=1100.0), job=f"mlops-used-cars-{second}")
    # when a newer run's job completes
    result = invoke(training_event(job=f"mlops-used-cars-{second}", run_id=second), lambda_context)
    # then it waits for a person rather than replacing a better model
    assert result["outcome"] == "PendingManualApproval"
    assert stage(second, "evaluate")["champion"] == 1000.0


def test_metadata_naming_a_registry_champion_is_accepted_by_the_sagemaker_api(
    cloud, lambda_context
) -> None:
    from test_registry_metadata import violations

    # given an approved champion in the registry and a newer job whose evaluation has none
    upload_model(cloud, evaluation_json(candidate=1000.0))
    invoke(training_event(), lambda_context)
    second = "20261128T083000Z-2b3c4d5e"
    upload_model(cloud, evaluation_json(candidate=1100.0), job=f"mlops-used-cars-{second}")
    # when the newer job is evaluated against the registry champion
    invoke(training_event(job=f"mlops-used-cars-{second}", run_id=second), lambda_context)
    # then every metadata key and value matches botocore's CustomerMetadataProperties model
    [package] = [p for p in packages(cloud) if p["CustomerMetadataProperties"]["run_id"] == second]
    props = package["CustomerMetadataProperties"]
    assert props["champion_source"] == "registry v1 scored on its own test set"
    assert violations(props) == []


def test_metadata_carrying_a_champion_note_with_punctuation_is_accepted_by_the_sagemaker_api(
    cloud, lambda_context
) -> None:
    from test_registry_metadata import violations

    # given a training job whose note on the champion holds characters the API refuses
    note = "champion scored (same test rows, 4 of them); see report.html!"
    upload_model(cloud, evaluation_json(champion=1300.0) | {"champion_note": note})
    # when it is evaluated
    invoke(training_event(), lambda_context)
    # then the note is registered in a form the API accepts, its words kept
    [package] = packages(cloud)
    props = package["CustomerMetadataProperties"]
    assert props["champion_source"] == "champion scored same test rows 4 of them see report.html"
    assert violations(props) == []


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_failed_or_stopped_job_registers_nothing_and_notifies_the_reason(
    cloud, lambda_context, status
) -> None:
    result = invoke(training_event(status), lambda_context)
    assert result["outcome"] == "TrainingFailed"
    assert packages(cloud) == []
    reason = training_event(status)["detail"]["FailureReason"]
    [message] = notifications(cloud)
    assert reason in message
    assert stage(RUN_ID, "train")["status"] == "FAILED"
    assert stage(RUN_ID, "train")["reason"] == reason
    assert stage(RUN_ID, "evaluate")["status"] == "FAILED"


def test_a_redelivered_event_registers_one_package(cloud, lambda_context) -> None:
    upload_model(cloud, evaluation_json())
    invoke(training_event(), lambda_context)
    second = invoke(training_event(), lambda_context)
    assert second["outcome"] == "Duplicate"
    assert len(packages(cloud)) == 1


def test_a_retry_after_a_crash_between_register_and_ledger_registers_nothing_new(
    cloud, lambda_context
) -> None:
    # given a first delivery that registered the package but never finished its ledger item
    upload_model(cloud, evaluation_json())
    invoke(training_event(), lambda_context)
    ledger.start(RUN_ID, "evaluate")
    # when the event is retried
    result = invoke(training_event(), lambda_context)
    # then the existing package is recognised by its training job
    assert result["outcome"] == "Duplicate"
    assert len(packages(cloud)) == 1
    assert stage(RUN_ID, "evaluate")["status"] == "SUCCEEDED"


def test_an_artifact_without_evaluation_is_recorded_and_not_retried(cloud, lambda_context) -> None:
    upload_model(cloud, None)
    result = invoke(training_event(), lambda_context)
    assert result["outcome"] == "InvalidEvaluation"
    assert packages(cloud) == []
    assert "no evaluation.json" in stage(RUN_ID, "evaluate")["reason"]


def test_a_user_dataset_gets_its_own_model_package_group(cloud, lambda_context) -> None:
    # given a user's contract for another dataset in the artifacts bucket
    from mlops.contract import bundled_contract

    contract = (ROOT / "layers/shared/mlops/contracts/used_cars.yaml").read_text()
    assert bundled_contract("house_prices") is None
    cloud["s3"].put_object(
        Bucket=ARTIFACTS,
        Key="contracts/house_prices.yaml",
        Body=contract.replace("name: used_cars", "name: house_prices").encode(),
    )
    upload_model(cloud, evaluation_json())
    event = training_event()
    event["detail"]["Tags"]["dataset"] = "house_prices"
    invoke(event, lambda_context)
    assert len(packages(cloud, "mlops-house-prices-dev")) == 1
    assert packages(cloud) == []
