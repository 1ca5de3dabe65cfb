"""The strict local cloud's gate: every AWS call made in this process is checked the way AWS
checks it before moto sees it.

botocore's ``BaseClient._make_api_call`` is the one place every client call passes through
(handlers' cached clients, awswrangler's, Powertools', boto3's transfer manager), with the
operation's name and its parameters still as the API defines them. There the gate

* checks the request against the service model's constraints moto skips (patterns, enums,
  lengths, ranges) and AWS's payload limits;
* when the client's credentials belong to a role of the template (a Lambda function's, the Glue
  job's, SageMaker's execution role), evaluates IAM for the call exactly as the template
  grants it, and raises ``AccessDenied`` as AWS does when nothing allows it;
* refuses any call from a handler whose Lambda timeout has passed.

Calls signed with the local cloud's own credentials (its bookkeeping, a user's ``aws s3 cp``)
are not IAM-checked: on AWS they are the account owner's.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from localcloud.strict import actions, iam, requests

# AWS's error code for an IAM refusal differs by protocol and service; each is what that
# service's API returns for an implicit or explicit deny.
_ACCESS_DENIED_CODE = {
    "s3": ("AccessDenied", 403),
    "sqs": ("AccessDenied", 403),
    "sts": ("AccessDenied", 403),
    "cloudwatch": ("AccessDenied", 403),
    "iam": ("AccessDenied", 403),
    "sns": ("AuthorizationError", 403),
}
_DEFAULT_ACCESS_DENIED = ("AccessDeniedException", 400)


class TimedOut(BaseException):
    """Raised into a handler's thread when its Lambda timeout passes.

    A BaseException so a handler's ``except Exception`` cannot swallow it: on Lambda the
    runtime is stopped, whatever the code catches.
    """


@dataclass(frozen=True)
class Principal:
    """A role session: who a call is made as, and what the role's policies allow."""

    role_arn: str
    session: str
    policies: tuple[dict[str, Any], ...]

    @property
    def arn(self) -> str:
        """The assumed-role ARN AWS names in its AccessDenied messages."""
        _, _, _, _, account, resource = self.role_arn.split(":", 5)
        role_name = resource.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{account}:assumed-role/{role_name}/{self.session}"

    @property
    def access_key(self) -> str:
        # Temporary (role) credentials start with ASIA; the rest only has to be unique.
        digest = hashlib.sha256(f"{self.role_arn}|{self.session}".encode()).hexdigest()
        return "ASIA" + digest[:16].upper()

    def credentials(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": "localcloud-" + self.access_key.lower(),
            "AWS_SESSION_TOKEN": "localcloud-session-" + self.access_key.lower(),
        }


@dataclass
class Checked:
    """One authorization the gate evaluated (kept for tests and the grant-coverage check)."""

    principal: str
    role_arn: str
    service: str
    operation: str
    request: iam.AuthorizationRequest
    allowed: bool


@dataclass
class Gate:
    """The checks for one running local cloud; ``install`` puts it in botocore's path."""

    account: str
    region: str
    # Resource-based policies by ARN (bucket policies by bucket ARN, queue and topic policies).
    resource_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Only calls to local endpoints are checked, never a unit test's in-process moto (whose
    # clients point at the real AWS URLs).
    endpoints: tuple[str, ...] = ("http://127.0.0.1", "http://localhost")
    record: bool = True
    principals: dict[str, Principal] = field(default_factory=dict)
    # Bounded: `mlops local up` may run for days.
    checked: deque[Checked] = field(default_factory=lambda: deque(maxlen=200_000))
    _deadlines: dict[int, tuple[float, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ principals
    def register(self, principal: Principal) -> dict[str, str]:
        """Credentials that make a client act as ``principal``."""
        with self._lock:
            self.principals[principal.access_key] = principal
        return principal.credentials()

    def principal_for(self, access_key: str | None) -> Principal | None:
        return self.principals.get(access_key or "")

    # ------------------------------------------------------------------ deadlines
    @contextmanager
    def deadline(self, seconds: float, function: str) -> Iterator[None]:
        """While this thread runs ``function``, refuse its AWS calls after ``seconds``."""
        ident = threading.get_ident()
        with self._lock:
            self._deadlines[ident] = (time.monotonic() + seconds, function)
        try:
            yield
        finally:
            with self._lock:
                self._deadlines.pop(ident, None)

    def _check_deadline(self) -> None:
        entry = self._deadlines.get(threading.get_ident())
        if entry and time.monotonic() > entry[0]:
            raise TimedOut(f"{entry[1]}: Task timed out (an AWS call after the deadline)")

    # ------------------------------------------------------------------ the check
    def check(self, client: BaseClient, operation: str, params: Mapping[str, Any]) -> None:
        if not client.meta.endpoint_url.startswith(self.endpoints):
            return
        self._check_deadline()
        service = client.meta.service_model.service_name
        operation_model = client.meta.service_model.operation_model(operation)
        requests.check_request(
            operation_model,
            dict(params),
            client_validates=client.meta.config.parameter_validation,
            exceptions=client.exceptions,
        )
        requests.check_payload_limits(
            service, operation, dict(params), exceptions=client.exceptions
        )
        principal = self.principal_for(_access_key(client))
        if principal is None:
            return
        for request in actions.authorizations(
            service, operation, params, region=self.region, account=self.account
        ):
            self.authorize(principal, service, operation, request)

    def authorize(
        self,
        principal: Principal,
        service: str,
        operation: str,
        request: iam.AuthorizationRequest,
    ) -> None:
        """Evaluate one request for ``principal``; raise AWS's AccessDenied when refused."""
        context = {**self._global_context(principal), **dict(request.context)}
        request = iam.AuthorizationRequest(request.action, request.resource, context)
        decision = iam.evaluate(
            request,
            principal.policies,
            resource_policy=self.resource_policy_for(request.resource),
            principal_arn=principal.role_arn,
        )
        if self.record:
            with self._lock:
                self.checked.append(
                    Checked(
                        principal.arn,
                        principal.role_arn,
                        service,
                        operation,
                        request,
                        decision.allowed,
                    )
                )
        if not decision.allowed:
            code, status = _ACCESS_DENIED_CODE.get(service, _DEFAULT_ACCESS_DENIED)
            message = iam.deny_message(principal.arn, request, decision)
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": message},
                    "ResponseMetadata": {"HTTPStatusCode": status},
                },
                operation,
            )

    def _global_context(self, principal: Principal) -> dict[str, str]:
        # Lambda, Glue and SageMaker reach AWS APIs over TLS; the local cloud's plain HTTP is
        # an artefact, so the TLS-only bucket policies see what AWS would.
        return {
            "aws:SecureTransport": "true",
            "aws:PrincipalArn": principal.role_arn,
            "aws:PrincipalAccount": self.account,
            "aws:RequestedRegion": self.region,
            "aws:PrincipalType": "AssumedRole",
        }

    def resource_policy_for(self, resource: str) -> dict[str, Any] | None:
        if resource.startswith("arn:aws:s3:::"):
            bucket = resource.split(":::", 1)[1].split("/", 1)[0]
            return self.resource_policies.get(f"arn:aws:s3:::{bucket}")
        return self.resource_policies.get(resource)

    # ------------------------------------------------------------------ installation
    def install(self) -> None:
        global _ACTIVE
        with _INSTALL_LOCK:
            if _ACTIVE is not None and _ACTIVE is not self:
                raise RuntimeError("another strict local cloud is already running here")
            _ACTIVE = self

    def uninstall(self) -> None:
        global _ACTIVE
        with _INSTALL_LOCK:
            if _ACTIVE is self:
                _ACTIVE = None

    def denied(self) -> list[Checked]:
        return [c for c in self.checked if not c.allowed]


GATE_FILE_VARIABLE = "LOCALCLOUD_GATE"
# Holds sitecustomize.py, which Python imports at start-up from any sys.path entry.
BOOT_DIR = Path(__file__).resolve().parent / "boot"


def write_gate_file(gate: Gate, principal: Principal, directory: Path) -> Path:
    """What a subprocess needs to check its own calls as ``principal`` (see boot/)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"gate-{principal.access_key}.json"
    path.write_text(
        json.dumps(
            {
                "account": gate.account,
                "region": gate.region,
                "resource_policies": gate.resource_policies,
                "principal": {
                    "role_arn": principal.role_arn,
                    "session": principal.session,
                    "policies": list(principal.policies),
                },
            }
        )
    )
    return path


def install_from_environment() -> Gate | None:
    """In a subprocess started by an executor (Glue script, training or serving code): check
    every AWS call as the role the managed service would use."""
    path = os.environ.get(GATE_FILE_VARIABLE)
    if not path:
        return None
    spec = json.loads(Path(path).read_text())
    gate = Gate(spec["account"], spec["region"], spec["resource_policies"], record=False)
    p = spec["principal"]
    gate.register(Principal(p["role_arn"], p["session"], tuple(p["policies"])))
    gate.install()
    return gate


def role_principal(
    role_arn: str,
    session: str,
    inline_policies: Sequence[Mapping[str, Any]],
    managed_policy_arns: Sequence[str] = (),
) -> Principal:
    """A principal from a role as the translated template declares it."""
    documents = [dict(p.get("PolicyDocument", p)) for p in inline_policies]
    documents += [iam.managed_policy_document(arn) for arn in managed_policy_arns]
    return Principal(role_arn, session, tuple(documents))


def resource_policies(resources: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Resource-based policies of provisioned resources (anything with ``type``,
    ``properties`` and ``attributes``), keyed by the ARN they protect."""
    found: dict[str, dict[str, Any]] = {}
    for r in resources:
        document = r.properties.get("PolicyDocument")
        if r.type == "AWS::S3::BucketPolicy":
            found[f"arn:aws:s3:::{r.properties['Bucket']}"] = document
        elif r.type == "AWS::SQS::QueuePolicy":
            for url in r.properties.get("Queues", []):
                # https://sqs.<region>.amazonaws.com/<account>/<name>
                _, _, host, account, name = url.split("/")[:5]
                region = host.split(".")[1]
                found[f"arn:aws:sqs:{region}:{account}:{name}"] = document
        elif r.type == "AWS::SNS::TopicPolicy":
            for arn in r.properties.get("Topics", []):
                found[arn] = document
    return found


def _access_key(client: BaseClient) -> str | None:
    credentials = getattr(client._request_signer, "_credentials", None)
    if credentials is None:
        return None
    return credentials.get_frozen_credentials().access_key


_ACTIVE: Gate | None = None
_INSTALL_LOCK = threading.Lock()
_ORIGINAL: Callable[..., Any] | None = None


def _gated_make_api_call(self: BaseClient, operation_name: str, api_params: Any) -> Any:
    gate = _ACTIVE
    if gate is not None:
        gate.check(self, operation_name, api_params)
    assert _ORIGINAL is not None
    return _ORIGINAL(self, operation_name, api_params)


def _patch_botocore() -> None:
    """Put the gate in botocore's call path once per process; it is inert without a Gate."""
    global _ORIGINAL
    with _INSTALL_LOCK:
        if _ORIGINAL is None:
            _ORIGINAL = BaseClient._make_api_call
            BaseClient._make_api_call = _gated_make_api_call  # type: ignore[method-assign]


_patch_botocore()
