"""The strict local cloud asks IAM what AWS asks it for each API call the project makes."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.strict.actions import UnmappedOperation, authorizations, mapped_operations
from localcloud.strict.iam import AuthorizationRequest, evaluate

REGION = "us-east-1"
ACCOUNT = "123456789012"
ARN = f"{REGION}:{ACCOUNT}"


def auth(service: str, operation: str, **params: Any) -> list[AuthorizationRequest]:
    return authorizations(service, operation, params, region=REGION, account=ACCOUNT)


def pairs(requests: list[AuthorizationRequest]) -> list[tuple[str, str]]:
    return [(r.action, r.resource) for r in requests]


# Every (botocore service, operation) the project's code paths call as a role, found by
# grepping layers/shared/mlops, functions/, glue/, training/ and localcloud/executors/, and by
# reading what awswrangler, Powertools idempotency and boto3's transfer manager call.
PROJECT_CALLS: list[tuple[str, str]] = [
    # mlops.contract, scraping.spec, evaluation.evaluate, preparation, web.endpoint,
    # validation.objects (with VersionId), glue/prepare.py, executors/training.py;
    # boto3 download_file (executors glue/training/endpoint) and awswrangler reads
    ("s3", "GetObject"),
    # validation.objects; boto3 download_file sizes the object first
    ("s3", "HeadObject"),
    # scraping.landing, validation.objects/completion, preparation, glue/prepare.py,
    # executors/training.py; awswrangler to_parquet and boto3 upload_file (small files)
    ("s3", "PutObject"),
    # awswrangler _fs writer and boto3 upload_file for large files
    ("s3", "CreateMultipartUpload"),
    ("s3", "UploadPart"),
    ("s3", "CompleteMultipartUpload"),
    ("s3", "AbortMultipartUpload"),
    # validation.objects: an unreadable object is copied to quarantine
    ("s3", "CopyObject"),
    # wr.s3.delete_objects in validation.objects; executors/glue.py clears the output prefix
    ("s3", "DeleteObjects"),
    # wr.s3.delete_objects / reads list first; executors glue and training paginate inputs
    ("s3", "ListObjectsV2"),
    # Powertools idempotency (validation.objects): get, put (conditional), update, delete
    ("dynamodb", "GetItem"),
    ("dynamodb", "PutItem"),
    ("dynamodb", "UpdateItem"),
    ("dynamodb", "DeleteItem"),
    # mlops.ledger: runs by stage and the run history
    ("dynamodb", "Query"),
    ("dynamodb", "Scan"),
    # wr.s3.to_parquet(dataset=True, database=..., table=...) in validation.objects
    ("glue", "GetTable"),
    ("glue", "CreateTable"),
    ("glue", "UpdateTable"),
    ("glue", "BatchCreatePartition"),
    ("glue", "GetPartitions"),
    # preparation: start the Glue job, read its run (start_training reads it too)
    ("glue", "StartJobRun"),
    ("glue", "GetJobRun"),
    ("glue", "GetJobRuns"),
    # training_launch
    ("sagemaker", "CreateTrainingJob"),
    ("sagemaker", "DescribeTrainingJob"),
    # training_launch (champion lookup), web.endpoint, deployment
    ("sagemaker", "DescribeEndpoint"),
    ("sagemaker", "DescribeEndpointConfig"),
    ("sagemaker", "DescribeModel"),
    ("sagemaker", "ListTags"),
    # evaluation.registry
    ("sagemaker", "DescribeModelPackageGroup"),
    ("sagemaker", "CreateModelPackageGroup"),
    ("sagemaker", "CreateModelPackage"),
    ("sagemaker", "ListModelPackages"),
    ("sagemaker", "DescribeModelPackage"),
    # deployment
    ("sagemaker", "CreateModel"),
    ("sagemaker", "CreateEndpointConfig"),
    ("sagemaker", "CreateEndpoint"),
    ("sagemaker", "UpdateEndpoint"),
    ("sagemaker", "DeleteEndpoint"),
    ("sagemaker", "AddTags"),
    ("application-autoscaling", "RegisterScalableTarget"),
    ("application-autoscaling", "PutScalingPolicy"),
    ("application-autoscaling", "DescribeScalableTargets"),
    ("application-autoscaling", "DescribeScalingPolicies"),
    # web.endpoint
    ("sagemaker-runtime", "InvokeEndpoint"),
    # web.capture: sampled predictions to the capture stream
    ("firehose", "PutRecordBatch"),
    # validation.completion: the "Run Validated" event
    ("events", "PutEvents"),
    # notifications
    ("sns", "Publish"),
    # Lambda's delivery of a failed async event to the function's DLQ (as its role)
    ("sqs", "SendMessage"),
    # SageMaker execution role (template): container metrics and logs
    ("cloudwatch", "PutMetricData"),
    ("logs", "CreateLogStream"),
    ("logs", "PutLogEvents"),
    # awswrangler may ask who it is to name the catalog; needs no permission
    ("sts", "GetCallerIdentity"),
]


def test_every_operation_the_project_calls_is_mapped() -> None:
    missing = sorted(set(PROJECT_CALLS) - mapped_operations())
    assert not missing, f"map these in localcloud/strict/actions.py: {missing}"


def test_an_unmapped_operation_fails_loudly_naming_it() -> None:
    with pytest.raises(UnmappedOperation, match=r"s3\.PutBucketPolicy"):
        auth("s3", "PutBucketPolicy", Bucket="b", Policy="{}")


def test_a_request_missing_what_the_mapping_needs_fails_loudly() -> None:
    with pytest.raises(UnmappedOperation, match="Bucket"):
        auth("s3", "GetObject", Key="k")


# --------------------------------------------------------------------------------------- S3


def test_list_objects_is_list_bucket_on_the_bucket_with_the_prefix_as_context() -> None:
    for operation in ("ListObjects", "ListObjectsV2"):
        (request,) = auth("s3", operation, Bucket="lake", Prefix="rows/", MaxKeys=10)
        assert (request.action, request.resource) == ("s3:ListBucket", "arn:aws:s3:::lake")
        assert request.context == {"s3:prefix": "rows/", "s3:max-keys": "10"}


def test_head_object_is_get_object_and_a_version_needs_get_object_version() -> None:
    assert pairs(auth("s3", "HeadObject", Bucket="b", Key="a/k")) == [
        ("s3:GetObject", "arn:aws:s3:::b/a/k")
    ]
    assert pairs(auth("s3", "GetObject", Bucket="b", Key="k", VersionId="v1")) == [
        ("s3:GetObjectVersion", "arn:aws:s3:::b/k")
    ]


@pytest.mark.parametrize(
    "operation", ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"]
)
def test_multipart_steps_are_put_object(operation: str) -> None:
    assert pairs(auth("s3", operation, Bucket="b", Key="big.parquet", UploadId="u")) == [
        ("s3:PutObject", "arn:aws:s3:::b/big.parquet")
    ]


def test_abort_multipart_upload_has_its_own_action() -> None:
    assert pairs(auth("s3", "AbortMultipartUpload", Bucket="b", Key="k", UploadId="u")) == [
        ("s3:AbortMultipartUpload", "arn:aws:s3:::b/k")
    ]


def test_copy_object_reads_the_source_and_writes_the_destination() -> None:
    requests = auth(
        "s3",
        "CopyObject",
        Bucket="quarantine",
        Key="objects/x",
        CopySource={"Bucket": "raw", "Key": "cars/x.csv"},
    )
    assert pairs(requests) == [
        ("s3:GetObject", "arn:aws:s3:::raw/cars/x.csv"),
        ("s3:PutObject", "arn:aws:s3:::quarantine/objects/x"),
    ]


def test_copy_of_a_version_in_header_form_needs_get_object_version() -> None:
    requests = auth(
        "s3", "CopyObject", Bucket="q", Key="k", CopySource="raw/cars/a%20b.csv?versionId=3"
    )
    assert pairs(requests)[0] == ("s3:GetObjectVersion", "arn:aws:s3:::raw/cars/a b.csv")


def test_delete_objects_is_delete_object_per_key() -> None:
    requests = auth(
        "s3",
        "DeleteObjects",
        Bucket="b",
        Delete={"Objects": [{"Key": "a"}, {"Key": "b", "VersionId": "2"}, {"Key": "a"}]},
    )
    assert pairs(requests) == [
        ("s3:DeleteObject", "arn:aws:s3:::b/a"),
        ("s3:DeleteObjectVersion", "arn:aws:s3:::b/b"),
    ]


def test_put_object_with_an_acl_also_needs_put_object_acl() -> None:
    requests = auth("s3", "PutObject", Bucket="b", Key="k", Body=b"", ACL="private")
    assert [r.action for r in requests] == ["s3:PutObject", "s3:PutObjectAcl"]
    assert requests[0].context == {"s3:x-amz-acl": "private"}


def test_head_bucket_is_list_bucket() -> None:
    assert pairs(auth("s3", "HeadBucket", Bucket="b")) == [("s3:ListBucket", "arn:aws:s3:::b")]


# --------------------------------------------------------------------------------- DynamoDB

TABLE = f"arn:aws:dynamodb:{ARN}:table/ledger"


@pytest.mark.parametrize("operation", ["GetItem", "PutItem", "UpdateItem", "DeleteItem"])
def test_item_operations_are_authorized_on_the_table(operation: str) -> None:
    assert pairs(auth("dynamodb", operation, TableName="ledger", Key={})) == [
        (f"dynamodb:{operation}", TABLE)
    ]


def test_a_query_of_an_index_is_authorized_on_the_index() -> None:
    assert pairs(auth("dynamodb", "Query", TableName="ledger", IndexName="by-stage")) == [
        ("dynamodb:Query", f"{TABLE}/index/by-stage")
    ]
    assert pairs(auth("dynamodb", "Scan", TableName="ledger")) == [("dynamodb:Scan", TABLE)]


def test_table_name_may_be_the_table_arn() -> None:
    assert pairs(auth("dynamodb", "GetItem", TableName=TABLE, Key={})) == [
        ("dynamodb:GetItem", TABLE)
    ]


def test_batch_write_is_its_own_action_once_per_table() -> None:
    requests = auth(
        "dynamodb", "BatchWriteItem", RequestItems={"ledger": [{}, {}], "idempotency": [{}]}
    )
    assert pairs(requests) == [
        ("dynamodb:BatchWriteItem", TABLE),
        ("dynamodb:BatchWriteItem", f"arn:aws:dynamodb:{ARN}:table/idempotency"),
    ]


def test_transact_write_needs_each_items_own_action() -> None:
    requests = auth(
        "dynamodb",
        "TransactWriteItems",
        TransactItems=[
            {"Put": {"TableName": "ledger", "Item": {}}},
            {"Update": {"TableName": "ledger", "Key": {}}},
            {"Delete": {"TableName": "idem", "Key": {}}},
            {"ConditionCheck": {"TableName": "ledger", "Key": {}}},
        ],
    )
    assert pairs(requests) == [
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
        ("dynamodb:DeleteItem", f"arn:aws:dynamodb:{ARN}:table/idem"),
        ("dynamodb:ConditionCheckItem", TABLE),
    ]
    assert requests[0].context == {"dynamodb:EnclosingOperation": "TransactWriteItems"}


# ------------------------------------------------------------------------------------- Glue


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("GetTable", {"DatabaseName": "lake", "Name": "used_cars"}),
        ("CreateTable", {"DatabaseName": "lake", "TableInput": {"Name": "used_cars"}}),
        ("UpdateTable", {"DatabaseName": "lake", "TableInput": {"Name": "used_cars"}}),
        (
            "BatchCreatePartition",
            {"DatabaseName": "lake", "TableName": "used_cars", "PartitionInputList": []},
        ),
        ("GetPartitions", {"DatabaseName": "lake", "TableName": "used_cars"}),
    ],
)
def test_catalog_table_calls_need_catalog_database_and_table(
    operation: str, params: dict[str, Any]
) -> None:
    assert pairs(auth("glue", operation, **params)) == [
        (f"glue:{operation}", f"arn:aws:glue:{ARN}:catalog"),
        (f"glue:{operation}", f"arn:aws:glue:{ARN}:database/lake"),
        (f"glue:{operation}", f"arn:aws:glue:{ARN}:table/lake/used_cars"),
    ]


def test_database_calls_need_catalog_and_database_in_the_catalogs_account() -> None:
    assert pairs(auth("glue", "GetDatabase", Name="lake", CatalogId="210987654321")) == [
        ("glue:GetDatabase", f"arn:aws:glue:{REGION}:210987654321:catalog"),
        ("glue:GetDatabase", f"arn:aws:glue:{REGION}:210987654321:database/lake"),
    ]


@pytest.mark.parametrize("operation", ["StartJobRun", "GetJobRun", "GetJobRuns"])
def test_job_calls_are_authorized_on_the_job(operation: str) -> None:
    assert pairs(auth("glue", operation, JobName="mlops-prepare-dev", RunId="jr_1")) == [
        (f"glue:{operation}", f"arn:aws:glue:{ARN}:job/mlops-prepare-dev")
    ]


# -------------------------------------------------------------------------------- SageMaker

ROLE = f"arn:aws:iam::{ACCOUNT}:role/stack-SageMakerExecutionRole-X"


def test_create_training_job_passes_the_role_and_tags_on_create() -> None:
    requests = auth(
        "sagemaker",
        "CreateTrainingJob",
        TrainingJobName="mlops-used-cars-20261127T120000Z-abcd1234",
        RoleArn=ROLE,
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        Tags=[{"Key": "run_id", "Value": "r1"}],
    )
    # SageMaker builds its ARNs from the lower-cased name.
    job = f"arn:aws:sagemaker:{ARN}:training-job/mlops-used-cars-20261127t120000z-abcd1234"
    assert pairs(requests) == [
        ("sagemaker:CreateTrainingJob", job),
        ("iam:PassRole", ROLE),
        ("sagemaker:AddTags", job),
    ]
    create, pass_role, add_tags = requests
    assert create.context["sagemaker:InstanceTypes"] == ["ml.m5.large"]
    assert create.context["sagemaker:MaxRuntimeInSeconds"] == "3600"
    assert create.context["aws:RequestTag/run_id"] == "r1"
    assert pass_role.context == {
        "iam:PassedToService": "sagemaker.amazonaws.com",
        "iam:AssociatedResourceArn": job,
    }
    assert add_tags.context["sagemaker:TaggingAction"] == "CreateTrainingJob"


def test_create_model_passes_its_execution_role() -> None:
    requests = auth(
        "sagemaker",
        "CreateModel",
        ModelName="mlops-cars-dev-v3",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={},
    )
    assert pairs(requests) == [
        ("sagemaker:CreateModel", f"arn:aws:sagemaker:{ARN}:model/mlops-cars-dev-v3"),
        ("iam:PassRole", ROLE),
    ]


def test_create_and_update_endpoint_need_the_endpoint_and_its_config() -> None:
    for operation in ("CreateEndpoint", "UpdateEndpoint"):
        requests = auth(
            "sagemaker",
            operation,
            EndpointName="Mlops-Cars-Dev",
            EndpointConfigName="mlops-cars-dev-v3",
        )
        assert pairs(requests) == [
            (f"sagemaker:{operation}", f"arn:aws:sagemaker:{ARN}:endpoint/mlops-cars-dev"),
            (
                f"sagemaker:{operation}",
                f"arn:aws:sagemaker:{ARN}:endpoint-config/mlops-cars-dev-v3",
            ),
        ]


def test_create_model_package_in_a_group_is_authorized_on_the_groups_versions() -> None:
    requests = auth(
        "sagemaker",
        "CreateModelPackage",
        ModelPackageGroupName="mlops-cars-dev",
        ModelApprovalStatus="PendingManualApproval",
        CustomerMetadataProperties={"run_id": "r1"},
    )
    (request,) = requests
    assert (request.action, request.resource) == (
        "sagemaker:CreateModelPackage",
        f"arn:aws:sagemaker:{ARN}:model-package/mlops-cars-dev/*",
    )
    assert request.context == {
        "sagemaker:ModelApprovalStatus": "PendingManualApproval",
        "sagemaker:CustomerMetadataProperties/run_id": "r1",
    }


def test_the_template_grants_on_the_group_cover_a_new_version() -> None:
    grant = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["sagemaker:CreateModelPackage", "sagemaker:AddTags"],
                "Resource": [
                    f"arn:aws:sagemaker:{ARN}:model-package-group/mlops-*-dev",
                    f"arn:aws:sagemaker:{ARN}:model-package/mlops-*-dev/*",
                ],
            }
        ],
    }
    requests = auth(
        "sagemaker",
        "CreateModelPackage",
        ModelPackageGroupName="mlops-cars-dev",
        Tags=[{"Key": "run_id", "Value": "r1"}],
    )
    assert [r.action for r in requests] == ["sagemaker:CreateModelPackage", "sagemaker:AddTags"]
    assert all(evaluate(r, [grant]).allowed for r in requests)
    other_stage = auth("sagemaker", "CreateModelPackage", ModelPackageGroupName="mlops-cars-prod")
    assert not evaluate(other_stage[0], [grant]).allowed


def test_model_package_names_keep_their_case_and_arns_are_used_as_given() -> None:
    package = f"arn:aws:sagemaker:{ARN}:model-package/Mlops-Cars-Dev/2"
    assert pairs(auth("sagemaker", "DescribeModelPackage", ModelPackageName=package)) == [
        ("sagemaker:DescribeModelPackage", package)
    ]
    assert pairs(
        auth("sagemaker", "DescribeModelPackageGroup", ModelPackageGroupName="Mlops-Cars-Dev")
    ) == [
        (
            "sagemaker:DescribeModelPackageGroup",
            f"arn:aws:sagemaker:{ARN}:model-package-group/Mlops-Cars-Dev",
        )
    ]


def test_account_wide_list_calls_have_no_resource_level_permissions() -> None:
    assert pairs(auth("sagemaker", "ListEndpoints")) == [("sagemaker:ListEndpoints", "*")]
    assert pairs(auth("sagemaker", "ListModelPackages")) == [("sagemaker:ListModelPackages", "*")]


def test_listing_one_groups_packages_is_authorized_on_its_versions() -> None:
    assert pairs(
        auth("sagemaker", "ListModelPackages", ModelPackageGroupName="mlops-cars-dev")
    ) == [
        ("sagemaker:ListModelPackages", f"arn:aws:sagemaker:{ARN}:model-package/mlops-cars-dev/*")
    ]


def test_list_tags_is_authorized_on_the_resource() -> None:
    endpoint = f"arn:aws:sagemaker:{ARN}:endpoint/mlops-cars-dev"
    assert pairs(auth("sagemaker", "ListTags", ResourceArn=endpoint)) == [
        ("sagemaker:ListTags", endpoint)
    ]


def test_invoke_endpoint_is_a_sagemaker_action_on_the_endpoint() -> None:
    assert pairs(
        auth("sagemaker-runtime", "InvokeEndpoint", EndpointName="MLOPS-cars-dev", Body=b"{}")
    ) == [("sagemaker:InvokeEndpoint", f"arn:aws:sagemaker:{ARN}:endpoint/mlops-cars-dev")]


# ------------------------------------------------------------------ EventBridge, SNS, SQS


def test_put_events_goes_to_each_entrys_bus_with_source_and_detail_type() -> None:
    requests = auth(
        "events",
        "PutEvents",
        Entries=[
            {"Source": "mlops.pipeline", "DetailType": "Run Validated", "Detail": "{}"},
            {"Source": "mlops.pipeline", "DetailType": "Run Validated", "Detail": "{}"},
            {"Source": "x", "DetailType": "y", "Detail": "{}", "EventBusName": "custom"},
            {
                "Source": "x",
                "DetailType": "y",
                "Detail": "{}",
                "EventBusName": f"arn:aws:events:{ARN}:event-bus/other",
            },
        ],
    )
    assert pairs(requests) == [
        ("events:PutEvents", f"arn:aws:events:{ARN}:event-bus/default"),
        ("events:PutEvents", f"arn:aws:events:{ARN}:event-bus/custom"),
        ("events:PutEvents", f"arn:aws:events:{ARN}:event-bus/other"),
    ]
    assert requests[0].context == {
        "events:source": "mlops.pipeline",
        "events:detail-type": "Run Validated",
    }


def test_publish_is_authorized_on_the_topic() -> None:
    topic = f"arn:aws:sns:{ARN}:mlops-notifications"
    assert pairs(auth("sns", "Publish", TopicArn=topic, Message="m")) == [("sns:Publish", topic)]


def test_sqs_calls_are_authorized_on_the_queue_behind_the_url() -> None:
    url = f"http://127.0.0.1:5000/{ACCOUNT}/validate-dlq"
    queue = f"arn:aws:sqs:{ARN}:validate-dlq"
    assert pairs(auth("sqs", "SendMessage", QueueUrl=url, MessageBody="m")) == [
        ("sqs:SendMessage", queue)
    ]
    assert pairs(auth("sqs", "DeleteMessageBatch", QueueUrl=url, Entries=[])) == [
        ("sqs:DeleteMessage", queue)
    ]


# ------------------------------------------------------ CloudWatch, auto scaling, STS, logs


def test_put_metric_data_has_no_resource_but_a_namespace_key() -> None:
    (request,) = auth(
        "cloudwatch", "PutMetricData", Namespace="/aws/sagemaker/TrainingJobs", MetricData=[]
    )
    assert request == AuthorizationRequest(
        "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}
    )


def test_scaling_calls_use_an_opaque_target_arn_only_wildcards_match() -> None:
    params = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/e/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    register = auth(
        "application-autoscaling", "RegisterScalableTarget", MinCapacity=1, MaxCapacity=2, **params
    )
    policy = auth("application-autoscaling", "PutScalingPolicy", PolicyName="p", **params)
    assert register[0].resource == policy[0].resource
    assert register[0].resource.startswith(
        f"arn:aws:application-autoscaling:{ARN}:scalable-target/"
    )
    assert register[0].context["application-autoscaling:service-namespace"] == "sagemaker"
    assert pairs(
        auth("application-autoscaling", "DescribeScalableTargets", ServiceNamespace="sagemaker")
    ) == [("application-autoscaling:DescribeScalableTargets", "*")]


def test_get_caller_identity_needs_no_permission() -> None:
    assert auth("sts", "GetCallerIdentity") == []


def test_log_streams_are_authorized_on_the_stream_arn() -> None:
    assert pairs(
        auth(
            "logs",
            "PutLogEvents",
            logGroupName="/aws/sagemaker/TrainingJobs",
            logStreamName="job/algo-1",
            logEvents=[],
        )
    ) == [
        (
            "logs:PutLogEvents",
            f"arn:aws:logs:{ARN}:log-group:/aws/sagemaker/TrainingJobs:log-stream:job/algo-1",
        )
    ]


def test_the_partition_comes_from_the_caller() -> None:
    (request,) = authorizations(
        "s3",
        "GetObject",
        {"Bucket": "b", "Key": "k"},
        region="cn-north-1",
        account=ACCOUNT,
        partition="aws-cn",
    )
    assert request.resource == "arn:aws-cn:s3:::b/k"


def test_a_firehose_batch_is_authorized_as_put_record_batch_on_its_stream() -> None:
    # Given a PutRecordBatch naming a stream, when mapped, then it is its own action on that
    # stream's deliverystream ARN (not firehose:PutRecord, which the web role is not granted).
    assert pairs(
        auth("firehose", "PutRecordBatch", DeliveryStreamName="capture", Records=[{"Data": b"x"}])
    ) == [("firehose:PutRecordBatch", f"arn:aws:firehose:{ARN}:deliverystream/capture")]
