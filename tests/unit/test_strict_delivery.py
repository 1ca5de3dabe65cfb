"""The strict local cloud decides, as AWS does, whether a service may deliver to an encrypted
queue or topic: the destination's resource policy and its KMS key policy must both let it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from localcloud.strict.delivery import (
    Keys,
    cloudwatch_can_notify,
    eventbridge_can_dead_letter,
    role_may_use_key,
    service_can_use_key,
    service_may,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
ALIAS = "alias/mlops-dead-letters"

QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:stack-ScrapeDLQ-ABC"
RULE_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/stack-ScrapeFunctionSchedule-ABC"
OTHER_RULE_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/stack-ValidateFunctionRaw-DEF"

TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:stack-NotificationTopic-ABC"
ALARM_PATTERN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:mlops-*-dev-*"
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:mlops-scrape-errors-dev-ABC"
FOREIGN_ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:someone-elses-alarm"

DATA_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
FROM_RULE = {"aws:SourceArn": RULE_ARN, "aws:SourceAccount": ACCOUNT}


# ---------------------------------------------------------------------------------- builders


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def account_administers() -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}


def service_uses_key(service: str, **extra: Any) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": "*",
        **extra,
    }


def eventbridge_sends_from(*rule_arns: str) -> dict[str, Any]:
    return policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": QUEUE_ARN,
            "Condition": {"ArnEquals": {"aws:SourceArn": list(rule_arns)}},
        }
    )


def kms_key(
    key_policy: dict[str, Any], key_id: str = KEY_ID, name: str | None = None
) -> SimpleNamespace:
    return SimpleNamespace(
        type="AWS::KMS::Key",
        name=name or key_id,
        properties={"KeyPolicy": key_policy},
        attributes={"Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}", "KeyId": key_id},
    )


def kms_alias(alias: str, target: str) -> SimpleNamespace:
    return SimpleNamespace(
        type="AWS::KMS::Alias",
        name=alias,
        properties={"AliasName": alias, "TargetKeyId": target},
        attributes={},
    )


def keys_with(key_policy: dict[str, Any]) -> Keys:
    return Keys.from_resources([kms_key(key_policy), kms_alias(ALIAS, KEY_ID)])


# ---------------------------------------------------------------------- Keys.from_resources


def test_keys_index_a_key_policy_by_its_arn() -> None:
    # given a declared key
    document = policy(account_administers())

    # when the template's keys are collected
    keys = Keys.from_resources([kms_key(document)])

    # then its policy is found by the key's ARN
    assert keys.policies[KEY_ARN] == document


def test_keys_index_a_key_policy_by_its_physical_name() -> None:
    # given a declared key whose physical name is its key id
    document = policy(account_administers())

    # when the template's keys are collected
    keys = Keys.from_resources([kms_key(document)])

    # then its policy is found by that name too
    assert keys.policies[KEY_ID] == document


def test_keys_map_an_alias_name_to_its_target_key() -> None:
    # given a key and an alias pointing at its id
    resources = [kms_key(policy(account_administers())), kms_alias(ALIAS, KEY_ID)]

    # when the template's keys are collected
    keys = Keys.from_resources(resources)

    # then the alias resolves to the key id
    assert keys.aliases == {ALIAS: KEY_ID}


def test_keys_find_an_alias_declared_before_its_key() -> None:
    # given the alias listed before the key it targets
    resources = [kms_alias(ALIAS, KEY_ID), kms_key(policy(account_administers()))]

    # when the keys are collected and the alias looked up
    keys = Keys.from_resources(resources)

    # then the order of the resources does not matter
    assert keys.policy(ALIAS) == policy(account_administers())


def test_keys_ignore_resources_that_are_not_kms_keys_or_aliases() -> None:
    # given only a queue and a bucket policy
    resources = [
        SimpleNamespace(type="AWS::SQS::Queue", name="q", properties={}, attributes={}),
        SimpleNamespace(
            type="AWS::S3::BucketPolicy", name="p", properties={"Bucket": "b"}, attributes={}
        ),
    ]

    # when the keys are collected
    keys = Keys.from_resources(resources)

    # then there are none
    assert keys == Keys({}, {})


def test_keys_accept_a_single_pass_iterable() -> None:
    # given the resources as a generator (the cloud passes dict values)
    resources = (r for r in [kms_key(policy(account_administers())), kms_alias(ALIAS, KEY_ID)])

    # when the keys are collected
    keys = Keys.from_resources(resources)

    # then both the key and its alias were seen
    assert KEY_ARN in keys.policies and ALIAS in keys.aliases


def test_a_key_without_a_key_policy_has_an_empty_policy() -> None:
    # given a key declared without KeyPolicy
    key = kms_key({})
    key.properties = {}

    # when the keys are collected
    keys = Keys.from_resources([key])

    # then its policy is empty rather than missing
    assert keys.policy(KEY_ARN) == {}


def test_keys_resolve_a_full_alias_arn() -> None:
    # given a key and its alias
    keys = keys_with(policy(account_administers()))

    # when the key is referred to by the alias's ARN
    found = keys.policy(f"arn:aws:kms:{REGION}:{ACCOUNT}:{ALIAS}")

    # then the key's policy is found
    assert found == policy(account_administers())


def test_keys_know_nothing_of_an_undeclared_key() -> None:
    # given a key and its alias
    keys = keys_with(policy(account_administers()))

    # when another key is looked up
    found = keys.policy(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/ffffffff-0000-0000-0000-000000000000")

    # then nothing is found
    assert found is None


# -------------------------------------------------------------------------------- service_may


def test_service_may_when_the_policy_names_its_service_principal() -> None:
    # given a queue policy admitting EventBridge from one rule
    queue_policy = eventbridge_sends_from(RULE_ARN)

    # when EventBridge sends from that rule
    allowed = service_may(
        queue_policy, "events.amazonaws.com", "sqs:SendMessage", QUEUE_ARN, FROM_RULE
    )

    # then it may
    assert allowed


def test_service_may_not_when_the_policy_names_another_service() -> None:
    # given a queue policy admitting EventBridge
    queue_policy = eventbridge_sends_from(RULE_ARN)

    # when SNS asks to send
    allowed = service_may(
        queue_policy, "sns.amazonaws.com", "sqs:SendMessage", QUEUE_ARN, FROM_RULE
    )

    # then it may not
    assert not allowed


def test_service_may_not_without_a_policy() -> None:
    # given no resource policy at all
    # when a service asks
    allowed = service_may(None, "events.amazonaws.com", "sqs:SendMessage", QUEUE_ARN)

    # then it may not
    assert not allowed


def test_service_may_through_a_principal_naming_everyone() -> None:
    # given a policy whose principal is "*"
    open_policy = policy(
        {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": QUEUE_ARN}
    )

    # when a service asks
    allowed = service_may(open_policy, "events.amazonaws.com", "sqs:SendMessage", QUEUE_ARN)

    # then it may
    assert allowed


def test_service_may_find_its_name_in_a_list_of_services() -> None:
    # given a statement naming several services
    listed = policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": ["sns.amazonaws.com", "events.amazonaws.com"]},
            "Action": "sqs:SendMessage",
            "Resource": QUEUE_ARN,
        }
    )

    # when one of them asks
    allowed = service_may(listed, "events.amazonaws.com", "sqs:SendMessage", QUEUE_ARN)

    # then it may
    assert allowed


def test_service_may_not_through_a_grant_to_the_account() -> None:
    # given a key policy that only lets the account's IAM policies grant use
    key_policy = policy(account_administers())

    # when a service asks to use the key
    allowed = service_may(key_policy, "events.amazonaws.com", "kms:GenerateDataKey", KEY_ARN)

    # then the account's grant does not admit the service
    assert not allowed


def test_service_may_not_when_a_deny_for_everyone_matches() -> None:
    # given an allow for the service and a deny for everyone on the same action
    denying = policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": QUEUE_ARN,
        },
        {"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": QUEUE_ARN},
    )

    # when the service asks
    allowed = service_may(denying, "events.amazonaws.com", "sqs:SendMessage", QUEUE_ARN)

    # then the explicit deny wins
    assert not allowed


def test_service_may_through_everyone_named_in_a_list() -> None:
    # given a policy whose AWS principal is the one-element list ["*"]
    open_policy = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": ["*"]},
            "Action": "sqs:SendMessage",
            "Resource": QUEUE_ARN,
        }
    )

    # when a service asks
    allowed = service_may(open_policy, "events.amazonaws.com", "sqs:SendMessage", QUEUE_ARN)

    # then it may, as with {"AWS": "*"}
    assert allowed


# ----------------------------------------------------------------------- service_can_use_key


def test_a_destination_without_a_key_is_usable() -> None:
    # given a queue not encrypted with KMS
    keys = Keys({}, {})

    # when EventBridge wants to write to it
    verdict = service_can_use_key(keys, None, "events.amazonaws.com", DATA_KEY_ACTIONS, {})

    # then nothing stops it
    assert verdict.allowed


@pytest.mark.parametrize("alias", ["alias/aws/sqs", "alias/aws/sns"])
def test_an_aws_managed_key_is_refused_naming_the_alias(alias: str) -> None:
    # given a destination under an AWS managed key
    keys = Keys({}, {})

    # when a service principal wants to use that key
    verdict = service_can_use_key(keys, alias, "events.amazonaws.com", DATA_KEY_ACTIONS, {})

    # then it is refused, and the reason names the alias
    assert not verdict.allowed
    assert alias in verdict.reason


def test_a_customer_key_admitting_the_service_is_usable() -> None:
    # given a customer managed key whose policy lets EventBridge use it
    keys = keys_with(policy(account_administers(), service_uses_key("events.amazonaws.com")))

    # when EventBridge uses it by ARN
    verdict = service_can_use_key(keys, KEY_ARN, "events.amazonaws.com", DATA_KEY_ACTIONS, {})

    # then it may
    assert verdict.allowed


def test_a_customer_key_not_admitting_the_service_is_refused() -> None:
    # given a customer managed key whose policy only lets the account grant use
    keys = keys_with(policy(account_administers()))

    # when EventBridge wants to use it
    verdict = service_can_use_key(keys, KEY_ARN, "events.amazonaws.com", DATA_KEY_ACTIONS, {})

    # then it is refused, naming the service
    assert not verdict.allowed
    assert "events.amazonaws.com" in verdict.reason


def test_a_key_allowing_only_some_actions_is_refused() -> None:
    # given a key policy letting the service generate data keys but not decrypt
    partial = service_uses_key("events.amazonaws.com", Action="kms:GenerateDataKey")
    keys = keys_with(policy(account_administers(), partial))

    # when the service needs both
    verdict = service_can_use_key(keys, KEY_ARN, "events.amazonaws.com", DATA_KEY_ACTIONS, {})

    # then it is refused, naming the missing action
    assert not verdict.allowed
    assert "kms:Decrypt" in verdict.reason


def test_an_alias_of_a_declared_key_resolves_to_its_policy() -> None:
    # given a customer key admitting the service, and an alias pointing at it
    keys = keys_with(policy(account_administers(), service_uses_key("events.amazonaws.com")))

    # when the destination names the key by its alias
    verdict = service_can_use_key(keys, ALIAS, "events.amazonaws.com", DATA_KEY_ACTIONS, {})

    # then the key's policy decides, and allows
    assert verdict.allowed


def test_an_undeclared_key_is_refused() -> None:
    # given the template's keys
    keys = keys_with(policy(account_administers(), service_uses_key("events.amazonaws.com")))
    other = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/ffffffff-0000-0000-0000-000000000000"

    # when the destination names a key the template does not declare
    verdict = service_can_use_key(keys, other, "events.amazonaws.com", DATA_KEY_ACTIONS, {})

    # then it is refused as not declared
    assert not verdict.allowed
    assert "not declared" in verdict.reason


# ---------------------------------------------------------------- eventbridge_can_dead_letter


def dead_letter_keys() -> Keys:
    return keys_with(policy(account_administers(), service_uses_key("events.amazonaws.com")))


def test_eventbridge_dead_letters_when_queue_and_key_admit_the_rule() -> None:
    # given a queue policy admitting EventBridge from the rule, under a key EventBridge may use
    queue_policy = eventbridge_sends_from(RULE_ARN)
    attributes = {"KmsMasterKeyId": KEY_ARN}

    # when the rule's event is dead-lettered
    verdict = eventbridge_can_dead_letter(
        QUEUE_ARN, attributes, queue_policy, RULE_ARN, dead_letter_keys()
    )

    # then it may be
    assert verdict.allowed


def test_eventbridge_may_not_dead_letter_for_a_rule_the_queue_policy_does_not_name() -> None:
    # given a queue policy admitting EventBridge from another rule
    queue_policy = eventbridge_sends_from(OTHER_RULE_ARN)

    # when this rule's event is dead-lettered
    verdict = eventbridge_can_dead_letter(
        QUEUE_ARN, {"KmsMasterKeyId": KEY_ARN}, queue_policy, RULE_ARN, dead_letter_keys()
    )

    # then it is refused, naming the queue and the rule
    assert not verdict.allowed
    assert QUEUE_ARN in verdict.reason and RULE_ARN in verdict.reason


def test_eventbridge_may_not_dead_letter_to_a_queue_without_a_policy() -> None:
    # given a queue with no queue policy
    # when a rule's event is dead-lettered
    verdict = eventbridge_can_dead_letter(
        QUEUE_ARN, {"KmsMasterKeyId": KEY_ARN}, None, RULE_ARN, dead_letter_keys()
    )

    # then it is refused
    assert not verdict.allowed


def test_eventbridge_may_not_dead_letter_to_a_queue_under_the_aws_managed_key() -> None:
    # given a queue policy admitting the rule, but the queue under alias/aws/sqs
    queue_policy = eventbridge_sends_from(RULE_ARN)
    attributes = {"KmsMasterKeyId": "alias/aws/sqs"}

    # when the rule's event is dead-lettered
    verdict = eventbridge_can_dead_letter(
        QUEUE_ARN, attributes, queue_policy, RULE_ARN, dead_letter_keys()
    )

    # then the key refuses it
    assert not verdict.allowed
    assert "alias/aws/sqs" in verdict.reason


def test_eventbridge_dead_letters_to_an_unencrypted_queue_its_policy_admits() -> None:
    # given a queue policy admitting the rule and no KMS key on the queue
    queue_policy = eventbridge_sends_from(RULE_ARN)

    # when the rule's event is dead-lettered
    verdict = eventbridge_can_dead_letter(QUEUE_ARN, {}, queue_policy, RULE_ARN, Keys({}, {}))

    # then it may be
    assert verdict.allowed


# ---------------------------------------------------------------------- cloudwatch_can_notify


def notification_keys() -> Keys:
    cloudwatch = service_uses_key(
        "cloudwatch.amazonaws.com",
        Action=["kms:Decrypt", "kms:GenerateDataKey*"],
        Condition={
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
            "ArnLike": {"aws:SourceArn": ALARM_PATTERN},
        },
    )
    return keys_with(policy(account_administers(), cloudwatch))


def test_cloudwatch_notifies_for_an_alarm_the_key_policy_admits() -> None:
    # given a topic under a key admitting this account's alarms matching a pattern
    attributes = {"KmsMasterKeyId": KEY_ARN}

    # when an alarm matching the pattern notifies the topic
    verdict = cloudwatch_can_notify(TOPIC_ARN, attributes, ALARM_ARN, notification_keys())

    # then it may
    assert verdict.allowed


def test_cloudwatch_may_not_notify_for_an_alarm_outside_the_pattern() -> None:
    # given the same topic and key
    attributes = {"KmsMasterKeyId": KEY_ARN}

    # when an alarm outside the pattern notifies the topic
    verdict = cloudwatch_can_notify(TOPIC_ARN, attributes, FOREIGN_ALARM_ARN, notification_keys())

    # then it is refused
    assert not verdict.allowed


def test_cloudwatch_may_not_notify_a_topic_under_the_aws_managed_key() -> None:
    # given a topic under alias/aws/sns
    attributes = {"KmsMasterKeyId": "alias/aws/sns"}

    # when an alarm notifies it
    verdict = cloudwatch_can_notify(TOPIC_ARN, attributes, ALARM_ARN, notification_keys())

    # then it is refused, naming the alias
    assert not verdict.allowed
    assert "alias/aws/sns" in verdict.reason


# --------------------------------------------------------------------------- role_may_use_key


def test_a_key_policy_granting_the_account_root_lets_roles_use_the_key() -> None:
    # given a key policy granting the account root kms:*
    keys = keys_with(policy(account_administers()))

    # when asked whether the account's IAM policies can grant the key
    may = role_may_use_key(keys, KEY_ARN, ACCOUNT)

    # then they can
    assert may is True


def test_a_key_policy_naming_only_a_service_does_not_let_roles_use_the_key() -> None:
    # given a key policy that names only EventBridge
    keys = keys_with(policy(service_uses_key("events.amazonaws.com")))

    # when asked whether the account's IAM policies can grant the key
    may = role_may_use_key(keys, KEY_ARN, ACCOUNT)

    # then they cannot
    assert may is False


def test_a_key_policy_naming_the_account_id_lets_roles_use_the_key() -> None:
    # given a key policy naming the bare account id
    by_id = {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "kms:*", "Resource": "*"}
    keys = keys_with(policy(by_id))

    # when asked whether the account's IAM policies can grant the key
    may = role_may_use_key(keys, KEY_ARN, ACCOUNT)

    # then they can
    assert may is True


def test_an_undeclared_key_does_not_let_roles_use_it() -> None:
    # given no keys declared
    keys = Keys({}, {})

    # when asked about a key
    may = role_may_use_key(keys, KEY_ARN, ACCOUNT)

    # then the answer is no
    assert may is False
