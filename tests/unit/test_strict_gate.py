"""The strict local cloud's gate: who a call is made as, which resource policies apply, how a
refusal looks, the Lambda deadline, the gate file a subprocess installs, and the check botocore
calls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from localcloud.strict import enforce, iam
from localcloud.strict.enforce import (
    GATE_FILE_VARIABLE,
    Gate,
    Principal,
    TimedOut,
    install_from_environment,
    resource_policies,
    write_gate_file,
)
from localcloud.strict.iam import AuthorizationRequest

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/stack-ValidateFunctionRole-ABC"
BUCKET = "raw-bucket"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
OBJECT_ARN = f"{BUCKET_ARN}/dataset=cars/part-0.jsonl.gz"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: str, resource: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def principal(*statements: dict[str, Any], session: str = "validate") -> Principal:
    return Principal(ROLE_ARN, session, (policy(*statements),))


def tls_only_bucket_policy() -> dict[str, Any]:
    return policy(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


@pytest.fixture(autouse=True)
def no_gate_left_installed() -> Iterator[None]:
    """Whatever a test installs, the process-wide gate is cleared after it."""
    yield
    active = enforce._ACTIVE
    if active is not None:
        active.uninstall()


@pytest.fixture
def gate() -> Gate:
    return Gate(ACCOUNT, REGION)


# --------------------------------------------------------------------------------- Principal


def test_a_principal_is_named_by_its_assumed_role_arn_with_the_session() -> None:
    # given a role session
    session = principal(session="validate-7")

    # when its ARN is asked for
    arn = session.arn

    # then it is the STS assumed-role ARN naming the role and the session
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/stack-ValidateFunctionRole-ABC/validate-7"


def test_an_assumed_role_arn_leaves_out_the_role_path() -> None:
    # given a role with a path
    session = Principal(f"arn:aws:iam::{ACCOUNT}:role/service-role/GlueRole", "glue", ())

    # when its ARN is asked for
    arn = session.arn

    # then only the role's name appears, as in STS's ARNs
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/GlueRole/glue"


def test_a_principal_access_key_is_a_temporary_credential() -> None:
    # given a role session
    session = principal()

    # when its access key is asked for
    key = session.access_key

    # then it starts with ASIA, as role-session keys do
    assert key.startswith("ASIA")


def test_a_principal_access_key_is_stable_for_the_same_role_and_session() -> None:
    # given two principals for the same role and session, with different policies
    first = principal(allow("s3:GetObject", "*"))
    second = principal(allow("s3:PutObject", "*"))

    # when their access keys are compared
    # then they are the same
    assert first.access_key == second.access_key


def test_a_principal_access_key_differs_for_another_session() -> None:
    # given two sessions of the same role
    first = principal(session="validate")
    second = principal(session="scrape")

    # when their access keys are compared
    # then they differ
    assert first.access_key != second.access_key


# ------------------------------------------------------------------------- resource_policies


def test_a_bucket_policy_is_keyed_by_its_bucket_arn() -> None:
    # given a bucket policy resource
    document = tls_only_bucket_policy()
    resource = SimpleNamespace(
        type="AWS::S3::BucketPolicy",
        properties={"Bucket": BUCKET, "PolicyDocument": document},
        attributes={},
    )

    # when the resource policies are collected
    found = resource_policies([resource])

    # then the policy protects the bucket's ARN
    assert found == {BUCKET_ARN: document}


def test_a_queue_policy_is_keyed_by_the_arn_of_each_queue_url() -> None:
    # given a queue policy on two queues named by URL
    document = policy({"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"})
    urls = [
        f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/scrape-dlq",
        f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/deploy-dlq",
    ]
    resource = SimpleNamespace(
        type="AWS::SQS::QueuePolicy",
        properties={"Queues": urls, "PolicyDocument": document},
        attributes={},
    )

    # when the resource policies are collected
    found = resource_policies([resource])

    # then each queue's ARN has the policy
    assert found == {
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:scrape-dlq": document,
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:deploy-dlq": document,
    }


def test_a_topic_policy_is_keyed_by_each_topic_arn() -> None:
    # given a topic policy on one topic
    document = policy({"Effect": "Allow", "Principal": "*", "Action": "sns:Publish"})
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:notifications"
    resource = SimpleNamespace(
        type="AWS::SNS::TopicPolicy",
        properties={"Topics": [topic], "PolicyDocument": document},
        attributes={},
    )

    # when the resource policies are collected
    found = resource_policies([resource])

    # then the topic's ARN has the policy
    assert found == {topic: document}


def test_resources_without_a_resource_policy_are_ignored() -> None:
    # given a bucket and a queue, no policies
    resources = [
        SimpleNamespace(type="AWS::S3::Bucket", properties={"BucketName": BUCKET}, attributes={}),
        SimpleNamespace(type="AWS::SQS::Queue", properties={}, attributes={}),
    ]

    # when the resource policies are collected
    found = resource_policies(resources)

    # then there are none
    assert found == {}


# ------------------------------------------------------------------ Gate.resource_policy_for


def test_an_object_arn_is_governed_by_its_bucket_policy(gate: Gate) -> None:
    # given a bucket policy
    gate.resource_policies[BUCKET_ARN] = tls_only_bucket_policy()

    # when the policy for an object of that bucket is looked up
    found = gate.resource_policy_for(OBJECT_ARN)

    # then it is the bucket's
    assert found == tls_only_bucket_policy()


def test_a_bucket_arn_is_governed_by_its_own_policy(gate: Gate) -> None:
    # given a bucket policy
    gate.resource_policies[BUCKET_ARN] = tls_only_bucket_policy()

    # when the policy for the bucket itself is looked up
    found = gate.resource_policy_for(BUCKET_ARN)

    # then it is found
    assert found == tls_only_bucket_policy()


def test_an_object_of_another_bucket_has_no_policy(gate: Gate) -> None:
    # given a policy on one bucket only
    gate.resource_policies[BUCKET_ARN] = tls_only_bucket_policy()

    # when the policy for an object of another bucket is looked up
    found = gate.resource_policy_for("arn:aws:s3:::raw-bucket-2/key")

    # then there is none
    assert found is None


def test_a_non_s3_arn_is_looked_up_as_is(gate: Gate) -> None:
    # given a queue policy
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:scrape-dlq"
    document = policy({"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"})
    gate.resource_policies[queue] = document

    # when the queue's policy is looked up
    found = gate.resource_policy_for(queue)

    # then it is found under the queue's ARN
    assert found == document


# ----------------------------------------------------------------------------- Gate.authorize


def test_an_allowed_request_is_recorded_as_allowed(gate: Gate) -> None:
    # given a role allowed to read the bucket's objects
    reader = principal(allow("s3:GetObject", f"{BUCKET_ARN}/*"))
    request = AuthorizationRequest("s3:GetObject", OBJECT_ARN)

    # when the gate authorizes a read
    gate.authorize(reader, "s3", "GetObject", request)

    # then one allowed check is recorded, for that principal and operation
    [entry] = list(gate.checked)
    assert (entry.principal, entry.role_arn, entry.service, entry.operation, entry.allowed) == (
        reader.arn,
        ROLE_ARN,
        "s3",
        "GetObject",
        True,
    )


def test_a_recorded_request_carries_the_global_condition_keys(gate: Gate) -> None:
    # given a role allowed to read
    reader = principal(allow("s3:GetObject", f"{BUCKET_ARN}/*"))

    # when the gate authorizes a read
    gate.authorize(reader, "s3", "GetObject", AuthorizationRequest("s3:GetObject", OBJECT_ARN))

    # then the evaluated request had the keys AWS sets for a role session over TLS
    context = gate.checked[0].request.context
    assert context["aws:SecureTransport"] == "true"
    assert context["aws:PrincipalArn"] == ROLE_ARN
    assert context["aws:PrincipalAccount"] == ACCOUNT


@pytest.mark.parametrize(
    ("service", "code", "status"),
    [
        ("s3", "AccessDenied", 403),
        ("sqs", "AccessDenied", 403),
        ("sns", "AuthorizationError", 403),
        ("sagemaker", "AccessDeniedException", 400),
        ("dynamodb", "AccessDeniedException", 400),
    ],
)
def test_a_refusal_raises_the_services_own_error_code(
    gate: Gate, service: str, code: str, status: int
) -> None:
    # given a role with no grants
    nobody = principal(allow("logs:PutLogEvents", "*"))
    request = AuthorizationRequest(f"{service}:Anything", "*")

    # when the gate authorizes a call of that service
    with pytest.raises(ClientError) as refused:
        gate.authorize(nobody, service, "Anything", request)

    # then the error is that service's access-denied code and status
    error = refused.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status


def test_a_refusal_names_the_assumed_role_session(gate: Gate) -> None:
    # given a role with no grant on the bucket
    nobody = principal(allow("logs:PutLogEvents", "*"))

    # when the gate authorizes a write
    with pytest.raises(ClientError) as refused:
        gate.authorize(nobody, "s3", "PutObject", AuthorizationRequest("s3:PutObject", OBJECT_ARN))

    # then the message is AWS's, naming the assumed-role session and the action
    message = refused.value.response["Error"]["Message"]
    assert message.startswith("User: arn:aws:sts::")
    assert message.startswith(f"User: {nobody.arn} is not authorized to perform: s3:PutObject")


def test_a_refusal_is_recorded_as_denied(gate: Gate) -> None:
    # given a role with no grant on the bucket
    nobody = principal(allow("logs:PutLogEvents", "*"))

    # when the gate refuses a write
    with pytest.raises(ClientError):
        gate.authorize(nobody, "s3", "PutObject", AuthorizationRequest("s3:PutObject", OBJECT_ARN))

    # then the refusal is among the denied checks
    assert [(c.operation, c.allowed) for c in gate.denied()] == [("PutObject", False)]


def test_a_tls_only_bucket_policy_does_not_refuse_a_role_session(gate: Gate) -> None:
    # given a reader, and a bucket policy denying everything over plain HTTP
    reader = principal(allow("s3:GetObject", f"{BUCKET_ARN}/*"))
    gate.resource_policies[BUCKET_ARN] = tls_only_bucket_policy()

    # when the gate authorizes a read (it sets aws:SecureTransport true, as on AWS)
    gate.authorize(reader, "s3", "GetObject", AuthorizationRequest("s3:GetObject", OBJECT_ARN))

    # then the read is allowed
    assert gate.checked[0].allowed


def test_the_tls_only_bucket_policy_does_deny_plain_http() -> None:
    # given the same reader and bucket policy, evaluated without the gate
    reader = principal(allow("s3:GetObject", f"{BUCKET_ARN}/*"))
    request = AuthorizationRequest("s3:GetObject", OBJECT_ARN, {"aws:SecureTransport": "false"})

    # when the request comes over plain HTTP
    decision = iam.evaluate(
        request, reader.policies, resource_policy=tls_only_bucket_policy(), principal_arn=ROLE_ARN
    )

    # then the policy's explicit deny applies (so the previous test is not vacuous)
    assert decision.reason == "explicit-deny"


def test_a_bucket_policy_grant_allows_a_role_without_an_identity_grant(gate: Gate) -> None:
    # given a role with no S3 grant, named by the bucket policy
    nobody = principal(allow("logs:PutLogEvents", "*"))
    gate.resource_policies[BUCKET_ARN] = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": ROLE_ARN},
            "Action": "s3:GetObject",
            "Resource": f"{BUCKET_ARN}/*",
        }
    )

    # when the gate authorizes a read
    gate.authorize(nobody, "s3", "GetObject", AuthorizationRequest("s3:GetObject", OBJECT_ARN))

    # then the resource policy's allow suffices within the account
    assert gate.checked[0].allowed


def test_a_gate_that_does_not_record_keeps_no_checks() -> None:
    # given a gate built not to record
    quiet = Gate(ACCOUNT, REGION, record=False)
    reader = principal(allow("s3:GetObject", f"{BUCKET_ARN}/*"))

    # when it authorizes a read
    quiet.authorize(reader, "s3", "GetObject", AuthorizationRequest("s3:GetObject", OBJECT_ARN))

    # then nothing is recorded
    assert len(quiet.checked) == 0


# ----------------------------------------------------------------------------- Gate.deadline


def test_a_call_past_the_deadline_times_out(gate: Gate) -> None:
    # given a handler running under a very short deadline
    with gate.deadline(0.001, "ScrapeFunction"):
        time.sleep(0.01)

        # when it makes an AWS call after the deadline
        # then the call is refused with TimedOut naming the function
        with pytest.raises(TimedOut, match="ScrapeFunction"):
            gate._check_deadline()


def test_a_call_before_the_deadline_passes(gate: Gate) -> None:
    # given a handler running with time left
    with gate.deadline(60.0, "ScrapeFunction"):
        # when it makes an AWS call
        # then nothing is raised
        gate._check_deadline()


def test_a_call_after_the_handler_returned_is_not_timed(gate: Gate) -> None:
    # given a handler whose deadline passed while it ran
    with gate.deadline(0.001, "ScrapeFunction"):
        time.sleep(0.01)

    # when the same thread makes an AWS call after the handler's context ended
    # then nothing is raised
    gate._check_deadline()


# ---------------------------------------------------------------- the gate file round trip


def test_a_subprocess_installs_the_gate_from_its_file(
    gate: Gate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a gate file written for a principal, named by LOCALCLOUD_GATE
    glue = principal(allow("s3:GetObject", f"{BUCKET_ARN}/*"), session="glue")
    gate.resource_policies[BUCKET_ARN] = tls_only_bucket_policy()
    path = write_gate_file(gate, glue, tmp_path / "gates")
    monkeypatch.setenv(GATE_FILE_VARIABLE, str(path))

    # when the subprocess installs the gate from its environment
    installed = install_from_environment()

    # then the installed gate is active, knows the principal by its key and the policies
    assert installed is not None
    assert enforce._ACTIVE is installed
    assert installed.principal_for(glue.access_key) == glue
    assert (installed.account, installed.region) == (ACCOUNT, REGION)
    assert installed.resource_policies == {BUCKET_ARN: tls_only_bucket_policy()}
    installed.uninstall()
    assert enforce._ACTIVE is None


def test_without_a_gate_file_nothing_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    # given no LOCALCLOUD_GATE in the environment
    monkeypatch.delenv(GATE_FILE_VARIABLE, raising=False)

    # when a process starts
    installed = install_from_environment()

    # then no gate is installed
    assert installed is None
    assert enforce._ACTIVE is None


def test_a_second_gate_cannot_be_installed_in_the_same_process(gate: Gate) -> None:
    # given a gate installed
    gate.install()

    # when another gate is installed
    # then it is refused
    with pytest.raises(RuntimeError, match="already running"):
        Gate(ACCOUNT, REGION).install()


# ------------------------------------------------------------ Gate.check on a boto3 client


def s3_client(endpoint: str, access_key: str) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key="x",
        aws_session_token="y",
    )


@pytest.fixture
def reader_gate(gate: Gate) -> Iterator[tuple[Gate, Principal]]:
    """An installed gate with a principal allowed only s3:GetObject on bucket ``b``."""
    reader = principal(allow("s3:GetObject", "arn:aws:s3:::b/*"))
    gate.register(reader)
    gate.install()
    yield gate, reader
    gate.uninstall()


def test_check_refuses_a_local_call_the_role_may_not_make(
    reader_gate: tuple[Gate, Principal],
) -> None:
    # given a local S3 client signed with the reader's key
    gate, reader = reader_gate
    client = s3_client("http://127.0.0.1:9", reader.access_key)

    # when it puts an object
    with pytest.raises(ClientError) as refused:
        gate.check(client, "PutObject", {"Bucket": "b", "Key": "k", "Body": b"x"})

    # then S3's AccessDenied is raised
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_check_passes_a_local_call_the_role_may_make(
    reader_gate: tuple[Gate, Principal],
) -> None:
    # given a local S3 client signed with the reader's key
    gate, reader = reader_gate
    client = s3_client("http://127.0.0.1:9", reader.access_key)

    # when it gets an object
    gate.check(client, "GetObject", {"Bucket": "b", "Key": "k"})

    # then the call was checked and allowed
    assert [(c.operation, c.allowed) for c in gate.checked] == [("GetObject", True)]


def test_check_ignores_a_client_of_the_real_aws_endpoint(
    reader_gate: tuple[Gate, Principal],
) -> None:
    # given a client of the real S3 endpoint, signed with the reader's key
    gate, reader = reader_gate
    client = s3_client("https://s3.amazonaws.com", reader.access_key)

    # when it puts an object
    gate.check(client, "PutObject", {"Bucket": "b", "Key": "k", "Body": b"x"})

    # then nothing is checked at all
    assert len(gate.checked) == 0


def test_check_does_not_iam_check_the_account_owners_key(
    reader_gate: tuple[Gate, Principal],
) -> None:
    # given a local client signed with a key no role session has
    gate, _ = reader_gate
    client = s3_client("http://127.0.0.1:9", "AKIALOCALCLOUDOWNER0")

    # when it puts an object
    gate.check(client, "PutObject", {"Bucket": "b", "Key": "k", "Body": b"x"})

    # then it is not IAM-checked
    assert len(gate.checked) == 0
