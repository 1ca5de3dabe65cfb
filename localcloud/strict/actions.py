"""What IAM evaluates for each AWS API operation the project makes as a role.

For a botocore operation and its input parameters, ``authorizations`` lists the (action,
resource, context) triples AWS authorizes, as the Service Authorization Reference pages
("Actions, resources, and condition keys for <service>") and each service's IAM guide
describe them. An operation that is not mapped raises ``UnmappedOperation``: a new AWS call
in the project must be mapped here before the strict local cloud lets it through.

Conventions: ``"*"`` is the resource of actions without resource-level permissions; ARNs are
built in the caller's partition, region and account unless the request names another (an ARN
parameter, a Glue CatalogId).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from localcloud.strict.iam import AuthorizationRequest, ContextValue


class UnmappedOperation(LookupError):
    """An AWS operation whose IAM authorization is not described in this module."""

    def __init__(self, service: str, operation: str, detail: str = "") -> None:
        self.service = service
        self.operation = operation
        message = (
            f"{service}.{operation}: the strict local cloud does not know what IAM authorizes "
            f"for this operation; map it in localcloud/strict/actions.py from the Service "
            f"Authorization Reference"
        )
        super().__init__(f"{message} ({detail})" if detail else message)


@dataclass(frozen=True)
class _Scope:
    """One call: its operation and the caller's partition, region and account."""

    operation: str
    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str, *, region: str | None = None) -> str:
        """An ARN in this scope (``region=""`` for services whose ARNs carry none)."""
        where = self.region if region is None else region
        return f"arn:{self.partition}:{service}:{where}:{self.account}:{resource}"


Params = Mapping[str, Any]
_Handler = Callable[[_Scope, Params], list[AuthorizationRequest]]
_MAP: dict[tuple[str, str], _Handler] = {}


def _maps(service: str, *operations: str) -> Callable[[_Handler], _Handler]:
    """Register a handler for ``service``'s ``operations``."""

    def register(handler: _Handler) -> _Handler:
        for operation in operations:
            if (service, operation) in _MAP:
                raise RuntimeError(f"{service}.{operation} mapped twice")
            _MAP[(service, operation)] = handler
        return handler

    return register


def _req(
    action: str, resource: str, context: Mapping[str, ContextValue] | None = None
) -> AuthorizationRequest:
    return AuthorizationRequest(action, resource, dict(context or {}))


def _unique(requests: Iterable[AuthorizationRequest]) -> list[AuthorizationRequest]:
    """Drop repeats (a batch naming one resource twice is authorized once)."""
    seen: list[AuthorizationRequest] = []
    for request in requests:
        if request not in seen:
            seen.append(request)
    return seen


def _unscoped(service: str, actions: Mapping[str, str]) -> None:
    """Map operations whose actions support no resource-level permissions (resource "*")."""
    for operation, action in actions.items():

        def handler(
            scope: _Scope, params: Params, action: str = action
        ) -> list[AuthorizationRequest]:
            return [_req(action, "*")]

        _maps(service, operation)(handler)


def _tag_context(tags: Any) -> dict[str, ContextValue]:
    """aws:RequestTag/<key> and aws:TagKeys for a request carrying tags (list or dict form)."""
    if isinstance(tags, Mapping):
        pairs = [(str(k), str(v)) for k, v in tags.items()]
    else:
        pairs = [(str(t["Key"]), str(t.get("Value", ""))) for t in tags or []]
    if not pairs:
        return {}
    context: dict[str, ContextValue] = {f"aws:RequestTag/{k}": v for k, v in pairs}
    context["aws:TagKeys"] = [k for k, _ in pairs]
    return context


def _pass_role(role_arn: str, service_principal: str, resource: str) -> AuthorizationRequest:
    """iam:PassRole for a role handed to a service ("Grant a user permissions to pass a role
    to an AWS service"), with the context keys IAM sets for it."""
    return _req(
        "iam:PassRole",
        role_arn,
        {"iam:PassedToService": service_principal, "iam:AssociatedResourceArn": resource},
    )


# ----------------------------------------------------------------------------------- Amazon S3
#
# "Required permissions for Amazon S3 API operations" (S3 User Guide): several operations are
# authorized by an action of another name.


def _bucket(scope: _Scope, bucket: str) -> str:
    return f"arn:{scope.partition}:s3:::{bucket}"


def _object(scope: _Scope, bucket: str, key: str) -> str:
    return f"arn:{scope.partition}:s3:::{bucket}/{key}"


def _put_context(params: Params) -> dict[str, ContextValue]:
    names = {
        "ACL": "s3:x-amz-acl",
        "ServerSideEncryption": "s3:x-amz-server-side-encryption",
        "SSEKMSKeyId": "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "StorageClass": "s3:x-amz-storage-class",
    }
    return {key: str(params[p]) for p, key in names.items() if params.get(p) is not None}


@_maps("s3", "GetObject", "HeadObject")
def _s3_get(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # HeadObject is authorized as s3:GetObject; naming a version needs s3:GetObjectVersion.
    action = "s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject"
    return [_req(action, _object(scope, params["Bucket"], params["Key"]))]


@_maps("s3", "PutObject")
def _s3_put(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    target = _object(scope, params["Bucket"], params["Key"])
    requests = [_req("s3:PutObject", target, _put_context(params))]
    if any(params.get(p) for p in ("ACL", "GrantFullControl", "GrantRead", "GrantReadACP")):
        requests.append(_req("s3:PutObjectAcl", target, _put_context(params)))
    if params.get("Tagging"):
        requests.append(_req("s3:PutObjectTagging", target))
    return requests


@_maps("s3", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
def _s3_multipart(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # Every step of a multipart upload is authorized as s3:PutObject on the final key.
    return [
        _req("s3:PutObject", _object(scope, params["Bucket"], params["Key"]), _put_context(params))
    ]


@_maps("s3", "AbortMultipartUpload")
def _s3_abort(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    return [_req("s3:AbortMultipartUpload", _object(scope, params["Bucket"], params["Key"]))]


@_maps("s3", "ListParts")
def _s3_list_parts(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    target = _object(scope, params["Bucket"], params["Key"])
    return [_req("s3:ListMultipartUploadParts", target)]


@_maps("s3", "ListMultipartUploads")
def _s3_list_uploads(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    return [_req("s3:ListBucketMultipartUploads", _bucket(scope, params["Bucket"]))]


@_maps("s3", "ListObjects", "ListObjectsV2")
def _s3_list(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # Listing is s3:ListBucket on the bucket, not on objects; the prefix, delimiter and page
    # size are the s3:prefix, s3:delimiter and s3:max-keys condition keys.
    context: dict[str, ContextValue] = {}
    for param, key in (("Prefix", "s3:prefix"), ("Delimiter", "s3:delimiter")):
        if params.get(param) is not None:
            context[key] = str(params[param])
    if params.get("MaxKeys") is not None:
        context["s3:max-keys"] = str(params["MaxKeys"])
    return [_req("s3:ListBucket", _bucket(scope, params["Bucket"]), context)]


@_maps("s3", "ListObjectVersions")
def _s3_list_versions(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    context = {"s3:prefix": str(params["Prefix"])} if params.get("Prefix") is not None else {}
    return [_req("s3:ListBucketVersions", _bucket(scope, params["Bucket"]), context)]


@_maps("s3", "HeadBucket")
def _s3_head_bucket(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    return [_req("s3:ListBucket", _bucket(scope, params["Bucket"]))]


@_maps("s3", "GetBucketLocation")
def _s3_location(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    return [_req("s3:GetBucketLocation", _bucket(scope, params["Bucket"]))]


@_maps("s3", "DeleteObject")
def _s3_delete(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    action = "s3:DeleteObjectVersion" if params.get("VersionId") else "s3:DeleteObject"
    return [_req(action, _object(scope, params["Bucket"], params["Key"]))]


@_maps("s3", "DeleteObjects")
def _s3_delete_many(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # There is no s3:DeleteObjects action: each key is authorized as s3:DeleteObject (or
    # s3:DeleteObjectVersion), and a refused key fails alone inside the response's Errors.
    bucket = params["Bucket"]
    return _unique(
        _req(
            "s3:DeleteObjectVersion" if item.get("VersionId") else "s3:DeleteObject",
            _object(scope, bucket, item["Key"]),
        )
        for item in params.get("Delete", {}).get("Objects", [])
    )


def _copy_source(source: Any) -> tuple[str, str, str | None]:
    """(bucket, key, version) of a CopySource in botocore's dict or header-string form."""
    if isinstance(source, Mapping):
        return source["Bucket"], source["Key"], source.get("VersionId")
    text = str(source).lstrip("/")
    path, _, query = text.partition("?")
    bucket, _, key = path.partition("/")
    version = parse_qs(query).get("versionId", [None])[0]
    return unquote(bucket), unquote(key), version


@_maps("s3", "CopyObject", "UploadPartCopy")
def _s3_copy(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # A copy reads the source (s3:GetObject, or s3:GetObjectVersion for a named version) and
    # writes the destination (s3:PutObject).
    bucket, key, version = _copy_source(params["CopySource"])
    read = "s3:GetObjectVersion" if version else "s3:GetObject"
    target = _object(scope, params["Bucket"], params["Key"])
    return [
        _req(read, _object(scope, bucket, key)),
        _req("s3:PutObject", target, _put_context(params)),
    ]


def _s3_bucket_action(action: str) -> _Handler:
    def handler(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
        return [_req(action, _bucket(scope, params["Bucket"]))]

    return handler


for _operation, _action in {
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "GetBucketPolicy": "s3:GetBucketPolicy",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
}.items():
    _maps("s3", _operation)(_s3_bucket_action(_action))

_unscoped("s3", {"ListBuckets": "s3:ListAllMyBuckets"})


# ----------------------------------------------------------------------------- Amazon DynamoDB


def _table(scope: _Scope, name: str) -> str:
    # TableName also accepts the table's ARN.
    return name if name.startswith("arn:") else scope.arn("dynamodb", f"table/{name}")


@_maps(
    "dynamodb",
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "DescribeTable",
    "CreateTable",
    "DeleteTable",
    "UpdateTable",
    "DescribeTimeToLive",
    "UpdateTimeToLive",
)
def _ddb_item(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    return [_req(f"dynamodb:{scope.operation}", _table(scope, params["TableName"]))]


@_maps("dynamodb", "Query", "Scan")
def _ddb_read_many(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # A query or scan of a secondary index is authorized on the index's ARN, table/T/index/I.
    resource = _table(scope, params["TableName"])
    if params.get("IndexName"):
        resource = f"{resource}/index/{params['IndexName']}"
    return [_req(f"dynamodb:{scope.operation}", resource)]


@_maps("dynamodb", "BatchGetItem", "BatchWriteItem")
def _ddb_batch(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # Batch operations are their own actions, authorized once per table named.
    action = f"dynamodb:{scope.operation}"
    return [_req(action, _table(scope, table)) for table in params.get("RequestItems", {})]


_TRANSACT_WRITE = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


@_maps("dynamodb", "TransactWriteItems")
def _ddb_transact_write(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # There is no dynamodb:TransactWriteItems action: each item needs its own item action, with
    # dynamodb:EnclosingOperation telling the two apart (DynamoDB's "Actions, resources, and
    # condition keys").
    requests = []
    for item in params.get("TransactItems", []):
        for kind, action in _TRANSACT_WRITE.items():
            if kind in item:
                context = (
                    {}
                    if kind == "ConditionCheck"
                    else {"dynamodb:EnclosingOperation": "TransactWriteItems"}
                )
                requests.append(_req(action, _table(scope, item[kind]["TableName"]), context))
    return _unique(requests)


@_maps("dynamodb", "TransactGetItems")
def _ddb_transact_get(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    context = {"dynamodb:EnclosingOperation": "TransactGetItems"}
    return _unique(
        _req("dynamodb:GetItem", _table(scope, item["Get"]["TableName"]), context)
        for item in params.get("TransactItems", [])
    )


_unscoped("dynamodb", {"ListTables": "dynamodb:ListTables"})


# ------------------------------------------------------------------------------------ AWS Glue
#
# "Specifying AWS Glue resource ARNs": a Data Catalog call is authorized on the catalog, the
# database and (for table and partition calls) the table, and all of them must be allowed.


def _catalog_scope(scope: _Scope, params: Params) -> _Scope:
    catalog = params.get("CatalogId")
    if catalog and str(catalog).isdigit():
        return _Scope(scope.operation, scope.partition, scope.region, str(catalog))
    return scope


def _database_arns(scope: _Scope, params: Params, database: str) -> list[str]:
    owner = _catalog_scope(scope, params)
    return [owner.arn("glue", "catalog"), owner.arn("glue", f"database/{database}")]


def _glue_database(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    name = params.get("Name") or params.get("DatabaseInput", {}).get("Name")
    if not name:
        raise UnmappedOperation("glue", scope.operation, "no database name")
    action = f"glue:{scope.operation}"
    return [_req(action, arn) for arn in _database_arns(scope, params, name)]


def _glue_table(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    database = params["DatabaseName"]
    table = (
        params.get("TableName") or params.get("Name") or params.get("TableInput", {}).get("Name")
    )
    if not table:
        raise UnmappedOperation("glue", scope.operation, "no table name")
    owner = _catalog_scope(scope, params)
    table_arn = owner.arn("glue", f"table/{database}/{table}")
    arns = [*_database_arns(scope, params, database), table_arn]
    return [_req(f"glue:{scope.operation}", arn) for arn in arns]


for _operation in ("GetDatabase", "CreateDatabase", "UpdateDatabase", "DeleteDatabase"):
    _maps("glue", _operation)(_glue_database)

for _operation in (
    "GetTable",
    "CreateTable",
    "UpdateTable",
    "DeleteTable",
    "GetPartition",
    "GetPartitions",
    "CreatePartition",
    "BatchCreatePartition",
    "BatchGetPartition",
    "BatchDeletePartition",
    "BatchUpdatePartition",
    "UpdatePartition",
    "DeletePartition",
):
    _maps("glue", _operation)(_glue_table)


@_maps("glue", "StartJobRun", "GetJobRun", "GetJobRuns", "GetJob", "BatchStopJobRun")
def _glue_job(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    return [_req(f"glue:{scope.operation}", scope.arn("glue", f"job/{params['JobName']}"))]


# ------------------------------------------------------------------------- Amazon SageMaker AI
#
# SageMaker lower-cases resource names in the ARNs it builds (an endpoint "My-Endpoint" has
# the ARN .../endpoint/my-endpoint), and IAM evaluates those ARNs, so a policy must name them in
# lower case. Model packages and model package groups are the exception observed in AWS's own
# AccessDenied messages (".../model-package/modelPackageGroupTurbine/1"): their names keep
# their case. Parameters that are already ARNs are used as given.

_SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"


def _sm(scope: _Scope, kind: str, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return scope.arn("sagemaker", f"{kind}/{name.lower()}")


def _sm_keep_case(scope: _Scope, kind: str, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return scope.arn("sagemaker", f"{kind}/{name}")


def _name_from_arn(value: str) -> str:
    """``group`` from a model-package-group ARN, or the value if it is a name."""
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def _sm_tags_on_create(resource: str, params: Params, operation: str) -> list[AuthorizationRequest]:
    # Tags given to a Create* call are added by an implicit AddTags, authorized as
    # sagemaker:AddTags on the new resource, with sagemaker:TaggingAction naming the create
    # call (SageMaker "Actions, resources, and condition keys": AddTags is a dependent action
    # of every Create* that takes Tags; "Provide permissions for tagging SageMaker AI
    # resources").
    if not params.get("Tags"):
        return []
    context = _tag_context(params["Tags"]) | {"sagemaker:TaggingAction": operation}
    return [_req("sagemaker:AddTags", resource, context)]


def _bool(value: Any) -> str:
    return "true" if value else "false"


def _vpc_context(vpc: Mapping[str, Any] | None) -> dict[str, ContextValue]:
    if not vpc:
        return {}
    return {
        "sagemaker:VpcSubnets": [str(s) for s in vpc.get("Subnets", [])],
        "sagemaker:VpcSecurityGroupIds": [str(s) for s in vpc.get("SecurityGroupIds", [])],
    }


@_maps("sagemaker", "CreateTrainingJob")
def _sm_create_training_job(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    job = _sm(scope, "training-job", params["TrainingJobName"])
    resources = params.get("ResourceConfig", {})
    instance_types = [resources["InstanceType"]] if resources.get("InstanceType") else []
    instance_types += [g["InstanceType"] for g in resources.get("InstanceGroups", [])]
    context: dict[str, ContextValue] = _tag_context(params.get("Tags"))
    if instance_types:
        context["sagemaker:InstanceTypes"] = instance_types
    stopping = params.get("StoppingCondition", {})
    if stopping.get("MaxRuntimeInSeconds") is not None:
        context["sagemaker:MaxRuntimeInSeconds"] = str(stopping["MaxRuntimeInSeconds"])
    context["sagemaker:NetworkIsolation"] = _bool(params.get("EnableNetworkIsolation"))
    context["sagemaker:InterContainerTrafficEncryption"] = _bool(
        params.get("EnableInterContainerTrafficEncryption")
    )
    if resources.get("VolumeKmsKeyId"):
        context["sagemaker:VolumeKmsKey"] = str(resources["VolumeKmsKeyId"])
    if params.get("OutputDataConfig", {}).get("KmsKeyId"):
        context["sagemaker:OutputKmsKey"] = str(params["OutputDataConfig"]["KmsKeyId"])
    context |= _vpc_context(params.get("VpcConfig"))
    return [
        _req("sagemaker:CreateTrainingJob", job, context),
        _pass_role(params["RoleArn"], _SAGEMAKER_PRINCIPAL, job),
        *_sm_tags_on_create(job, params, "CreateTrainingJob"),
    ]


@_maps("sagemaker", "CreateModel")
def _sm_create_model(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    model = _sm(scope, "model", params["ModelName"])
    context = _tag_context(params.get("Tags"))
    context["sagemaker:NetworkIsolation"] = _bool(params.get("EnableNetworkIsolation"))
    context |= _vpc_context(params.get("VpcConfig"))
    requests = [_req("sagemaker:CreateModel", model, context)]
    if params.get("ExecutionRoleArn"):
        requests.append(_pass_role(params["ExecutionRoleArn"], _SAGEMAKER_PRINCIPAL, model))
    return requests + _sm_tags_on_create(model, params, "CreateModel")


@_maps("sagemaker", "CreateEndpointConfig")
def _sm_create_endpoint_config(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    config = _sm(scope, "endpoint-config", params["EndpointConfigName"])
    variants = params.get("ProductionVariants", [])
    context = _tag_context(params.get("Tags"))
    types = [v["InstanceType"] for v in variants if v.get("InstanceType")]
    if types:
        context["sagemaker:InstanceTypes"] = types
    models = [_sm(scope, "model", v["ModelName"]) for v in variants if v.get("ModelName")]
    if models:
        context["sagemaker:ModelArn"] = models
    if params.get("KmsKeyId"):
        context["sagemaker:VolumeKmsKey"] = str(params["KmsKeyId"])
    requests = [_req("sagemaker:CreateEndpointConfig", config, context)]
    if params.get("ExecutionRoleArn"):
        requests.append(_pass_role(params["ExecutionRoleArn"], _SAGEMAKER_PRINCIPAL, config))
    return requests + _sm_tags_on_create(config, params, "CreateEndpointConfig")


@_maps("sagemaker", "CreateEndpoint", "UpdateEndpoint")
def _sm_endpoint_with_config(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # Both the endpoint and the endpoint configuration it will run are required resources.
    operation = scope.operation
    endpoint = _sm(scope, "endpoint", params["EndpointName"])
    config = _sm(scope, "endpoint-config", params["EndpointConfigName"])
    context = _tag_context(params.get("Tags"))
    requests = [
        _req(f"sagemaker:{operation}", endpoint, context),
        _req(f"sagemaker:{operation}", config, context),
    ]
    if operation == "CreateEndpoint":
        requests += _sm_tags_on_create(endpoint, params, operation)
    return requests


def _sm_named(kind: str, param: str, *, keep_case: bool = False) -> _Handler:
    build = _sm_keep_case if keep_case else _sm

    def handler(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
        resource = build(scope, kind, params[param])
        return [_req(f"sagemaker:{scope.operation}", resource)]

    return handler


for _operations, _kind, _param in (
    (("DescribeTrainingJob", "StopTrainingJob"), "training-job", "TrainingJobName"),
    (("DescribeModel", "DeleteModel"), "model", "ModelName"),
    (("DescribeEndpointConfig", "DeleteEndpointConfig"), "endpoint-config", "EndpointConfigName"),
    (("DescribeEndpoint", "DeleteEndpoint"), "endpoint", "EndpointName"),
):
    for _operation in _operations:
        _maps("sagemaker", _operation)(_sm_named(_kind, _param))

for _operation in ("DescribeModelPackageGroup", "DeleteModelPackageGroup"):
    _maps("sagemaker", _operation)(
        _sm_named("model-package-group", "ModelPackageGroupName", keep_case=True)
    )


@_maps("sagemaker", "CreateModelPackageGroup")
def _sm_create_group(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    group = _sm_keep_case(scope, "model-package-group", params["ModelPackageGroupName"])
    context = _tag_context(params.get("Tags"))
    return [
        _req("sagemaker:CreateModelPackageGroup", group, context),
        *_sm_tags_on_create(group, params, "CreateModelPackageGroup"),
    ]


def _package_context(params: Params) -> dict[str, ContextValue]:
    context: dict[str, ContextValue] = {}
    if params.get("ModelApprovalStatus"):
        context["sagemaker:ModelApprovalStatus"] = str(params["ModelApprovalStatus"])
    for key, value in (params.get("CustomerMetadataProperties") or {}).items():
        context[f"sagemaker:CustomerMetadataProperties/{key}"] = str(value)
    life_cycle = params.get("ModelLifeCycle") or {}
    if life_cycle.get("Stage"):
        context["sagemaker:ModelLifeCycle:Stage"] = str(life_cycle["Stage"])
    if life_cycle.get("StageStatus"):
        context["sagemaker:ModelLifeCycle:StageStatus"] = str(life_cycle["StageStatus"])
    return context


@_maps("sagemaker", "CreateModelPackage")
def _sm_create_package(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # CreateModelPackage is authorized on a model-package ARN (SageMaker "Actions, resources,
    # and condition keys": resource type model-package, not model-package-group). A versioned
    # package's ARN is model-package/<group>/<version>, and the version is only assigned once
    # the request is accepted. The resource is therefore model-package/<group>/* -- the form
    # AWS's own permissions table gives for the like case of a new version whose number is
    # not known yet (CreateImageVersion: image-version/<image>/*, "Amazon SageMaker API
    # Permissions: Actions, Permissions, and Resources Reference"). Statements that cover
    # every version of the group (model-package/<group>/*, model-package/*, *) match it; a
    # statement naming one version number does not.
    if params.get("ModelPackageGroupName"):
        group = _name_from_arn(str(params["ModelPackageGroupName"]))
        package = scope.arn("sagemaker", f"model-package/{group}/*")
    else:
        package = _sm_keep_case(scope, "model-package", params["ModelPackageName"])
    context = _tag_context(params.get("Tags")) | _package_context(params)
    requests = [_req("sagemaker:CreateModelPackage", package, context)]
    validation_role = (params.get("ValidationSpecification") or {}).get("ValidationRole")
    if validation_role:
        requests.append(_pass_role(validation_role, _SAGEMAKER_PRINCIPAL, package))
    return requests + _sm_tags_on_create(package, params, "CreateModelPackage")


@_maps("sagemaker", "DescribeModelPackage", "UpdateModelPackage", "DeleteModelPackage")
def _sm_package(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    name = str(params.get("ModelPackageName") or params.get("ModelPackageArn"))
    package = _sm_keep_case(scope, "model-package", name)
    context = _package_context(params) if scope.operation == "UpdateModelPackage" else {}
    return [_req(f"sagemaker:{scope.operation}", package, context)]


@_maps("sagemaker", "ListTags")
def _sm_list_tags(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    return [_req("sagemaker:ListTags", params["ResourceArn"])]


@_maps("sagemaker", "AddTags")
def _sm_add_tags(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    return [_req("sagemaker:AddTags", params["ResourceArn"], _tag_context(params.get("Tags")))]


@_maps("sagemaker", "DeleteTags")
def _sm_delete_tags(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    context = {"aws:TagKeys": [str(k) for k in params.get("TagKeys", [])]}
    return [_req("sagemaker:DeleteTags", params["ResourceArn"], context)]


# Account-wide List calls have no resource-level permissions (the SageMaker AI Service
# Authorization Reference gives them no resource type).
_unscoped(
    "sagemaker",
    {
        op: f"sagemaker:{op}"
        for op in (
            "ListEndpoints",
            "ListEndpointConfigs",
            "ListModels",
            "ListModelPackageGroups",
            "ListTrainingJobs",
        )
    },
)


@_maps("sagemaker", "ListModelPackages")
def _sm_list_packages(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # The older "API Permissions: Actions, Permissions, and Resources Reference" said no List
    # call but ListTags had resource-level permissions; the current Service Authorization
    # Reference gives ListModelPackages the resource type model-package, as it gives parent
    # scoped lists theirs (ListImageVersions: image, ListPipelineExecutions: pipeline). Listing
    # one group's versions is therefore authorized on those versions, model-package/<group>/*
    # (the form used for CreateModelPackage above); listing without a group spans the account.
    group = params.get("ModelPackageGroupName")
    if not group:
        return [_req("sagemaker:ListModelPackages", "*")]
    versions = scope.arn("sagemaker", f"model-package/{_name_from_arn(str(group))}/*")
    return [_req("sagemaker:ListModelPackages", versions)]


@_maps(
    "sagemaker-runtime",
    "InvokeEndpoint",
    "InvokeEndpointAsync",
    "InvokeEndpointWithResponseStream",
)
def _sm_invoke(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # The runtime API has no IAM prefix of its own: it is authorized as sagemaker:* actions.
    # The streaming variant is authorized as sagemaker:InvokeEndpoint.
    operation = scope.operation
    action = (
        "sagemaker:InvokeEndpointAsync"
        if operation == "InvokeEndpointAsync"
        else ("sagemaker:InvokeEndpoint")
    )
    context = (
        {"sagemaker:TargetModel": str(params["TargetModel"])} if params.get("TargetModel") else {}
    )
    return [_req(action, _sm(scope, "endpoint", params["EndpointName"]), context)]


# --------------------------------------------------------------------------- Amazon EventBridge


def _event_bus(scope: _Scope, name: str | None) -> str:
    if name and name.startswith("arn:"):
        return name
    return scope.arn("events", f"event-bus/{name or 'default'}")


@_maps("events", "PutEvents")
def _events_put(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # Each entry is authorized on the bus it names (the account's "default" bus when it names
    # none), with its source and detail-type as events:source and events:detail-type.
    requests = []
    for entry in params.get("Entries", []):
        context = {}
        if entry.get("Source") is not None:
            context["events:source"] = str(entry["Source"])
        if entry.get("DetailType") is not None:
            context["events:detail-type"] = str(entry["DetailType"])
        requests.append(
            _req("events:PutEvents", _event_bus(scope, entry.get("EventBusName")), context)
        )
    return _unique(requests)


# ----------------------------------------------------------------------------------- Amazon SNS


@_maps("sns", "Publish", "PublishBatch", "GetTopicAttributes", "Subscribe")
def _sns_topic(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # PublishBatch is authorized as sns:Publish.
    operation = scope.operation
    action = "sns:Publish" if operation == "PublishBatch" else f"sns:{operation}"
    topic = params.get("TopicArn") or params.get("TargetArn")
    if not topic:
        # Publishing straight to a phone number has no topic: no resource-level permission.
        return [_req(action, "*")]
    return [_req(action, str(topic))]


_unscoped("sns", {"ListTopics": "sns:ListTopics"})


# ----------------------------------------------------------------------------------- Amazon SQS


def _queue_from_url(scope: _Scope, url: str) -> str:
    """arn:...:sqs:<region>:<account>:<name> from a queue URL (…/<account>/<name>)."""
    parts = url.rstrip("/").split("/")
    if len(parts) < 2 or not parts[-2].isdigit():
        raise UnmappedOperation("sqs", scope.operation, f"unrecognised queue URL {url!r}")
    return f"arn:{scope.partition}:sqs:{scope.region}:{parts[-2]}:{parts[-1]}"


_SQS_ACTIONS = {
    "SendMessage": "sqs:SendMessage",
    "SendMessageBatch": "sqs:SendMessage",
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
    "PurgeQueue": "sqs:PurgeQueue",
}


@_maps("sqs", *_SQS_ACTIONS)
def _sqs_queue(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # The *Batch operations are authorized as their single-message actions.
    action = _SQS_ACTIONS[scope.operation]
    return [_req(action, _queue_from_url(scope, params["QueueUrl"]))]


@_maps("sqs", "GetQueueUrl")
def _sqs_queue_url(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    owner = str(params.get("QueueOwnerAWSAccountId") or scope.account)
    queue = f"arn:{scope.partition}:sqs:{scope.region}:{owner}:{params['QueueName']}"
    return [_req("sqs:GetQueueUrl", queue)]


_unscoped("sqs", {"ListQueues": "sqs:ListQueues"})


# --------------------------------------------------------------------------- Amazon CloudWatch


@_maps("cloudwatch", "PutMetricData")
def _cw_put_metric_data(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # No resource-level permission; the namespace is the cloudwatch:namespace condition key.
    return [
        _req("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": str(params["Namespace"])})
    ]


def _alarm(scope: _Scope, name: str) -> str:
    return scope.arn("cloudwatch", f"alarm:{name}")


@_maps("cloudwatch", "PutMetricAlarm")
def _cw_put_alarm(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    context = _tag_context(params.get("Tags"))
    if params.get("AlarmActions"):
        context["cloudwatch:AlarmActions"] = [str(a) for a in params["AlarmActions"]]
    return [_req("cloudwatch:PutMetricAlarm", _alarm(scope, params["AlarmName"]), context)]


@_maps("cloudwatch", "DeleteAlarms", "DescribeAlarms")
def _cw_alarms(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    action = f"cloudwatch:{scope.operation}"
    names = params.get("AlarmNames") or []
    if not names:
        # Without names the call spans the account's alarms; no single ARN is named.
        return [_req(action, "*")]
    return [_req(action, _alarm(scope, name)) for name in names]


_unscoped(
    "cloudwatch",
    {
        "GetMetricData": "cloudwatch:GetMetricData",
        "GetMetricStatistics": "cloudwatch:GetMetricStatistics",
        "ListMetrics": "cloudwatch:ListMetrics",
    },
)


# -------------------------------------------------------------------- Application Auto Scaling


def _scalable_target(scope: _Scope, params: Params) -> str:
    """The scalable target's ARN.

    Its last part is an identifier Application Auto Scaling assigns and no request carries
    (arn:...:scalable-target/1234abcd56ab78cd901ef1234567890ab123, "How Application Auto Scaling
    works with IAM"), so policies can only name these targets with a wildcard. A stable
    stand-in of the same shape, derived from the target's namespace, id and dimension, keeps
    that property: only scalable-target/* (or broader) statements match it.
    """
    key = "|".join(
        str(params.get(p, "")) for p in ("ServiceNamespace", "ResourceId", "ScalableDimension")
    )
    identifier = hashlib.sha256(key.encode()).hexdigest()[:36]
    return scope.arn("application-autoscaling", f"scalable-target/{identifier}")


def _scaling_context(params: Params) -> dict[str, ContextValue]:
    return {
        "application-autoscaling:service-namespace": str(params.get("ServiceNamespace", "")),
        "application-autoscaling:scalable-dimension": str(params.get("ScalableDimension", "")),
    }


@_maps(
    "application-autoscaling",
    "RegisterScalableTarget",
    "DeregisterScalableTarget",
    "PutScalingPolicy",
    "DeleteScalingPolicy",
    "PutScheduledAction",
    "DeleteScheduledAction",
)
def _aas_target(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    operation = scope.operation
    target = _scalable_target(scope, params)
    context = _scaling_context(params) | _tag_context(params.get("Tags"))
    requests = [_req(f"application-autoscaling:{operation}", target, context)]
    if operation == "RegisterScalableTarget" and params.get("Tags"):
        # Tags on registration are applied by application-autoscaling:TagResource.
        tag_context = _tag_context(params["Tags"])
        requests.append(_req("application-autoscaling:TagResource", target, tag_context))
    return requests


_unscoped(
    "application-autoscaling",
    {
        op: f"application-autoscaling:{op}"
        for op in (
            "DescribeScalableTargets",
            "DescribeScalingPolicies",
            "DescribeScalingActivities",
            "DescribeScheduledActions",
        )
    },
)


# ---------------------------------------------------------------------- Amazon CloudWatch Logs


def _log_group(scope: _Scope, name: str) -> str:
    return scope.arn("logs", f"log-group:{name}")


@_maps("logs", "CreateLogGroup", "DeleteLogGroup", "PutRetentionPolicy", "DescribeLogStreams")
def _logs_group(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    context = _tag_context(params.get("tags"))
    resource = _log_group(scope, params["logGroupName"])
    return [_req(f"logs:{scope.operation}", resource, context)]


@_maps("logs", "CreateLogStream", "PutLogEvents")
def _logs_stream(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    group = _log_group(scope, params["logGroupName"])
    stream = f"{group}:log-stream:{params['logStreamName']}"
    return [_req(f"logs:{scope.operation}", stream)]


_unscoped("logs", {"DescribeLogGroups": "logs:DescribeLogGroups"})


# ------------------------------------------------------------------------------ STS, IAM, KMS


@_maps("sts", "GetCallerIdentity")
def _sts_who_am_i(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # "GetCallerIdentity ... No permissions are required to perform this operation": even an
    # explicit deny does not stop it (STS API reference).
    return []


@_maps("sts", "AssumeRole")
def _sts_assume_role(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    context = {"sts:RoleSessionName": str(params.get("RoleSessionName", ""))}
    return [_req("sts:AssumeRole", params["RoleArn"], context)]


def _kms_key(scope: _Scope, key_id: str) -> str:
    if key_id.startswith("arn:") and ":key/" in key_id:
        return key_id
    if key_id.startswith("alias/") or ":alias/" in key_id:
        # IAM evaluates the key an alias points to, which only the key store knows.
        raise UnmappedOperation(
            "kms", scope.operation, f"an alias ({key_id}) must be resolved to its key"
        )
    return scope.arn("kms", f"key/{key_id}")


@_maps(
    "kms", "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "DescribeKey"
)
def _kms(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    if not params.get("KeyId"):
        # Decrypt without KeyId finds the key in the ciphertext: unknown before the call.
        raise UnmappedOperation("kms", scope.operation, "KeyId is needed to know the key")
    return [_req(f"kms:{scope.operation}", _kms_key(scope, str(params["KeyId"])))]


# --------------------------------------------------------------------------- X-Ray and Lambda

_unscoped(
    "xray",
    {
        op: f"xray:{op}"
        for op in (
            "PutTraceSegments",
            "PutTelemetryRecords",
            "GetSamplingRules",
            "GetSamplingTargets",
            "GetSamplingStatisticSummaries",
        )
    },
)


@_maps("lambda", "Invoke", "InvokeAsync")
def _lambda_invoke(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    name = str(params["FunctionName"])
    function = name if name.startswith("arn:") else scope.arn("lambda", f"function:{name}")
    if params.get("Qualifier"):
        function = f"{function}:{params['Qualifier']}"
    return [_req("lambda:InvokeFunction", function)]


# ------------------------------------------------------------------------- Amazon Data Firehose


@_maps("firehose", "PutRecord", "PutRecordBatch")
def _firehose_put(scope: _Scope, params: Params) -> list[AuthorizationRequest]:
    # Each is its own action on the stream ("Actions, resources, and condition keys for Amazon
    # Data Firehose": PutRecord, PutRecordBatch; resource type deliverystream).
    stream = scope.arn("firehose", f"deliverystream/{params['DeliveryStreamName']}")
    return [_req(f"firehose:{scope.operation}", stream)]


# ------------------------------------------------------------------------------------- lookup


def mapped_operations() -> frozenset[tuple[str, str]]:
    """Every (botocore service name, operation name) pair this module maps."""
    return frozenset(_MAP)


def authorizations(
    service: str,
    operation: str,
    params: Mapping[str, Any],
    *,
    region: str,
    account: str,
    partition: str = "aws",
) -> list[AuthorizationRequest]:
    """The requests IAM evaluates for one API call; all must be allowed."""
    handler = _MAP.get((service, operation))
    if handler is None:
        raise UnmappedOperation(service, operation)
    try:
        return handler(_Scope(operation, partition, region, account), params)
    except KeyError as exc:
        raise UnmappedOperation(
            service, operation, f"the request lacks the parameter {exc.args[0]!r}"
        ) from None
