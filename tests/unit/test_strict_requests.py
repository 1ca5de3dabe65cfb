"""The strict local cloud's request checks: AWS's model constraints and payload limits."""

from __future__ import annotations

import functools
import io
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.model import OperationModel, ServiceModel

from localcloud.strict import requests
from localcloud.strict.requests import (
    EVENTBRIDGE_PUT_EVENTS_LIMIT,
    LAMBDA_ASYNC_PAYLOAD_LIMIT,
    LAMBDA_SYNC_PAYLOAD_LIMIT,
    check_lambda_payload,
    check_payload_limits,
    check_request,
    compile_pattern,
    put_events_entry_size,
)

SERVICES = [
    "s3",
    "dynamodb",
    "glue",
    "sagemaker",
    "sagemaker-runtime",
    "events",
    "sns",
    "sqs",
    "cloudwatch",
    "application-autoscaling",
    "logs",
    "sts",
]
ROLE = "arn:aws:iam::123456789012:role/mlops-training"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2"
TAG_PATTERN = r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"


@functools.cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.cache
def service(name: str) -> ServiceModel:
    return _session().get_service_model(name)


def operation(service_name: str, name: str) -> OperationModel:
    return service(service_name).operation_model(name)


def refusal(service_name: str, name: str, params: dict[str, Any], **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as caught:
        check_request(operation(service_name, name), params, **kwargs)
    return caught.value


def training_job(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": "mlops-used-cars-20240101t000000z-1a2b3c",
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
        },
        "RoleArn": ROLE,
        "HyperParameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"s3://artifacts/code/sourcedir.tar.gz"',
            "run_id": '"20240101T000000Z-1a2b3c"',
            "n_estimators": "200",
        },
        "InputDataConfig": [
            {
                "ChannelName": split,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://curated/dataset=used_cars/run_id=r/split={split}/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/x-parquet",
                "InputMode": "File",
            }
            for split in ("train", "validation", "test")
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://artifacts/models/used_cars/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "EnableManagedSpotTraining": False,
        "Tags": [{"Key": "run_id", "Value": "20240101T000000Z-1a2b3c"}],
    }
    request.update(overrides)
    return request


def model_package(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "ModelPackageGroupName": "mlops-used-cars",
        "ModelPackageDescription": "RMSE 1234.5 against baseline 2345.6",
        "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": IMAGE,
                    "ModelDataUrl": "s3://artifacts/models/used_cars/job/output/model.tar.gz",
                    "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                }
            ],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large", "ml.c5.large"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": "s3://artifacts/reports/evaluation.json",
                }
            }
        },
        "MetadataProperties": {"GeneratedBy": "arn:aws:sagemaker:us-east-1:123456789012:x"},
        "CustomerMetadataProperties": {
            "training_job": "mlops-used-cars-20240101t000000z-1a2b3c",
            "champion_source": "s3://artifacts/models/used_cars/old/output/model.tar.gz",
            "rmse": "1234.5",
        },
        "Tags": [{"Key": "dataset", "Value": "used_cars"}],
    }
    request.update(overrides)
    return request


# --------------------------------------------------------------------------- model constraints


def test_given_a_metadata_value_with_a_parenthesis_when_registering_then_validation_exception() -> (
    None
):
    properties = {"champion_source": "s3://artifacts/model (old).tar.gz"}
    error = refusal(
        "sagemaker", "CreateModelPackage", model_package(CustomerMetadataProperties=properties)
    )
    assert error.response["Error"]["Code"] == "ValidationException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.response["Error"]["Message"] == (
        "1 validation error detected: Value '{champion_source=s3://artifacts/model (old).tar.gz}'"
        " at 'customerMetadataProperties' failed to satisfy constraint: Map value must satisfy"
        " constraint: [Member must have length less than or equal to 256, Member must have length"
        " greater than or equal to 1, Member must satisfy regular expression pattern:"
        r" ([\p{L}\p{Z}\p{N}_.:\/=+\-@]*)${1,256}]"
    )


def test_given_a_64_character_training_job_name_when_creating_then_refused() -> None:
    name = "a" * 64
    message = refusal("sagemaker", "CreateTrainingJob", training_job(TrainingJobName=name))
    text = message.response["Error"]["Message"]
    assert text.startswith("2 validation errors detected: ")
    assert (
        f"Value '{name}' at 'trainingJobName' failed to satisfy constraint: "
        "Member must have length less than or equal to 63"
    ) in text


def test_given_a_63_character_training_job_name_when_creating_then_accepted() -> None:
    check_request(
        operation("sagemaker", "CreateTrainingJob"), training_job(TrainingJobName="a" * 63)
    )


def test_given_an_unknown_instance_type_when_creating_a_training_job_then_enum_refusal() -> None:
    config = {"InstanceType": "ml.t9.huge", "InstanceCount": 1, "VolumeSizeInGB": 10}
    error = refusal("sagemaker", "CreateTrainingJob", training_job(ResourceConfig=config))
    message = error.response["Error"]["Message"]
    assert message.startswith(
        "1 validation error detected: Value 'ml.t9.huge' at 'resourceConfig.instanceType' failed"
        " to satisfy constraint: Member must satisfy enum value set: [ml.m4.xlarge, "
    )


def test_given_the_pipelines_training_request_when_checked_then_it_passes() -> None:
    check_request(operation("sagemaker", "CreateTrainingJob"), training_job())


def test_given_the_pipelines_model_package_request_when_checked_then_it_passes() -> None:
    check_request(operation("sagemaker", "CreateModelPackage"), model_package())


def test_given_a_bad_tag_in_a_list_when_checked_then_the_path_names_the_element() -> None:
    tags = [{"Key": "ok", "Value": "fine"}, {"Key": "stage", "Value": "bad(value)"}]
    error = refusal("sagemaker", "CreateTrainingJob", training_job(Tags=tags))
    assert error.response["Error"]["Message"] == (
        "1 validation error detected: Value 'bad(value)' at 'tags.2.member.value' failed to"
        f" satisfy constraint: Member must satisfy regular expression pattern: {TAG_PATTERN}"
    )


def test_given_a_list_of_enums_with_an_unknown_value_then_the_list_is_reported_once() -> None:
    spec = model_package()["InferenceSpecification"]
    spec["SupportedRealtimeInferenceInstanceTypes"] = ["ml.m5.large", "ml.x1.tiny", "ml.x2.tiny"]
    error = refusal("sagemaker", "CreateModelPackage", model_package(InferenceSpecification=spec))
    message = error.response["Error"]["Message"]
    assert message.startswith(
        "1 validation error detected: Value '[ml.m5.large, ml.x1.tiny, ml.x2.tiny]' at"
        " 'inferenceSpecification.supportedRealtimeInferenceInstanceTypes' failed to satisfy"
        " constraint: Member must satisfy constraint: [Member must satisfy enum value set: ["
    )


def test_given_bad_map_keys_when_putting_targets_then_aws_exact_message() -> None:
    # The message AWS returned for this request (an input transformer with spaces in its keys).
    paths = {
        "de onde?": "$.detail.sourceIPAddress",
        "Quem foi?": "$.detail.userIdentity.userName",
        "o que?": "$.detail.eventName",
    }
    target = {
        "Id": "t1",
        "Arn": "arn:aws:sns:us-east-1:123456789012:topic",
        "InputTransformer": {"InputPathsMap": paths, "InputTemplate": '"<o que?>"'},
    }
    error = refusal("events", "PutTargets", {"Rule": "r", "Targets": [target]})
    assert error.response["Error"]["Message"] == (
        "1 validation error detected: Value '{de onde?=$.detail.sourceIPAddress, Quem foi?="
        "$.detail.userIdentity.userName, o que?=$.detail.eventName}' at"
        " 'targets.1.member.inputTransformer.inputPathsMap' failed to satisfy constraint: Map keys"
        " must satisfy constraint: [Member must have length less than or equal to 256, Member"
        r" must have length greater than or equal to 1, Member must satisfy regular expression"
        r" pattern: [A-Za-z0-9\_\-]+]"
    )


def test_given_a_structure_inside_a_map_when_it_breaks_a_rule_then_the_path_has_key_member() -> (
    None
):
    keys = [{"pk": {"S": str(i)}} for i in range(101)]
    error = refusal("dynamodb", "BatchGetItem", {"RequestItems": {"runs": {"Keys": keys}}})
    message = error.response["Error"]["Message"]
    assert "at 'requestItems.runs.member.keys' failed to satisfy constraint: " in message
    assert message.endswith("Member must have length less than or equal to 100")


def test_given_a_map_value_list_too_long_then_reported_as_map_value_constraint() -> None:
    writes = [{"PutRequest": {"Item": {"pk": {"S": "x"}}}}] * 26
    error = refusal("dynamodb", "BatchWriteItem", {"RequestItems": {"runs": writes}})
    assert error.response["Error"]["Message"].endswith(
        "at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint:"
        " [Member must have length less than or equal to 25, Member must have length greater than"
        " or equal to 1]"
    )


def test_given_a_client_without_validation_and_a_number_under_its_range_then_value_constraint() -> (
    None
):
    condition = {"MaxRuntimeInSeconds": 0}
    error = refusal(
        "sagemaker",
        "CreateTrainingJob",
        training_job(StoppingCondition=condition),
        client_validates=False,
    )
    assert error.response["Error"]["Message"] == (
        "1 validation error detected: Value '0' at 'stoppingCondition.maxRuntimeInSeconds' failed"
        " to satisfy constraint: Member must have value greater than or equal to 1"
    )


def test_given_botocore_validates_when_a_string_is_too_short_then_left_to_botocore() -> None:
    # botocore refuses min violations client-side (ParamValidationError): AWS never sees them.
    check_request(operation("logs", "DescribeLogGroups"), {"logGroupNamePrefix": ""})


def test_given_botocore_does_not_validate_then_aws_reports_pattern_and_min_in_its_order() -> None:
    error = refusal("logs", "DescribeLogGroups", {"logGroupNamePrefix": ""}, client_validates=False)
    # CloudWatch Logs' answer to this request, code and message.
    assert error.response["Error"]["Code"] == "InvalidParameterException"
    assert error.response["Error"]["Message"] == (
        "2 validation errors detected: Value '' at 'logGroupNamePrefix' failed to satisfy"
        r" constraint: Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+;"
        " Value '' at 'logGroupNamePrefix' failed to satisfy constraint: Member must have length"
        " greater than or equal to 1"
    )


def test_given_a_session_name_with_a_space_when_assuming_a_role_then_sts_validation_error() -> None:
    params = {"RoleArn": ROLE, "RoleSessionName": "has space"}
    error = refusal("sts", "AssumeRole", params)
    assert error.response["Error"]["Code"] == "ValidationError"
    assert error.response["Error"]["Message"] == (
        "1 validation error detected: Value 'has space' at 'roleSessionName' failed to satisfy"
        r" constraint: Member must satisfy regular expression pattern: [\w+=,.@-]*"
    )


@pytest.mark.parametrize(
    ("service_name", "name", "params", "code"),
    [
        ("glue", "GetTable", {"DatabaseName": "d" * 256, "Name": "t"}, "InvalidInputException"),
        ("cloudwatch", "PutMetricAlarm", {"AlarmName": "a" * 256}, "ValidationError"),
        ("dynamodb", "GetItem", {"TableName": "t" * 1025, "Key": {}}, "ValidationException"),
        ("events", "PutRule", {"Name": "bad name"}, "ValidationException"),
        (
            "sagemaker-runtime",
            "InvokeEndpoint",
            {"EndpointName": "e_1", "Body": b"{}"},
            "ValidationError",
        ),
    ],
)
def test_given_a_violation_then_the_service_answers_with_its_own_code(
    service_name: str, name: str, params: dict[str, Any], code: str
) -> None:
    error = refusal(service_name, name, params)
    assert error.response["Error"]["Code"] == code
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_given_a_sensitive_member_then_its_value_is_not_quoted() -> None:
    # InvokeEndpoint's Body is a sensitive blob: AWS says "Value at 'body'".
    body = b"x" * (requests.SAGEMAKER_REALTIME_PAYLOAD_LIMIT + 1)
    error = refusal("sagemaker-runtime", "InvokeEndpoint", {"EndpointName": "e", "Body": body})
    assert error.response["Error"]["Message"] == (
        "1 validation error detected: Value at 'body' failed to satisfy constraint: Member must"
        " have length less than or equal to 6291456"
    )


def test_given_more_than_ten_violations_then_aws_lists_ten() -> None:
    items = [{"Key": f"k{i}", "Value": "(bad)"} for i in range(12)]
    error = refusal("sagemaker", "AddTags", {"ResourceArn": ROLE, "Tags": items})
    assert error.response["Error"]["Message"].startswith("10 validation errors detected: ")


def test_given_a_client_when_refused_then_its_modelled_exception_class_is_raised() -> None:
    glue = _session().create_client(
        "glue", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with pytest.raises(glue.exceptions.InvalidInputException):
        check_request(
            glue.meta.service_model.operation_model("GetTable"),
            {"DatabaseName": "d" * 256, "Name": "t"},
            exceptions=glue.exceptions,
        )


def test_given_an_s3_storage_class_typo_then_invalid_storage_class() -> None:
    params = {"Bucket": "raw", "Key": "a.csv", "StorageClass": "STANDARD_IAA"}
    error = refusal("s3", "PutObject", params)
    assert error.response["Error"]["Code"] == "InvalidStorageClass"


def test_given_an_unknown_sqs_attribute_then_invalid_attribute_name() -> None:
    params = {"QueueUrl": "https://sqs/q", "AttributeNames": ["All", "Colour"]}
    error = refusal("sqs", "GetQueueAttributes", params)
    assert error.response["Error"]["Code"] == "InvalidAttributeName"
    assert error.response["Error"]["Message"] == "Unknown Attribute Colour."


# --------------------------------------------------------------------------- Java patterns


@pytest.mark.parametrize("name", SERVICES)
def test_given_the_services_models_then_every_pattern_compiles(name: str) -> None:
    patterns = requests.model_patterns(service(name))
    not_compiled = [p for p in patterns if compile_pattern(p) is None]
    assert not_compiled == []
    assert not set(patterns) & set(requests.skipped_patterns())


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        # Java's \w, \d and \s are ASCII; \p{L} is Unicode.
        (r"\w+", "abc_1", True),
        (r"\w+", "é", False),
        (r"\p{L}+", "é", True),
        (r"[\p{L}\p{Z}\p{N}]+", "Zürich 1", True),
        # POSIX classes are ASCII in Java.
        (r"\p{Print}+", "abc", True),
        (r"\p{Print}+", "é", False),
        # An escaped surrogate pair is one supplementary code point.
        (r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*", "a😀\t", True),
        (r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*", "a\x01", False),
        # \A...\z anchor the whole input; \z does not allow a trailing newline.
        (r"\A\S[\p{Print}]*\z", "model-1", True),
        (r"\A\S[\p{Print}]*\z", "model-1\n", False),
        # The whole value must match, not a prefix.
        (r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", "job-1", True),
        (r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", "job_1", False),
        # Java's "." stops at any line terminator, not only "\n".
        (r".+", "a\rb", False),
        # Set intersection, \Q...\E quoting.
        (r"[a-z&&[^aeiou]]+", "xyz", True),
        (r"[a-z&&[^aeiou]]+", "xaz", False),
        (r"\Qa.b\E", "a.b", True),
        (r"\Qa.b\E", "axb", False),
    ],
)
def test_given_a_java_pattern_then_it_matches_as_java_does(
    pattern: str, value: str, matches: bool
) -> None:
    compiled = compile_pattern(pattern)
    assert compiled is not None
    assert (compiled.fullmatch(value) is not None) is matches


# --------------------------------------------------------------------------- payload limits


def entry(detail_bytes: int) -> dict[str, Any]:
    return {"Source": "mlops", "DetailType": "Run Validated", "Detail": "x" * detail_bytes}


def test_given_an_entry_then_its_size_is_computed_as_aws_documents() -> None:
    from datetime import datetime, timezone

    item = {
        "Time": datetime(2024, 1, 1, tzinfo=timezone.utc),
        "Source": "mlops",
        "DetailType": "Run Validated",
        "Detail": '{"a":"é"}',
        "Resources": ["arn:a", "arn:b"],
    }
    assert put_events_entry_size(item) == 14 + 5 + 13 + 10 + 5 + 5


def test_given_entries_over_the_limit_when_putting_events_then_refused() -> None:
    overhead = put_events_entry_size(entry(0))
    big = entry(EVENTBRIDGE_PUT_EVENTS_LIMIT - overhead + 1)
    with pytest.raises(ClientError) as caught:
        check_payload_limits("events", "PutEvents", {"Entries": [big]})
    assert caught.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Total size of the entries in the request is over the limit.",
    }


def test_given_entries_at_the_limit_when_putting_events_then_accepted() -> None:
    overhead = put_events_entry_size(entry(0))
    half = (EVENTBRIDGE_PUT_EVENTS_LIMIT - 2 * overhead) // 2
    check_payload_limits("events", "PutEvents", {"Entries": [entry(half), entry(half)]})


def test_given_two_entries_together_over_the_limit_then_refused() -> None:
    half = EVENTBRIDGE_PUT_EVENTS_LIMIT // 2
    with pytest.raises(ClientError):
        check_payload_limits("events", "PutEvents", {"Entries": [entry(half), entry(half)]})


def test_given_an_async_payload_over_the_limit_then_request_entity_too_large() -> None:
    with pytest.raises(ClientError) as caught:
        check_lambda_payload(b"x" * (LAMBDA_ASYNC_PAYLOAD_LIMIT + 1), asynchronous=True)
    error = caught.value.response
    assert error["Error"]["Code"] == "RequestEntityTooLargeException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error["Error"]["Message"] == (
        f"{LAMBDA_ASYNC_PAYLOAD_LIMIT + 1} byte payload is too large for the Event invocation"
        f" type (limit {LAMBDA_ASYNC_PAYLOAD_LIMIT} bytes)"
    )


def test_given_a_sync_payload_at_and_over_the_limit_then_only_over_is_refused() -> None:
    check_lambda_payload(b"x" * LAMBDA_SYNC_PAYLOAD_LIMIT, asynchronous=False)
    with pytest.raises(ClientError) as caught:
        check_lambda_payload(b"x" * (LAMBDA_SYNC_PAYLOAD_LIMIT + 1), asynchronous=False)
    assert caught.value.response["Error"]["Message"] == (
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    )


def test_given_an_invoke_request_then_the_invocation_type_picks_the_limit() -> None:
    payload = io.BytesIO(b"x" * (LAMBDA_ASYNC_PAYLOAD_LIMIT + 1))
    check_payload_limits("lambda", "Invoke", {"FunctionName": "f", "Payload": payload})
    with pytest.raises(ClientError):
        check_payload_limits(
            "lambda", "Invoke", {"FunctionName": "f", "Payload": payload, "InvocationType": "Event"}
        )


def test_given_a_serverless_endpoint_body_over_4_mb_then_oversize_body() -> None:
    body = b"x" * (requests.SAGEMAKER_SERVERLESS_PAYLOAD_LIMIT + 1)
    requests.check_invoke_endpoint_payload(body, serverless=False)
    with pytest.raises(ClientError) as caught:
        requests.check_invoke_endpoint_payload(body, serverless=True)
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert caught.value.response["Error"]["Message"].endswith("has oversize body.")


def test_given_an_s3_key_over_1024_bytes_then_key_too_long() -> None:
    with pytest.raises(ClientError) as caught:
        check_payload_limits("s3", "PutObject", {"Bucket": "raw", "Key": "é" * 513})
    assert caught.value.response["Error"]["Code"] == "KeyTooLongError"
    check_payload_limits("s3", "PutObject", {"Bucket": "raw", "Key": "é" * 512})


def test_given_a_dynamodb_resource_style_item_when_the_table_name_is_too_long_then_refused() -> (
    None
):
    # boto3's Table resource passes Python values that botocore serializes later: a type
    # mismatch there must not switch the other checks off.
    params = {"TableName": "t" * 1025, "Item": {"pk": "plain python value"}}
    error = refusal("dynamodb", "PutItem", params)
    assert error.response["Error"]["Message"].endswith(
        "at 'tableName' failed to satisfy constraint: Member must have length less than or"
        " equal to 1024"
    )
