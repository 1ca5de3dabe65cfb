"""EndpointExecutor on moto: the runtime API's answers, model errors, state-change events."""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.executors.endpoint import (
    PROBE_ATTRIBUTE,
    STATE_CHANGE,
    EndpointExecutor,
    Worker,
    next_restart_delay,
)

BUCKET = "mlops-artifacts-test"
# A model needs no library here: the executor only runs the artifact's own inference.py.
INFERENCE = """
import json

def model_fn(model_dir):
    {load}
    return json.load(open(model_dir + "/model.json"))

def predict_fn(data, model):
    {predict}
    return [model["intercept"] + model["slope"] * row["x"] for row in data]

class Answer:  # shaped like the container's worker.Response (Flask): a body with a status
    status_code, mimetype = 400, "application/json"

    def get_data(self):
        return b'{{"message": "x must be at most 10"}}'

def output_fn(prediction, accept):
    {output}
    return json.dumps({{"predictions": prediction}}), "application/json"
"""


class InlineCloud:
    """The executor-facing part of LocalCloud over moto's in-process mock; work runs inline."""

    account_id = "123456789012"
    region = "us-east-1"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.events: list[dict[str, Any]] = []
        self.endpoints: dict[str, str] = {}
        self.executor: EndpointExecutor | None = None

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region)

    def role_client(self, role_arn: str, service: str, session: str) -> Any:
        """Roles are not checked here: the strict local cloud's own tests do that."""
        return self.client(service)

    def emit(self, source: str, detail_type: str, detail: dict, resources: list | None = None):
        self.events.append({"source": source, "detail-type": detail_type, "detail": detail})

    def submit(self, fn: Any, *args: Any, name: str) -> None:
        fn(*args)

    def subprocess_env(self, role_arn: str | None = None, session: str = "") -> dict[str, str]:
        return dict(os.environ)

    def set_service_endpoint(self, env_var: str, url: str) -> None:
        self.endpoints[env_var] = url


def artifact(slope: float, broken: str | None = None) -> bytes:
    code = INFERENCE.format(
        load='raise RuntimeError("corrupt artifact")' if broken == "load" else "pass",
        predict='raise ValueError("bad input")' if broken == "predict" else "pass",
        output="return Answer()" if broken == "refuse" else "pass",
    )
    files = {
        "model.json": json.dumps({"intercept": 1.0, "slope": slope}).encode(),
        "code/inference.py": code.encode(),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def cloud(aws: None, tmp_path: Path) -> Iterator[InlineCloud]:
    cloud, executor = InlineCloud(tmp_path), EndpointExecutor()
    cloud.executor = executor
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    executor.start(cloud)  # type: ignore[arg-type]
    yield cloud
    executor.stop()


def serve(cloud: InlineCloud, name: str, slope: float, broken: str | None = None) -> None:
    """Model, config and endpoint as the deploy stage creates them."""
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"{name}.tar.gz", Body=artifact(slope, broken))
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
        PrimaryContainer={
            "Image": "sklearn",
            "ModelDataUrl": f"s3://{BUCKET}/{name}.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)


def runtime(cloud: InlineCloud) -> Any:
    url = cloud.endpoints["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]
    # One attempt: these tests look at each answer of the runtime, not at botocore's retries.
    config = Config(retries={"mode": "standard", "max_attempts": 1})
    return boto3.client(
        "sagemaker-runtime", endpoint_url=url, region_name="us-east-1", config=config
    )


def the_worker(cloud: InlineCloud, name: str) -> Worker:
    assert cloud.executor is not None
    deployment = cloud.executor.live(name)
    assert deployment is not None
    [worker] = deployment.workers
    return worker


def kill(worker: Worker) -> None:
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(timeout=10)


def invoke(cloud: InlineCloud, name: str, rows: list[dict[str, float]]) -> dict[str, Any]:
    response = runtime(cloud).invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body=json.dumps(rows)
    )
    assert response["InvokedProductionVariant"] == "AllTraffic"
    return json.loads(response["Body"].read())


def test_a_served_model_answers_through_boto3_sagemaker_runtime(cloud) -> None:
    serve(cloud, "ep", slope=2.0)
    assert invoke(cloud, "ep", [{"x": 3}, {"x": 5}]) == {"predictions": [7.0, 11.0]}


def test_creating_an_endpoint_emits_creating_then_in_service_with_aws_fields(cloud, event) -> None:
    serve(cloud, "ep", slope=2.0)
    statuses = [e["detail"]["EndpointStatus"] for e in cloud.events]
    assert statuses == ["CREATING", "IN_SERVICE"]
    assert {e["detail-type"] for e in cloud.events} == {STATE_CHANGE}
    assert set(event("endpoint_in_service")["detail"]) == set(cloud.events[-1]["detail"])
    described = boto3.client("sagemaker").describe_endpoint(EndpointName="ep")
    assert described["EndpointStatus"] == "InService"


def test_a_body_over_4_mb_to_a_serverless_endpoint_is_refused_before_the_model(cloud) -> None:
    serve(cloud, "ep", slope=2.0)
    with pytest.raises(ClientError) as error:
        runtime(cloud).invoke_endpoint(
            EndpointName="ep", ContentType="application/json", Body=b" " * (4 * 1024 * 1024 + 1)
        )
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert "oversize body" in error.value.response["Error"]["Message"]


def test_an_unknown_endpoint_is_a_validation_error(cloud) -> None:
    with pytest.raises(ClientError) as error:
        invoke(cloud, "nowhere", [{"x": 1}])
    assert error.value.response["Error"]["Code"] == "ValidationError"


def test_a_model_error_comes_back_as_model_error_with_the_original_status(cloud) -> None:
    serve(cloud, "ep", slope=2.0, broken="predict")
    with pytest.raises(ClientError) as error:
        invoke(cloud, "ep", [{"x": 1}])
    assert error.value.response["Error"]["Code"] == "ModelError"
    assert error.value.response["OriginalStatusCode"] == 500
    assert "bad input" in error.value.response["OriginalMessage"]


def test_a_client_error_answered_by_the_model_keeps_its_4xx_status_in_the_model_error(
    cloud,
) -> None:
    serve(cloud, "ep", slope=2.0, broken="refuse")
    with pytest.raises(ClientError) as error:
        invoke(cloud, "ep", [{"x": 11}])
    assert error.value.response["Error"]["Code"] == "ModelError"
    assert error.value.response["OriginalStatusCode"] == 400
    assert "Received client error (400)" in error.value.response["Error"]["Message"]
    assert json.loads(error.value.response["OriginalMessage"])["message"] == "x must be at most 10"


def test_a_model_that_cannot_load_fails_the_endpoint_with_its_reason(cloud) -> None:
    serve(cloud, "ep", slope=2.0, broken="load")
    described = boto3.client("sagemaker").describe_endpoint(EndpointName="ep")
    assert described["EndpointStatus"] == "Failed"
    assert "corrupt artifact" in described["FailureReason"]
    failed = cloud.events[-1]["detail"]
    assert failed["EndpointStatus"] == "FAILED" and "corrupt artifact" in failed["FailureReason"]


def test_a_killed_model_server_is_answered_for_with_503_then_replaced_and_answers_again(
    cloud,
) -> None:
    serve(cloud, "ep", slope=2.0)
    worker = the_worker(cloud, "ep")
    kill(worker)

    with pytest.raises(ClientError) as gap:
        invoke(cloud, "ep", [{"x": 1}])
    deadline = time.monotonic() + 30
    while worker.restarts == 0 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert gap.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert gap.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert worker.restarts == 1
    assert invoke(cloud, "ep", [{"x": 3}]) == {"predictions": [7.0]}
    status = boto3.client("sagemaker").describe_endpoint(EndpointName="ep")["EndpointStatus"]
    assert status == "InService"  # SageMaker replaces an instance without leaving service


def test_a_deleted_endpoints_model_server_is_not_restarted(cloud) -> None:
    serve(cloud, "ep", slope=2.0)
    worker = the_worker(cloud, "ep")
    cloud.executor.restart_delay = 0.1
    boto3.client("sagemaker").delete_endpoint(EndpointName="ep")

    time.sleep(1.0)

    assert worker.process.poll() is not None
    assert worker.restarts == 0


def test_restart_delays_double_while_the_server_keeps_dying_up_to_the_bound() -> None:
    delays, previous = [], None
    for _ in range(7):
        previous = next_restart_delay(previous, uptime=2.0, first=1.0, cap=30.0)
        delays.append(previous)

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_server_that_stayed_up_a_while_is_restarted_after_the_first_delay_again() -> None:
    assert next_restart_delay(30.0, uptime=3600.0, first=1.0, cap=30.0) == 1.0


def test_health_probes_are_not_replayed_as_canary_traffic(cloud) -> None:
    serve(cloud, "ep", slope=2.0)

    runtime(cloud).invoke_endpoint(
        EndpointName="ep",
        ContentType="application/json",
        Body=b"[]",
        CustomAttributes=PROBE_ATTRIBUTE,
    )
    invoke(cloud, "ep", [{"x": 1}])

    assert [body for body, _, _ in cloud.executor._recent["ep"]] == [b'[{"x": 1}]']
