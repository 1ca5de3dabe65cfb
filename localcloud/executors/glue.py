"""Glue job runs in the local cloud: the job's script on local Spark, over data staged from S3.

moto records StartJobRun and reports the run SUCCEEDED at once without running anything.
This executor makes a run of a job whose script is one of the project's ``glue/*.py`` behave
like Glue:

* the run stays RUNNING while it executes (so MaxConcurrentRuns is enforced as on AWS);
* in a tracked background thread it downloads the run's validated parquet partitions and the
  contract (preparation), or the raw object version (``--raw_path``, validation), from S3
  into ``<workdir>/glue/<job run id>/`` (there is no s3a connector offline),
  runs the script with the venv's python and local Spark (``--KEY value`` arguments, s3://
  paths swapped for the staged ones, PYTHONPATH standing in for ``--extra-py-files``);
* it uploads preparation's curated output back under the run's ``--curated_path``
  (``_manifest.json`` last, as the job writes it), marks the run SUCCEEDED, FAILED
  (ErrorMessage from the script's exception) or TIMEOUT (the job's Timeout, in minutes), and
  emits the real "Glue Job State Change" event.

Recording the outcome in the run ledger is the pipeline's job (``mlops.preparation``), not
the executor's: on AWS, Glue does not write our ledger either.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moto.glue.models import FakeJobRun

from localcloud.executors.base import MotoPatches

if TYPE_CHECKING:  # pragma: no cover - typing only
    from localcloud.executors.base import CloudServices

log = logging.getLogger(__name__)

STATE_CHANGE = "Glue Job State Change"
SEVERITY = {"SUCCEEDED": "INFO", "FAILED": "ERROR", "TIMEOUT": "WARN", "STOPPED": "INFO"}
# The last "Name: message" line of a Python traceback names the exception that ended the job.
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*): (.+)$")
STDERR_TAIL = 64 * 1024


class _LocalJobRun(FakeJobRun):
    """A moto job run whose state the executor sets, with Glue's ErrorMessage."""

    local_state: str = "RUNNING"
    error_message: str | None = None
    execution_seconds: int = 0

    @property  # type: ignore[override]
    def status(self) -> str:
        return self.local_state

    @status.setter
    def status(self, value: str) -> None:
        self.local_state = value

    def as_dict(self) -> dict[str, Any]:
        described = super().as_dict()
        described["ExecutionTime"] = self.execution_seconds
        described["GlueVersion"] = "5.0"
        if self.error_message:
            described["ErrorMessage"] = self.error_message
        return described


def _s3_parts(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def error_message(stderr: str) -> str:
    """The exception that ended the script, as Glue reports it; else the end of stderr."""
    for line in reversed(stderr.strip().splitlines()):
        match = _EXCEPTION_LINE.match(line.strip())
        if match:
            return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
    tail = stderr.strip()[-500:]
    return tail or "the job script exited without a message"


class GlueExecutor:
    """Runs the project's Glue scripts on local Spark; see the module docstring."""

    def __init__(self) -> None:
        self._cloud: CloudServices | None = None
        self._backend: Any = None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._patches = MotoPatches()

    # ------------------------------------------------------------------ lifecycle
    def start(self, cloud: CloudServices) -> None:
        from moto.backends import get_backend

        self._cloud = cloud
        self._stopping.clear()
        self._backend = get_backend("glue")[cloud.account_id][cloud.region]
        self._patches.set(self._backend, "start_job_run", self._wrap(self._backend.start_job_run))

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            running = list(self._processes.values())
        for process in running:
            if process.poll() is None:
                process.kill()
        self._patches.restore()
        self._backend = None

    # ------------------------------------------------------------------ moto hook
    def _wrap(self, original: Any) -> Any:
        def start_job_run(name: str, *args: Any, **kwargs: Any) -> str:
            job_run_id = original(name, *args, **kwargs)
            job = self._backend.get_job(name)
            script = self._script(job)
            if script is None:
                return job_run_id
            run = next(r for r in job.job_runs if r.job_run_id == job_run_id)
            run.__class__ = _LocalJobRun
            run.local_state = "RUNNING"
            assert self._cloud is not None
            self._cloud.submit(self._execute, job, run, script, name=f"glue:{job_run_id}")
            return job_run_id

        return start_job_run

    def _script(self, job: Any) -> Path | None:
        """The project script a job runs (by its ScriptLocation's file name), if there is one."""
        assert self._cloud is not None
        location = (job.command or {}).get("ScriptLocation") or ""
        candidate = self._cloud.project_root / "glue" / location.rsplit("/", 1)[-1]
        return candidate if location and candidate.is_file() else None

    # ------------------------------------------------------------------ one run
    def _execute(self, job: Any, run: _LocalJobRun, script: Path) -> None:
        assert self._cloud is not None
        started = time.monotonic()
        work = self._cloud.workdir / "glue" / run.job_run_id
        # As on Glue, the script sees the job's DefaultArguments overridden by the run's.
        arguments = {**(job.default_arguments or {}), **dict(run.arguments or {})}
        state, message = "FAILED", None
        try:
            # Glue reads and writes the lake as the job's role: the strict cloud checks it.
            s3 = self._cloud.role_client(job.role, "s3", "GlueJobRunnerSession")
            self._read_code(s3, job, arguments)
            staged = self._stage(s3, arguments, work)
            state, message = self._run_script(job, run, script, staged, work)
            if state == "SUCCEEDED" and "--curated_path" in arguments:
                self._publish(s3, work / "curated", arguments["--curated_path"])
        except Exception as exc:  # the run fails; the event and ErrorMessage carry why
            log.exception("glue job run %s failed", run.job_run_id)
            state, message = "FAILED", f"{type(exc).__name__}: {exc}"
        run.execution_seconds = int(time.monotonic() - started)
        run.completed_on = run.modified_on = datetime.now(timezone.utc)
        run.error_message = message if state != "SUCCEEDED" else None
        run.local_state = state
        self._emit(job.name, run.job_run_id, state, message)

    def _read_code(self, s3: Any, job: Any, arguments: dict[str, str]) -> None:
        """Glue fetches the script and --extra-py-files from S3 as the job's role; the local
        run uses the project's copies, but the role must still be able to read them."""
        locations = [(job.command or {}).get("ScriptLocation") or ""]
        locations += (arguments.get("--extra-py-files") or "").split(",")
        for location in (loc.strip() for loc in locations):
            if location.startswith("s3://"):
                bucket, key = _s3_parts(location)
                s3.head_object(Bucket=bucket, Key=key)

    def _stage(self, s3: Any, arguments: dict[str, str], work: Path) -> dict[str, str]:
        """Download the run's inputs; return the arguments with local paths in place of S3."""
        staged = dict(arguments)
        run_id = arguments.get("--run_id", "")
        validated = arguments.get("--validated_path", "")
        if validated.startswith("s3://"):
            bucket, prefix = _s3_parts(validated)
            local_root = work / "validated"
            # Preparation's training window names its partitions; Glue reads them on S3.
            window = [w.strip().strip("/") for w in arguments.get("--window_runs", "").split(",")]
            markers = [f"{w}/" for w in window if w] or [f"run_id={run_id}/"]
            self._download_run(s3, bucket, prefix, markers, local_root)
            staged["--validated_path"] = str(local_root) + "/"
        contract = arguments.get("--contract_uri", "")
        if contract.startswith("s3://"):
            bucket, key = _s3_parts(contract)
            local = work / "contract.json"
            local.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(local))
            staged["--contract_uri"] = str(local)
        raw = arguments.get("--raw_path", "")
        if raw.startswith("s3://"):
            # The validation job reads one raw object version (Spark's s3:// path on Glue).
            bucket, key = _s3_parts(raw)
            name = key.rsplit("/", 1)[-1]
            # Hadoop picks its codec by a lower-case suffix (".gz").
            local = work / "raw" / (name[:-3] + ".gz" if name.lower().endswith(".gz") else name)
            local.parent.mkdir(parents=True, exist_ok=True)
            extra = (
                {"VersionId": arguments["--version_id"]} if arguments.get("--version_id") else None
            )
            s3.download_file(bucket, key, str(local), ExtraArgs=extra)
            staged["--raw_path"] = str(local)
        if arguments.get("--curated_path", "").startswith("s3://"):
            staged["--curated_path"] = str(work / "curated") + "/"
        return staged

    def _download_run(
        self, s3: Any, bucket: str, prefix: str, markers: list[str], local_root: Path
    ) -> None:
        """The parquet files of the partitions named by ``markers``, keeping their directories."""
        local_root.mkdir(parents=True, exist_ok=True)
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                relative = key[len(prefix) :]
                if any(m in key for m in markers) and key.endswith(".parquet"):
                    target = local_root / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, key, str(target))

    def _run_script(
        self, job: Any, run: _LocalJobRun, script: Path, arguments: dict[str, str], work: Path
    ) -> tuple[str, str | None]:
        assert self._cloud is not None
        env = self._cloud.subprocess_env(job.role, "GlueJobRunnerSession")
        shared = str(self._cloud.project_root / "layers" / "shared")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (shared, env.get("PYTHONPATH")) if p)
        env["PYSPARK_PYTHON"] = sys.executable
        env["PYSPARK_DRIVER_PYTHON"] = sys.executable
        command = [sys.executable, str(script), "--JOB_NAME", job.name]
        command += ["--JOB_RUN_ID", run.job_run_id]
        for key, value in arguments.items():
            command += [key, value]
        timeout = 60 * int(run.timeout or job.timeout or 2880)
        with open(work / "stdout.log", "wb") as out, open(work / "stderr.log", "wb") as err:
            process = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=err)
            with self._lock:
                self._processes[run.job_run_id] = process
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                return "TIMEOUT", f"Job run timed out after {timeout // 60} minutes"
            finally:
                with self._lock:
                    self._processes.pop(run.job_run_id, None)
        if code == 0:
            return "SUCCEEDED", None
        if self._stopping.is_set():
            return "STOPPED", "Job run stopped: the local cloud shut down"
        stderr = (work / "stderr.log").read_bytes()[-STDERR_TAIL:].decode(errors="replace")
        return "FAILED", error_message(stderr)

    def _publish(self, s3: Any, local: Path, curated_path: str) -> None:
        """Replace the run's curated prefix with the job's output, manifest last."""
        bucket, prefix = _s3_parts(curated_path.rstrip("/") + "/")
        stale = [
            {"Key": item["Key"]}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]
        for start in range(0, len(stale), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": stale[start : start + 1000]})
        # Hadoop's local file system leaves .crc checksums and markers next to the data.
        files = sorted(
            p for p in local.rglob("*") if p.is_file() and not p.name.startswith((".", "_SUCCESS"))
        )
        manifest = [p for p in files if p.name == "_manifest.json"]
        for path in [p for p in files if p.name != "_manifest.json"] + manifest:
            s3.upload_file(str(path), bucket, prefix + path.relative_to(local).as_posix())

    def _emit(self, job_name: str, job_run_id: str, state: str, message: str | None) -> None:
        assert self._cloud is not None
        if state == "SUCCEEDED":
            text = "Job run succeeded"
        else:
            text = (
                f"JobName:{job_name} and JobRunId:{job_run_id} failed to execute with "
                f"exception {message}"
            )
        detail = {
            "jobName": job_name,
            "severity": SEVERITY.get(state, "ERROR"),
            "state": state,
            "jobRunId": job_run_id,
            "message": text,
        }
        try:
            self._cloud.emit("aws.glue", STATE_CHANGE, detail, resources=[])
        except Exception:
            if not self._stopping.is_set():
                raise
            log.warning("glue state change for %s not emitted: shutting down", job_run_id)
