"""The pipeline on the local cloud: a demo run end to end, a user's upload, a failing handler
retried then dead-lettered, and nothing left running afterwards."""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import urlopen

import boto3
import pytest

import localcloud.cli as cli
import localcloud.cloud as cloud_module
from localcloud.cloud import LocalCloud
from localcloud.ledger_view import LedgerView, StageItem
from localcloud.pipeline import RunOutcome, follow, sample_prediction, start_demo_run
from localcloud.remote import write_state

pytestmark = pytest.mark.e2e

# The demo site is ours, on 127.0.0.1: no need for the template's politeness delay.
FAST = {"PolitenessDelaySeconds": "0"}
DEMO_LISTINGS = 300


def ledger(cloud: LocalCloud) -> LedgerView:
    return LedgerView(cloud.client("dynamodb"), cloud.resources["RunLedgerTable"])


def wait_for_stage(view: LedgerView, run_id: str, stage: str, timeout: float = 120) -> StageItem:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in view.run(run_id):
            if item.stage == stage and item.status != "STARTED":
                return item
        time.sleep(0.3)
    raise AssertionError(f"{stage} of {run_id} not recorded within {timeout}s")


def user_client(cloud: LocalCloud, service: str) -> Any:
    """A plain boto3 client, as a user would point the aws CLI at the local endpoint."""
    return boto3.client(
        service,
        endpoint_url=cloud.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="user",
        aws_secret_access_key="user",
    )


@pytest.fixture
def light_cloud() -> Iterator[LocalCloud]:
    """Handlers only: managed compute is left to moto (no Spark, no training)."""
    with LocalCloud(parameters=FAST, executors=[], http_api=False) as cloud:
        yield cloud


@pytest.fixture(scope="module")
def demo_run() -> tuple[RunOutcome, LocalCloud, dict[str, Any] | None]:
    """One demo run through every stage, ending in a prediction served by the web API; the
    cloud (stopped) keeps what its strict gate checked."""
    demosite = pytest.importorskip("demosite")
    with LocalCloud(parameters=FAST) as cloud, demosite.serve(listings=DEMO_LISTINGS) as site:
        view = ledger(cloud)
        start_demo_run(cloud, site.url)
        outcome = follow(cloud, view, since=set(), run_id=None, timeout=900, echo=lambda line: None)
        prediction = sample_prediction(cloud)
        assert cloud.http_api_url
        for path in ("health", "model"):
            with urlopen(f"{cloud.http_api_url.rstrip('/')}/{path}", timeout=30) as response:
                assert response.status == 200
    return outcome, cloud, prediction


def test_a_demo_run_goes_through_every_stage_and_its_counts_reconcile(
    demo_run: tuple[RunOutcome, LocalCloud, dict[str, Any] | None],
) -> None:
    outcome, _, prediction = demo_run

    stages = {item.stage: item for item in outcome.stages}
    assert prediction is not None and prediction["status"] == 200
    assert outcome.finished == "quiescent"
    assert not outcome.failed, [(s.stage, s.short_reason) for s in outcome.failed]
    assert outcome.missing is None, f"{outcome.missing[0]} triggered nothing"
    assert outcome.ok
    assert not [s for s in stages if s.startswith("dlq:")]
    scraped = stages["scrape"].counts["records"]
    validated = stages["validate"].counts
    assert scraped == DEMO_LISTINGS
    assert scraped == validated["rows_valid"] + validated["rows_quarantined"]
    if "prepare" in stages:
        prepared = stages["prepare"].counts
        split = prepared["train"] + prepared["validation"] + prepared["test"]
        dropped = prepared.get("duplicates_dropped", 0) + prepared.get("rows_dropped", 0)
        assert split + dropped == validated["rows_valid"]


def test_a_csv_uploaded_by_a_user_starts_a_run(light_cloud: LocalCloud, tmp_path: Path) -> None:
    from demosite.catalogue import COLUMNS, Catalogue

    rows = Catalogue.generate(listings=40, seed=3).listings
    csv = ",".join(COLUMNS) + "\n"
    for row in rows:
        csv += ",".join("" if row[c] is None else str(row[c]) for c in COLUMNS) + "\n"
    s3 = user_client(light_cloud, "s3")

    put = s3.put_object(
        Bucket=light_cloud.resources["RawBucket"], Key="used_cars/my-cars.csv", Body=csv.encode()
    )

    from mlops.runs import run_id_for_object

    run_id = run_id_for_object("used_cars/my-cars.csv", put["VersionId"])
    validate = wait_for_stage(ledger(light_cloud), run_id, "validate")
    assert validate.status == "SUCCEEDED"
    assert validate.counts["rows_valid"] + validate.counts["rows_quarantined"] == len(rows)


def test_a_failing_handler_is_retried_then_dead_lettered_and_shown_by_status(
    light_cloud: LocalCloud,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    attempts: list[str] = []
    real_loader = cloud_module.load_handler

    def failing_validate(spec: Any) -> Any:
        if spec.logical_id != "ValidateFunction":
            return real_loader(spec)

        def handler(event: dict[str, Any], context: Any) -> None:
            attempts.append(event["id"])
            raise ConnectionError("the lake is unreachable")

        return handler

    monkeypatch.setattr(cloud_module, "load_handler", failing_validate)
    run_id = "20261127T000000Z-deadbeef"
    key = f"dataset=used_cars/ingest_date=2026-11-27/run_id={run_id}/part-00000.jsonl.gz"
    body = gzip.compress(json.dumps({"listing_id": "L1"}).encode() + b"\n")
    user_client(light_cloud, "s3").put_object(
        Bucket=light_cloud.resources["RawBucket"], Key=key, Body=body
    )

    dead = wait_for_stage(ledger(light_cloud), run_id, "dlq:ValidateFunction", timeout=60)
    assert light_cloud.wait_quiescent(timeout=30)
    assert len(attempts) == light_cloud.retry_attempts("ValidateFunction")
    assert len(attempts) == 1 + int(
        light_cloud.template.resources["ValidateFunctionEventInvokeConfig"]["Properties"][
            "MaximumRetryAttempts"
        ]
    )
    assert len(set(attempts)) == 1  # the same event each time
    assert dead.status == "FAILED" and "unreachable" in (dead.reason or "")
    sqs = user_client(light_cloud, "sqs")
    dlq_name = light_cloud.functions["ValidateFunction"].dead_letter_arn.rsplit(":", 1)[1]
    dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
    parked = sqs.receive_message(QueueUrl=dlq_url)["Messages"]
    assert json.loads(parked[0]["Body"])["id"] == attempts[0]

    write_state(
        tmp_path,
        {
            "pid": os.getpid(),
            "endpoint_url": light_cloud.endpoint_url,
            "resources": light_cloud.resources,
            "rules": light_cloud.rule_queues(),
        },
    )
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    capsys.readouterr()
    assert cli.main(["status", run_id]) == 0
    shown = capsys.readouterr().out
    assert "dlq:ValidateFunction" in shown and "FAILED" in shown


def test_status_says_when_no_local_cloud_is_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    assert cli.main(["status"]) != 0
    assert "no local cloud running" in capsys.readouterr().out


def _accepts(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


def test_nothing_is_left_running_after_the_cloud_stops() -> None:
    before = set(threading.enumerate())
    cloud = LocalCloud(parameters=FAST)
    cloud.start()
    urls = [cloud.endpoint_url] + ([cloud.http_api_url] if cloud.http_api_url else [])
    assert all(_accepts(url) for url in urls)
    cloud.fire_schedule("ScrapeFunction", {"start_url": "http://127.0.0.1:9/"})

    cloud.stop()

    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == []
    assert not any(_accepts(url) for url in urls)
    assert not cloud.workdir.exists()


def test_mlops_local_run_on_a_user_dataset_prints_a_reconciled_json_summary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import localcloud.remote as remote
    from demosite.catalogue import COLUMNS, Catalogue

    # Its own cloud even if a developer's `mlops local up` is running.
    monkeypatch.setattr(remote, "live_state", lambda root: None)
    contract = tmp_path / "garage.yaml"
    bundled = Path(cli.PROJECT_ROOT) / "layers/shared/mlops/contracts/used_cars.yaml"
    contract.write_text(bundled.read_text().replace("name: used_cars", "name: garage_cars", 1))
    data = tmp_path / "cars.csv"
    rows = Catalogue.generate(listings=150, seed=5).listings
    lines = [",".join(COLUMNS)]
    lines += [",".join("" if r[c] is None else str(r[c]) for c in COLUMNS) for r in rows]
    data.write_text("\n".join(lines) + "\n")

    arguments = ["local", "run", "--data", str(data), "--contract", str(contract)]
    code = cli.main([*arguments, "--json", "--timeout", "600"])

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, summary.get("failure")
    assert summary["ok"] is True
    assert summary["run_id"].startswith("upload-")
    assert summary["reconciliation"]["rows_in"] == len(rows)
    assert summary["reconciliation"]["reconciles"] is True
    assert [s["stage"] for s in summary["stages"]][:2] == ["validate", "prepare"]


_DLQ = "Lambda writes a failed event to the function's DLQ as the role (dead-letter tests)"
_DLQ_KEY = "SQS/SNS use the key for the role: an encrypted DLQ or notification topic"
_MISSING_KEY = "S3 answers NoSuchKey rather than 403 for a missing key only with ListBucket"
_REDELIVERY = "a redelivered event reads the run's ledger items (Query)"
_NOTIFY = "notifications: failures and packages left for manual approval"
_PROD = "prod: instance-backed endpoint with autoscaling and rollback alarms"
_ROLES = (
    "Scrape",
    "Validate",
    "StartPreparation",
    "StartTraining",
    "Evaluate",
    "Deploy",
    "Monitor",
)
_FIRST_RUN = (
    "a run with a champion to compare (the demo's first has none: test_monitor_localcloud.py)"
)
_LARGE = "an object over ValidationGlueMinBytes (tests/e2e/test_large_objects.py)"
# Grants the demo run cannot exercise, each with the path that needs it.
NOT_ON_THE_DEMO_PATH: dict[tuple[str, str], str] = {
    **{(f"{r}FunctionRole", "sqs:SendMessage"): _DLQ for r in _ROLES},
    **{
        (f"{r}FunctionRole", a): _DLQ_KEY
        for r in _ROLES
        for a in ("kms:GenerateDataKey", "kms:Decrypt")
    },
    **{
        (f"{r}FunctionRole", "s3:ListBucket"): _MISSING_KEY
        for r in _ROLES[:1] + _ROLES[2:] + ("Web",)
    },
    **{
        (f"{r}FunctionRole", "dynamodb:Query"): _REDELIVERY
        for r in ("StartPreparation", "Evaluate", "Deploy")
    },
    ("EvaluateFunctionRole", "sns:Publish"): _NOTIFY,
    ("DeployFunctionRole", "sns:Publish"): _NOTIFY,
    ("DeployFunctionRole", "application-autoscaling:RegisterScalableTarget"): _PROD,
    ("DeployFunctionRole", "application-autoscaling:PutScalingPolicy"): _PROD,
    ("DeployFunctionRole", "cloudwatch:PutMetricAlarm"): _PROD,
    ("DeployFunctionRole", "cloudwatch:DescribeAlarms"): _PROD,
    ("DeployFunctionRole", "cloudwatch:DeleteAlarms"): _PROD,
    ("DeployFunctionRole", "iam:CreateServiceLinkedRole"): _PROD,
    ("DeployFunctionRole", "sagemaker:UpdateEndpointWeightsAndCapacities"): _PROD,
    ("SageMakerExecutionRole", "cloudwatch:DescribeAlarms"): _PROD,
    ("DeployFunctionRole", "sagemaker:UpdateEndpoint"): "a second approved version (blue/green)",
    ("DeployFunctionRole", "sagemaker:DeleteEndpoint"): (
        "an endpoint that failed to create, or no Approved version left to serve"
    ),
    ("DeployFunctionRole", "sagemaker:ListTags"): "a model already created by a redelivery",
    ("EvaluateFunctionRole", "sagemaker:CreateModelPackageGroup"): "a user dataset's first model",
    ("EvaluateFunctionRole", "sagemaker:ListTags"): "a training event without its tags",
    ("StartTrainingFunctionRole", "sagemaker:DescribeTrainingJob"): "a redelivered event",
    ("StartTrainingFunctionRole", "sagemaker:DescribeEndpointConfig"): "a champion in production",
    ("StartTrainingFunctionRole", "sagemaker:DescribeModel"): "a champion in production",
    ("StartPreparationFunctionRole", "dynamodb:DeleteItem"): "a start that Glue refused",
    ("StartPreparationFunctionRole", "sns:Publish"): "a run queued past PreparationMaxWaitMinutes",
    ("ValidateFunctionRole", "dynamodb:GetItem"): "Powertools idempotency: a duplicate",
    ("ValidateFunctionRole", "dynamodb:DeleteItem"): "Powertools idempotency: a failure",
    ("ValidateFunctionRole", "glue:UpdateTable"): "a dataset whose columns change",
    ("ValidateFunctionRole", "s3:DeleteObject"): "an object validated again",
    ("ValidateFunctionRole", "s3:GetObject"): "an event without a version id",
    ("ScrapeFunctionRole", "events:PutEvents"): "a crawl longer than one invocation",
    ("StartPreparationFunctionRole", "sagemaker:DescribeModelPackage"): (
        "a champion to compare the window with (test_training_window_localcloud.py)"
    ),
    ("ScrapeFunctionRole", "sns:Publish"): "a broken layout (tests/e2e/test_broken_scrape.py)",
    ("ValidateFunctionRole", "glue:StartJobRun"): _LARGE,
    ("ValidateFunctionRole", "glue:GetJobRun"): _LARGE,
    **{
        ("ValidationJobRole", a): _LARGE
        for a in (
            "events:PutEvents",
            "s3:ListBucket",
            "s3:GetObject",
            "s3:GetObjectVersion",
            "glue:BatchCreatePartition",
            "glue:CreateTable",
            "glue:GetTable",
            "glue:UpdateTable",
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            "s3:DeleteObject",
            "s3:PutObject",
        )
    },
    **{
        ("MonitorFunctionRole", a): _FIRST_RUN
        for a in (
            "sagemaker:DescribeModelPackage",
            "s3:GetObject",
            "sagemaker:DescribeEndpoint",
            "sagemaker:InvokeEndpoint",
        )
    },
    ("GlueJobRole", "s3:DeleteObject"): "a run prepared again (its curated prefix replaced)",
    # Spark's output committer on Glue checks and reads back what it writes; the local
    # executor uploads the output with boto3 and reads nothing.
    ("GlueJobRole", "s3:GetObject"): "Spark on Glue reading its own output (committer)",
    ("SageMakerExecutionRole", "cloudwatch:PutMetricData"): "the real training container",
    ("SageMakerExecutionRole", "logs:CreateLogGroup"): "the real containers' logs",
    ("SageMakerExecutionRole", "logs:CreateLogStream"): "the real containers' logs",
    ("SageMakerExecutionRole", "logs:DescribeLogStreams"): "the real containers' logs",
    ("SageMakerExecutionRole", "logs:PutLogEvents"): "the real containers' logs",
    ("SageMakerExecutionRole", "s3:GetObject"): "checkpoints of an interrupted spot job",
    # Firehose's S3 delivery: the local stand-in writes one PutObject per batch; Firehose
    # itself also checks the bucket, uploads large objects in parts and cleans up after them.
    **{
        ("CaptureDeliveryRole", a): "Firehose's own S3 delivery (multipart, bucket checks)"
        for a in (
            "s3:GetObject",
            "s3:AbortMultipartUpload",
            "s3:GetBucketLocation",
            "s3:ListBucket",
            "s3:ListBucketMultipartUploads",
        )
    },
}


def test_every_grant_a_role_has_is_needed_by_the_demo_run(
    demo_run: tuple[RunOutcome, LocalCloud, dict[str, Any] | None],
) -> None:
    """Least privilege, measured: for each action of each statement the template gives a role,
    some call of the demo run is refused once that action is taken out of that statement."""
    from localcloud.strict import iam

    _, cloud, _ = demo_run
    assert cloud.gate is not None
    unneeded = []
    for logical_id, role in cloud.provisioned.items():
        if role.type != "AWS::IAM::Role":
            continue
        arn = role.attributes["Arn"]
        calls = [c for c in cloud.gate.checked if c.role_arn == arn and c.allowed]
        documents = [p["PolicyDocument"] for p in role.properties.get("Policies", [])]
        for d, document in enumerate(documents):
            for s, statement in enumerate(iam.statements(document)):
                actions = statement.get("Action", [])
                for action in [actions] if isinstance(actions, str) else actions:
                    reduced = _without(documents, d, s, action)
                    if not any(_refused(cloud, c, reduced, arn) for c in calls):
                        unneeded.append((logical_id, statement.get("Sid", "-"), action))
    extra = sorted(
        (role, sid, action)
        for role, sid, action in unneeded
        if (role, action) not in NOT_ON_THE_DEMO_PATH and ("*", action) not in NOT_ON_THE_DEMO_PATH
    )
    assert extra == [], "\n".join(" ".join(e) for e in extra)


def _without(
    documents: list[dict[str, Any]], document: int, statement: int, action: str
) -> list[dict[str, Any]]:
    from localcloud.strict import iam

    reduced = json.loads(json.dumps(documents))
    target = iam.statements(reduced[document])[statement]
    actions = target["Action"]
    target["Action"] = [
        a for a in ([actions] if isinstance(actions, str) else actions) if a != action
    ]
    return reduced


def _refused(cloud: LocalCloud, call: Any, documents: list[dict[str, Any]], arn: str) -> bool:
    from localcloud.strict import iam

    decision = iam.evaluate(
        call.request,
        documents,
        resource_policy=cloud.gate.resource_policy_for(call.request.resource),
        principal_arn=arn,
    )
    return not decision.allowed
