"""SageMaker training jobs in the local cloud: the job's own script, run under SageMaker's contract.

moto records CreateTrainingJob but reports every job Completed at once with an artifact that
does not exist, and lacks StopTrainingJob. This executor makes a job behave like SageMaker's:

* CreateTrainingJob with a name already used fails with ResourceInUse (as on AWS), and a new
  job is InProgress/Starting;
* in a tracked background thread it stages every S3 channel into
  ``<workdir>/training/<job>/input/data/<channel>/``, downloads and unpacks
  ``sagemaker_submit_directory``, and runs ``sagemaker_program`` with the venv's python under
  the script-mode environment contract (``SM_MODEL_DIR``, ``SM_CHANNEL_<NAME>``, ``SM_HPS``,
  ``SM_OUTPUT_DATA_DIR``, ``SM_OUTPUT_DIR``, hyperparameters as ``--key value``);
* it tars the model dir to ``<S3OutputPath>/<job>/output/model.tar.gz`` (and output/data to
  ``output.tar.gz``), marks the job Completed, Failed (FailureReason from the ``failure`` file,
  else the end of stderr) or Stopped (StopTrainingJob, or MaxRuntimeInSeconds exceeded), and
  emits "SageMaker Training Job State Change" with the DescribeTrainingJob-shaped detail.

Managed spot and checkpoint syncing are accepted and not emulated (the job runs on demand).
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from localcloud.executors.base import MotoPatches

if TYPE_CHECKING:  # pragma: no cover - typing only
    from localcloud.executors.base import CloudServices

log = logging.getLogger(__name__)

STATE_CHANGE = "SageMaker Training Job State Change"
FINAL = ("Completed", "Failed", "Stopped")
STDERR_TAIL = 1024
POLL_SECONDS = 0.2


@dataclass
class _Running:
    process: subprocess.Popen[bytes] | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)


def _s3_parts(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def _decoded(value: str) -> Any:
    # Hyperparameters arrive JSON-encoded (as the SageMaker SDK sends them) or as plain text.
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _cli_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _epoch_millis(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(moment.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _epoch_millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_epoch_millis(v) for v in value]
    return value


def event_detail(description: dict[str, Any]) -> dict[str, Any]:
    """DescribeTrainingJob → the event's detail: times in epoch millis, Tags as a map."""
    detail = _epoch_millis({k: v for k, v in description.items() if k != "ResponseMetadata"})
    tags = detail.get("Tags") or []
    if isinstance(tags, list):
        detail["Tags"] = {t["Key"]: t["Value"] for t in tags}
    return detail


class TrainingExecutor:
    """Runs CreateTrainingJob's script locally; see the module docstring."""

    def __init__(self) -> None:
        self._cloud: CloudServices | None = None
        self._backend: Any = None
        self._patches = MotoPatches()
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self, cloud: CloudServices) -> None:
        from moto.backends import get_backend
        from moto.sagemaker.responses import SageMakerResponse

        self._cloud = cloud
        backend = get_backend("sagemaker")[cloud.account_id][cloud.region]
        self._backend = backend
        self._patches.set(
            backend, "create_training_job", self._wrap_create(backend.create_training_job)
        )
        self._patches.set(backend, "stop_training_job", self._stop_job)
        if "stop_training_job" not in vars(SageMakerResponse):
            self._patches.set(SageMakerResponse, "stop_training_job", _response_stop_training_job)

    def stop(self) -> None:
        with self._lock:
            running = list(self._running.values())
        for run in running:
            run.stop_requested.set()
            if run.process is not None and run.process.poll() is None:
                run.process.kill()
        self._patches.restore()

    # ------------------------------------------------------------------ moto hooks
    def _wrap_create(self, original: Any) -> Any:
        def create_training_job(training_job_name: str, *args: Any, **kwargs: Any) -> Any:
            from moto.sagemaker.exceptions import ResourceInUseException

            if training_job_name in self._backend.training_jobs:
                raise ResourceInUseException(
                    message=f"Training job names must be unique within an AWS account and "
                    f"region, and a training job with this name already exists "
                    f"({self._backend.training_jobs[training_job_name].arn})"
                )
            job = original(training_job_name, *args, **kwargs)
            job.training_job_status = "InProgress"
            job.secondary_status = "Starting"
            job.training_end_time = None
            job.model_artifacts = None
            job.final_metric_data_list = []
            job.algorithm_specification.pop("MetricDefinitions", None)
            job.secondary_status_transitions = [_transition("Starting", "Launching the job")]
            with self._lock:
                self._running[training_job_name] = _Running()
            assert self._cloud is not None
            self._emit(job)
            self._cloud.submit(self._run, training_job_name, name=f"training-{training_job_name}")
            return job

        return create_training_job

    def _stop_job(self, training_job_name: str) -> None:
        from moto.sagemaker.exceptions import ValidationError

        job = self._backend.training_jobs.get(training_job_name)
        if job is None:
            raise ValidationError(message=f"Could not find training job '{training_job_name}'.")
        if job.training_job_status != "InProgress":
            raise ValidationError(
                message=f"The training job {training_job_name} is {job.training_job_status} "
                "and cannot be stopped."
            )
        job.training_job_status = "Stopping"
        job.secondary_status = "Stopping"
        with self._lock:
            run = self._running.get(training_job_name)
        if run is not None:
            run.stop_requested.set()
            if run.process is not None and run.process.poll() is None:
                run.process.terminate()

    # ------------------------------------------------------------------ the job
    def _run(self, name: str) -> None:
        job = self._backend.training_jobs[name]
        run = self._running[name]
        root = Path(self._cloud.workdir) / "training" / name  # type: ignore[union-attr]
        started = time.monotonic()
        try:
            status, secondary, reason = self._execute(job, run, root)
        except Exception as error:  # staging or upload failed: the job fails, it is not lost
            log.exception("training job %s failed in the executor", name)
            status, secondary, reason = "Failed", "Failed", f"ClientError: {error}"
        seconds = max(1, round(time.monotonic() - started))
        job.training_job_status = status
        job.secondary_status = secondary
        job.training_end_time = datetime.now(timezone.utc)
        job.last_modified_time = job.training_end_time
        job.training_time_in_seconds = seconds
        job.billable_time_in_seconds = seconds
        if reason:
            job.failure_reason = reason
        job.secondary_status_transitions.append(_transition(secondary, reason or status))
        with self._lock:
            self._running.pop(name, None)
        self._emit(job)

    def _execute(self, job: Any, run: _Running, root: Path) -> tuple[str, str, str | None]:
        name = job.training_job_name
        hps = {k: _decoded(v) for k, v in (job.hyper_parameters or {}).items()}
        job.secondary_status = "Downloading"
        job.secondary_status_transitions.append(_transition("Downloading", "Staging channels"))
        channels = self._stage_channels(job, root / "input" / "data")
        code = root / "code"
        self._unpack_sourcedir(job, hps.get("sagemaker_submit_directory"), code)
        program = str(hps.get("sagemaker_program") or "train.py")
        if not (code / program).is_file():
            return "Failed", "Failed", f"AlgorithmError: entry point {program} not in sourcedir"
        model_dir, output_dir = root / "model", root / "output"
        (output_dir / "data").mkdir(parents=True, exist_ok=True)
        model_dir.mkdir(parents=True, exist_ok=True)
        self._write_config(job, root, hps, channels)
        if run.stop_requested.is_set():
            return "Stopped", "Stopped", None
        job.secondary_status = "Training"
        job.secondary_status_transitions.append(_transition("Training", "Running the script"))
        args = [
            arg
            for key, value in hps.items()
            if not key.startswith("sagemaker_")
            for arg in (f"--{key}", _cli_value(value))
        ]
        env = self._environment(job, root, hps, channels, code)
        limit = (job.stopping_condition or {}).get("MaxRuntimeInSeconds")
        returncode, timed_out, stderr = self._run_script(
            [sys.executable, program, *args], code, env, run, limit, root / "logs"
        )
        if run.stop_requested.is_set():
            return "Stopped", "Stopped", None
        if returncode != 0:
            failure = output_dir / "failure"
            detail = failure.read_text().strip() if failure.is_file() else stderr[-STDERR_TAIL:]
            if timed_out:
                return "Stopped", "MaxRuntimeExceeded", f"MaxRuntimeInSeconds {limit} exceeded"
            return "Failed", "Failed", f"AlgorithmError: {detail or f'exit code {returncode}'}"
        job.secondary_status = "Uploading"
        job.secondary_status_transitions.append(_transition("Uploading", "Uploading artifacts"))
        destination = self._upload_outputs(job, model_dir, output_dir / "data")
        job.model_artifacts = {"S3ModelArtifacts": destination}
        job.final_metric_data_list = _final_metrics(model_dir / "evaluation.json")
        log.info("training job %s completed: %s", name, destination)
        return "Completed", "Completed", None

    def _s3(self, job: Any) -> Any:
        """SageMaker stages data and uploads artifacts as the job's execution role."""
        return self._cloud.role_client(job.role_arn, "s3", "SageMaker")  # type: ignore[union-attr]

    def _stage_channels(self, job: Any, data_root: Path) -> dict[str, Path]:
        s3 = self._s3(job)
        channels: dict[str, Path] = {}
        for channel in job.input_data_config or []:
            name = channel["ChannelName"]
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            bucket, prefix = _s3_parts(uri)
            target = data_root / name
            target.mkdir(parents=True, exist_ok=True)
            found = 0
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith("/"):
                        continue
                    relative = key[len(prefix) :].lstrip("/") or Path(key).name
                    path = target / relative
                    path.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, key, str(path))
                    found += 1
            if not found:
                # SageMaker refuses a channel whose S3 prefix holds no object.
                raise ValueError(f"no objects under {uri} for channel {name}")
            channels[name] = target
        return channels

    def _unpack_sourcedir(self, job: Any, uri: Any, code: Path) -> None:
        if not uri:
            raise ValueError("hyperparameter sagemaker_submit_directory is missing")
        bucket, key = _s3_parts(str(uri))
        body = self._s3(job).get_object(Bucket=bucket, Key=key)["Body"].read()
        code.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            archive.extractall(code, filter="data")

    def _write_config(
        self, job: Any, root: Path, hps: dict[str, Any], channels: dict[str, Path]
    ) -> None:
        """The files SageMaker writes under /opt/ml/input/config for the training script."""
        config = root / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "hyperparameters.json").write_text(json.dumps(job.hyper_parameters or {}))
        input_config = {
            c["ChannelName"]: {"TrainingInputMode": "File"} for c in job.input_data_config or []
        }
        (config / "inputdataconfig.json").write_text(json.dumps(input_config))
        resource = {"current_host": "algo-1", "hosts": ["algo-1"]}
        (config / "resourceconfig.json").write_text(json.dumps(resource))

    def _environment(
        self,
        job: Any,
        root: Path,
        hps: dict[str, Any],
        channels: dict[str, Path],
        code: Path,
    ) -> dict[str, str]:
        env = self._cloud.subprocess_env(job.role_arn, "SageMaker")  # type: ignore[union-attr]
        user_hps = {k: v for k, v in hps.items() if not k.startswith("sagemaker_")}
        env.update(
            {
                "SM_MODEL_DIR": str(root / "model"),
                "SM_OUTPUT_DIR": str(root / "output"),
                "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
                "SM_INPUT_DIR": str(root / "input"),
                "SM_INPUT_CONFIG_DIR": str(root / "input" / "config"),
                "SM_CHANNELS": json.dumps(sorted(channels)),
                "SM_HPS": json.dumps(user_hps),
                "SM_USER_ENTRY_POINT": str(hps.get("sagemaker_program") or "train.py"),
                "SM_MODULE_DIR": str(hps.get("sagemaker_submit_directory") or ""),
                "SM_CURRENT_HOST": "algo-1",
                "SM_HOSTS": json.dumps(["algo-1"]),
                "SM_NUM_CPUS": str(os.cpu_count() or 1),
                "SM_TRAINING_JOB_NAME": job.training_job_name,
                "PYTHONPATH": os.pathsep.join([str(code), env.get("PYTHONPATH", "")]).rstrip(
                    os.pathsep
                ),
                "PYTHONUNBUFFERED": "1",
            }
        )
        for name, path in channels.items():
            env[f"SM_CHANNEL_{name.upper()}"] = str(path)
        for key, value in user_hps.items():
            env[f"SM_HP_{key.upper()}"] = _cli_value(value)
        # The local machine is shared: OpenMP threads spinning on busy cores make small fits
        # 10-20x slower, so one thread unless the user asked otherwise.
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def _run_script(
        self,
        command: list[str],
        cwd: Path,
        env: dict[str, str],
        run: _Running,
        limit: int | None,
        logs: Path,
    ) -> tuple[int, bool, str]:
        logs.mkdir(parents=True, exist_ok=True)
        stdout_path, stderr_path = logs / "stdout.log", logs / "stderr.log"
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            process = subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr)
            run.process = process
            deadline = time.monotonic() + limit if limit else None
            timed_out = False
            while process.poll() is None:
                if deadline is not None and time.monotonic() > deadline:
                    timed_out = True
                    process.kill()
                time.sleep(POLL_SECONDS)
        return process.returncode, timed_out, stderr_path.read_text(errors="replace")

    def _upload_outputs(self, job: Any, model_dir: Path, output_data: Path) -> str:
        s3 = self._s3(job)
        base = job.output_data_config["S3OutputPath"].rstrip("/")
        prefix = f"{base}/{job.training_job_name}/output"
        bucket, key_prefix = _s3_parts(prefix)
        s3.put_object(Bucket=bucket, Key=f"{key_prefix}/model.tar.gz", Body=_tar_gz(model_dir))
        if any(output_data.iterdir()):
            s3.put_object(
                Bucket=bucket, Key=f"{key_prefix}/output.tar.gz", Body=_tar_gz(output_data)
            )
        return f"{prefix}/model.tar.gz"

    def _emit(self, job: Any) -> None:
        description = self._backend.describe_training_job(job.training_job_name)
        self._cloud.emit(  # type: ignore[union-attr]
            "aws.sagemaker", STATE_CHANGE, event_detail(description), resources=[job.arn]
        )


def _transition(status: str, message: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {"Status": status, "StartTime": now, "EndTime": now, "StatusMessage": message}


def _tar_gz(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.add(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def _final_metrics(evaluation: Path) -> list[dict[str, Any]]:
    """The candidate's test metrics as FinalMetricDataList (``test:<metric>``)."""
    if not evaluation.is_file():
        return []
    candidate = json.loads(evaluation.read_text()).get("candidate") or {}
    now = datetime.now(timezone.utc)
    return [
        {"MetricName": f"test:{name}", "Value": float(value), "Timestamp": now}
        for name, value in candidate.items()
    ]


def _response_stop_training_job(self: Any) -> Any:
    """The StopTrainingJob action moto's SageMakerResponse lacks."""
    from moto.core.responses import ActionResult

    self.sagemaker_backend.stop_training_job(self._get_param("TrainingJobName"))
    return ActionResult({})
