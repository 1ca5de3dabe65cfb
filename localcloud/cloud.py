"""The local cloud: moto in-process, the template's resources provisioned in it, its rules
routed to the real handlers, executors standing in for managed compute."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.executors import EXECUTORS, Executor
from localcloud.patterns import matches
from localcloud.provision import Provisioned, Provisioner, http_routes, plan
from localcloud.runtime import (
    RESERVED,
    FunctionSpec,
    LambdaContext,
    OutputRouter,
    environment,
    lambda_variables,
    load_handler,
)
from localcloud.s3_events import as_aws_s3_event
from localcloud.strict.delivery import (
    Keys,
    cloudwatch_can_notify,
    eventbridge_can_dead_letter,
    role_may_use_key,
)
from localcloud.strict.enforce import (
    BOOT_DIR,
    GATE_FILE_VARIABLE,
    Gate,
    Principal,
    TimedOut,
    resource_policies,
    role_principal,
    write_gate_file,
)
from localcloud.strict.iam import AuthorizationRequest
from localcloud.strict.requests import LAMBDA_RESPONSE_PAYLOAD_LIMIT, check_lambda_payload
from localcloud.template import Template

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# Lambda's default for asynchronous invocations when no EventInvokeConfig says otherwise.
DEFAULT_ASYNC_RETRIES = 2
_ENVELOPE = (
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
)
_RUN_ID_IN_TEXT = re.compile(r"run_id=([A-Za-z0-9_\-]+)")


@dataclass
class Rule:
    """An AWS::Events::Rule targeting a function, mirrored in moto with an SQS target."""

    logical_id: str
    name: str
    arn: str
    function: str
    pattern: dict[str, Any] | None
    schedule: str | None
    enabled: bool
    # EventBridge's delivery retries; handler errors follow the function's async config.
    retry_attempts: int
    dead_letter_arn: str | None
    queue_url: str = ""


def find_run_id(value: Any) -> str | None:
    """The first run id found in an event: a ``run_id`` field, a ``run_id`` tag or a
    ``run_id=`` segment of a key or argument."""
    if isinstance(value, dict):
        if isinstance(value.get("run_id"), str):
            return value["run_id"]
        key = value.get("Key", value.get("key"))
        if key == "run_id" and isinstance(value.get("Value", value.get("value")), str):
            return value.get("Value", value.get("value"))
        if isinstance(value.get("--run_id"), str):
            return value["--run_id"]
        for item in value.values():
            found = find_run_id(item)
            if found:
                return found
    elif isinstance(value, list):
        for item in value:
            found = find_run_id(item)
            if found:
                return found
    elif isinstance(value, str):
        match = _RUN_ID_IN_TEXT.search(unquote_plus(value))
        if match:
            return match.group(1)
    return None


def scheduled_event(
    rule_arn: str, account_id: str, region: str, detail: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The envelope EventBridge delivers to a schedule rule's targets."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": detail or {},
    }


_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """Seconds between firings of a ``rate(...)`` expression; None for cron (not run locally)."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


class LocalCloud:
    """One running local cloud. Use as a context manager, or call start() and stop()."""

    # It knows about running handlers and executor work, not only queued events.
    sees_inflight_work = True

    def __init__(
        self,
        project_root: Path = PROJECT_ROOT,
        parameters: Mapping[str, str] | None = None,
        *,
        log_dir: Path | None = None,
        executors: list[str] | None = None,
        http_api: bool = True,
        publish: bool = True,
        routing: bool = True,
        console: Callable[[str], None] | None = None,
        strict: bool | None = None,
        template_text: str | None = None,
    ) -> None:
        self.project_root = Path(project_root)
        self.region = "us-east-1"
        self.account_id = "123456789012"
        self.template = Template.load(
            self.project_root,
            parameters,
            region=self.region,
            account_id=self.account_id,
            text=template_text,
        )
        self.parameters: dict[str, str] = dict(self.template.parameters)
        self.workdir = Path(tempfile.mkdtemp(prefix="localcloud-"))
        self.log_dir = log_dir or self.workdir / "logs"
        self.endpoint_url = ""
        self.resources: dict[str, str] = {}
        self.provisioned: dict[str, Provisioned] = {}
        self.functions: dict[str, FunctionSpec] = {}
        self.rules: dict[str, Rule] = {}
        self.http_routes: dict[str, str] = {}
        self.http_api_url: str | None = None
        self.warnings: list[str] = []
        self.executors: list[Executor] = []
        self._executor_paths = EXECUTORS if executors is None else executors
        self._want_http_api = http_api
        self._want_publish = publish
        # Without routing, events stay queued: `mlops invoke` runs one function and nothing else.
        self._want_routing = routing
        self._console = console
        self._server: Any = None
        self._http_api: Any = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._invoke_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._running = 0
        self._inflight: set[threading.Thread] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._service_endpoints: dict[str, str] = {}
        self._base_env = dict(os.environ)
        self._output = OutputRouter(self.log_dir)
        self._pandas_strings: str | None = None
        self.invocations: list[dict[str, Any]] = []
        self.dead_letters: list[dict[str, Any]] = []
        # Service deliveries AWS would drop (an alarm's notification the topic key refuses).
        self.undelivered: list[dict[str, Any]] = []
        # IAM, request constraints and timeouts as AWS enforces them (localcloud.strict).
        if strict is None:
            # Strict by default; LOCALCLOUD_STRICT=0 exists for the benchmark of its cost.
            strict = os.environ.get("LOCALCLOUD_STRICT", "1") != "0"
        self.gate: Gate | None = Gate(self.account_id, self.region) if strict else None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalCloud:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalCloud:
        from moto.server import ThreadedMotoServer

        try:
            # Lambda puts the function's code root on sys.path; here that is the project root.
            for path in (self.project_root, self.project_root / "layers" / "shared"):
                if str(path) not in sys.path:
                    sys.path.append(str(path))
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            self._pandas_strings = _python_backed_strings()
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._server.start()
            host, port = self._server.get_host_and_port()
            self.endpoint_url = f"http://{host}:{port}"
            self._reset_moto()
            self._output.install()
            if self.gate is not None:
                self.gate.install()
            self._provision()
            if self._want_publish:
                from localcloud.publish import publish_code

                publish_code(
                    self.client("s3"), self.resources["ArtifactsBucket"], self.project_root
                )
            self._start_routing()
            self._start_executors()
            if self._want_http_api:
                self._start_http_api()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop dispatchers, executors, the HTTP API and moto; join every thread; idempotent."""
        self._stopping.set()
        for thread in list(self._threads):
            thread.join(timeout=30)
        self._threads.clear()
        if self._http_api is not None:
            _quietly(self._http_api.stop)
            self._http_api = None
        for executor in reversed(self.executors):
            _quietly(executor.stop)
        self.executors.clear()
        for thread in list(self._inflight):
            thread.join(timeout=120)
        if self._server is not None:
            _quietly(self._reset_moto)
            _quietly(self._server.stop)
            inner = getattr(self._server, "_server", None)
            if inner is not None:
                _quietly(inner.server_close)
            self._server = None
        self._output.uninstall()
        if self.gate is not None:
            self.gate.uninstall()
        _restore_strings(self._pandas_strings)
        self._pandas_strings = None
        with self._clients_lock:
            self._clients.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _reset_moto(self) -> None:
        """moto's backends are process-wide: start and leave with an empty account."""
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()

    # ------------------------------------------------------------------ services for executors
    def client(self, service: str) -> Any:
        """A boto3 client bound to the moto endpoint (independent of os.environ)."""
        with self._clients_lock:
            if service not in self._clients:
                session = boto3.session.Session(
                    aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
                    region_name=self.region,
                )
                self._clients[service] = session.client(
                    service,
                    endpoint_url=self.endpoint_url,
                    config=Config(retries={"mode": "standard", "max_attempts": 3}),
                )
            return self._clients[service]

    def role_client(self, role_arn: str, service: str, session: str) -> Any:
        """A client acting as ``role_arn`` (as a managed service assumes it), so the strict
        cloud checks its calls against that role's policies."""
        credentials = DUMMY_CREDENTIALS
        if self.gate is not None:
            credentials = self.gate.register(self._principal(role_arn, session))
        boto_session = boto3.session.Session(
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=credentials["AWS_SESSION_TOKEN"],
            region_name=self.region,
        )
        return boto_session.client(
            service,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
        )

    def _principal(self, role_arn: str, session: str) -> Principal:
        for p in self.provisioned.values():
            if p.type == "AWS::IAM::Role" and p.attributes.get("Arn") == role_arn:
                return role_principal(
                    role_arn,
                    session,
                    p.properties.get("Policies", []),
                    p.properties.get("ManagedPolicyArns", []),
                )
        # A role the template does not declare has no policies: everything is denied.
        return Principal(role_arn, session, ())

    def emit(
        self,
        source: str,
        detail_type: str,
        detail: dict[str, Any],
        resources: list[str] | None = None,
    ) -> None:
        """events:PutEvents on the default bus, so the template's rules route it as AWS would."""
        result = self.client("events").put_events(
            Entries=[
                {
                    "Source": source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, default=str),
                    "Resources": resources or [],
                    "EventBusName": "default",
                }
            ]
        )
        if result.get("FailedEntryCount"):
            raise RuntimeError(f"PutEvents rejected {detail_type}: {result['Entries']}")

    def submit(self, fn: Callable[..., Any], *args: Any, name: str) -> threading.Thread:
        """Run ``fn`` in a tracked thread: in-flight work keeps a pipeline run from being over."""

        def run() -> None:
            try:
                fn(*args)
            except Exception as exc:
                log.exception("background work %s failed", name)
                self.say(f"! background work {name} failed: {exc!r}")
            finally:
                with self._state_lock:
                    self._inflight.discard(thread)

        thread = threading.Thread(target=run, name=f"localcloud-work-{name}", daemon=True)
        with self._state_lock:
            self._inflight.add(thread)
        thread.start()
        return thread

    def aws_environment(self) -> dict[str, str]:
        """Credentials, region and endpoints a process needs to reach this cloud."""
        return {
            **DUMMY_CREDENTIALS,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
            **self._service_endpoints,
        }

    def subprocess_env(self, role_arn: str | None = None, session: str = "") -> dict[str, str]:
        """The environment of a process that reaches this cloud; with ``role_arn``, one whose
        AWS calls are made as that role and checked like the handlers' (strict cloud)."""
        env = {k: v for k, v in self._base_env.items() if k != "AWS_PROFILE"}
        env |= self.aws_environment()
        if role_arn is None or self.gate is None:
            return env
        principal = self._principal(role_arn, session or "subprocess")
        env |= self.gate.register(principal)
        env[GATE_FILE_VARIABLE] = str(write_gate_file(self.gate, principal, self.workdir))
        path = [str(BOOT_DIR), str(self.project_root), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        return env

    def set_service_endpoint(self, env_var: str, url: str) -> None:
        self._service_endpoints[env_var] = url

    @property
    def service_endpoints(self) -> dict[str, str]:
        """Extra endpoints executors serve, e.g. AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME."""
        return dict(self._service_endpoints)

    # ------------------------------------------------------------------ functions
    def function(self, name: str) -> FunctionSpec:
        """A function by logical id (ScrapeFunction), folder (scrape) or physical name."""
        for spec in self.functions.values():
            if name in (spec.logical_id, spec.folder, spec.name):
                return spec
        known = ", ".join(sorted(self.functions))
        raise KeyError(f"no function {name!r} in template.yaml (functions: {known})")

    def function_environment(self, spec: FunctionSpec) -> dict[str, str]:
        """Exactly the template's variables for the function, plus the AWS/Lambda plumbing."""
        plumbing = self.aws_environment() | lambda_variables(spec, self.region)
        if self.gate is not None:
            plumbing |= self.gate.register(self._principal(spec.role_arn, spec.name))
        # No X-Ray daemon locally: the tracer would otherwise try to send segments.
        plumbing["POWERTOOLS_TRACE_DISABLED"] = "true"
        return plumbing | spec.environment

    def _foreign_variables(self) -> set[str]:
        """Variables another function (or the developer's shell) may have set that this
        invocation must not see."""
        names = {n for spec in self.functions.values() for n in spec.environment}
        names |= RESERVED | {"AWS_PROFILE", "AWS_DEFAULT_PROFILE"}
        try:
            from mlops.settings import Settings

            names |= {field.upper() for field in Settings.model_fields}
        except ImportError:  # pragma: no cover - the shared layer is always importable here
            pass
        return names

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Invoke a function once, synchronously, like ``lambda:Invoke`` (RequestResponse)."""
        spec = self.function(function)
        if self.gate is not None:
            check_lambda_payload(json.dumps(event).encode(), asynchronous=False)
        with self._invoke_lock:
            with self._state_lock:
                self._running += 1
            started = time.monotonic()
            record: dict[str, Any] = {"function": spec.logical_id, "event_id": event.get("id")}
            try:
                env = self.function_environment(spec)
                with (
                    environment(env, self._foreign_variables()),
                    self._output.capture(spec.logical_id) as logfile,
                ):
                    context = LambdaContext(spec, self.region)
                    record["request_id"] = context.aws_request_id
                    logfile.write(f"START RequestId: {context.aws_request_id} Version: $LATEST\n")
                    try:
                        handler = load_handler(spec)
                        # Clients made from boto3's default session (awswrangler's) must act
                        # as this function's role, not the last one's.
                        boto3.DEFAULT_SESSION = None
                        with (
                            _as_own_service(env.get("POWERTOOLS_SERVICE_NAME")),
                            self._lambda_timeout(spec),
                        ):
                            result = handler(event, context)
                        self._check_response_size(spec, result)
                        record["ok"] = True
                        return result
                    except BaseException as exc:
                        record["ok"] = False
                        record["error"] = f"{type(exc).__name__}: {exc}"
                        logfile.write(f"[ERROR] {type(exc).__name__}: {exc}\n")
                        raise
                    finally:
                        elapsed = time.monotonic() - started
                        logfile.write(
                            f"END RequestId: {context.aws_request_id}\n"
                            f"REPORT RequestId: {context.aws_request_id}\t"
                            f"Duration: {elapsed * 1000:.2f} ms\n"
                        )
            finally:
                record["seconds"] = round(time.monotonic() - started, 3)
                self.invocations.append(record)
                with self._state_lock:
                    self._running -= 1

    @contextlib.contextmanager
    def _lambda_timeout(self, spec: FunctionSpec) -> Iterator[None]:
        """Stop the handler at its Timeout as Lambda does; the attempt then counts as failed.

        Lambda stops the whole runtime. Here the handler shares the process, so TimedOut is
        raised into its thread (at its next Python instruction: a blocking C call finishes
        first) and the gate refuses any AWS call it makes after the deadline.
        """
        if self.gate is None:
            yield
            return
        ident = threading.get_ident()
        guard = threading.Lock()
        state = {"done": False, "fired": False}

        def expire() -> None:
            with guard:
                if not state["done"]:
                    state["fired"] = True
                    _raise_in_thread(ident, TimedOut)

        timer = threading.Timer(spec.timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            with self.gate.deadline(spec.timeout, spec.logical_id):
                yield
        except TimedOut as exc:
            raise LambdaTimeout(f"Task timed out after {spec.timeout:.2f} seconds") from exc
        finally:
            timer.cancel()
            with guard:
                state["done"] = True
                if state["fired"]:
                    _raise_in_thread(ident, None)

    def _refuses_invocation(
        self, spec: FunctionSpec, event: dict[str, Any], rule: Rule | None
    ) -> Exception | None:
        """Why lambda:Invoke (asynchronous, by EventBridge) would fail outright, if it would:
        the function's resource policy does not let the rule invoke it, or the event is over
        the asynchronous payload limit. (Throttling does not fail it: Lambda queues the event.)
        """
        if rule is not None and not self._rule_may_invoke(rule, spec):
            message = (
                f"events.amazonaws.com is not authorized to perform: lambda:InvokeFunction on "
                f"resource: {spec.arn} (no AWS::Lambda::Permission for rule {rule.arn})"
            )
            return ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": message}}, "Invoke"
            )
        try:
            check_lambda_payload(json.dumps(event).encode(), asynchronous=True)
        except ClientError as exc:
            return exc
        return None

    def _rule_may_invoke(self, rule: Rule, spec: FunctionSpec) -> bool:
        for p in self.provisioned.values():
            props = p.properties
            if (
                p.type != "AWS::Lambda::Permission"
                or props.get("Action") != "lambda:InvokeFunction"
            ):
                continue
            named = str(props.get("FunctionName", ""))
            if (
                named not in (spec.name, spec.arn)
                or props.get("Principal") != "events.amazonaws.com"
            ):
                continue
            if props.get("SourceArn") in (None, rule.arn):
                return True
        return False

    def _check_response_size(self, spec: FunctionSpec, result: Any) -> None:
        if self.gate is None:
            return
        size = len(json.dumps(result, default=str).encode())
        if size > LAMBDA_RESPONSE_PAYLOAD_LIMIT:
            # Lambda's wording for an over-large synchronous response.
            raise LambdaPayloadTooLarge(
                f"{spec.logical_id}: Response payload size ({size} bytes) exceeded maximum "
                f"allowed payload size ({LAMBDA_RESPONSE_PAYLOAD_LIMIT} bytes)."
            )

    def invoke_async(self, function: str, event: dict[str, Any], rule: Rule | None = None) -> bool:
        """Invoke as EventBridge does (asynchronously): retry per the function's async config,
        then dead-letter. Returns whether an attempt succeeded."""
        spec = self.function(function)
        attempts = 1 + spec.max_retries
        error: BaseException | None = None
        if self.gate is not None:
            refusal = self._refuses_invocation(spec, event, rule)
            if refusal is not None:
                # The invocation itself fails: nothing runs; EventBridge retries per the
                # rule's RetryPolicy (locally not waited out), then uses the rule's DLQ.
                self._dead_letter(spec, event, refusal, rule, 0)
                return False
        for attempt in range(attempts):
            # Lambda waits minutes between async retries; locally a short backoff is enough.
            if attempt and self._stopping.wait(min(0.05 * 2**attempt, 1.0)):
                break
            try:
                self.invoke(spec.logical_id, event)
                return True
            except Exception as exc:
                error = exc
        self._dead_letter(spec, event, error, rule, attempts)
        return False

    def retry_attempts(self, function: str) -> int:
        """How many times a failing event is attempted before it is dead-lettered."""
        return 1 + self.function(function).max_retries

    def _dead_letter(
        self,
        spec: FunctionSpec,
        event: dict[str, Any],
        error: BaseException | None,
        rule: Rule | None,
        attempts: int,
    ) -> None:
        """Where a failed event goes: after the handler failed every attempt, Lambda puts it in
        the function's DLQ (as the function's role); when Lambda refused the invocation itself,
        EventBridge puts it in the rule's DLQ (as the events service)."""
        reason = f"{type(error).__name__}: {error}" if error else "not delivered (cloud stopping)"
        by_rule = attempts == 0 or not spec.dead_letter_arn
        dlq_arn = (rule.dead_letter_arn if rule else None) if by_rule else spec.dead_letter_arn
        run_id = find_run_id(event.get("detail", event)) or find_run_id(event) or "unknown"
        entry = {
            "function": spec.logical_id,
            "run_id": run_id,
            "reason": reason,
            "attempts": attempts,
            "dlq": dlq_arn,
            "event_id": event.get("id"),
        }
        if dlq_arn:
            refused = self._undeliverable(spec, dlq_arn, rule if by_rule else None)
            if refused:
                entry["lost"] = refused
                reason += f"; the event is LOST: {refused}"
                dlq_arn = None
        self.dead_letters.append(entry)
        if dlq_arn:
            queue_url = self.client("sqs").get_queue_url(QueueName=dlq_arn.rsplit(":", 1)[1])
            self.client("sqs").send_message(
                QueueUrl=queue_url["QueueUrl"],
                MessageBody=json.dumps(event),
                MessageAttributes={
                    "RequestID": {"DataType": "String", "StringValue": str(uuid.uuid4())},
                    "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                    "ErrorMessage": {"DataType": "String", "StringValue": reason[:1000]},
                },
            )
        self.say(
            f"! {spec.logical_id} failed {attempts} time(s) on {event.get('detail-type', 'event')}"
            f" (run {run_id}); event sent to {dlq_arn.rsplit(':', 1)[1] if dlq_arn else 'no DLQ'}:"
            f" {reason}"
        )
        try:
            from mlops import ledger

            with environment(self.function_environment(spec), self._foreign_variables()):
                ledger.finish(
                    run_id,
                    f"dlq:{spec.logical_id}",
                    ledger.Status.FAILED,
                    reason=reason,
                    attempts=attempts,
                    event_id=str(event.get("id", "")),
                    detail_type=str(event.get("detail-type", "")),
                    dead_letter_queue=dlq_arn or "",
                )
        except Exception as exc:  # the DLQ copy above is the record of last resort
            self.say(f"! could not record dlq:{spec.logical_id} in the ledger: {exc!r}")

    def _undeliverable(self, spec: FunctionSpec, dlq_arn: str, rule: Rule | None) -> str | None:
        """Why AWS could not put a failed event into a DLQ, or None if it can: a rule's DLQ is
        written by EventBridge, a function's by Lambda as the function's role."""
        if self.gate is None:
            return None
        queue = next(
            (
                p
                for p in self.provisioned.values()
                if p.type == "AWS::SQS::Queue" and p.attributes.get("Arn") == dlq_arn
            ),
            None,
        )
        attributes = {k: str(v) for k, v in (queue.properties if queue else {}).items()}
        keys = Keys.from_resources(self.provisioned.values())
        if rule is not None:
            verdict = eventbridge_can_dead_letter(
                dlq_arn, attributes, self.gate.resource_policies.get(dlq_arn), rule.arn, keys
            )
            return None if verdict.allowed else verdict.reason
        principal = self._principal(spec.role_arn, spec.name)
        wanted = [("sqs", "SendMessage", AuthorizationRequest("sqs:SendMessage", dlq_arn))]
        key = attributes.get("KmsMasterKeyId")
        if key:
            if key.startswith("alias/aws/"):
                return None  # an AWS managed key serves any principal of the account via SQS
            if not role_may_use_key(keys, key, self.account_id):
                return f"the key policy of {key} does not let the account's IAM policies grant it"
            key_arn = (
                key
                if key.startswith("arn:")
                else f"arn:aws:kms:{self.region}:{self.account_id}:key/{key}"
            )
            wanted.append(
                ("kms", "GenerateDataKey", AuthorizationRequest("kms:GenerateDataKey", key_arn))
            )
        for service, operation, request in wanted:
            try:
                self.gate.authorize(principal, service, operation, request)
            except ClientError as exc:
                return f"Lambda could not write to the DLQ as {spec.logical_id}'s role: {exc}"
        return None

    def alarm(self, name: str, reason: str = "threshold crossed") -> list[str]:
        """Put alarm ``name`` (logical id or physical name) into ALARM and deliver its SNS
        actions as CloudWatch would; returns the topics notified. An action the topic's key
        does not let CloudWatch use is dropped, as on AWS, and recorded in ``undelivered``."""
        alarm = next(
            p
            for p in self.provisioned.values()
            if p.type == "AWS::CloudWatch::Alarm" and name in (p.logical_id, p.name)
        )
        self.client("cloudwatch").set_alarm_state(
            AlarmName=alarm.name, StateValue="ALARM", StateReason=reason
        )
        keys = Keys.from_resources(self.provisioned.values())
        notified = []
        for action in alarm.properties.get("AlarmActions", []):
            if ":sns:" not in str(action):
                continue
            topic = next(
                (p for p in self.provisioned.values() if p.attributes.get("Arn") == action), None
            )
            attributes = {k: str(v) for k, v in (topic.properties if topic else {}).items()}
            verdict = cloudwatch_can_notify(action, attributes, alarm.attributes["Arn"], keys)
            if self.gate is not None and not verdict.allowed:
                self.undelivered.append(
                    {"alarm": alarm.logical_id, "to": action, "reason": verdict.reason}
                )
                self.say(f"! alarm {alarm.logical_id} could not notify {action}: {verdict.reason}")
                continue
            self.client("sns").publish(
                TopicArn=action,
                Subject=f'ALARM: "{alarm.name}" in {self.region}',
                Message=json.dumps(
                    {"AlarmName": alarm.name, "NewStateValue": "ALARM", "NewStateReason": reason}
                ),
            )
            notified.append(action)
        return notified

    # ------------------------------------------------------------------ routing
    def fire_schedule(self, function: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
        """Deliver a "Scheduled Event" from the function's schedule rule, as EventBridge would."""
        spec = self.function(function)
        rules = [r for r in self.rules.values() if r.function == spec.logical_id and r.schedule]
        if not rules:
            raise KeyError(f"{spec.logical_id} has no schedule in template.yaml")
        rule = rules[0]
        event = scheduled_event(rule.arn, self.account_id, self.region, detail)
        self.client("sqs").send_message(QueueUrl=rule.queue_url, MessageBody=json.dumps(event))
        return event

    def start_schedules(self, detail: dict[str, Any] | None = None) -> list[str]:
        """Fire enabled schedules on their rate until stop (used by `mlops local up`)."""
        started = []
        for rule in self.rules.values():
            seconds = rate_seconds(rule.schedule) if rule.schedule else None
            if not rule.enabled or seconds is None:
                continue

            def tick(rule: Rule = rule, seconds: float = seconds) -> None:
                while not self._stopping.wait(seconds):
                    self.fire_schedule(rule.function, detail)

            thread = threading.Thread(target=tick, name=f"localcloud-schedule-{rule.logical_id}")
            self._threads.append(thread)
            thread.start()
            started.append(f"{rule.logical_id} every {seconds:.0f}s")
        return started

    def rule_queues(self) -> dict[str, dict[str, Any]]:
        """What a separate process needs to drive this cloud's rules (written to state.json)."""
        return {
            r.logical_id: {
                "function": r.function,
                "queue_url": r.queue_url,
                "schedule": r.schedule,
                "arn": r.arn,
            }
            for r in self.rules.values()
        }

    def route(self, event: dict[str, Any]) -> list[str]:
        """Logical ids of the functions whose rules match ``event`` (schedules excluded)."""
        return sorted(
            {r.function for r in self.rules.values() if r.pattern and matches(r.pattern, event)}
        )

    def is_quiescent(self) -> bool:
        """No queued or in-delivery events, no handler running, no background work."""
        with self._state_lock:
            if self._running or self._inflight:
                return False
        return queues_idle(self.client("sqs"), [rule.queue_url for rule in self.rules.values()])

    def wait_quiescent(self, timeout: float = 60.0, cycles: int = 3, poll: float = 0.3) -> bool:
        deadline = time.monotonic() + timeout
        calm = 0
        while time.monotonic() < deadline:
            calm = calm + 1 if self.is_quiescent() else 0
            if calm >= cycles:
                return True
            time.sleep(poll)
        return False

    def say(self, text: str) -> None:
        if self._console is not None:
            self._console(text)
        else:
            print(text, file=self._output.console, flush=True)

    # ------------------------------------------------------------------ setup
    def _provision(self) -> None:
        self.provisioned = plan(self.template)
        provisioner = Provisioner(self.template, self.client)
        provisioner.provision(self.provisioned)
        self.warnings += provisioner.warnings
        self.resources = {k: p.name for k, p in self.provisioned.items()}
        self._build_functions()
        if self.gate is not None:
            self.gate.resource_policies = resource_policies(self.provisioned.values())
        for api_id in self.template.of_type("AWS::ApiGatewayV2::Api"):
            self.http_routes |= http_routes(self.template, api_id)

    def _build_functions(self) -> None:
        invoke_configs = {
            p.properties["FunctionName"]: p.properties
            for p in self.provisioned.values()
            if p.type == "AWS::Lambda::EventInvokeConfig"
        }
        for logical_id, p in self.provisioned.items():
            if p.type != "AWS::Lambda::Function":
                continue
            props = p.properties
            config = invoke_configs.get(p.name, {})
            on_failure = ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
                "Destination"
            )
            self.functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                name=p.name,
                arn=p.attributes["Arn"],
                code_dir=self.template.code_dirs[logical_id],
                handler=props["Handler"],
                timeout=int(props.get("Timeout", 3)),
                memory=int(props.get("MemorySize", 128)),
                environment={
                    k: str(v)
                    for k, v in (props.get("Environment") or {}).get("Variables", {}).items()
                },
                max_retries=int(config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES)),
                max_event_age=int(config.get("MaximumEventAgeInSeconds", 21600)),
                dead_letter_arn=(props.get("DeadLetterConfig") or {}).get("TargetArn")
                or (on_failure if isinstance(on_failure, str) and ":sqs:" in on_failure else None),
                role_arn=str(props.get("Role", "")),
            )

    def _rules(self) -> None:
        by_arn = {spec.arn: spec.logical_id for spec in self.functions.values()}
        sam_schedules = {
            f"{fn}{event_id}": (fn, event_id)
            for fn, resource in self.template.sam["Resources"].items()
            for event_id, event in ((resource.get("Properties") or {}).get("Events") or {}).items()
            if event.get("Type") == "Schedule"
        }
        for logical_id, p in self.provisioned.items():
            if p.type != "AWS::Events::Rule":
                continue
            for target in p.properties.get("Targets", []):
                function = by_arn.get(target["Arn"])
                if function is None:
                    self.warnings.append(f"{logical_id}: target {target['Arn']} is not a function")
                    continue
                schedule = p.properties.get("ScheduleExpression")
                enabled = p.properties.get("State", "ENABLED") == "ENABLED"
                if logical_id in sam_schedules:
                    enabled = self.template.schedule_enabled(*sam_schedules[logical_id])
                self.rules[logical_id] = Rule(
                    logical_id=logical_id,
                    name=p.name,
                    arn=p.attributes["Arn"],
                    function=function,
                    pattern=p.properties.get("EventPattern"),
                    schedule=schedule,
                    enabled=enabled,
                    retry_attempts=int(
                        (target.get("RetryPolicy") or {}).get("MaximumRetryAttempts", 185)
                    ),
                    dead_letter_arn=(target.get("DeadLetterConfig") or {}).get("Arn"),
                )

    def _start_routing(self) -> None:
        self._rules()
        sqs, events = self.client("sqs"), self.client("events")
        for rule in self.rules.values():
            queue = sqs.create_queue(
                QueueName=f"localcloud-{rule.logical_id}"[:80],
                # Long enough that a slow handler's message is never redelivered meanwhile.
                Attributes={"VisibilityTimeout": "43200"},
            )
            rule.queue_url = queue["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(
                QueueUrl=rule.queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            kwargs: dict[str, Any] = {
                "Name": rule.name,
                "State": "ENABLED" if rule.enabled else "DISABLED",
            }
            if rule.schedule:
                kwargs["ScheduleExpression"] = rule.schedule
            if rule.pattern:
                kwargs["EventPattern"] = json.dumps(rule.pattern)
            try:
                events.put_rule(**kwargs)
            except Exception as exc:
                # moto rejects some operators; a looser mirror plus our own matcher still routes.
                self.warnings.append(f"{rule.logical_id}: mirrored with a looser pattern ({exc})")
                kwargs["EventPattern"] = json.dumps(
                    {
                        k: v
                        for k, v in (rule.pattern or {}).items()
                        if k in ("source", "detail-type")
                    }
                )
                events.put_rule(**kwargs)
            if rule.pattern:
                # Scheduled events go straight to the rule's queue (fire_schedule, the timer):
                # moto would otherwise treat a schedule rule as matching every event.
                events.put_targets(Rule=rule.name, Targets=[{"Id": "localcloud", "Arn": queue_arn}])
            thread = threading.Thread(
                target=self._poll,
                args=(rule,),
                name=f"localcloud-rule-{rule.logical_id}",
                daemon=True,
            )
            if self._want_routing:
                self._threads.append(thread)
                thread.start()

    def _poll(self, rule: Rule) -> None:
        sqs = self.client("sqs")
        while not self._stopping.is_set():
            try:
                received = sqs.receive_message(
                    QueueUrl=rule.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1
                )
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("polling %s failed: %s", rule.logical_id, exc)
                time.sleep(0.5)
                continue
            for message in received.get("Messages", []):
                try:
                    event = self._as_delivered(json.loads(message["Body"]))
                    # The mirror may be looser than the template's pattern: the template decides.
                    if rule.pattern is None or matches(rule.pattern, event):
                        self.invoke_async(rule.function, event, rule)
                finally:
                    sqs.delete_message(
                        QueueUrl=rule.queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )

    def _as_delivered(self, event: dict[str, Any]) -> dict[str, Any]:
        """The envelope exactly as EventBridge delivers it. moto's SQS target drops
        ``account`` (and may add ``ingestion-time``): restore AWS's shape and field order."""
        if "detail-type" not in event:
            return event
        event = as_aws_s3_event(event)
        envelope = {key: event[key] for key in _ENVELOPE if key in event}
        envelope.setdefault("version", "0")
        envelope.setdefault("account", self.account_id)
        envelope.setdefault("region", self.region)
        envelope.setdefault("resources", [])
        return {key: envelope[key] for key in _ENVELOPE if key in envelope}

    def _start_executors(self) -> None:
        for path in self._executor_paths:
            module_name, _, attribute = path.partition(":")
            if importlib.util.find_spec(module_name) is None:
                log.debug("executor %s is not written yet: skipped", module_name)
                continue
            executor_class = getattr(importlib.import_module(module_name), attribute)
            executor = executor_class()
            executor.start(self)
            self.executors.append(executor)

    def _start_http_api(self) -> None:
        if importlib.util.find_spec("localcloud.http_api") is None:
            log.debug("localcloud.http_api is not written yet: no local HTTP API")
            return
        from localcloud import http_api

        self._http_api = http_api.serve_http_api(self)
        self.http_api_url = self._http_api.url


class LambdaTimeout(RuntimeError):
    """A handler ran past its function's Timeout (Lambda: "Task timed out after N seconds")."""


class LambdaPayloadTooLarge(RuntimeError):
    """A synchronous response over Lambda's 6 MB limit."""


def _raise_in_thread(ident: int, exception: type[BaseException] | None) -> None:
    """Schedule ``exception`` in thread ``ident`` (None clears a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exception) if exception else None
    )


def queues_idle(sqs: Any, queue_urls: list[str]) -> bool:
    """No message waiting, being handled (in flight until its handler deletes it) or delayed."""
    for url in queue_urls:
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        if any(int(v) for v in attrs.values()):
            return False
    return True


@contextlib.contextmanager
def _as_own_service(service: str | None) -> Iterator[None]:
    """Every Lambda has its own process, so Powertools reads POWERTOOLS_SERVICE_NAME once per
    function; here functions share one process, so the shared logger/metrics are re-pointed
    for the invocation and put back after it."""
    observability = sys.modules.get("mlops.observability")
    if not service or observability is None:
        yield
        return
    previous = observability.metrics.service
    previous_key = observability.logger.get_current_keys().get("service")
    observability.logger.append_keys(service=service)
    observability.metrics.service = service
    try:
        yield
    finally:
        observability.metrics.service = previous
        observability.logger.append_keys(service=previous_key)


def _python_backed_strings() -> str | None:
    """Handlers run on worker threads here (on Lambda, on the main thread). pandas 3 builds str
    columns through pyarrow, and that path has crashed the process (SIGSEGV in
    ArrowStringArray._from_sequence, validate's read_csv on a dispatcher thread): use
    Python-backed str columns while the cloud runs. Same values and dtype name ("str")."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is in the dev venv
        return None
    previous = str(pd.get_option("mode.string_storage"))
    pd.set_option("mode.string_storage", "python")
    return previous


def _restore_strings(previous: str | None) -> None:
    if previous is None:
        return
    import pandas as pd

    pd.set_option("mode.string_storage", previous)


def _quietly(call: Callable[[], Any]) -> None:
    try:
        call()
    except Exception as exc:
        log.warning("while stopping: %r", exc)
