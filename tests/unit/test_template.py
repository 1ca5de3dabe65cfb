"""template.yaml, translated by samtranslator as `sam deploy` would, is wired as designed."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import pytest

from localcloud.template import Resolver, Template
from mlops import naming

ROOT = Path(__file__).resolve().parents[2]

# Which events each function subscribes to: (source, detail-type) of its EventBridge rules.
EXPECTED_SUBSCRIPTIONS = {
    "ScrapeFunction": {("schedule", "")},
    "ValidateFunction": {("aws.s3", "Object Created")},
    "StartPreparationFunction": {("mlops.pipeline", "Run Validated")},
    "StartTrainingFunction": {("aws.glue", "Glue Job State Change")},
    "EvaluateFunction": {("aws.sagemaker", "SageMaker Training Job State Change")},
    "DeployFunction": {
        ("aws.sagemaker", "SageMaker Model Package State Change"),
        ("aws.sagemaker", "SageMaker Endpoint State Change"),
    },
}
READ_VERBS = ("Get", "List", "Describe", "Head", "BatchGet", "Query", "Scan")
# Actions AWS offers no resource-level permission for; allowed on "*" only under a Condition.
UNSCOPABLE = {"cloudwatch:PutMetricData", "ecr:GetAuthorizationToken"}


@pytest.fixture(scope="module")
def template() -> Template:
    """The template as `sam deploy --config-env dev` resolves and translates it."""
    return Template.load(ROOT)


@pytest.fixture(scope="module")
def source(template: Template) -> dict[str, Any]:
    return template.sam


@pytest.fixture(scope="module")
def translated(template: Template) -> dict[str, Any]:
    return template.cfn


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _refs(value: Any) -> set[str]:
    """Logical ids named by Ref / GetAtt / ${…} anywhere in ``value``."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                if isinstance(inner, list):
                    found |= _refs(inner[1])
            else:
                found |= _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _refs(inner)
    return found


def _rule_subscription(rule: dict[str, Any]) -> tuple[str, str]:
    props = rule["Properties"]
    if "ScheduleExpression" in props:
        return ("schedule", "")
    pattern = props["EventPattern"]
    return (pattern["source"][0], pattern.get("detail-type", [""])[0])


def _rule_function(rule: dict[str, Any]) -> str:
    (target,) = rule["Properties"]["Targets"]
    return target["Arn"]["Fn::GetAtt"][0]


def test_each_function_subscribes_to_exactly_its_events(translated: dict[str, Any]) -> None:
    # given the rules of the translated template
    rules = _resources(translated, "AWS::Events::Rule")
    # when they are grouped by the function they target
    subscriptions: dict[str, set[tuple[str, str]]] = {}
    for rule in rules.values():
        subscriptions.setdefault(_rule_function(rule), set()).add(_rule_subscription(rule))
    # then each function hears exactly the events it was designed for
    assert subscriptions == EXPECTED_SUBSCRIPTIONS


def test_every_rule_target_has_a_retry_policy_and_a_dead_letter_queue(
    translated: dict[str, Any],
) -> None:
    queues = _resources(translated, "AWS::SQS::Queue")
    for name, rule in _resources(translated, "AWS::Events::Rule").items():
        (target,) = rule["Properties"]["Targets"]
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1, name
        assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0] in queues, name


def test_every_event_driven_function_retries_and_dead_letters_its_failures(
    translated: dict[str, Any],
) -> None:
    # EventBridge invokes Lambda asynchronously: a handler's errors are retried by Lambda and
    # end in the function's own DLQ (the rule's DLQ only sees delivery failures).
    functions = _resources(translated, "AWS::Lambda::Function")
    invoke_configs = {
        c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
        for c in _resources(translated, "AWS::Lambda::EventInvokeConfig").values()
    }
    for name in EXPECTED_SUBSCRIPTIONS:
        dlq = functions[name]["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
        assert translated["Resources"][dlq]["Type"] == "AWS::SQS::Queue"
        assert invoke_configs[name]["MaximumRetryAttempts"] == 2


def test_function_environments_only_name_resources_and_parameters_that_exist(
    translated: dict[str, Any],
) -> None:
    known = (
        set(translated["Resources"])
        | set(translated["Parameters"])
        | {
            "AWS::Region",
            "AWS::AccountId",
            "AWS::Partition",
            "AWS::URLSuffix",
        }
    )
    for name, function in _resources(translated, "AWS::Lambda::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert "LEDGER_TABLE" in variables, name
        assert _refs(variables) <= known, name


def test_each_function_points_at_its_own_code(source: dict[str, Any]) -> None:
    for name, resource in source["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        code = ROOT / resource["Properties"]["CodeUri"]
        assert (code / "app.py").is_file(), f"{name}: {code}/app.py missing"
        assert resource["Properties"]["Handler"] == "app.lambda_handler"


def _statements(translated: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, role in _resources(translated, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                found.append((name, statement))
    return found


def test_no_statement_grants_every_action(translated: dict[str, Any]) -> None:
    for role, statement in _statements(translated):
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert all(a != "*" and not a.endswith(":*") for a in actions), role


def test_no_statement_grants_writes_on_every_resource(translated: dict[str, Any]) -> None:
    for role, statement in _statements(translated):
        if statement.get("Effect") != "Allow":
            continue
        resources = (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        if "*" not in resources:
            continue
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        writes = [a for a in actions if not a.split(":")[1].startswith(READ_VERBS)]
        unscoped = [a for a in writes if a not in UNSCOPABLE or "Condition" not in statement]
        assert not unscoped, f"{role} grants {unscoped} on every resource"


def test_buckets_are_encrypted_private_and_tls_only(source: dict[str, Any]) -> None:
    resources = source["Resources"]
    buckets = {k for k, v in resources.items() if v["Type"] == "AWS::S3::Bucket"}
    policies = {
        v["Properties"]["Bucket"]["Ref"]: v["Properties"]["PolicyDocument"]
        for v in resources.values()
        if v["Type"] == "AWS::S3::BucketPolicy"
    }
    for name in buckets:
        props = resources[name]["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        assert all(props["PublicAccessBlockConfiguration"].values()), name
        assert len(props["PublicAccessBlockConfiguration"]) == 4, name
        tls = [s for s in policies[name]["Statement"] if s.get("Sid") == "TlsOnly"]
        assert tls and tls[0]["Effect"] == "Deny", name


def test_raw_and_artifacts_keep_versions_and_raw_emits_eventbridge_events(
    source: dict[str, Any],
) -> None:
    resources = source["Resources"]
    for name in ("RawBucket", "ArtifactsBucket"):
        assert resources[name]["Properties"]["VersioningConfiguration"]["Status"] == "Enabled"
    raw = resources["RawBucket"]["Properties"]
    assert raw["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"]
    transitions = raw["LifecycleConfiguration"]["Rules"][0]["Transitions"]
    assert transitions, "raw data should move to colder storage"
    quarantine_rules = resources["QuarantineBucket"]["Properties"]["LifecycleConfiguration"][
        "Rules"
    ]
    assert any("ExpirationInDays" in rule for rule in quarantine_rules)


def test_scraper_reserves_no_concurrency_and_has_room_for_a_long_crawl(
    source: dict[str, Any],
) -> None:
    # A reservation fails the deploy on accounts with a reduced concurrency quota; one crawl
    # at a time per site is the run ledger's lease (mlops.scraping.run).
    scrape = source["Resources"]["ScrapeFunction"]["Properties"]
    assert "ReservedConcurrentExecutions" not in scrape
    assert scrape["Timeout"] >= 300


def test_the_scrape_lease_outlives_the_scrape_function_timeout(source: dict[str, Any]) -> None:
    from mlops.scraping.run import LEASE_SECONDS

    scrape = source["Resources"]["ScrapeFunction"]["Properties"]
    assert scrape["Timeout"] < LEASE_SECONDS


def test_sagemaker_names_in_the_template_match_the_names_the_code_derives(
    template: Template,
) -> None:
    resolve = Resolver(template, refs={}, attributes={}, conditions=template.conditions).resolve
    dataset, stage = template.parameters["DatasetName"], template.parameters["Stage"]
    group = template.sam["Resources"]["ModelPackageGroup"]["Properties"]["ModelPackageGroupName"]
    endpoint = template.sam["Outputs"]["EndpointName"]["Value"]
    approved = template.sam["Resources"]["DeployFunction"]["Properties"]["Events"]["ModelApproved"]
    (listened_group,) = approved["Properties"]["Pattern"]["detail"]["ModelPackageGroupName"]
    assert resolve(group) == naming.model_package_group(dataset, stage)
    # The approval event carries the group's name (Ref of a group would be its ARN); every
    # dataset of the stage has a group, so the rule matches them all.
    assert fnmatch.fnmatchcase(
        naming.model_package_group("user_data", stage), resolve(listened_group["wildcard"])
    )
    assert fnmatch.fnmatchcase(resolve(group), resolve(listened_group["wildcard"]))
    assert resolve(endpoint) == naming.endpoint_name(dataset, stage)


def test_outputs_reference_declared_resources(translated: dict[str, Any]) -> None:
    known = set(translated["Resources"]) | {"AWS::Region", "AWS::URLSuffix", "Stage"}
    known |= set(translated["Parameters"])
    for name, output in translated["Outputs"].items():
        assert _refs(output["Value"]) <= known, name
