"""Whether an AWS service can deliver to an encrypted queue or topic, as AWS decides it.

Two deliveries in this stack are made by a service, not by our code, and fail silently on AWS
when a policy is missing: EventBridge sending a failed event to a rule's dead-letter queue, and
CloudWatch publishing an alarm to an SNS topic. Both need the destination's resource policy to
let the service in (or, for SNS in the same account, the default topic policy) and, when the
destination is encrypted, the KMS key policy to let the service use the key. An AWS managed key
(alias/aws/sqs, alias/aws/sns) has a fixed policy that only lets principals of the account use
it through the service: EventBridge and CloudWatch are not such principals.

Sources: "Using dead-letter queues to process undelivered events in EventBridge" (queue policy
and "Granting permissions to the dead-letter queue" with a customer managed key), "Amazon SNS
topic for CloudWatch alarms ... encrypted topics" and "Key policies in AWS KMS" (a key policy
that allows the account root is what makes IAM policies count for the key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from localcloud.strict import iam

_AWS_MANAGED_KEY_ALIASES = ("alias/aws/",)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class Keys:
    """The template's KMS keys: policies by key ARN and key id, and aliases to key ARNs."""

    policies: Mapping[str, dict[str, Any]]
    aliases: Mapping[str, str]

    @classmethod
    def from_resources(cls, resources: Iterable[Any]) -> Keys:
        policies: dict[str, dict[str, Any]] = {}
        aliases: dict[str, str] = {}
        resources = list(resources)
        for r in resources:
            if r.type == "AWS::KMS::Key":
                document = r.properties.get("KeyPolicy") or {}
                policies[r.attributes["Arn"]] = document
                policies[r.name] = document
        for r in resources:
            if r.type == "AWS::KMS::Alias":
                target = str(r.properties.get("TargetKeyId", ""))
                aliases[str(r.properties.get("AliasName"))] = target
        return cls(policies, aliases)

    def policy(self, key: str) -> dict[str, Any] | None:
        key = self.aliases.get(key, key)
        if key in self.policies:
            return self.policies[key]
        # A key referred to by a full alias ARN, or an alias pointing at a key id.
        tail = key.rsplit("/", 1)[-1] if key.startswith("arn:aws:kms:") else key
        return self.policies.get(self.aliases.get(f"alias/{tail}", tail))


def service_may(
    policy: Mapping[str, Any] | None,
    service: str,
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> bool:
    """Does a resource policy allow service principal ``service`` to do ``action``?"""
    if not policy:
        return False
    as_identity = _statements_for(policy, lambda p: _names_service(p, service))
    request = iam.AuthorizationRequest(action, resource, dict(context or {}))
    return iam.evaluate(request, [as_identity]).allowed


def service_can_use_key(
    keys: Keys, key: str | None, service: str, actions: Iterable[str], source: Mapping[str, str]
) -> Verdict:
    """Can ``service`` use the key a destination is encrypted with?"""
    if not key:
        return Verdict(True, "not encrypted with a KMS key")
    if key.startswith(_AWS_MANAGED_KEY_ALIASES):
        return Verdict(
            False,
            f"encrypted with the AWS managed key {key}, whose fixed key policy does not let "
            f"{service} use it",
        )
    policy = keys.policy(key)
    if policy is None:
        return Verdict(False, f"KMS key {key} is not declared in the template")
    arn = key if key.startswith("arn:") else f"key:{key}"
    for action in actions:
        if not service_may(policy, service, action, arn, source):
            return Verdict(False, f"the key policy of {key} does not allow {service} {action}")
    return Verdict(True, f"the key policy of {key} allows {service}")


def role_may_use_key(keys: Keys, key: str, account: str) -> bool:
    """Does the key policy let IAM policies of ``account`` grant use of the key? (Only then
    does a role's own kms:* grant count.)"""
    policy = keys.policy(key)
    if policy is None:
        return False
    root = f"arn:aws:iam::{account}:root"
    as_identity = _statements_for(policy, lambda p: _names_account(p, account, root))
    request = iam.AuthorizationRequest("kms:GenerateDataKey", "*", {})
    return iam.evaluate(request, [as_identity]).allowed


def eventbridge_can_dead_letter(
    queue_arn: str,
    queue_attributes: Mapping[str, str],
    queue_policy: Mapping[str, Any] | None,
    rule_arn: str,
    keys: Keys,
) -> Verdict:
    """Can EventBridge put a rule's undeliverable event into ``queue_arn``?"""
    account = rule_arn.split(":")[4]
    source = {"aws:SourceArn": rule_arn, "aws:SourceAccount": account}
    if not service_may(queue_policy, "events.amazonaws.com", "sqs:SendMessage", queue_arn, source):
        return Verdict(
            False,
            f"the queue policy of {queue_arn} does not let events.amazonaws.com send messages "
            f"from {rule_arn}",
        )
    return service_can_use_key(
        keys,
        queue_attributes.get("KmsMasterKeyId"),
        "events.amazonaws.com",
        ("kms:GenerateDataKey", "kms:Decrypt"),
        source,
    )


def cloudwatch_can_notify(
    topic_arn: str, topic_attributes: Mapping[str, str], alarm_arn: str, keys: Keys
) -> Verdict:
    """Can a CloudWatch alarm publish to ``topic_arn``? (Same account: the default topic policy
    lets the account's services publish; the key is what can stop it.)"""
    account = alarm_arn.split(":")[4]
    return service_can_use_key(
        keys,
        topic_attributes.get("KmsMasterKeyId"),
        "cloudwatch.amazonaws.com",
        ("kms:GenerateDataKey", "kms:Decrypt"),
        {"aws:SourceArn": alarm_arn, "aws:SourceAccount": account},
    )


def _statements_for(policy: Mapping[str, Any], matches: Any) -> dict[str, Any]:
    """The statements of a resource policy that name the principal, as an identity policy."""
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = []
    for statement in statements:
        if "Principal" in statement and matches(statement["Principal"]):
            kept.append({k: v for k, v in statement.items() if k != "Principal"})
    return {"Version": "2012-10-17", "Statement": kept}


def _names_service(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    named = principal.get("Service", [])
    named = [named] if isinstance(named, str) else named
    everyone = principal.get("AWS", [])
    return service in named or "*" in ([everyone] if isinstance(everyone, str) else everyone)


def _names_account(principal: Any, account: str, root: str) -> bool:
    if not isinstance(principal, Mapping):
        return principal == "*"
    named = principal.get("AWS", [])
    named = [named] if isinstance(named, str) else named
    return any(n in (account, root, "*") for n in named)
