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
    "ScrapeFunction": {("schedule", ""), ("mlops.scrape", "Scrape Continues")},
    "ValidateFunction": {
        ("aws.s3", "Object Created"),
        ("aws.glue", "Glue Job State Change"),  # a validation job run that ended badly
    },
    "StartPreparationFunction": {
        ("mlops.pipeline", "Run Validated"),
        ("aws.glue", "Glue Job State Change"),  # a slot came free: drain the queue
        ("schedule", ""),  # the queue sweep
    },
    "StartTrainingFunction": {("aws.glue", "Glue Job State Change")},
    "EvaluateFunction": {("aws.sagemaker", "SageMaker Training Job State Change")},
    # The same event as start_preparation: each validated run against the champion.
    "MonitorFunction": {("mlops.pipeline", "Run Validated")},
    "DeployFunction": {
        ("aws.sagemaker", "SageMaker Model Package State Change"),
        ("mlops.serving", "Serving Pin Changed"),
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


def test_only_buckets_a_rule_listens_to_send_events_to_eventbridge(
    source: dict[str, Any],
) -> None:
    resources = source["Resources"]
    sending = {
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::S3::Bucket"
        and (r["Properties"].get("NotificationConfiguration") or {}).get("EventBridgeConfiguration")
    }
    patterns = [
        event["Properties"].get("Pattern", {})
        for r in resources.values()
        for event in ((r.get("Properties") or {}).get("Events") or {}).values()
        if event.get("Type") == "EventBridgeRule"
    ]
    listened = {
        ref
        for pattern in patterns
        if "aws.s3" in pattern.get("source", [])
        for ref in _refs(pattern.get("detail", {}).get("bucket", {}))
    }
    assert sending == listened


def test_scraper_reserves_no_concurrency_and_has_room_for_a_long_crawl(
    source: dict[str, Any],
) -> None:
    # A reservation fails the deploy on accounts with a reduced concurrency quota; one crawl
    # at a time per site is the run ledger's lease (mlops.scraping.run).
    scrape = source["Resources"]["ScrapeFunction"]["Properties"]
    assert "ReservedConcurrentExecutions" not in scrape
    assert scrape["Timeout"] == {"Ref": "ScrapeTimeoutSeconds"}
    assert source["Parameters"]["ScrapeTimeoutSeconds"]["Default"] >= 300


def test_the_scrape_lease_outlives_the_scrape_function_timeout(source: dict[str, Any]) -> None:
    from mlops.scraping.run import LEASE_SECONDS

    # Each invocation of a continuing crawl takes the lease again for LEASE_SECONDS.
    assert source["Parameters"]["ScrapeTimeoutSeconds"]["MaxValue"] < LEASE_SECONDS


def test_sagemaker_names_in_the_template_match_the_names_the_code_derives(
    template: Template,
) -> None:
    resolve = Resolver(template, refs={}, attributes={}, conditions=template.conditions).resolve
    dataset, stage = template.parameters["DatasetName"], template.parameters["Stage"]
    group = template.sam["Resources"]["ModelPackageGroup"]["Properties"]["ModelPackageGroupName"]
    endpoint = template.sam["Outputs"]["EndpointName"]["Value"]
    events = template.sam["Resources"]["DeployFunction"]["Properties"]["Events"]
    approved = events["ModelPackageStateChange"]
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


# ------------------------------------------------------------------ IAM: what the code calls

# Every action each role is granted, by role: what its code calls (boto3, awswrangler,
# Powertools idempotency), found by reading the code paths. SAM's policy templates granted
# more (PutObjectAcl, PutLifecycleConfiguration, BatchWriteItem, ...); an action leaves this
# table only when no code path calls it any more. sqs:SendMessage is SAM's grant for the
# function's own DeadLetterQueue; kms:* are for the encrypted DLQ and topic.
DLQ = {"sqs:SendMessage", "kms:GenerateDataKey", "kms:Decrypt"}
NOTIFY = {"sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"}
ROLE_ACTIONS = {
    # mlops.scraping: site spec, checkpoint (state, parts, visits), parts copied into the
    # raw zone, the ledger and the site's lease, the hand-over event, a broken layout notified.
    "ScrapeFunctionRole": DLQ
    | NOTIFY
    | {"s3:PutObject", "s3:GetObject", "s3:ListBucket"}
    | {"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
    | {"events:PutEvents"},
    # mlops.validation: head/get (a version) of the raw object, contract, awswrangler
    # to_parquet/delete_objects, Glue catalog of to_parquet(mode="append"), idempotency
    # records, ledger updates, Run Validated.
    "ValidateFunctionRole": DLQ
    | {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}
    | {"glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:BatchCreatePartition"}
    | {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    | {"events:PutEvents"}
    | {"glue:StartJobRun", "glue:GetJobRun"},
    # mlops.preparation.start_preparation: contract in, resolved contract out, StartJobRun,
    # ledger claim/start/finish/stages and a released claim, the queue, notify past the bound;
    # the training window's partitions (ListBucket) and the champion's fingerprint (registry).
    "StartPreparationFunctionRole": DLQ
    | NOTIFY
    | {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "glue:StartJobRun"}
    | {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:DeleteItem"}
    | {"sagemaker:ListModelPackages", "sagemaker:DescribeModelPackageGroup", "sagemaker:ListTags"}
    | {"sagemaker:DescribeModelPackage"},
    # mlops.training_launch (+ preparation.record_outcome): Glue run, curated manifest, the
    # champion endpoint chain, the training job.
    "StartTrainingFunctionRole": DLQ
    | {"glue:GetJobRun", "s3:GetObject", "s3:ListBucket", "iam:PassRole"}
    | {"sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:AddTags"}
    | {"sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"}
    | {"dynamodb:PutItem", "dynamodb:UpdateItem"},
    # mlops.evaluation: job tags, evaluation.json, contract, report, registry, notify.
    "EvaluateFunctionRole": DLQ
    | NOTIFY
    | {"sagemaker:ListTags", "s3:GetObject", "s3:ListBucket", "s3:PutObject"}
    | {"sagemaker:DescribeModelPackageGroup", "sagemaker:CreateModelPackageGroup"}
    | {"sagemaker:ListModelPackages", "sagemaker:DescribeModelPackage"}
    | {"sagemaker:CreateModelPackage", "sagemaker:AddTags", "sagemaker:UpdateModelPackage"}
    | {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"},
    # mlops.deployment: package, model, config, endpoint, autoscaling (and what Application
    # Auto Scaling needs of its caller), notify, ledger.
    "DeployFunctionRole": DLQ
    | NOTIFY
    | {"sagemaker:DescribeModelPackage", "iam:PassRole", "iam:CreateServiceLinkedRole"}
    | {"sagemaker:ListModelPackages", "sagemaker:DescribeModelPackageGroup"}
    | {
        "sagemaker:CreateModel",
        "sagemaker:DescribeModel",
        "sagemaker:AddTags",
        "sagemaker:ListTags",
    }
    | {"sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig"}
    | {"sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint"}
    | {"sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"}
    | {"application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy"}
    | {"cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"}
    | {"dynamodb:UpdateItem", "dynamodb:Query"},
    # mlops.monitoring.monitor: the run's validated and quarantined rows, the champion's
    # profile and splits, the contract (awswrangler read_parquet lists and gets), the serving
    # rule's reads, the endpoint's status and InvokeEndpoint, the ledger claim and finish.
    "MonitorFunctionRole": DLQ
    | {"s3:GetObject", "s3:ListBucket"}
    | {"sagemaker:ListModelPackages", "sagemaker:DescribeModelPackageGroup", "sagemaker:ListTags"}
    | {"sagemaker:DescribeModelPackage", "sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"}
    | {"dynamodb:PutItem", "dynamodb:UpdateItem"},
    # mlops.web: the served endpoint chain, its package's evaluation, the contract, and the
    # inference capture's batches (mlops.web.capture).
    "WebFunctionRole": {"s3:GetObject", "s3:ListBucket", "sagemaker:InvokeEndpoint"}
    | {"sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig"}
    | {"sagemaker:DescribeModel", "sagemaker:ListTags", "sagemaker:DescribeModelPackage"}
    | {"firehose:PutRecordBatch"},
    # Firehose's delivery into the capture zone: the S3 actions its S3-destination guide lists.
    "CaptureDeliveryRole": {"s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"}
    | {"s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"},
    # Training and hosting: channels, source bundle, output, checkpoints, logs, metrics, and the
    # rollback alarms of blue/green updates. No ECR: the images are AWS's.
    "SageMakerExecutionRole": {"s3:GetObject", "s3:ListBucket", "s3:PutObject"}
    | {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
    }
    | {"cloudwatch:PutMetricData", "cloudwatch:DescribeAlarms"},
    "GlueJobRole": {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:DeleteObject"},
    # glue/validate.py: the raw object version, code and contract, the zones, the table's
    # partition, the run's part (and Run Validated when it is the last).
    "ValidationJobRole": {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}
    | {"s3:PutObject", "s3:DeleteObject"}
    | {"glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:BatchCreatePartition"}
    | {"dynamodb:GetItem", "dynamodb:UpdateItem", "events:PutEvents"},
}
# Actions without resource-level permissions ("*" is the only resource that matches them):
# SageMaker: "Except for the ListTags API, resource-level restrictions are not available on
# List- calls" (SageMaker Developer Guide, API Permissions reference); CloudWatch
# PutMetricData and Application Auto Scaling's Describe* have no resource type in the Service
# Authorization Reference.
NO_RESOURCE_LEVEL = {
    "sagemaker:ListModelPackages",
    "cloudwatch:PutMetricData",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "ecr:GetAuthorizationToken",
}
# How the template's ARNs read for `sam deploy --config-env dev` in a sample account.
DEV = {
    "Stage": "dev",
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
}
SAGEMAKER = "arn:aws:sagemaker:us-east-1:123456789012"


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _render(value: Any, params: dict[str, str] = DEV) -> str:
    """An ARN-like string of an intrinsic: parameters substituted, other resources as ``${X}``
    (``${X.Arn}`` for GetAtt), so resources can be compared and matched with fnmatch."""
    if isinstance(value, str):
        return value
    if "Fn::Sub" in value:
        arg = value["Fn::Sub"]
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return _render(variables[name], params)
            return params.get(name, "${" + name + "}")

        return re.sub(r"\$\{([^}!]+)\}", replace, text)
    if "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        parts = target if isinstance(target, list) else target.split(".", 1)
        return "${" + ".".join(parts) + "}"
    if "Ref" in value:
        return params.get(value["Ref"], "${" + value["Ref"] + "}")
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(_render(p, params) for p in _listed(parts))
    raise AssertionError(f"cannot render {value}")


def _role_statements(translated: dict[str, Any], role: str) -> list[dict[str, Any]]:
    policies = translated["Resources"][role]["Properties"].get("Policies", [])
    return [s for p in policies for s in _listed(p["PolicyDocument"]["Statement"])]


def _granted(translated: dict[str, Any], role: str, action: str) -> list[str]:
    """Rendered resources on which ``role`` is allowed ``action``."""
    return [
        _render(resource)
        for statement in _role_statements(translated, role)
        if statement["Effect"] == "Allow" and action in _listed(statement["Action"])
        for resource in _listed(statement["Resource"])
    ]


def _allows(translated: dict[str, Any], role: str, action: str, resource: str) -> bool:
    return any(fnmatch.fnmatchcase(resource, g) for g in _granted(translated, role, action))


def test_each_role_is_granted_exactly_the_actions_its_code_calls(
    translated: dict[str, Any],
) -> None:
    # given every IAM role of the translated template
    for role, expected in ROLE_ACTIONS.items():
        # when its inline policies' actions are collected
        granted = {
            action
            for statement in _role_statements(translated, role)
            for action in _listed(statement["Action"])
        }
        # then they are exactly the calls its code makes, nothing from a policy template
        assert granted == expected, (
            f"{role}: extra {granted - expected}, missing {expected - granted}"
        )
    roles = set(_resources(translated, "AWS::IAM::Role"))
    assert roles == set(ROLE_ACTIONS)


def test_actions_without_resource_level_permissions_are_granted_on_every_resource(
    translated: dict[str, Any],
) -> None:
    for role in ROLE_ACTIONS:
        for statement in _role_statements(translated, role):
            actions = set(_listed(statement["Action"]))
            resources = _listed(statement["Resource"])
            # a scoped ARN never matches what such an action is authorized against
            if actions & NO_RESOURCE_LEVEL:
                assert resources == ["*"], f"{role} scopes {actions & NO_RESOURCE_LEVEL}"
            # and "*" is for them alone
            if "*" in resources:
                assert actions <= NO_RESOURCE_LEVEL, f"{role} grants {actions} on *"


def test_deploy_and_web_roles_cannot_touch_another_stages_endpoint(
    translated: dict[str, Any],
) -> None:
    # given the resources of the dev stage and of prod in the same account
    def arns(stage: str) -> dict[str, str]:
        return {
            "endpoint": f"{SAGEMAKER}:endpoint/{naming.endpoint_name('used_cars', stage)}",
            "config": f"{SAGEMAKER}:endpoint-config/"
            + naming.endpoint_config_name("used_cars", 3, stage),
            "model": f"{SAGEMAKER}:model/{naming.model_name('used_cars', 3, stage)}",
        }

    dev, prod = arns("dev"), arns("prod")
    calls = {
        "DeployFunctionRole": [
            ("sagemaker:UpdateEndpoint", "endpoint"),
            ("sagemaker:UpdateEndpoint", "config"),
            ("sagemaker:DeleteEndpoint", "endpoint"),
            ("sagemaker:CreateModel", "model"),
            ("sagemaker:CreateEndpointConfig", "config"),
        ],
        "WebFunctionRole": [("sagemaker:InvokeEndpoint", "endpoint")],
        "StartTrainingFunctionRole": [("sagemaker:DescribeEndpoint", "endpoint")],
    }
    for role, role_calls in calls.items():
        for action, kind in role_calls:
            # then dev's roles reach dev's resources and never prod's
            assert _allows(translated, role, action, dev[kind]), (role, action, kind)
            assert not _allows(translated, role, action, prod[kind]), (role, action, kind)


def test_only_their_writers_can_write_each_prefix_of_the_artifacts_bucket(
    translated: dict[str, Any],
) -> None:
    # code/ is published by `make deploy` (localcloud publish-code), never by a role
    keys = {
        "code/glue/prepare.py": set(),
        "code/glue/validate.py": set(),
        "code/training/sourcedir.tar.gz": set(),
        "contracts/used_cars.yaml": set(),
        "contracts/resolved/used_cars/run.json": {"StartPreparationFunctionRole"},
        "evaluations/dataset=used_cars/run_id=r/report.html": {"EvaluateFunctionRole"},
        "models/used_cars/job/output/model.tar.gz": {"SageMakerExecutionRole"},
        "checkpoints/job/state.pt": {"SageMakerExecutionRole"},
    }
    for key, writers in keys.items():
        arn = "${ArtifactsBucket.Arn}/" + key
        may_write = {
            role
            for role in ROLE_ACTIONS
            if any(_allows(translated, role, a, arn) for a in ("s3:PutObject", "s3:DeleteObject"))
        }
        assert may_write == writers, key


def test_lookups_of_possibly_missing_keys_may_list_the_bucket(translated: dict[str, Any]) -> None:
    # GetObject of a missing key answers NoSuchKey (404) only to a caller allowed
    # s3:ListBucket, AccessDenied otherwise (S3 API Reference, GetObject); the code treats
    # NoSuchKey as "no override" / "not landed yet".
    lookups = {
        "ScrapeFunctionRole": "${ArtifactsBucket.Arn}",  # site spec
        "ValidateFunctionRole": "${ArtifactsBucket.Arn}",  # contract override
        "StartPreparationFunctionRole": "${ArtifactsBucket.Arn}",
        "EvaluateFunctionRole": "${ArtifactsBucket.Arn}",
        "WebFunctionRole": "${ArtifactsBucket.Arn}",
        "StartTrainingFunctionRole": "${CuratedBucket.Arn}",  # the run's manifest
    }
    for role, bucket in lookups.items():
        assert bucket in _granted(translated, role, "s3:ListBucket"), role
    assert "${RawBucket.Arn}" in _granted(translated, "ValidateFunctionRole", "s3:ListBucket")


def test_validate_registers_its_table_with_only_the_catalog_calls_awswrangler_makes(
    translated: dict[str, Any],
) -> None:
    # to_parquet(dataset=True, mode="append", database=..., table=...): GetTable, then
    # CreateTable or UpdateTable, then BatchCreatePartition (awswrangler 3.17 s3/_write.py,
    # catalog/_create.py, catalog/_add.py); no GetDatabase, GetPartitions or CreatePartition.
    # The validation job (glue/validate.py) registers its pieces' partition with the same calls.
    for role in ("ValidateFunctionRole", "ValidationJobRole"):
        glue = {
            action
            for statement in _role_statements(translated, role)
            for action in _listed(statement["Action"])
            if action.startswith("glue:") and not action.endswith("JobRun")
        }
        assert glue == {
            "glue:GetTable",
            "glue:CreateTable",
            "glue:UpdateTable",
            "glue:BatchCreatePartition",
        }, role
        for action in glue:
            resources = _granted(translated, role, action)
            assert any(r.endswith(":catalog") for r in resources)
            assert any(r.endswith(":database/${GlueDatabase}") for r in resources)
            assert any(r.endswith(":table/${GlueDatabase}/*") for r in resources)


def test_validate_may_start_and_read_runs_of_the_validation_job_only(
    translated: dict[str, Any],
) -> None:
    # given the validate function's role and the job that validates large objects
    job = translated["Resources"]["ValidateLargeJob"]["Properties"]
    environment = translated["Resources"]["ValidateFunction"]["Properties"]["Environment"]
    # then the function names the job and may start and read its runs, no other job's
    assert environment["Variables"]["VALIDATION_GLUE_JOB_NAME"] == {"Ref": "ValidateLargeJob"}
    for action in ("glue:StartJobRun", "glue:GetJobRun"):
        assert _granted(translated, "ValidateFunctionRole", action) == [
            "arn:aws:glue:us-east-1:123456789012:job/${ValidateLargeJob}"
        ]
    # and the job runs the published validation script with the shared package
    assert job["Command"]["ScriptLocation"] == {
        "Fn::Sub": "s3://${ArtifactsBucket}/code/glue/validate.py"
    }
    assert job["GlueVersion"] == "5.0" and job["Role"] == {
        "Fn::GetAtt": ["ValidationJobRole", "Arn"]
    }


# ------------------------------------------------------------------ dead letters and notifications


def _key_statements(translated: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return _listed(translated["Resources"][key]["Properties"]["KeyPolicy"]["Statement"])


def _key_of(properties: dict[str, Any]) -> str:
    (name,) = _refs(properties["KmsMasterKeyId"])
    return name


def test_rule_dead_letter_queues_let_eventbridge_send_only_from_their_own_rules(
    translated: dict[str, Any],
) -> None:
    # A rule's DeadLetterConfig attaches no queue policy: EventBridge needs sqs:SendMessage
    # from the queue's policy, conditioned on the rule ("Granting permissions to the
    # dead-letter queue", EventBridge User Guide).
    policies = _resources(translated, "AWS::SQS::QueuePolicy").values()
    senders: dict[str, set[str]] = {}
    for policy in policies:
        (queue,) = _refs(policy["Properties"]["Queues"])
        for statement in _listed(policy["Properties"]["PolicyDocument"]["Statement"]):
            if statement["Principal"] == {"Service": "events.amazonaws.com"}:
                assert statement["Effect"] == "Allow" and statement["Action"] == "sqs:SendMessage"
                assert _refs(statement["Resource"]) == {queue}
                rules = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
                senders.setdefault(queue, set()).update(_refs(rules))
    expected: dict[str, set[str]] = {}
    for name, rule in _resources(translated, "AWS::Events::Rule").items():
        (target,) = rule["Properties"]["Targets"]
        expected.setdefault(target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0], set()).add(name)
    assert senders == expected


def test_dead_letter_queues_use_a_customer_managed_key_eventbridge_may_use(
    translated: dict[str, Any],
) -> None:
    # An AWS managed key's fixed policy lets only the account's principals use it through SQS:
    # EventBridge's dead letters would be refused ("Configure KMS permissions for AWS
    # services", SQS Developer Guide; the EventBridge User Guide's "Allow CWE to use the key").
    for name, queue in _resources(translated, "AWS::SQS::Queue").items():
        key = _key_of(queue["Properties"])
        assert translated["Resources"][key]["Type"] == "AWS::KMS::Key", name
        events = [
            s
            for s in _key_statements(translated, key)
            if s.get("Principal") == {"Service": "events.amazonaws.com"}
        ]
        assert events, name
        assert {"kms:GenerateDataKey", "kms:Decrypt"} <= set(_listed(events[0]["Action"]))


def test_functions_may_encrypt_what_they_dead_letter(translated: dict[str, Any]) -> None:
    # Lambda sends a failed asynchronous invocation to the function's DLQ with the function's
    # role (SAM grants sqs:SendMessage); a producer to an encrypted queue needs
    # kms:GenerateDataKey and kms:Decrypt ("Configure KMS permissions for producers", SQS).
    for name, function in _resources(translated, "AWS::Lambda::Function").items():
        if "DeadLetterConfig" not in function["Properties"]:
            continue
        queue = function["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
        key = _key_of(translated["Resources"][queue]["Properties"])
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        for action in ("sqs:SendMessage", "kms:GenerateDataKey", "kms:Decrypt"):
            wanted = "${" + (queue if action.startswith("sqs") else key) + ".Arn}"
            assert wanted in _granted(translated, role, action), (name, action)


def test_keys_rotate_and_the_account_administers_them(translated: dict[str, Any]) -> None:
    keys = _resources(translated, "AWS::KMS::Key")
    assert set(keys) == {"DeadLetterKey", "NotificationKey"}
    for name, key in keys.items():
        assert key["Properties"]["EnableKeyRotation"] is True, name
        root = [
            s
            for s in _key_statements(translated, name)
            if _render(s["Principal"].get("AWS", "")) == "arn:aws:iam::123456789012:root"
        ]
        # the default key policy: administration, and IAM policies may grant its use
        assert root and root[0]["Action"] == "kms:*" and "Condition" not in root[0], name


def test_the_alarm_topic_key_lets_cloudwatch_publish_this_stacks_alarms_only(
    template: Template, translated: dict[str, Any]
) -> None:
    # CloudWatch publishes to an encrypted topic only with kms:Decrypt and
    # kms:GenerateDataKey* on a customer managed key (CloudWatch User Guide; SNS "Enable
    # compatibility between event sources from AWS services and encrypted topics").
    topic = translated["Resources"]["NotificationTopic"]["Properties"]
    key = _key_of(topic)
    (statement,) = [
        s
        for s in _key_statements(translated, key)
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    condition = statement["Condition"]
    assert _render(condition["StringEquals"]["aws:SourceAccount"]) == "123456789012"
    source = _render(condition["ArnLike"]["aws:SourceArn"])
    resolve = Resolver(template, refs={}, attributes={}, conditions=template.conditions).resolve
    alarm = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
    for name, resource in _resources(translated, "AWS::CloudWatch::Alarm").items():
        assert {"Ref": "NotificationTopic"} in resource["Properties"]["AlarmActions"], name
        assert fnmatch.fnmatchcase(alarm + resolve(resource["Properties"]["AlarmName"]), source)
    # and not another stage's alarms
    assert not fnmatch.fnmatchcase(alarm + "mlops-used-cars-prod-5xx", source)


def test_functions_that_notify_may_use_the_topic_key(translated: dict[str, Any]) -> None:
    # "The publisher must have the kms:GenerateDataKey and kms:Decrypt permissions for the
    # AWS KMS key" (SNS Developer Guide, "Allow a user to send messages to a topic with SSE").
    key = "${" + _key_of(translated["Resources"]["NotificationTopic"]["Properties"]) + ".Arn}"
    for name, function in _resources(translated, "AWS::Lambda::Function").items():
        if "NOTIFICATION_TOPIC_ARN" not in function["Properties"]["Environment"]["Variables"]:
            continue
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        assert "${NotificationTopic}" in _granted(translated, role, "sns:Publish"), name
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            assert key in _granted(translated, role, action), (name, action)


# ------------------------------------------------------------------ blue/green and autoscaling


def test_the_role_sagemaker_watches_alarms_with_may_read_the_rollback_alarms(
    translated: dict[str, Any],
) -> None:
    # "Ensure that your IAM execution role has permission to perform the
    # cloudwatch:DescribeAlarms action on the auto-rollback alarms you specify" (SageMaker
    # Developer Guide, Auto-Rollback Configuration and Monitoring): the role models run as.
    deploy = translated["Resources"]["DeployFunction"]["Properties"]["Environment"]["Variables"]
    rollback_alarms = _refs(deploy["ALARM_NAMES"])
    assert rollback_alarms == {"Endpoint5xxAlarm", "EndpointLatencyAlarm"}
    assert _refs(deploy["SAGEMAKER_EXECUTION_ROLE_ARN"]) == {"SageMakerExecutionRole"}
    granted = _granted(translated, "SageMakerExecutionRole", "cloudwatch:DescribeAlarms")
    alarm = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
    assert sorted(granted) == sorted(alarm + "${" + a + "}" for a in rollback_alarms)


def test_deploy_may_register_its_endpoint_variants_for_autoscaling(
    translated: dict[str, Any],
) -> None:
    # RegisterScalableTarget for a SageMaker variant needs sagemaker:DescribeEndpoint,
    # DescribeEndpointConfig and UpdateEndpointWeightsAndCapacities of its caller
    # (Application Auto Scaling User Guide, identity-based policy examples).
    endpoint = f"{SAGEMAKER}:endpoint/{naming.endpoint_name('used_cars', 'dev')}"
    config = f"{SAGEMAKER}:endpoint-config/{naming.endpoint_config_name('used_cars', 2, 'dev')}"
    role = "DeployFunctionRole"
    assert _allows(translated, role, "sagemaker:DescribeEndpoint", endpoint)
    assert _allows(translated, role, "sagemaker:UpdateEndpointWeightsAndCapacities", endpoint)
    assert _allows(translated, role, "sagemaker:DescribeEndpointConfig", config)
    (statement,) = [
        s
        for s in _role_statements(translated, role)
        if "application-autoscaling:RegisterScalableTarget" in _listed(s["Action"])
    ]
    assert statement["Condition"]["StringEquals"] == {
        "application-autoscaling:service-namespace": "sagemaker",
        "application-autoscaling:scalable-dimension": "sagemaker:variant:DesiredInstanceCount",
    }


# ------------------------------------------------------------------ layers


def _layers(translated: dict[str, Any], function: str) -> list[Any]:
    return translated["Resources"][function]["Properties"].get("Layers", [])


def test_the_shared_layer_is_every_functions_last_layer(translated: dict[str, Any]) -> None:
    # Lambda merges layers in the order listed, a later layer's files replacing an earlier
    # one's ("Adding layers to functions", Lambda Developer Guide): the shared layer's
    # dependencies (typing_extensions for pydantic) must win over the managed layer's.
    (shared,) = _resources(translated, "AWS::Lambda::LayerVersion")
    for name in _resources(translated, "AWS::Lambda::Function"):
        layers = _layers(translated, name)
        assert layers and layers[-1] == {"Ref": shared}, name
        assert [layer for layer in layers if layer == {"Ref": shared}] == [layers[-1]], name


def test_only_the_data_functions_take_the_managed_pandas_layer_from_the_region_mapping(
    source: dict[str, Any], translated: dict[str, Any]
) -> None:
    # validate writes the zones with awswrangler; monitor reads them with it
    for name in _resources(translated, "AWS::Lambda::Function"):
        managed = _layers(translated, name)[:-1]
        if name not in ("ValidateFunction", "MonitorFunction"):
            assert managed == [], name
            continue
        (layer,) = managed
        condition, override, mapped = layer["Fn::If"]
        assert condition == "HasPandasLayerArn" and override == {"Ref": "PandasLayerArn"}
        assert mapped == {"Fn::FindInMap": ["AWSSDKPandasLayer", {"Ref": "AWS::Region"}, "Arn"]}
    assert source["Parameters"]["PandasLayerArn"]["Default"] == ""


def test_the_pandas_layer_mapping_names_each_regions_own_publisher(
    source: dict[str, Any],
) -> None:
    # AWS SDK for pandas publishes the layer from other accounts in some regions
    # ("AWS Lambda Managed Layers"); the mapping gives each region its own full ARN.
    mapping = source["Mappings"]["AWSSDKPandasLayer"]
    arn = re.compile(
        r"arn:aws(-cn)?:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
        r"layer:AWSSDKPandas-Python312:\d+"
    )
    accounts = {}
    for region, row in mapping.items():
        match = arn.fullmatch(row["Arn"])
        assert match and match["region"] == region, region
        accounts[region] = match["account"]
    assert {"us-east-1", "eu-west-1"} <= set(mapping)
    for region in ("ap-east-1", "ap-south-2", "ap-southeast-3", "il-central-1", "me-central-1"):
        assert accounts[region] != "336392948345", region
    assert accounts["us-east-1"] == "336392948345"


def test_crawl_checkpoints_expire_under_the_prefix_the_scraper_writes(
    source: dict[str, Any],
) -> None:
    from mlops.scraping.checkpoint import PREFIX

    bucket = source["Resources"]["ArtifactsBucket"]["Properties"]
    rules = bucket["LifecycleConfiguration"]["Rules"]
    expiring = [r for r in rules if r.get("Prefix") == PREFIX and r.get("ExpirationInDays")]
    assert expiring and expiring[0]["Status"] == "Enabled"
