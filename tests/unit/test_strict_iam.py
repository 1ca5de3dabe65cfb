"""The strict local cloud's IAM evaluation follows AWS's documented policy logic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localcloud.strict.iam import (
    AuthorizationRequest,
    Decision,
    PolicyError,
    UnknownManagedPolicy,
    deny_message,
    evaluate,
    managed_policy_document,
    resource_matches,
)

ROLE = "arn:aws:iam::123456789012:role/stack-ValidateFunctionRole-ABC"
SESSION = "arn:aws:sts::123456789012:assumed-role/stack-ValidateFunctionRole-ABC/validate"
BUCKET = "arn:aws:s3:::raw-bucket"
OBJECT = "arn:aws:s3:::raw-bucket/dataset=cars/part-0.jsonl.gz"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def decide(
    action: str,
    resource: str,
    *statements: dict[str, Any],
    context: dict[str, Any] | None = None,
) -> Decision:
    request = AuthorizationRequest(action, resource, context or {})
    return evaluate(request, [policy(*statements)], principal_arn=ROLE)


# ------------------------------------------------------------------------ evaluation order


def test_nothing_allows_means_implicit_deny() -> None:
    decision = decide("s3:GetObject", OBJECT, allow("s3:PutObject", f"{BUCKET}/*"))
    assert decision == Decision(False, "implicit-deny")


def test_an_allow_names_the_statement_that_allowed() -> None:
    statement = allow("s3:GetObject", f"{BUCKET}/*")
    decision = decide("s3:GetObject", OBJECT, statement)
    assert decision.allowed and decision.reason == "allowed"
    assert decision.statement == statement and decision.source == "identity"


def test_an_explicit_deny_beats_any_allow() -> None:
    decision = decide("s3:GetObject", OBJECT, allow("s3:*"), deny("s3:GetObject", OBJECT))
    assert not decision.allowed and decision.reason == "explicit-deny"


def test_statement_may_be_a_single_object_and_action_a_string() -> None:
    document = {"Version": "2012-10-17", "Statement": allow("s3:GetObject", OBJECT)}
    request = AuthorizationRequest("s3:GetObject", OBJECT)
    assert evaluate(request, [document]).allowed


def test_policies_are_combined_across_documents() -> None:
    request = AuthorizationRequest("s3:GetObject", OBJECT)
    documents = [policy(allow("s3:PutObject", OBJECT)), policy(allow("s3:GetObject", OBJECT))]
    assert evaluate(request, documents).allowed


# --------------------------------------------------------------------- same-account resource


def test_a_resource_policy_allow_for_the_role_suffices_without_an_identity_allow() -> None:
    bucket_policy = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": [ROLE]},
            "Action": "s3:GetObject",
            "Resource": f"{BUCKET}/*",
        }
    )
    request = AuthorizationRequest("s3:GetObject", OBJECT)
    decision = evaluate(request, [], resource_policy=bucket_policy, principal_arn=ROLE)
    assert decision.allowed and decision.source == "resource"


def test_a_resource_policy_naming_the_role_session_names_the_role() -> None:
    queue_policy = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": SESSION},
            "Action": "sqs:SendMessage",
            "Resource": "*",
        }
    )
    request = AuthorizationRequest("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:q")
    assert evaluate(request, [], resource_policy=queue_policy, principal_arn=ROLE).allowed


def test_a_service_principal_never_names_a_role() -> None:
    bucket_policy = policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"{BUCKET}/*",
        }
    )
    request = AuthorizationRequest("s3:PutObject", OBJECT)
    decision = evaluate(request, [], resource_policy=bucket_policy, principal_arn=ROLE)
    assert decision.reason == "implicit-deny"


def test_an_account_principal_delegates_allows_but_its_deny_applies() -> None:
    grant = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "s3:GetObject",
        "Resource": f"{BUCKET}/*",
    }
    request = AuthorizationRequest("s3:GetObject", OBJECT)
    assert not evaluate(request, [], policy(grant), principal_arn=ROLE).allowed
    refusal = {**grant, "Effect": "Deny", "Principal": {"AWS": "123456789012"}}
    decision = evaluate(request, [policy(allow("s3:*"))], policy(refusal), principal_arn=ROLE)
    assert decision.reason == "explicit-deny" and decision.source == "resource"


def test_the_template_tls_only_bucket_policy_denies_plain_http_only() -> None:
    tls_only = policy(
        {
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [BUCKET, f"{BUCKET}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
    identity = [policy(allow("s3:GetObject", f"{BUCKET}/*"))]
    over_tls = AuthorizationRequest("s3:GetObject", OBJECT, {"aws:SecureTransport": "true"})
    plain = AuthorizationRequest("s3:GetObject", OBJECT, {"aws:SecureTransport": "false"})
    assert evaluate(over_tls, identity, tls_only, principal_arn=ROLE).allowed
    refused = evaluate(plain, identity, tls_only, principal_arn=ROLE)
    assert refused.reason == "explicit-deny" and refused.source == "resource"


# ----------------------------------------------------------------------- actions, resources


@pytest.mark.parametrize(
    ("pattern", "action", "matches"),
    [
        ("s3:GetObject", "s3:getobject", True),  # action names are case-insensitive
        ("S3:Get*", "s3:GetObjectVersion", True),
        ("s3:Get?bject", "s3:GetObject", True),
        ("s3:Get?bject", "s3:GetObjectVersion", False),
        ("*", "glue:GetTable", True),
        ("s3:Put*", "s3:GetObject", False),
    ],
)
def test_action_matching(pattern: str, action: str, matches: bool) -> None:
    assert decide(action, "*", allow(pattern)).allowed is matches


def test_not_action_covers_every_other_action() -> None:
    statement = {"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"}
    assert decide("s3:GetObject", OBJECT, statement).allowed
    assert not decide("iam:PassRole", ROLE, statement).allowed


def test_not_resource_covers_every_other_resource() -> None:
    statement = {"Effect": "Deny", "Action": "s3:*", "NotResource": f"{BUCKET}/*"}
    other = "arn:aws:s3:::other-bucket/key"
    assert decide("s3:GetObject", other, allow("s3:*"), statement).reason == "explicit-deny"
    assert decide("s3:GetObject", OBJECT, allow("s3:*"), statement).allowed


@pytest.mark.parametrize(
    ("pattern", "resource", "matches"),
    [
        # A * expands over "/" within its segment ("IAM JSON policy elements: Resource").
        ("arn:aws:s3:::raw-bucket/*", OBJECT, True),
        ("arn:aws:s3:::raw-bucket/dataset=*/part-?.jsonl.gz", OBJECT, True),
        # Resource ARNs match case-sensitively.
        ("arn:aws:s3:::RAW-bucket/*", OBJECT, False),
        # The bucket's ARN is not an object ARN and vice versa.
        ("arn:aws:s3:::raw-bucket", OBJECT, False),
        ("arn:aws:s3:::raw-bucket/*", BUCKET, False),
        # A * that ends a segment may run across colons ...
        (
            "arn:aws:logs:*:*:*:/aws-glue/*",
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws-glue/jobs:log-stream:x",
            True,
        ),
        ("*", "arn:aws:dynamodb:us-east-1:123456789012:table/t", True),
        # ... but one in the middle of a segment stops at the next colon.
        (
            "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-*-dev/*",
            "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-cars-dev/3",
            True,
        ),
        ("arn:aws:s3:::raw-bucket/*.csv", "arn:aws:s3:::raw-bucket/a:b.csv", False),
        (
            "arn:aws:dynamodb:us-east-1:123456789012:table/ledger",
            "arn:aws:dynamodb:us-east-1:123456789012:table/ledger/index/by-stage",
            False,
        ),
    ],
)
def test_resource_matching(pattern: str, resource: str, matches: bool) -> None:
    assert resource_matches(pattern, resource) is matches


def test_policy_variables_are_refused_rather_than_guessed() -> None:
    with pytest.raises(PolicyError, match="policy variables"):
        decide("s3:GetObject", OBJECT, allow("s3:GetObject", "arn:aws:s3:::b/${aws:username}/*"))


def test_identity_statement_without_resource_is_malformed() -> None:
    with pytest.raises(PolicyError):
        decide("s3:GetObject", OBJECT, {"Effect": "Allow", "Action": "s3:GetObject"})


# ----------------------------------------------------------------------------- conditions


def conditional(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    return decide(
        "s3:ListBucket",
        BUCKET,
        allow("s3:ListBucket", BUCKET, Condition=condition),
        context=context,
    ).allowed


def test_string_equals_and_missing_key() -> None:
    condition = {"StringEquals": {"s3:prefix": "dataset=cars/"}}
    assert conditional(condition, {"s3:prefix": "dataset=cars/"})
    assert not conditional(condition, {"s3:prefix": "DATASET=cars/"})  # values are case-sensitive
    assert not conditional(condition, {})  # a missing key makes the condition false


def test_condition_key_names_are_case_insensitive() -> None:
    assert conditional({"StringEquals": {"S3:Prefix": "a"}}, {"s3:prefix": "a"})


def test_multiple_values_are_ored_and_multiple_keys_anded() -> None:
    condition = {"StringEquals": {"s3:prefix": ["a/", "b/"], "s3:delimiter": "/"}}
    assert conditional(condition, {"s3:prefix": "b/", "s3:delimiter": "/"})
    assert not conditional(condition, {"s3:prefix": "b/"})
    assert not conditional(condition, {"s3:prefix": "c/", "s3:delimiter": "/"})


def test_multiple_operators_are_anded() -> None:
    condition = {
        "StringLike": {"s3:prefix": "dataset=*"},
        "NumericLessThanEquals": {"s3:max-keys": "1000"},
    }
    assert conditional(condition, {"s3:prefix": "dataset=x/", "s3:max-keys": "10"})
    assert not conditional(condition, {"s3:prefix": "dataset=x/", "s3:max-keys": "5000"})


def test_negated_operators_are_true_for_a_missing_key_and_nor_their_values() -> None:
    condition = {"StringNotEquals": {"s3:prefix": ["secret/", "private/"]}}
    assert conditional(condition, {})  # "Condition operators": negated + missing key is true
    assert conditional(condition, {"s3:prefix": "public/"})
    assert not conditional(condition, {"s3:prefix": "private/"})


def test_string_like_and_ignore_case() -> None:
    assert conditional({"StringLike": {"s3:prefix": "run_id=?/*"}}, {"s3:prefix": "run_id=1/x"})
    assert not conditional({"StringNotLike": {"s3:prefix": "tmp*"}}, {"s3:prefix": "tmp/x"})
    assert conditional({"StringEqualsIgnoreCase": {"s3:prefix": "ABC"}}, {"s3:prefix": "abc"})


def test_arn_operators_compare_segment_by_segment() -> None:
    key = "aws:SourceArn"
    rule = "arn:aws:events:us-east-1:123456789012:rule/mlops-validate"
    assert conditional({"ArnLike": {key: "arn:aws:events:*:123456789012:rule/*"}}, {key: rule})
    assert conditional({"ArnEquals": {key: rule}}, {key: rule})
    # a * in one segment does not swallow the next one
    assert not conditional({"ArnLike": {key: "arn:aws:*:123456789012:rule/*"}}, {key: rule})
    assert conditional({"ArnNotLike": {key: "arn:aws:sns:*"}}, {})
    assert not conditional({"ArnNotEquals": {key: rule}}, {key: rule})


def test_bool_and_null() -> None:
    assert conditional({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "true"})
    assert conditional({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "true"})
    assert not conditional({"Bool": {"aws:SecureTransport": "true"}}, {})
    # Null: "true" means the key must be absent, "false" that it must be present.
    assert conditional({"Null": {"s3:prefix": "true"}}, {})
    assert not conditional({"Null": {"s3:prefix": "true"}}, {"s3:prefix": "x"})
    assert conditional({"Null": {"s3:prefix": "false"}}, {"s3:prefix": "x"})


def test_numeric_operators() -> None:
    key = "s3:max-keys"
    assert conditional({"NumericEquals": {key: 10}}, {key: "10"})
    assert conditional({"NumericNotEquals": {key: "10"}}, {key: "11"})
    assert conditional({"NumericLessThan": {key: "10"}}, {key: "9.5"})
    assert not conditional({"NumericGreaterThan": {key: "10"}}, {key: "10"})
    assert conditional({"NumericGreaterThanEquals": {key: "10"}}, {key: "10"})


def test_if_exists_passes_a_missing_key_but_still_checks_a_present_one() -> None:
    condition = {"StringEqualsIfExists": {"s3:prefix": "a/"}}
    assert conditional(condition, {})
    assert conditional(condition, {"s3:prefix": "a/"})
    assert not conditional(condition, {"s3:prefix": "b/"})


def test_for_all_values_and_for_any_value() -> None:
    allowed_keys = {"ForAllValues:StringEquals": {"aws:TagKeys": ["run_id", "dataset"]}}
    assert conditional(allowed_keys, {"aws:TagKeys": ["run_id"]})
    assert not conditional(allowed_keys, {"aws:TagKeys": ["run_id", "owner"]})
    assert conditional(allowed_keys, {})  # ForAllValues is true when the key is absent
    any_key = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["run_id"]}}
    assert conditional(any_key, {"aws:TagKeys": ["owner", "run_id"]})
    assert not conditional(any_key, {"aws:TagKeys": ["owner"]})
    assert not conditional(any_key, {})
    forbidden = {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["owner"]}}
    assert conditional(forbidden, {"aws:TagKeys": ["run_id", "dataset"]})
    assert not conditional(forbidden, {"aws:TagKeys": ["run_id", "owner"]})


def test_the_template_pass_role_condition() -> None:
    statement = allow(
        "iam:PassRole",
        "arn:aws:iam::123456789012:role/stack-SageMakerExecutionRole-X",
        Condition={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    )
    role = "arn:aws:iam::123456789012:role/stack-SageMakerExecutionRole-X"
    to_sagemaker = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    to_glue = {"iam:PassedToService": "glue.amazonaws.com"}
    assert decide("iam:PassRole", role, statement, context=to_sagemaker).allowed
    assert not decide("iam:PassRole", role, statement, context=to_glue).allowed


def test_an_unknown_operator_is_an_error_not_a_silent_pass() -> None:
    with pytest.raises(PolicyError, match="BinaryEquals"):
        conditional({"BinaryEquals": {"k": "QmluYXJ5"}}, {"k": "QmluYXJ5"})


# ------------------------------------------------------------------------------- messages


def test_implicit_deny_message_uses_aws_wording() -> None:
    request = AuthorizationRequest("s3:PutObject", "arn:aws:s3:::bucket/key")
    message = deny_message(SESSION, request, Decision(False, "implicit-deny"))
    assert message == (
        f"User: {SESSION} is not authorized to perform: s3:PutObject on resource: "
        "arn:aws:s3:::bucket/key because no identity-based policy allows the s3:PutObject action"
    )


def test_explicit_deny_messages_say_where_the_deny_is() -> None:
    request = AuthorizationRequest("s3:GetObject", OBJECT)
    identity = deny_message(SESSION, request, Decision(False, "explicit-deny", {}, "identity"))
    resource = deny_message(SESSION, request, Decision(False, "explicit-deny", {}, "resource"))
    assert identity.endswith(
        f"on resource: {OBJECT} with an explicit deny in an identity-based policy"
    )
    assert resource.endswith("with an explicit deny in a resource-based policy")


def test_a_message_for_an_action_without_resources_names_none() -> None:
    request = AuthorizationRequest("cloudwatch:PutMetricData", "*")
    message = deny_message(SESSION, request, Decision(False, "implicit-deny"))
    assert message == (
        f"User: {SESSION} is not authorized to perform: cloudwatch:PutMetricData because no "
        "identity-based policy allows the cloudwatch:PutMetricData action"
    )


# ----------------------------------------------------------------------- managed policies


def test_lambda_basic_execution_role_allows_logging_only() -> None:
    document = managed_policy_document(
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    )
    group = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f"
    assert evaluate(AuthorizationRequest("logs:CreateLogGroup", group), [document]).allowed
    assert not evaluate(AuthorizationRequest("s3:GetObject", OBJECT), [document]).allowed


def test_glue_service_role_covers_the_catalog_but_not_the_lake_buckets() -> None:
    document = managed_policy_document("arn:aws:iam::aws:policy/service-role/AWSGlueServiceRole")
    table = "arn:aws:glue:us-east-1:123456789012:table/db/t"
    assert evaluate(AuthorizationRequest("glue:GetTable", table), [document]).allowed
    glue_bucket = "arn:aws:s3:::aws-glue-assets-123/scripts/x.py"
    assert evaluate(AuthorizationRequest("s3:GetObject", glue_bucket), [document]).allowed
    assert not evaluate(AuthorizationRequest("s3:GetObject", OBJECT), [document]).allowed


def test_managed_policy_documents_are_copies_and_follow_the_partition() -> None:
    arn = "arn:aws-cn:iam::aws:policy/service-role/AWSGlueServiceRole"
    document = managed_policy_document(arn)
    assert "arn:aws-cn:s3:::aws-glue-*" in str(document)
    document["Statement"].clear()
    assert managed_policy_document(arn)["Statement"]


def test_an_unknown_managed_policy_is_a_clear_error() -> None:
    with pytest.raises(UnknownManagedPolicy, match="AmazonS3FullAccess"):
        managed_policy_document("arn:aws:iam::aws:policy/AmazonS3FullAccess")
    with pytest.raises(UnknownManagedPolicy):
        managed_policy_document("arn:aws:iam::123456789012:policy/mine")


def test_every_managed_policy_the_translated_template_attaches_is_embedded() -> None:
    from localcloud.template import Resolver, Template

    template = Template.load(Path(__file__).resolve().parents[2])
    resolver = Resolver(template, {}, {}, template.conditions)
    attached = {
        resolver.resolve(arn)
        for role in template.of_type("AWS::IAM::Role").values()
        for arn in role["Properties"].get("ManagedPolicyArns", [])
    }
    assert attached  # SAM adds AWSLambdaBasicExecutionRole to every function's role
    for arn in attached:
        assert managed_policy_document(arn)["Statement"]
