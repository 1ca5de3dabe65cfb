"""IAM policy evaluation as AWS documents it, for the strict local cloud.

Follows the IAM User Guide pages "Policy evaluation logic", "Policy evaluation for requests
within a single account", "IAM JSON policy elements: Resource / Action / Condition",
"IAM JSON policy elements: Condition operators" and "Conditions with multiple context keys or
values". Only what a single-account request made as a role needs: identity policies, a
same-account resource policy, explicit and implicit deny. Policy variables (``${aws:...}``),
permissions boundaries, session policies, SCPs and RCPs are not modelled; a policy that uses
a construct this module does not evaluate raises ``PolicyError`` instead of being guessed at.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

Reason = Literal["allowed", "explicit-deny", "implicit-deny"]
PolicySource = Literal["identity", "resource"]
ContextValue = str | list[str]


class PolicyError(ValueError):
    """A policy document this engine cannot evaluate faithfully (malformed or unsupported)."""


class UnknownManagedPolicy(LookupError):
    """An AWS managed policy ARN whose document is not embedded here."""


@dataclass(frozen=True)
class AuthorizationRequest:
    """One (action, resource, context) triple IAM evaluates for an API call."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The outcome of evaluating one request, with the statement that decided it."""

    allowed: bool
    reason: Reason
    statement: Mapping[str, Any] | None = None
    source: PolicySource | None = None


# ---------------------------------------------------------------------------------- matching


@functools.lru_cache(maxsize=4096)
def _action_regex(pattern: str) -> re.Pattern[str]:
    """Action names match case-insensitively, with * and ? anywhere ("IAM JSON policy
    elements: Action")."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    """Whether an Action/NotAction entry covers ``action``."""
    return _action_regex(pattern).fullmatch(action) is not None


@functools.lru_cache(maxsize=4096)
def _resource_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Resource entry.

    "IAM JSON policy elements: Resource" says wildcards work within the colon-separated
    segments of an ARN; a ``*`` expands over anything in its segment, ``/`` included, and when
    the ``*`` is the last character of a segment it may also expand across the following
    colons. So ``*`` before a colon (or at the end) becomes ``.*``; elsewhere it stops at ``:``.
    Matching is case-sensitive.
    """
    if "${" in pattern:
        raise PolicyError(f"policy variables are not supported by the local cloud: {pattern!r}")
    out: list[str] = []
    for i, c in enumerate(pattern):
        if c == "*":
            last_of_segment = i + 1 == len(pattern) or pattern[i + 1] == ":"
            out.append(".*" if last_of_segment else "[^:]*")
        elif c == "?":
            out.append("[^:]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


def resource_matches(pattern: str, resource: str) -> bool:
    """Whether a Resource/NotResource entry covers ``resource``."""
    return _resource_regex(pattern).fullmatch(resource) is not None


@functools.lru_cache(maxsize=4096)
def _glob_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _arn_like(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: "each of the six colon-delimited components of the ARN is checked
    separately" ("Condition operators", ARN operators); the sixth keeps any further colons."""
    p_parts = pattern.split(":", 5)
    v_parts = value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return False
    pairs = zip(p_parts, v_parts, strict=True)
    return all(_glob_regex(p).fullmatch(v) is not None for p, v in pairs)


# --------------------------------------------------------------------------------- conditions


def _as_strings(value: Any) -> list[str]:
    """Policy condition values: a scalar or a list; booleans and numbers as JSON writes them."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, (str, int, float)):
            out.append(str(item))
        else:
            raise PolicyError(f"unsupported condition value {item!r}")
    return out


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise PolicyError(f"not a number: {text!r}") from exc


def _date(text: str) -> float:
    """Dates compare as instants; "Condition operators" accepts ISO 8601 or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PolicyError(f"not a date: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _ip_in(value: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    return lambda req, pol: compare(_number(req), _number(pol))


def _dated(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    return lambda req, pol: compare(_date(req), _date(pol))


# Each base operator as (positive matcher, negated). A negated operator is the NOR of its
# positive form over the policy's values ("Evaluation logic for negated matching condition
# operators").
_Matcher = Callable[[str, str], bool]
_OPERATORS: dict[str, tuple[_Matcher, bool]] = {
    "stringequals": (lambda r, p: r == p, False),
    "stringnotequals": (lambda r, p: r == p, True),
    "stringequalsignorecase": (lambda r, p: r.casefold() == p.casefold(), False),
    "stringnotequalsignorecase": (lambda r, p: r.casefold() == p.casefold(), True),
    "stringlike": (lambda r, p: _glob_regex(p).fullmatch(r) is not None, False),
    "stringnotlike": (lambda r, p: _glob_regex(p).fullmatch(r) is not None, True),
    "numericequals": (_numeric(lambda a, b: a == b), False),
    "numericnotequals": (_numeric(lambda a, b: a == b), True),
    "numericlessthan": (_numeric(lambda a, b: a < b), False),
    "numericlessthanequals": (_numeric(lambda a, b: a <= b), False),
    "numericgreaterthan": (_numeric(lambda a, b: a > b), False),
    "numericgreaterthanequals": (_numeric(lambda a, b: a >= b), False),
    "dateequals": (_dated(lambda a, b: a == b), False),
    "datenotequals": (_dated(lambda a, b: a == b), True),
    "datelessthan": (_dated(lambda a, b: a < b), False),
    "datelessthanequals": (_dated(lambda a, b: a <= b), False),
    "dategreaterthan": (_dated(lambda a, b: a > b), False),
    "dategreaterthanequals": (_dated(lambda a, b: a >= b), False),
    # Bool compares the literal strings "true"/"false", case-insensitively.
    "bool": (lambda r, p: r.lower() == p.lower(), False),
    "ipaddress": (_ip_in, False),
    "notipaddress": (_ip_in, True),
    # ArnEquals and ArnLike share one definition in the docs, wildcards included.
    "arnequals": (lambda r, p: _arn_like(p, r), False),
    "arnlike": (lambda r, p: _arn_like(p, r), False),
    "arnnotequals": (lambda r, p: _arn_like(p, r), True),
    "arnnotlike": (lambda r, p: _arn_like(p, r), True),
}


def _lookup(context: Mapping[str, ContextValue], key: str) -> list[str] | None:
    """The request's values for ``key``; key names are case-insensitive (Condition element)."""
    wanted = key.lower()
    for name, value in context.items():
        if name.lower() == wanted:
            values = [value] if isinstance(value, str) else list(value)
            return values or None  # an empty set behaves like a missing key
    return None


def _condition_holds(
    operator: str, key: str, policy_value: Any, context: Mapping[str, ContextValue]
) -> bool:
    name = operator
    set_operator: str | None = None
    for prefix in ("ForAnyValue:", "ForAllValues:"):
        if name.lower().startswith(prefix.lower()):
            set_operator = prefix[:-1].lower()
            name = name[len(prefix) :]
    if_exists = name.lower().endswith("ifexists") and name.lower() != "ifexists"
    if if_exists:
        name = name[: -len("IfExists")]
    base = name.lower()
    requested = _lookup(context, key)
    policy_values = _as_strings(policy_value)

    if base == "null":
        # Null "true" requires the key to be absent, "false" present (Null condition operator).
        if set_operator or if_exists:
            raise PolicyError(f"unsupported operator {operator!r}")
        wants_absent = [v.lower() == "true" for v in policy_values]
        return (requested is None) in wants_absent

    if base not in _OPERATORS:
        raise PolicyError(f"condition operator {operator!r} is not supported by the local cloud")
    matcher, negated = _OPERATORS[base]

    if requested is None:
        # "Condition operators": a missing key makes a condition false, except that a negated
        # operator is then true, ...IfExists is true, and ForAllValues is true on an empty set.
        if if_exists or set_operator == "forallvalues":
            return True
        if set_operator == "foranyvalue":
            return False
        return negated

    def value_ok(value: str) -> bool:
        hit = any(matcher(value, p) for p in policy_values)
        return not hit if negated else hit

    if set_operator == "forallvalues":
        return all(value_ok(v) for v in requested)
    if set_operator == "foranyvalue":
        return any(value_ok(v) for v in requested)
    # A single-valued operator given several request values: a positive operator needs one
    # match, a negated one needs none (its NOR spans every request value).
    return all(value_ok(v) for v in requested) if negated else any(value_ok(v) for v in requested)


def conditions_hold(
    condition: Mapping[str, Any] | None, context: Mapping[str, ContextValue]
) -> bool:
    """Every operator and every key in a Condition block must hold (logical AND)."""
    if not condition:
        return True
    if not isinstance(condition, Mapping):
        raise PolicyError(f"Condition must be an object, got {condition!r}")
    for operator, pairs in condition.items():
        if not isinstance(pairs, Mapping):
            raise PolicyError(f"condition {operator!r} must map keys to values")
        for key, value in pairs.items():
            if not _condition_holds(operator, key, value, context):
                return False
    return True


# --------------------------------------------------------------------------------- statements


def _strings(value: Any, element: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise PolicyError(f"{element} must be a string or a list of strings, got {value!r}")


def statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A policy document's statements (``Statement`` may be one object or a list)."""
    body = policy.get("Statement")
    if body is None:
        raise PolicyError(f"policy has no Statement: {policy!r}")
    items = body if isinstance(body, list) else [body]
    for item in items:
        if not isinstance(item, Mapping) or item.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f"statement needs Effect Allow or Deny: {item!r}")
    return items


def _covers_action(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(action_matches(p, action) for p in _strings(statement["Action"], "Action"))
    if "NotAction" in statement:
        patterns = _strings(statement["NotAction"], "NotAction")
        return not any(action_matches(p, action) for p in patterns)
    raise PolicyError(f"statement needs Action or NotAction: {statement!r}")


def _covers_resource(statement: Mapping[str, Any], resource: str, *, required: bool) -> bool:
    if "Resource" in statement:
        patterns = _strings(statement["Resource"], "Resource")
        return any(resource_matches(p, resource) for p in patterns)
    if "NotResource" in statement:
        patterns = _strings(statement["NotResource"], "NotResource")
        return not any(resource_matches(p, resource) for p in patterns)
    if required:
        raise PolicyError(f"identity policy statement needs Resource or NotResource: {statement!r}")
    return True  # some resource policies leave the resource implicit: the one they sit on


def _role_of(arn: str) -> str:
    """The role ARN behind an assumed-role session ARN (or the ARN itself)."""
    match = re.fullmatch(r"arn:([^:]+):sts::(\d+):assumed-role/([^/]+)/.+", arn)
    if match:
        partition, account, role = match.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    return arn


def _account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 else None


def _names_principal(principal: Any, principal_arn: str | None, *, effect: str) -> bool:
    """Whether a resource policy's Principal names the caller.

    "*" and {"AWS": "*"} name everyone. A role (or one of its sessions) is named by its ARN.
    A Service principal never names a role. An account ("123456789012" or its ``:root`` ARN)
    delegates to the account's own IAM policies ("IAM JSON policy elements: Principal"), so it
    grants nothing by itself, but a Deny for the account covers every principal in it.
    """
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        raise PolicyError(f"unsupported Principal {principal!r}")
    if principal_arn is None:
        return False
    caller_role = _role_of(principal_arn)
    caller_account = _account_of(caller_role)
    for kind, value in principal.items():
        if kind != "AWS":
            continue  # Service, Federated, CanonicalUser: never an IAM role session
        for named in _strings(value, "Principal"):
            if named == "*" or _role_of(named) == caller_role:
                return True
            account = named if re.fullmatch(r"\d{12}", named) else None
            root = re.fullmatch(r"arn:[^:]+:iam::(\d{12}):root", named)
            account = account or (root.group(1) if root else None)
            if account and account == caller_account and effect == "Deny":
                return True
    return False


def _applies(
    statement: Mapping[str, Any],
    request: AuthorizationRequest,
    *,
    resource_policy: bool,
    principal_arn: str | None,
) -> bool:
    if resource_policy:
        effect = statement["Effect"]
        if "Principal" in statement:
            if not _names_principal(statement["Principal"], principal_arn, effect=effect):
                return False
        elif "NotPrincipal" in statement:
            if _names_principal(statement["NotPrincipal"], principal_arn, effect="Deny"):
                return False
        else:
            raise PolicyError(f"resource policy statement needs a Principal: {statement!r}")
    return (
        _covers_action(statement, request.action)
        and _covers_resource(statement, request.resource, required=not resource_policy)
        and conditions_hold(statement.get("Condition"), request.context)
    )


def evaluate(
    request: AuthorizationRequest,
    identity_policies: Sequence[Mapping[str, Any]],
    resource_policy: Mapping[str, Any] | None = None,
    principal_arn: str | None = None,
) -> Decision:
    """Decide ``request`` for a principal in the resource's own account."""
    sources: list[tuple[PolicySource, Mapping[str, Any]]] = [
        ("identity", s) for policy in identity_policies for s in statements(policy)
    ]
    if resource_policy is not None:
        sources += [("resource", s) for s in statements(resource_policy)]

    def applying(effect: str) -> Iterable[tuple[PolicySource, Mapping[str, Any]]]:
        for source, statement in sources:
            if statement["Effect"] == effect and _applies(
                statement,
                request,
                resource_policy=source == "resource",
                principal_arn=principal_arn,
            ):
                yield source, statement

    # An explicit deny in any policy overrides every allow ("Policy evaluation logic").
    for source, statement in applying("Deny"):
        return Decision(False, "explicit-deny", statement, source)
    # Within one account, an allow in either the identity or the resource policy suffices
    # ("Policy evaluation for requests within a single account").
    for source, statement in applying("Allow"):
        return Decision(True, "allowed", statement, source)
    return Decision(False, "implicit-deny")


def deny_message(principal_arn: str, request: AuthorizationRequest, decision: Decision) -> str:
    """AWS's AccessDenied wording for a refused request."""
    on_resource = "" if request.resource == "*" else f" on resource: {request.resource}"
    head = f"User: {principal_arn} is not authorized to perform: {request.action}{on_resource}"
    if decision.reason == "explicit-deny":
        where = (
            "a resource-based policy"
            if decision.source == "resource"
            else ("an identity-based policy")
        )
        return f"{head} with an explicit deny in {where}"
    return f"{head} because no identity-based policy allows the {request.action} action"


# ---------------------------------------------------------------------------- managed policies
#
# The AWS managed policies that template.yaml names or that the SAM transform adds
# (AWSLambdaBasicExecutionRole for every function, AWSXrayWriteOnlyAccess for
# ``Tracing: Active``), as the "AWS Managed Policy Reference Guide" lists their current
# versions. Statements are restated here; keep them in step with that guide.

_ALL = "*"
_XRAY_WRITE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": [_ALL],
        }
    ],
}
_MANAGED: dict[str, dict[str, Any]] = {
    "service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": _ALL,
            }
        ],
    },
    "AWSXrayWriteOnlyAccess": _XRAY_WRITE,
    # Same grants as AWSXrayWriteOnlyAccess; older SAM versions attach this one instead.
    "AWSXRayDaemonWriteAccess": _XRAY_WRITE,
    "service-role/AWSGlueServiceRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "glue:*",
                    "s3:GetBucketLocation",
                    "s3:ListBucket",
                    "s3:ListAllMyBuckets",
                    "s3:GetBucketAcl",
                    "ec2:DescribeVpcEndpoints",
                    "ec2:DescribeRouteTables",
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeVpcAttribute",
                    "iam:ListRolePolicies",
                    "iam:GetRole",
                    "iam:GetRolePolicy",
                    "cloudwatch:PutMetricData",
                ],
                "Resource": [_ALL],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:CreateBucket"],
                "Resource": ["arn:aws:s3:::aws-glue-*"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": ["arn:aws:s3:::aws-glue-*/*", "arn:aws:s3:::*/*aws-glue-*/*"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": ["arn:aws:s3:::crawler-public*", "arn:aws:s3:::aws-glue-*"],
            },
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": ["arn:aws:logs:*:*:*:/aws-glue/*"],
            },
            {
                "Effect": "Allow",
                "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
                "Condition": {
                    "ForAllValues:StringEquals": {"aws:TagKeys": ["aws-glue-service-resource"]}
                },
                "Resource": [
                    "arn:aws:ec2:*:*:network-interface/*",
                    "arn:aws:ec2:*:*:security-group/*",
                    "arn:aws:ec2:*:*:instance/*",
                ],
            },
        ],
    },
}

_MANAGED_ARN = re.compile(r"arn:(aws[a-z-]*):iam::aws:policy/(.+)")


def managed_policy_names() -> list[str]:
    """The AWS managed policies embedded here, by path and name."""
    return sorted(_MANAGED)


def managed_policy_document(arn: str) -> dict[str, Any]:
    """The document of an AWS managed policy named by ARN (any partition)."""
    match = _MANAGED_ARN.fullmatch(arn)
    if match is None:
        raise UnknownManagedPolicy(f"not an AWS managed policy ARN: {arn!r}")
    partition, path = match.groups()
    if path not in _MANAGED:
        raise UnknownManagedPolicy(
            f"AWS managed policy {arn} is not embedded in localcloud/strict/iam.py; add its "
            f"document from the AWS Managed Policy Reference Guide (embedded: "
            f"{', '.join(managed_policy_names())})"
        )
    document = copy.deepcopy(_MANAGED[path])
    if partition != "aws":
        document = _repartition(document, partition)
    return document


def _repartition(value: Any, partition: str) -> Any:
    """Rewrite ``arn:aws:`` ARNs of a managed policy for another partition."""
    if isinstance(value, str):
        return value.replace("arn:aws:", f"arn:{partition}:")
    if isinstance(value, list):
        return [_repartition(v, partition) for v in value]
    if isinstance(value, dict):
        return {k: _repartition(v, partition) for k, v in value.items()}
    return value
