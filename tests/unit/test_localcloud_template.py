"""template.yaml as the local cloud reads it: parameters like `sam deploy --config-env dev`,
CloudFormation intrinsics, and names planned the way CloudFormation makes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcloud.provision import plan
from localcloud.template import Resolver, Template, TemplateError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(ROOT)


@pytest.fixture(scope="module")
def planned(template: Template) -> dict:
    return plan(template)


def test_parameters_come_from_defaults_then_samconfig_dev(template: Template) -> None:
    assert template.parameters["Stage"] == "dev"
    assert template.parameters["DatasetName"] == "used_cars"
    assert template.stack == "serverless-mlops-dev"


def test_an_override_wins_over_samconfig() -> None:
    template = Template.load(ROOT, {"ApprovalPolicy": "manual"})
    assert template.parameters["ApprovalPolicy"] == "manual"


def test_an_unknown_or_disallowed_parameter_is_refused() -> None:
    with pytest.raises(TemplateError, match="NoSuchParameter"):
        Template.load(ROOT, {"NoSuchParameter": "x"})
    with pytest.raises(TemplateError, match="ApprovalPolicy"):
        Template.load(ROOT, {"ApprovalPolicy": "sometimes"})


def test_intrinsics_resolve_against_parameters_and_resources(template: Template) -> None:
    resolver = Resolver(
        template,
        refs={"Bucket": "my-bucket"},
        attributes={"Queue": {"Arn": "arn:aws:sqs:us-east-1:123456789012:q"}},
        conditions={"IsProd": False},
    )
    assert resolver.resolve({"Fn::Sub": "s3://${Bucket}/${AWS::Region}/${Stage}"}) == (
        "s3://my-bucket/us-east-1/dev"
    )
    assert resolver.resolve({"Fn::GetAtt": ["Queue", "Arn"]}).endswith(":q")
    assert resolver.resolve({"Fn::Sub": "${Queue.Arn}/x"}).endswith(":q/x")
    joined = {"Fn::Join": ["-", ["mlops", {"Fn::Join": ["-", {"Fn::Split": ["_", "used_cars"]}]}]]}
    assert resolver.resolve(joined) == "mlops-used-cars"
    assert resolver.resolve({"Fn::If": ["IsProd", "big", "small"]}) == "small"
    assert resolver.resolve({"a": {"Ref": "AWS::NoValue"}, "b": 1}) == {"b": 1}


def test_conditions_are_evaluated_from_the_resolved_parameters(template: Template) -> None:
    assert template.conditions["IsProd"] is False
    prod = Template.load(ROOT, {"Stage": "prod"})
    assert prod.conditions["IsProd"] is True


def test_named_resources_keep_the_template_name(planned: dict, template: Template) -> None:
    stage = template.parameters["Stage"]
    assert planned["PreparationJob"].name == f"mlops-prepare-{stage}"
    assert planned["ModelPackageGroup"].name == f"mlops-used-cars-{stage}"


def test_unnamed_buckets_get_cloudformation_style_lower_case_names(planned: dict) -> None:
    name = planned["RawBucket"].name
    assert name.startswith("serverless-mlops-dev-rawbucket-")
    assert name == name.lower() and len(name) <= 63


def test_ref_returns_what_cloudformation_documents_per_type(planned: dict) -> None:
    assert planned["RawBucket"].ref == planned["RawBucket"].name
    assert planned["ScrapeDLQ"].ref.startswith("https://sqs.us-east-1.amazonaws.com/")
    assert planned["NotificationTopic"].ref.startswith("arn:aws:sns:")
    # AWS::SageMaker::ModelPackageGroup: Ref is the group's ARN.
    assert planned["ModelPackageGroup"].ref.startswith("arn:aws:sagemaker:")


def test_function_environments_hold_physical_names(planned: dict) -> None:
    env = planned["ValidateFunction"].properties["Environment"]["Variables"]
    assert env["RAW_BUCKET"] == planned["RawBucket"].name
    assert env["LEDGER_TABLE"] == planned["RunLedgerTable"].name
    assert env["STAGE"] == "dev"
    assert not any("Ref" in str(v) or "Fn::" in str(v) for v in env.values())
