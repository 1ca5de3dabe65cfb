"""AWS would refuse this: each test makes one small change to template.yaml or to a request and
shows the strict local cloud refusing it the way AWS does, with AWS's error code."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from samtranslator.yaml_helper import yaml_parse

from localcloud.cloud import PROJECT_ROOT, LocalCloud
from localcloud.ledger_view import LedgerView
from localcloud.pipeline import follow, start_demo_run

pytestmark = pytest.mark.e2e

FAST = {"PolitenessDelaySeconds": "0"}
Edit = Callable[[dict[str, Any]], None]


def template_with(*edits: Edit) -> str:
    """template.yaml with ``edits`` applied, as text the local cloud loads (JSON is YAML)."""
    sam = yaml_parse((PROJECT_ROOT / "template.yaml").read_text())
    for edit in edits:
        edit(sam)
    return json.dumps(sam)


def without_grant(function: str, action: str, resource_hint: str = "") -> Edit:
    """Remove ``action`` from the statements of ``function``'s policies (only those whose
    Resource mentions ``resource_hint``)."""

    def edit(sam: dict[str, Any]) -> None:
        removed = 0
        for policy in sam["Resources"][function]["Properties"]["Policies"]:
            statements = policy.get("Statement", []) if isinstance(policy, dict) else []
            for statement in list(statements):
                actions = statement["Action"]
                actions = [actions] if isinstance(actions, str) else actions
                if action in actions and resource_hint in json.dumps(statement["Resource"]):
                    statement["Action"] = [a for a in actions if a != action]
                    removed += 1
                    if not statement["Action"]:
                        statements.remove(statement)
        assert removed, f"{function} has no statement granting {action} ({resource_hint})"

    return edit


def with_property(logical_id: str, name: str, value: Any) -> Edit:
    def edit(sam: dict[str, Any]) -> None:
        sam["Resources"][logical_id]["Properties"][name] = value

    return edit


@pytest.fixture
def light_cloud() -> Iterator[LocalCloud]:
    with LocalCloud(
        strict=True, parameters=FAST, executors=[], http_api=False, publish=False
    ) as cloud:
        yield cloud


# ---------------------------------------------------------------------- IAM
@pytest.mark.parametrize(
    ("function", "action", "resource_hint", "stage"),
    [
        ("ScrapeFunction", "s3:PutObject", "RawBucket", "scrape"),
        ("ValidateFunction", "s3:GetObjectVersion", "RawBucket", "validate"),
        ("StartPreparationFunction", "glue:StartJobRun", "", "prepare"),
    ],
)
def test_a_run_stops_with_access_denied_at_the_handler_missing_a_grant(
    function: str, action: str, resource_hint: str, stage: str
) -> None:
    import demosite

    text = template_with(without_grant(function, action, resource_hint))
    with (
        LocalCloud(
            strict=True, parameters=FAST, executors=[], http_api=False, template_text=text
        ) as cloud,
        demosite.serve(listings=60) as site,
    ):
        view = LedgerView(cloud.client("dynamodb"), cloud.resources["RunLedgerTable"])
        start_demo_run(cloud, site.url)
        outcome = follow(cloud, view, since=set(), run_id=None, timeout=300, echo=lambda _: None)
        denied = [(c.request.action, c.role_arn) for c in cloud.gate.denied()]

    role = cloud.provisioned[f"{function}Role"].attributes["Arn"]
    assert (action, role) in denied
    # The run stops there: nothing after the stage ran, and the handler's event was
    # dead-lettered with the refusal.
    ran = {i["function"] for i in cloud.invocations}
    later = {"scrape": "ValidateFunction", "validate": "StartPreparationFunction"}
    assert later.get(stage) not in ran
    assert not [s for s in outcome.stages if s.stage == stage and s.status == "SUCCEEDED"]
    assert [d for d in cloud.dead_letters if d["function"] == function]
    assert all("AccessDenied" in d["reason"] for d in cloud.dead_letters)


# ---------------------------------------------------------------------- request constraints
def test_model_package_metadata_with_a_parenthesis_is_refused_as_a_validation_error(
    light_cloud: LocalCloud,
) -> None:
    sagemaker = light_cloud.client("sagemaker")

    with pytest.raises(ClientError) as refused:
        sagemaker.create_model_package(
            ModelPackageGroupName="mlops-used-cars-dev",
            CustomerMetadataProperties={"champion_source": "registry v3 (its own test set)"},
        )

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "customerMetadataProperties" in refused.value.response["Error"]["Message"]


def test_a_training_job_name_over_63_characters_is_refused(light_cloud: LocalCloud) -> None:
    sagemaker = light_cloud.client("sagemaker")

    with pytest.raises(ClientError) as refused:
        sagemaker.create_training_job(
            TrainingJobName="mlops-" + "x" * 60,
            AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
            RoleArn=f"arn:aws:iam::{light_cloud.account_id}:role/r",
            OutputDataConfig={"S3OutputPath": "s3://b/p"},
            ResourceConfig={
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 1,
            },
            StoppingCondition={"MaxRuntimeInSeconds": 60},
        )

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "63" in refused.value.response["Error"]["Message"]


# ---------------------------------------------------------------------- limits
def test_a_handler_past_its_timeout_is_stopped_and_its_event_dead_lettered() -> None:
    import demosite

    text = template_with(with_property("ScrapeFunction", "Timeout", 1))
    with (
        LocalCloud(
            strict=True, parameters=FAST, executors=[], http_api=False, template_text=text
        ) as cloud,
        demosite.serve(listings=3000) as site,
    ):
        started = time.monotonic()
        cloud.fire_schedule("ScrapeFunction", {"start_url": f"{site.url}listings?page=1"})
        assert cloud.wait_quiescent(timeout=120)
        elapsed = time.monotonic() - started
        scrapes = [i for i in cloud.invocations if i["function"] == "ScrapeFunction"]

    assert scrapes and not scrapes[0]["ok"]
    assert "Task timed out after 1.00 seconds" in scrapes[0]["error"]
    assert scrapes[0]["seconds"] < 5
    assert [d["function"] for d in cloud.dead_letters] == ["ScrapeFunction"]
    assert elapsed < 60


def test_a_glue_run_beyond_max_concurrent_runs_is_refused() -> None:
    def one_run_at_a_time(sam: dict[str, Any]) -> None:
        sam["Resources"]["PreparationJob"]["Properties"]["ExecutionProperty"] = {
            "MaxConcurrentRuns": 1
        }

    text = template_with(one_run_at_a_time)
    executors = ["localcloud.executors.glue:GlueExecutor"]
    with LocalCloud(
        strict=True, parameters=FAST, executors=executors, http_api=False, template_text=text
    ) as cloud:
        glue, job = cloud.client("glue"), cloud.resources["PreparationJob"]
        glue.start_job_run(JobName=job, Arguments={"--run_id": "first"})

        with pytest.raises(ClientError) as refused:
            glue.start_job_run(JobName=job, Arguments={"--run_id": "second"})

    assert refused.value.response["Error"]["Code"] == "ConcurrentRunsExceededException"


def test_a_synchronous_invocation_over_6_mb_is_refused_before_the_handler_runs(
    light_cloud: LocalCloud,
) -> None:
    event = json.loads((PROJECT_ROOT / "events" / "http_post_predictions.json").read_text())
    event["body"] = "x" * (6 * 1024 * 1024)
    before = len(light_cloud.invocations)

    with pytest.raises(ClientError) as refused:
        light_cloud.invoke("WebFunction", event)

    assert refused.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert len(light_cloud.invocations) == before


# ---------------------------------------------------------------------- resource policies
def _rule_dlq_messages(cloud: LocalCloud, queue_arn: str) -> list[dict[str, Any]]:
    sqs = cloud.client("sqs")
    url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return got.get("Messages", [])


def _no_invoke_permission(cloud: LocalCloud, function: str) -> None:
    """Drop the AWS::Lambda::Permission SAM generates for ``function``'s rule (translated
    template), so EventBridge may not invoke it."""
    resources = cloud.template.cfn["Resources"]
    for name in [n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Permission"]:
        if resources[name]["Properties"].get("FunctionName") == {"Ref": function}:
            del resources[name]


def _deliver_without_permission(cloud: LocalCloud) -> Any:
    rule = next(r for r in cloud.rules.values() if r.function == "StartTrainingFunction")
    event = json.loads((PROJECT_ROOT / "events" / "glue_job_succeeded.json").read_text())
    before = len(cloud.invocations)
    assert cloud.invoke_async(rule.function, event, rule) is False
    assert len(cloud.invocations) == before
    return rule


def _cloud_without_permission(text: str | None = None) -> LocalCloud:
    cloud = LocalCloud(
        strict=True,
        parameters=FAST,
        executors=[],
        http_api=False,
        publish=False,
        template_text=text,
    )
    _no_invoke_permission(cloud, "StartTrainingFunction")
    return cloud


def test_eventbridge_puts_an_event_it_may_not_deliver_into_the_rules_dlq() -> None:
    with _cloud_without_permission() as cloud:
        rule = _deliver_without_permission(cloud)
        messages = _rule_dlq_messages(cloud, rule.dead_letter_arn)

    assert "AccessDeniedException" in cloud.dead_letters[-1]["reason"]
    assert "lost" not in cloud.dead_letters[-1]
    assert len(messages) == 1


def test_a_rule_dlq_under_the_aws_managed_sqs_key_loses_the_event() -> None:
    sam = yaml_parse((PROJECT_ROOT / "template.yaml").read_text())
    events = sam["Resources"]["StartTrainingFunction"]["Properties"]["Events"].values()
    dlq = next(e["Properties"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"] for e in events)
    queue = dlq[0] if isinstance(dlq, list) else dlq.split(".")[0]
    text = template_with(with_property(queue, "KmsMasterKeyId", "alias/aws/sqs"))
    with _cloud_without_permission(text) as cloud:
        rule = _deliver_without_permission(cloud)
        messages = _rule_dlq_messages(cloud, rule.dead_letter_arn)

    assert "alias/aws/sqs" in cloud.dead_letters[-1]["lost"]
    assert messages == []


def _alarm_and_topic(sam: dict[str, Any]) -> tuple[str, str]:
    for name, resource in sam["Resources"].items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            for action in resource["Properties"].get("AlarmActions", []):
                if isinstance(action, dict) and "Ref" in action:
                    return name, action["Ref"]
    raise AssertionError("no alarm notifies an SNS topic of the template")


def test_an_alarm_notifies_its_topic(light_cloud: LocalCloud) -> None:
    alarm, _ = _alarm_and_topic(yaml_parse((PROJECT_ROOT / "template.yaml").read_text()))

    notified = light_cloud.alarm(alarm)

    assert notified
    assert light_cloud.undelivered == []


def test_an_alarm_cannot_notify_a_topic_under_the_aws_managed_sns_key() -> None:
    alarm, topic = _alarm_and_topic(yaml_parse((PROJECT_ROOT / "template.yaml").read_text()))
    text = template_with(with_property(topic, "KmsMasterKeyId", "alias/aws/sns"))
    with LocalCloud(
        strict=True,
        parameters=FAST,
        executors=[],
        http_api=False,
        publish=False,
        template_text=text,
    ) as cloud:
        notified = cloud.alarm(alarm)

    assert notified == []
    assert "alias/aws/sns" in cloud.undelivered[0]["reason"]


# ---------------------------------------------------------------------- code run by services
_PROBE = """
import boto3, sys
s3 = boto3.client("s3")
s3.list_objects_v2(Bucket=sys.argv[1])
try:
    s3.put_object(Bucket=sys.argv[2], Key="from-the-job", Body=b"x")
except Exception as error:
    print(error.response["Error"]["Code"])
"""


def test_code_a_service_runs_is_checked_as_the_services_role(light_cloud: LocalCloud) -> None:
    import subprocess
    import sys

    role = light_cloud.provisioned["GlueJobRole"].attributes["Arn"]
    env = light_cloud.subprocess_env(role, "GlueJobRunnerSession")
    validated, raw = light_cloud.resources["ValidatedBucket"], light_cloud.resources["RawBucket"]

    done = subprocess.run(
        [sys.executable, "-c", _PROBE, validated, raw], env=env, capture_output=True, text=True
    )

    # the job reads the validated zone; writing the raw zone was never granted to it
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "AccessDenied"
