"""SageMaker endpoints in the local cloud: each model served by its own inference.py.

moto records endpoints but serves nothing and lacks UpdateEndpoint. This executor:

* teaches moto ``UpdateEndpoint`` (``install_update_endpoint``; unit tests use it alone);
* starts one worker process per production variant (the venv's python running this file with
  ``--serve``), which loads ``model.tar.gz`` through the artifact's own ``code/inference.py``
  (``model_fn/input_fn/predict_fn/output_fn``), like the SageMaker scikit-learn container;
* serves ``POST /endpoints/<name>/invocations`` on 127.0.0.1 (what boto3's
  ``sagemaker-runtime invoke_endpoint`` calls) and registers it as
  ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` so handlers reach it unchanged;
* moves endpoints Creating/Updating → InService and emits "SageMaker Endpoint State Change"
  at each transition. An update whose new model fails to load, or fails a canary (the last
  requests the endpoint served, replayed), rolls back: the old workers never stop serving and
  the endpoint returns to InService on its old config, as SageMaker's blue/green rollback does;
* replaces a model server that dies, as SageMaker replaces an unhealthy instance: a watcher
  notices the exited process and starts it again after a backoff (``restart_delay`` doubling
  up to ``restart_delay_max`` while it keeps dying, reset once it stays up). The endpoint stays
  InService meanwhile and invocations get the runtime's 503 ``ServiceUnavailable``.

Only the standard library is imported at module level: the worker process runs this file.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import logging
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from localcloud.executors.base import MotoPatches

if TYPE_CHECKING:  # pragma: no cover - typing only
    from localcloud.executors.base import CloudServices

log = logging.getLogger(__name__)

RUNTIME_ENV = "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"
STATE_CHANGE = "SageMaker Endpoint State Change"
# A model that takes longer than this to load counts as failing to start.
STARTUP_TIMEOUT_SECONDS = 120.0
SERVERLESS_PAYLOAD_LIMIT = 4 * 1024 * 1024
CANARY_REQUESTS = 3
# A restarted model server that stays up this long is healthy again: its backoff starts over.
STABLE_SECONDS = 60.0
WATCH_INTERVAL_SECONDS = 0.5
# The web app's /health probes are marked so (InvokeEndpoint CustomAttributes): not traffic.
PROBE_ATTRIBUTE = "mlops-health-probe"


# ----------------------------------------------------------------------------- moto patch
def _backend_update_endpoint(
    self: Any,
    endpoint_name: str,
    endpoint_config_name: str,
    deployment_config: dict[str, Any] | None = None,
    **_: Any,
) -> Any:
    """UpdateEndpoint without compute: switch config at once (the executor makes it gradual)."""
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ValidationError

    endpoint = self.endpoints.get(endpoint_name)
    if endpoint is None:
        raise ValidationError(message=f"Could not find endpoint '{endpoint_name}'.")
    if endpoint.endpoint_status != "InService":
        raise ValidationError(message=f"Cannot update in-progress endpoint '{endpoint.arn}'.")
    config = self.describe_endpoint_config(endpoint_config_name)
    endpoint.endpoint_config_name = endpoint_config_name
    endpoint.production_variants = endpoint._process_production_variants(
        config["ProductionVariants"]
    )
    endpoint.last_deployment_config = deployment_config
    endpoint.last_modified_time = utcnow()
    return endpoint


def _response_update_endpoint(self: Any) -> Any:
    from moto.core.responses import ActionResult

    endpoint = self.sagemaker_backend.update_endpoint(
        endpoint_name=self._get_param("EndpointName"),
        endpoint_config_name=self._get_param("EndpointConfigName"),
        deployment_config=self._get_param("DeploymentConfig"),
    )
    return ActionResult({"EndpointArn": endpoint.arn})


def install_update_endpoint() -> Callable[[], None]:
    """Add UpdateEndpoint to moto's SageMaker (responses and backend); returns the undo."""
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    if hasattr(SageMakerResponse, "update_endpoint"):
        return lambda: None
    SageMakerResponse.update_endpoint = _response_update_endpoint  # type: ignore[attr-defined]
    SageMakerModelBackend.update_endpoint = _backend_update_endpoint  # type: ignore[attr-defined]

    def undo() -> None:
        for cls in (SageMakerResponse, SageMakerModelBackend):
            if "update_endpoint" in vars(cls):
                delattr(cls, "update_endpoint")

    return undo


# ----------------------------------------------------------------------------- workers
@dataclass
class Launch:
    """How a model server process is started, kept so that a dead one can be started again."""

    command: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path

    def spawn(self) -> tuple[subprocess.Popen[bytes], int]:
        """A started model server and its port, once it has loaded its model."""
        with self.log_path.open("ab") as log_file:  # the worker keeps its own descriptor
            process = subprocess.Popen(
                self.command,
                stdout=subprocess.PIPE,
                stderr=log_file,
                env=self.env,
                cwd=str(self.cwd),
            )
        return process, _await_ready(process, self.log_path)


def next_restart_delay(previous: float | None, uptime: float, first: float, cap: float) -> float:
    """Seconds to wait before restarting a model server that died after ``uptime`` seconds:
    ``first``, doubled at each death that follows a restart within ``STABLE_SECONDS``, at most
    ``cap``."""
    if previous is None or uptime >= STABLE_SECONDS:
        return min(first, cap)
    return min(previous * 2, cap)


@dataclass
class Worker:
    """One production variant's model server process (replaced when it dies)."""

    variant: str
    weight: float
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    launch: Launch | None = None
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0
    stopped: bool = False
    reviving: bool = False
    restart_delay: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def down(self) -> bool:
        """Whether no live process serves this variant (it died, or is being replaced)."""
        return self.process.poll() is not None

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@dataclass
class Deployment:
    """The workers serving one endpoint config."""

    config_name: str
    workers: list[Worker]

    def pick(self, target: str | None) -> Worker:
        if target:
            for worker in self.workers:
                if worker.variant == target:
                    return worker
            raise LookupError(f"variant {target} not found")
        weights = [max(w.weight, 0.0) for w in self.workers]
        if not any(weights):
            return self.workers[0]
        return random.choices(self.workers, weights=weights)[0]

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


class ModelServerError(RuntimeError):
    """A model could not be loaded or served."""


_connections = threading.local()


def _connection(port: int, timeout: float) -> http.client.HTTPConnection:
    """A kept-alive connection to a worker, one per runtime thread (threads serve one client)."""
    pool: dict[int, http.client.HTTPConnection] = _connections.__dict__.setdefault("pool", {})
    if port not in pool:
        pool[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    return pool[port]


def _call_worker(
    port: int, body: bytes, content_type: str, accept: str, timeout: float = 60.0
) -> tuple[int, bytes, str]:
    headers = {"Content-Type": content_type, "Accept": accept}
    for attempt in (1, 2):
        connection = _connection(port, timeout)
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("Content-Type", accept)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # The worker closed an idle kept-alive connection: reconnect once.
            connection.close()
            _connections.pool.pop(port, None)
            if attempt == 2:
                raise
        except Exception:
            connection.close()
            _connections.pool.pop(port, None)
            raise
    raise AssertionError("unreachable")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ----------------------------------------------------------------------------- runtime API
def _no_delay(handler: BaseHTTPRequestHandler) -> None:
    # Headers and body go out as separate writes: with Nagle on, each response waits ~40 ms
    # for the client's delayed ACK.
    handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _RuntimeHandler(BaseHTTPRequestHandler):
    executor: EndpointExecutor
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        _no_delay(self)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("runtime: " + format, *args)

    def _reply(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", f"{random.getrandbits(64):016x}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, **extra: Any) -> None:
        body = json.dumps({"__type": code, "message": message, **extra}).encode()
        self._reply(status, body, "application/x-amz-json-1.1", **{"x-amzn-ErrorType": code})

    def _unavailable(self, endpoint: str, worker: Worker, why: str) -> None:
        log.warning("runtime: %s variant %s unavailable: %s", endpoint, worker.variant, why)
        self._error(503, "ServiceUnavailable", "The service is unavailable. Try again later.")

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/ping":
            self._reply(200, b"{}", "application/json")
        else:
            self._error(404, "UnknownOperationException", f"no route {self.path}")

    def do_POST(self) -> None:
        parts = urlparse(self.path).path.strip("/").split("/")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if len(parts) != 3 or parts[0] != "endpoints" or parts[2] != "invocations":
            self._error(404, "UnknownOperationException", f"no route {self.path}")
            return
        name = unquote(parts[1])
        content_type = self.headers.get("Content-Type") or "application/json"
        accept = self.headers.get("Accept") or "application/json"
        target = self.headers.get("X-Amzn-SageMaker-Target-Variant")
        deployment = self.executor.live(name)
        if deployment is None:
            self._error(
                400,
                "ValidationError",
                f"Endpoint {name} of account {self.executor.account_id} not found.",
            )
            return
        if len(body) > SERVERLESS_PAYLOAD_LIMIT and self.executor.serverless(deployment):
            # "Invoke a serverless endpoint": request and response payloads of at most 4 MB.
            self._error(400, "ValidationError", f"Request {uuid.uuid4()} has oversize body.")
            return
        try:
            worker = deployment.pick(target)
        except LookupError as error:
            self._error(400, "ValidationError", str(error))
            return
        if worker.down():
            self._unavailable(name, worker, "its model server is being replaced")
            return
        try:
            status, answer, answer_type = _call_worker(worker.port, body, content_type, accept)
        except OSError as error:
            # No container answered (it died mid-request): the runtime's own 503, not a
            # ModelError, which is what a container that answers with an error gets.
            self._unavailable(name, worker, f"its model server did not answer: {error}")
            return
        if status >= 400:
            text = answer.decode(errors="replace")
            self._error(
                424,
                "ModelError",
                f"Received {'client' if status < 500 else 'server'} error ({status}) from "
                f'primary with message "{text}".',
                OriginalStatusCode=status,
                OriginalMessage=text,
            )
            return
        if self.headers.get("X-Amzn-SageMaker-Custom-Attributes") != PROBE_ATTRIBUTE:
            self.executor.remember(name, body, content_type, accept)
        self._reply(
            200, answer, answer_type, **{"x-Amzn-Invoked-Production-Variant": worker.variant}
        )


# ----------------------------------------------------------------------------- executor
@dataclass
class EndpointExecutor:
    """Serves SageMaker endpoints of the local cloud from worker processes."""

    cloud: CloudServices | None = None
    account_id: str = "123456789012"
    url: str = ""
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _routes: dict[str, Deployment] = field(default_factory=dict)
    _recent: dict[str, deque[tuple[bytes, str, str]]] = field(default_factory=dict)
    _patches: MotoPatches = field(default_factory=MotoPatches)
    _undo_update: Callable[[], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    # Backoff of model server restarts (seconds): first wait, and the most it doubles to.
    restart_delay: float = 1.0
    restart_delay_max: float = 30.0
    _threads: list[threading.Thread] = field(default_factory=list)

    # -- lifecycle
    def start(self, cloud: CloudServices) -> None:
        from moto.backends import get_backend

        self.cloud = cloud
        self.account_id = cloud.account_id
        self._undo_update = install_update_endpoint()
        backend = get_backend("sagemaker")[cloud.account_id][cloud.region]
        self._patches.set(backend, "create_endpoint", self._wrap_create(backend.create_endpoint))
        self._patches.set(backend, "update_endpoint", self._wrap_update(backend))
        self._patches.set(backend, "delete_endpoint", self._wrap_delete(backend.delete_endpoint))
        handler = type("RuntimeHandler", (_RuntimeHandler,), {"executor": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sagemaker-runtime", daemon=True
        )
        self._thread.start()
        self._background(self._watch, name="endpoint-watcher")
        cloud.set_service_endpoint(RUNTIME_ENV, self.url)
        log.info("SageMaker runtime listening on %s", self.url)

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            deployments, self._routes = list(self._routes.values()), {}
        for deployment in deployments:
            deployment.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        self._patches.restore()
        if self._undo_update is not None:
            self._undo_update()
            self._undo_update = None

    # -- used by the runtime handler
    def live(self, endpoint: str) -> Deployment | None:
        with self._lock:
            return self._routes.get(endpoint)

    def remember(self, endpoint: str, body: bytes, content_type: str, accept: str) -> None:
        """Keep the last few good requests: the canary of the next update replays them."""
        with self._lock:
            self._recent.setdefault(endpoint, deque(maxlen=CANARY_REQUESTS)).append(
                (body, content_type, accept)
            )

    # -- moto hooks
    def _wrap_create(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def create_endpoint(endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
            endpoint = original(endpoint_name, endpoint_config_name, tags)
            endpoint.endpoint_status = "Creating"
            self._submit(self._create, endpoint, name=f"endpoint-create:{endpoint_name}")
            return endpoint

        return create_endpoint

    def _wrap_update(self, backend: Any) -> Callable[..., Any]:
        from moto.sagemaker.exceptions import ValidationError

        def update_endpoint(
            endpoint_name: str,
            endpoint_config_name: str,
            deployment_config: dict[str, Any] | None = None,
            **_: Any,
        ) -> Any:
            endpoint = backend.endpoints.get(endpoint_name)
            if endpoint is None:
                raise ValidationError(message=f"Could not find endpoint '{endpoint_name}'.")
            if endpoint.endpoint_status != "InService":
                raise ValidationError(
                    message=f"Cannot update in-progress endpoint '{endpoint.arn}'."
                )
            config = backend.describe_endpoint_config(endpoint_config_name)
            endpoint.endpoint_status = "Updating"
            endpoint.last_deployment_config = deployment_config
            self._submit(self._update, endpoint, config, name=f"endpoint-update:{endpoint_name}")
            return endpoint

        return update_endpoint

    def _wrap_delete(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def delete_endpoint(endpoint_name: str) -> None:
            original(endpoint_name)
            with self._lock:
                deployment = self._routes.pop(endpoint_name, None)
            if deployment is not None:
                deployment.stop()

        return delete_endpoint

    def _submit(self, fn: Callable[..., Any], *args: Any, name: str) -> None:
        assert self.cloud is not None
        self.cloud.submit(fn, *args, name=name)

    def _background(self, fn: Callable[..., Any], *args: Any, name: str) -> None:
        # Not the cloud's submit: a watcher never finishes, and the cloud waits for submitted
        # work to say it is quiescent.
        thread = threading.Thread(target=fn, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    # -- replacing dead model servers (what SageMaker does for an unhealthy instance)
    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_INTERVAL_SECONDS):
            with self._lock:
                routed = [(n, w) for n, d in self._routes.items() for w in d.workers]
            for endpoint, worker in routed:
                with worker.lock:
                    if worker.stopped or worker.reviving or not worker.down():
                        continue
                    worker.reviving = True
                    worker.restart_delay = next_restart_delay(
                        worker.restart_delay,
                        time.monotonic() - worker.started_at,
                        self.restart_delay,
                        self.restart_delay_max,
                    )
                self._background(self._revive, endpoint, worker, name=f"endpoint-revive:{endpoint}")

    def _revive(self, endpoint: str, worker: Worker) -> None:
        """Start ``worker``'s model server again, after its backoff; retried until it loads."""
        delay = worker.restart_delay or self.restart_delay
        log.warning(
            "model server of %s variant %s exited (%s); restarting in %.1f s: %s",
            endpoint,
            worker.variant,
            worker.process.returncode,
            delay,
            _tail(worker.log_path, 3),
        )
        try:
            while not self._stopping.wait(delay):
                if worker.stopped or worker.launch is None:
                    return
                try:
                    process, port = worker.launch.spawn()
                except ModelServerError as error:
                    delay = min(delay * 2, self.restart_delay_max)
                    log.warning("restart of %s failed (next in %.1f s): %s", endpoint, delay, error)
                    continue
                with worker.lock:
                    if not (worker.stopped or self._stopping.is_set()):
                        worker.process, worker.port = process, port
                        worker.started_at = time.monotonic()
                        worker.restarts += 1
                        log.info(
                            "model server of %s variant %s restarted", endpoint, worker.variant
                        )
                        return
                # Stopped while it loaded: this process serves nothing.
                process.kill()
                process.wait(timeout=5)
                return
        finally:
            with worker.lock:
                worker.reviving = False

    # -- transitions (background threads)
    def _create(self, endpoint: Any) -> None:
        self._emit(endpoint, "CREATING")
        config = self._describe_config(endpoint.endpoint_config_name)
        try:
            deployment = self._launch(endpoint.endpoint_name, config)
        except Exception as error:  # any failure to start a model fails the endpoint
            endpoint.endpoint_status = "Failed"
            endpoint.failure_reason = str(error)[:1024]
            self._touch(endpoint)
            self._emit(endpoint, "FAILED")
            return
        if not self._route(endpoint.endpoint_name, deployment):
            return
        endpoint.endpoint_status = "InService"
        endpoint.failure_reason = None
        self._touch(endpoint)
        self._emit(endpoint, "IN_SERVICE")

    def _update(self, endpoint: Any, config: dict[str, Any]) -> None:
        self._emit(endpoint, "UPDATING", config_name=config["EndpointConfigName"])
        try:
            deployment = self._launch(endpoint.endpoint_name, config)
            try:
                self._canary(endpoint.endpoint_name, deployment)
            except Exception:
                deployment.stop()
                raise
        except Exception as error:
            # Blue/green rollback: the old workers kept serving throughout; stay on the old config.
            log.warning("update of %s rolled back: %s", endpoint.endpoint_name, error)
            endpoint.endpoint_status = "InService"
            endpoint.failure_reason = f"Update rolled back: {error}"[:1024]
            self._touch(endpoint)
            self._emit(endpoint, "IN_SERVICE")
            return
        previous = self.live(endpoint.endpoint_name)
        if not self._route(endpoint.endpoint_name, deployment):
            return
        endpoint.endpoint_config_name = config["EndpointConfigName"]
        endpoint.production_variants = endpoint._process_production_variants(
            config["ProductionVariants"]
        )
        endpoint.endpoint_status = "InService"
        endpoint.failure_reason = None
        self._touch(endpoint)
        if previous is not None:
            previous.stop()
        self._emit(endpoint, "IN_SERVICE")

    def _route(self, endpoint: str, deployment: Deployment) -> bool:
        """Route the endpoint to ``deployment``; once stopping, stop it instead and say False."""
        with self._lock:
            if not self._stopping.is_set():
                self._routes[endpoint] = deployment
                return True
        deployment.stop()
        return False

    def _canary(self, endpoint: str, deployment: Deployment) -> None:
        """Replay recent good requests on every new variant; any error fails the update."""
        with self._lock:
            requests = list(self._recent.get(endpoint, ()))
        for worker in deployment.workers:
            for body, content_type, accept in requests:
                status, answer, _ = _call_worker(worker.port, body, content_type, accept)
                if status >= 400:
                    raise ModelServerError(
                        f"canary invocation of variant {worker.variant} returned {status}: "
                        f"{answer.decode(errors='replace')[:300]}"
                    )

    # -- helpers
    def serverless(self, deployment: Deployment) -> bool:
        config = self._describe_config(deployment.config_name)
        return any("ServerlessConfig" in v for v in config["ProductionVariants"])

    def _describe_config(self, name: str) -> dict[str, Any]:
        assert self.cloud is not None
        return dict(
            self.cloud.client("sagemaker").describe_endpoint_config(EndpointConfigName=name)
        )

    def _launch(self, endpoint: str, config: dict[str, Any]) -> Deployment:
        workers: list[Worker] = []
        try:
            for variant in config["ProductionVariants"]:
                workers.append(self._start_worker(endpoint, config["EndpointConfigName"], variant))
        except Exception:
            for worker in workers:
                worker.stop()
            raise
        return Deployment(config["EndpointConfigName"], workers)

    def _start_worker(self, endpoint: str, config_name: str, variant: dict[str, Any]) -> Worker:
        assert self.cloud is not None
        model = self.cloud.client("sagemaker").describe_model(ModelName=variant["ModelName"])
        container = model["PrimaryContainer"]
        # SageMaker fetches the model and code as the model's execution role.
        s3 = self.cloud.role_client(model["ExecutionRoleArn"], "s3", "SageMaker")
        env = container.get("Environment", {})
        root = self.cloud.workdir / "endpoints" / endpoint / config_name / variant["VariantName"]
        shutil.rmtree(root, ignore_errors=True)
        model_dir = root / "model"
        model_dir.mkdir(parents=True)
        _download_and_extract(s3, container["ModelDataUrl"], model_dir)
        code_dir = _code_dir(s3, env.get("SAGEMAKER_SUBMIT_DIRECTORY", ""), model_dir, root)
        program = env.get("SAGEMAKER_PROGRAM", "inference.py")
        launch = Launch(
            command=[
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve",
                str(model_dir),
                str(code_dir),
                program,
            ],
            env=self.cloud.subprocess_env(model["ExecutionRoleArn"], "SageMaker")
            | {k: str(v) for k, v in env.items()}
            | {"SM_MODEL_DIR": str(model_dir), "PYTHONUNBUFFERED": "1"},
            cwd=root,
            log_path=root / "worker.log",
        )
        process, port = launch.spawn()
        weight = float(variant.get("InitialVariantWeight", 1.0))
        return Worker(variant["VariantName"], weight, process, port, launch.log_path, launch)

    @staticmethod
    def _touch(endpoint: Any) -> None:
        endpoint.last_modified_time = datetime.now(timezone.utc)

    def _emit(self, endpoint: Any, status: str, config_name: str | None = None) -> None:
        """The "SageMaker Endpoint State Change" event, with AWS's field names."""
        assert self.cloud is not None

        def millis(value: Any) -> float:
            return value.timestamp() * 1000 if isinstance(value, datetime) else float(value or 0)

        detail: dict[str, Any] = {
            "EndpointName": endpoint.endpoint_name,
            "EndpointArn": endpoint.arn,
            "EndpointConfigName": config_name or endpoint.endpoint_config_name,
            "ProductionVariants": [
                {
                    "VariantName": v.get("VariantName"),
                    "DesiredWeight": float(v.get("DesiredWeight", 1.0)),
                    "DesiredInstanceCount": float(v.get("DesiredInstanceCount", 1)),
                }
                for v in endpoint.production_variants
            ],
            "EndpointStatus": status,
            "CreationTime": millis(endpoint.creation_time),
            "LastModifiedTime": millis(endpoint.last_modified_time),
            "Tags": {t["Key"]: t["Value"] for t in endpoint.tags or []},
        }
        if endpoint.failure_reason:
            detail["FailureReason"] = endpoint.failure_reason
        self.cloud.emit("aws.sagemaker", STATE_CHANGE, detail, resources=[endpoint.arn])


def _s3_parts(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return parsed.netloc, parsed.path.lstrip("/")


def _download_and_extract(s3: Any, url: str, into: Path) -> None:
    bucket, key = _s3_parts(url)
    archive_path = into.parent / "download.tar.gz"
    s3.download_file(bucket, key, str(archive_path))
    with tarfile.open(archive_path, "r:gz") as archive:
        archive.extractall(into, filter="data")
    archive_path.unlink()


def _code_dir(s3: Any, submit_directory: str, model_dir: Path, root: Path) -> Path:
    """Where inference.py lives: /opt/ml/model/... maps into the model, s3:// is fetched."""
    if submit_directory.startswith("s3://"):
        code = root / "code"
        code.mkdir(exist_ok=True)
        _download_and_extract(s3, submit_directory, code)
        return code
    if submit_directory.startswith("/opt/ml/model"):
        return model_dir / submit_directory[len("/opt/ml/model") :].lstrip("/")
    return model_dir / "code"


def _await_ready(process: subprocess.Popen[bytes], log_path: Path) -> int:
    """The worker prints ``READY <port>`` once its model is loaded; anything else is a failure."""
    assert process.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline().decode(errors="replace").strip()
            if line.startswith("READY "):
                return int(line.split()[1])
            if not line and process.poll() is not None:
                break
        elif process.poll() is not None:
            break
    if process.poll() is None:
        process.kill()
        process.wait(timeout=5)
        raise ModelServerError(f"model server did not start within {STARTUP_TIMEOUT_SECONDS}s")
    raise ModelServerError(f"model failed to load (exit {process.returncode}): {_tail(log_path)}")


# ----------------------------------------------------------------------------- worker process
def _serve(model_dir: str, code_dir: str, program: str) -> None:
    """Load the model via inference.py and answer /ping and /invocations (runs in the worker)."""
    # Running this file put the executors' directory first on sys.path; the model must not see it.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != here]
    sys.path.insert(0, code_dir)
    spec = importlib.util.spec_from_file_location("inference", Path(code_dir) / program)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {program} from {code_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["inference"] = module
    spec.loader.exec_module(module)
    model = module.model_fn(model_dir)

    def input_fn(body: bytes, content_type: str) -> Any:
        if hasattr(module, "input_fn"):
            return module.input_fn(body, content_type)
        if content_type.startswith("text/csv"):
            return [[float(v) for v in row.split(",")] for row in body.decode().splitlines() if row]
        return json.loads(body)

    def predict_fn(data: Any) -> Any:
        if hasattr(module, "predict_fn"):
            return module.predict_fn(data, model)
        return model.predict(data)

    def output_fn(prediction: Any, accept: str) -> tuple[int, bytes, str]:
        if hasattr(module, "output_fn"):
            result = module.output_fn(prediction, accept)
        else:
            listed = prediction.tolist() if hasattr(prediction, "tolist") else prediction
            result = json.dumps(listed)
        content_type = accept if accept and accept != "*/*" else "application/json"
        if hasattr(result, "status_code") and hasattr(result, "get_data"):
            # A response object (the container's Flask worker.Response): its status and body
            # go to the caller as they are, as the container's server sends them.
            return int(result.status_code), bytes(result.get_data()), str(result.mimetype)
        if isinstance(result, tuple) and len(result) == 2:
            result, content_type = result
        body = result.encode() if isinstance(result, str) else bytes(result)
        return 200, body, content_type

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            _no_delay(self)

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(200 if self.path == "/ping" else 404, b"", "text/plain")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            content_type = self.headers.get("Content-Type") or "application/json"
            accept = self.headers.get("Accept") or "application/json"
            try:
                status, answer, answer_type = output_fn(
                    predict_fn(input_fn(body, content_type)), accept
                )
            except Exception as error:  # the model's error goes back to the caller as a 500
                import traceback

                traceback.print_exc()
                self._send(500, f"{type(error).__name__}: {error}".encode(), "text/plain")
                return
            self._send(status, answer, answer_type)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    # Nothing reads stdout after READY: send the model's prints to the log instead of a full pipe.
    os.dup2(2, 1)
    server.serve_forever()


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--serve":
    _serve(sys.argv[2], sys.argv[3], sys.argv[4])
