"""Creates every resource of the translated template directly in moto.

moto's own CloudFormation is not used: it skips SageMaker ModelPackageGroup, Glue Job and
ApiGatewayV2 while reporting CREATE_COMPLETE, and drops bucket notification configuration.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localcloud.template import Resolver, Template, TemplateError, _Unresolved

log = logging.getLogger(__name__)

# Resources that exist only as local behaviour (functions run in-process, rules are mirrored
# by the router, permissions and layers have no local effect) or that moto lacks.
LOCAL_ONLY = {
    "AWS::Lambda::Function": "run in-process by the local runtime",
    "AWS::Lambda::LayerVersion": "the layer's package is importable from layers/shared",
    "AWS::Lambda::Permission": "no resource policies locally",
    "AWS::Lambda::EventInvokeConfig": "honoured by the dispatcher (retries, DLQ)",
    "AWS::Events::Rule": "mirrored by the router with SQS targets",
    "AWS::S3::BucketPolicy": "evaluated by the strict cloud's IAM check (moto ignores them)",
    "AWS::SQS::QueuePolicy": "evaluated by the strict cloud's IAM and delivery checks",
    "AWS::SNS::TopicPolicy": "evaluated by the strict cloud's IAM and delivery checks",
    # moto's KMS cannot take a chosen key id, and no data is really encrypted locally: the
    # key's policy is what matters, and the strict cloud's delivery checks read it.
    "AWS::KMS::Key": "its key policy is evaluated by the strict cloud's delivery checks",
    "AWS::KMS::Alias": "resolved by the strict cloud's delivery checks",
    "AWS::ApiGatewayV2::Stage": "created with its API",
}

_NAME_PROPERTY: dict[str, Callable[[dict[str, Any]], Any]] = {
    "AWS::S3::Bucket": lambda p: p.get("BucketName"),
    "AWS::DynamoDB::Table": lambda p: p.get("TableName"),
    "AWS::SQS::Queue": lambda p: p.get("QueueName"),
    "AWS::SNS::Topic": lambda p: p.get("TopicName"),
    "AWS::IAM::Role": lambda p: p.get("RoleName"),
    "AWS::Lambda::Function": lambda p: p.get("FunctionName"),
    "AWS::Glue::Database": lambda p: (p.get("DatabaseInput") or {}).get("Name"),
    "AWS::Glue::Job": lambda p: p.get("Name"),
    "AWS::Glue::SecurityConfiguration": lambda p: p.get("Name"),
    "AWS::SageMaker::ModelPackageGroup": lambda p: p.get("ModelPackageGroupName"),
    "AWS::CloudWatch::Alarm": lambda p: p.get("AlarmName"),
    "AWS::Logs::LogGroup": lambda p: p.get("LogGroupName"),
    "AWS::Events::Rule": lambda p: p.get("Name"),
    "AWS::KMS::Alias": lambda p: p.get("AliasName"),
    "AWS::ApiGatewayV2::Stage": lambda p: p.get("StageName"),
    "AWS::KinesisFirehose::DeliveryStream": lambda p: p.get("DeliveryStreamName"),
}


@dataclass
class Provisioned:
    """One created resource: its physical name, what Ref returns and its GetAtt attributes."""

    logical_id: str
    type: str
    name: str
    ref: str
    attributes: dict[str, str] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)


# Firehose: "DeliveryStreamName ... Maximum length of 64" (Firehose API Reference).
_NAME_LIMITS = {
    "AWS::Events::Rule": 64,
    "AWS::SQS::Queue": 80,
    "AWS::Glue::Job": 255,
    "AWS::KinesisFirehose::DeliveryStream": 64,
}


def _suffix(length: int = 12) -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(length))


def _generated_name(stack: str, logical_id: str, resource_type: str) -> str:
    """A name shaped like the ones CloudFormation generates."""
    if resource_type == "AWS::S3::Bucket":
        return f"{stack}-{logical_id}-{_suffix(12)}".lower()[:63]
    if resource_type == "AWS::ApiGatewayV2::Api":
        return _suffix(10).lower()
    if resource_type == "AWS::KMS::Key":
        return str(uuid.uuid4())
    if resource_type in ("AWS::IAM::Role", "AWS::Lambda::Function"):
        return f"{stack}-{logical_id}-{_suffix(12)}"[:64]
    # CloudFormation shortens the stack and logical-id part so the name fits the service's
    # limit (an EventBridge rule name is at most 64 characters) and keeps the random suffix.
    suffix = _suffix(13)
    limit = _NAME_LIMITS.get(resource_type, 255)
    return f"{stack}-{logical_id}"[: limit - len(suffix) - 1] + f"-{suffix}"


def _identity(t: Template, p: Provisioned) -> None:
    """Fill ``ref`` and ``attributes`` the way CloudFormation documents them per type."""
    region, account, name = t.region, t.account_id, p.name
    arn: str | None = None
    if p.type == "AWS::S3::Bucket":
        arn = f"arn:aws:s3:::{name}"
        p.attributes |= {
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
        }
    elif p.type == "AWS::SQS::Queue":
        arn = f"arn:aws:sqs:{region}:{account}:{name}"
        p.ref = f"https://sqs.{region}.amazonaws.com/{account}/{name}"
        p.attributes |= {"QueueName": name, "QueueUrl": p.ref}
    elif p.type == "AWS::SNS::Topic":
        arn = f"arn:aws:sns:{region}:{account}:{name}"
        p.ref = arn
        p.attributes |= {"TopicName": name, "TopicArn": arn}
    elif p.type == "AWS::DynamoDB::Table":
        arn = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
    elif p.type == "AWS::IAM::Role":
        arn = f"arn:aws:iam::{account}:role/{name}"
        p.attributes["RoleId"] = "AROA" + _suffix(17)
    elif p.type == "AWS::Lambda::Function":
        arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    elif p.type == "AWS::Lambda::LayerVersion":
        arn = f"arn:aws:lambda:{region}:{account}:layer:{name}:1"
        p.ref = arn
    elif p.type == "AWS::Logs::LogGroup":
        arn = f"arn:aws:logs:{region}:{account}:log-group:{name}:*"
    elif p.type == "AWS::SageMaker::ModelPackageGroup":
        arn = f"arn:aws:sagemaker:{region}:{account}:model-package-group/{name}"
        # CloudFormation documents Ref of a ModelPackageGroup as its ARN, not its name.
        p.ref = arn
        p.attributes["ModelPackageGroupArn"] = arn
    elif p.type == "AWS::Events::Rule":
        arn = f"arn:aws:events:{region}:{account}:rule/{name}"
    elif p.type == "AWS::KMS::Key":
        p.ref = p.name
        arn = f"arn:aws:kms:{region}:{account}:key/{p.name}"
        p.attributes["KeyId"] = p.name
    elif p.type == "AWS::CloudWatch::Alarm":
        arn = f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"
    elif p.type == "AWS::KinesisFirehose::DeliveryStream":
        # Ref is the stream's name; GetAtt Arn its ARN (CloudFormation's return values).
        arn = f"arn:aws:firehose:{region}:{account}:deliverystream/{name}"
    elif p.type == "AWS::ApiGatewayV2::Api":
        p.attributes["ApiEndpoint"] = f"https://{name}.execute-api.{region}.amazonaws.com"
        p.attributes["ApiId"] = name
    if arn:
        p.attributes.setdefault("Arn", arn)


def plan(template: Template) -> dict[str, Provisioned]:
    """Physical names, Ref values and attributes of every resource, before creating any."""
    planned: dict[str, Provisioned] = {}
    refs: dict[str, str] = {}
    attributes: dict[str, dict[str, str]] = {}
    resolver = Resolver(template, refs, attributes, template.conditions)
    pending = dict(template.resources)
    for _ in range(len(pending) + 1):
        progressed = False
        for logical_id, resource in list(pending.items()):
            props = resource.get("Properties") or {}
            getter = _NAME_PROPERTY.get(resource["Type"])
            ok, name = resolver.try_resolve(getter(props)) if getter else (True, None)
            if not ok:
                continue
            if not name:
                name = _generated_name(template.stack, logical_id, resource["Type"])
            name = str(name)
            p = Provisioned(logical_id, resource["Type"], name, ref=name)
            _identity(template, p)
            planned[logical_id] = p
            refs[logical_id] = p.ref
            attributes[logical_id] = p.attributes
            del pending[logical_id]
            progressed = True
        if not pending or not progressed:
            break
    if pending:
        raise TemplateError(f"cannot name resources: {sorted(pending)}")
    for logical_id, resource in template.resources.items():
        try:
            planned[logical_id].properties = resolver.resolve(resource.get("Properties") or {})
        except _Unresolved as exc:  # pragma: no cover - every resource is planned above
            raise TemplateError(f"{logical_id} refers to unknown {exc}") from exc
    return planned


class Provisioner:
    """Creates planned resources through boto3 clients bound to the moto endpoint."""

    def __init__(self, template: Template, client: Callable[[str], Any]) -> None:
        self.template = template
        self.client = client
        self.skipped: dict[str, str] = {}
        self.warnings: list[str] = []

    def provision(self, planned: dict[str, Provisioned]) -> None:
        creators: dict[str, Callable[[Provisioned], None]] = {
            "AWS::IAM::Role": self._role,
            "AWS::S3::Bucket": self._bucket,
            "AWS::DynamoDB::Table": self._table,
            "AWS::SQS::Queue": self._queue,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::Logs::LogGroup": self._log_group,
            "AWS::Glue::Database": self._glue_database,
            "AWS::Glue::SecurityConfiguration": self._glue_security_configuration,
            "AWS::Glue::Job": self._glue_job,
            "AWS::SageMaker::ModelPackageGroup": self._model_package_group,
            "AWS::CloudWatch::Alarm": self._alarm,
            "AWS::ApiGatewayV2::Api": self._http_api,
            "AWS::KinesisFirehose::DeliveryStream": self._delivery_stream,
        }
        order = list(creators)
        ranked = sorted(
            planned.values(),
            key=lambda p: order.index(p.type) if p.type in order else len(order),
        )
        for p in ranked:
            if p.type in creators:
                creators[p.type](p)
            elif p.type in LOCAL_ONLY:
                self.skipped[p.logical_id] = LOCAL_ONLY[p.type]
            else:
                raise TemplateError(f"{p.logical_id}: type {p.type} is not provisioned locally")

    def _try(self, what: str, call: Callable[[], Any]) -> None:
        """For settings moto does not model; the resource itself must still exist."""
        try:
            call()
        except Exception as exc:  # moto raises NotImplementedError or a ClientError
            self.warnings.append(f"{what}: {exc}")
            log.debug("skipped %s: %s", what, exc)

    def _role(self, p: Provisioned) -> None:
        iam, props = self.client("iam"), p.properties
        iam.create_role(
            RoleName=p.name,
            AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
            Path=props.get("Path", "/"),
        )
        for arn in props.get("ManagedPolicyArns", []):
            self._try(
                f"{p.logical_id} managed policy {arn}",
                lambda arn=arn: iam.attach_role_policy(RoleName=p.name, PolicyArn=arn),
            )
        for policy in props.get("Policies", []):
            document = dict(policy["PolicyDocument"])
            if "Version" not in document:
                # IAM defaults to 2008-10-17, which moto refuses; AWS accepts it.
                self.warnings.append(
                    f"{p.logical_id}/{policy['PolicyName']}: no policy Version, 2012-10-17 assumed"
                )
                document["Version"] = "2012-10-17"
            iam.put_role_policy(
                RoleName=p.name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(document),
            )

    def _bucket(self, p: Provisioned) -> None:
        s3, props, name = self.client("s3"), p.properties, p.name
        s3.create_bucket(Bucket=name)
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration=props["VersioningConfiguration"]
            )
        if "BucketEncryption" in props:
            s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        _encryption_rule(rule)
                        for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                    ]
                },
            )
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"],
            )
        if "LifecycleConfiguration" in props:
            rules = [_lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]
            self._try(
                f"{p.logical_id} lifecycle",
                lambda: s3.put_bucket_lifecycle_configuration(
                    Bucket=name, LifecycleConfiguration={"Rules": rules}
                ),
            )
        notification = props.get("NotificationConfiguration") or {}
        if (notification.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled"):
            # moto then publishes "Object Created" & co. to the default event bus.
            s3.put_bucket_notification_configuration(
                Bucket=name,
                NotificationConfiguration={"EventBridgeConfiguration": {}},
            )
        logging_config = props.get("LoggingConfiguration")
        if logging_config:
            self._try(
                f"{p.logical_id} access logging",
                lambda: s3.put_bucket_logging(
                    Bucket=name,
                    BucketLoggingStatus={
                        "LoggingEnabled": {
                            "TargetBucket": logging_config["DestinationBucketName"],
                            "TargetPrefix": logging_config.get("LogFilePrefix", ""),
                        }
                    },
                ),
            )

    def _table(self, p: Provisioned) -> None:
        ddb, props = self.client("dynamodb"), p.properties
        kwargs: dict[str, Any] = {
            "TableName": p.name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if "ProvisionedThroughput" in props:
            kwargs["ProvisionedThroughput"] = {
                k: int(v) for k, v in props["ProvisionedThroughput"].items()
            }
        for index in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if index in props:
                kwargs[index] = props[index]
        ddb.create_table(**kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=p.name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )

    def _queue(self, p: Provisioned) -> None:
        attributes = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in p.properties.items()
            if k not in ("QueueName", "Tags")
        }
        self.client("sqs").create_queue(QueueName=p.name, Attributes=attributes)

    def _topic(self, p: Provisioned) -> None:
        attributes = {}
        if "KmsMasterKeyId" in p.properties:
            attributes["KmsMasterKeyId"] = p.properties["KmsMasterKeyId"]
        self.client("sns").create_topic(Name=p.name, Attributes=attributes)

    def _subscription(self, p: Provisioned) -> None:
        props = p.properties
        self.client("sns").subscribe(
            TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"]
        )

    def _log_group(self, p: Provisioned) -> None:
        logs = self.client("logs")
        logs.create_log_group(logGroupName=p.name)
        if "RetentionInDays" in p.properties:
            logs.put_retention_policy(
                logGroupName=p.name, retentionInDays=int(p.properties["RetentionInDays"])
            )

    def _glue_database(self, p: Provisioned) -> None:
        database_input = dict(p.properties["DatabaseInput"])
        self.client("glue").create_database(DatabaseInput=database_input)

    def _glue_security_configuration(self, p: Provisioned) -> None:
        glue = self.client("glue")
        self._try(
            f"{p.logical_id} (Glue security configuration)",
            lambda: glue.create_security_configuration(
                Name=p.name, EncryptionConfiguration=_glue_encryption(p.properties)
            ),
        )

    def _glue_job(self, p: Provisioned) -> None:
        props = p.properties
        kwargs: dict[str, Any] = {
            "Name": p.name,
            "Role": props["Role"],
            "Command": props["Command"],
        }
        optional = (
            "Description",
            "DefaultArguments",
            "GlueVersion",
            "WorkerType",
            "MaxRetries",
            "Timeout",
            "ExecutionProperty",
            "SecurityConfiguration",
            "NumberOfWorkers",
        )
        for key in optional:
            if key in props:
                kwargs[key] = props[key]
        for key in ("MaxRetries", "Timeout", "NumberOfWorkers"):
            if key in kwargs:
                kwargs[key] = int(kwargs[key])
        if "ExecutionProperty" in kwargs:
            kwargs["ExecutionProperty"] = {
                k: int(v) for k, v in kwargs["ExecutionProperty"].items()
            }
        self.client("glue").create_job(**kwargs)

    def _model_package_group(self, p: Provisioned) -> None:
        kwargs = {"ModelPackageGroupName": p.name}
        if "ModelPackageGroupDescription" in p.properties:
            kwargs["ModelPackageGroupDescription"] = p.properties["ModelPackageGroupDescription"]
        self.client("sagemaker").create_model_package_group(**kwargs)

    def _alarm(self, p: Provisioned) -> None:
        props = dict(p.properties)
        props["AlarmName"] = p.name
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in props:
                props[key] = int(props[key])
        if "Threshold" in props:
            props["Threshold"] = float(props["Threshold"])
        self.client("cloudwatch").put_metric_alarm(**props)

    def _delivery_stream(self, p: Provisioned) -> None:
        """A Firehose stream; moto delivers to S3 synchronously, and the local cloud's
        ``localcloud.executors.firehose`` makes that delivery look like Firehose's (evaluated
        prefix, compression, object names, written as the stream's role)."""
        props = p.properties
        kwargs: dict[str, Any] = {
            "DeliveryStreamName": p.name,
            "DeliveryStreamType": props.get("DeliveryStreamType", "DirectPut"),
        }
        # CloudFormation's destination properties have the API's shape; numbers arrive as text.
        for key in (
            "ExtendedS3DestinationConfiguration",
            "S3DestinationConfiguration",
            "HttpEndpointDestinationConfiguration",
        ):
            if key in props:
                kwargs[key] = _firehose_numbers(props[key])
        if "DeliveryStreamEncryptionConfigurationInput" in props:
            kwargs["DeliveryStreamEncryptionConfigurationInput"] = props[
                "DeliveryStreamEncryptionConfigurationInput"
            ]
        if props.get("Tags"):
            kwargs["Tags"] = props["Tags"]
        self.client("firehose").create_delivery_stream(**kwargs)

    def _http_api(self, p: Provisioned) -> None:
        apigw = self.client("apigatewayv2")
        api = apigw.create_api(Name=self.template.stack, ProtocolType="HTTP")
        # moto picks its own API id; Ref must return the one it knows.
        p.name = p.ref = api["ApiId"]
        p.attributes["ApiId"] = api["ApiId"]
        p.attributes["ApiEndpoint"] = api.get("ApiEndpoint", "")
        for route_key in http_routes(self.template, p.logical_id):
            apigw.create_route(ApiId=api["ApiId"], RouteKey=route_key)
        for stage in self.template.of_type("AWS::ApiGatewayV2::Stage").values():
            api_ref = stage["Properties"].get("ApiId", {})
            if api_ref == {"Ref": p.logical_id}:
                stage_name = Resolver(self.template, {}, {}, self.template.conditions).resolve(
                    stage["Properties"]["StageName"]
                )
                apigw.create_stage(ApiId=api["ApiId"], StageName=stage_name, AutoDeploy=True)


_FIREHOSE_INTEGERS = {"IntervalInSeconds", "SizeInMBs", "DurationInSeconds"}


def _firehose_numbers(value: Any) -> Any:
    """A Firehose destination configuration with its integer settings as integers."""
    if isinstance(value, dict):
        return {
            k: int(v) if k in _FIREHOSE_INTEGERS else _firehose_numbers(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_firehose_numbers(v) for v in value]
    return value


def _glue_encryption(props: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation spells the S3 setting ``S3Encryptions``; the Glue API ``S3Encryption``."""
    config = dict(props.get("EncryptionConfiguration") or {})
    if "S3Encryptions" in config:
        config["S3Encryption"] = config.pop("S3Encryptions")
    return config


def _encryption_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's ServerSideEncryptionRule → the S3 API's."""
    out: dict[str, Any] = {
        "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]
    }
    if "BucketKeyEnabled" in rule:
        out["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
    return out


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape → the S3 API's."""
    out: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"]}
    out["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "Transitions" in rule:
        out["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
            for t in rule["Transitions"]
        ]
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    return out


def http_routes(template: Template, api_id: str) -> dict[str, str]:
    """Route key ("GET /health") → function logical id, from the API's OpenAPI body."""
    api = template.resources[api_id]
    routes: dict[str, str] = {}
    for path, methods in (api["Properties"].get("Body") or {}).get("paths", {}).items():
        for method, operation in methods.items():
            integration = operation.get("x-amazon-apigateway-integration") or {}
            uri = integration.get("uri")
            text = uri.get("Fn::Sub", "") if isinstance(uri, dict) else str(uri or "")
            if isinstance(text, list):
                text = text[0]
            for logical_id in template.of_type("AWS::Lambda::Function"):
                if f"${{{logical_id}.Arn}}" in text:
                    verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                    routes[f"{verb} {path}"] = logical_id
    return routes
