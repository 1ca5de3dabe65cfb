"""A served model whose server dies, seen through the local HTTP API: the web app says so (503,
Retry-After, no internals) and the endpoint executor replaces the server, as SageMaker replaces
an unhealthy instance, so that predictions and /health recover without anyone acting.

The model is deployed directly (model, config and endpoint as the deploy function names and
tags them) with a one-line inference.py, so no training or registry is involved.
"""

from __future__ import annotations

import io
import json
import signal
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from localcloud.cloud import LocalCloud
from localcloud.executors.endpoint import EndpointExecutor, Worker
from mlops import naming
from mlops.web import endpoint, fields

pytestmark = pytest.mark.e2e

PRICE = 12345.0
# A model that prices every row the same and answers an empty batch with no predictions.
INFERENCE = f"""
def model_fn(model_dir):
    return None

def predict_fn(rows, model):
    return [{PRICE} for _ in rows]
"""
# What no 5xx answer may show: socket errors, exception text, the runtime's error codes.
INTERNALS = ("Errno", "refused", "Traceback", "ServiceUnavailable", "127.0.0.1", "invocations")


def model_tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = INFERENCE.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def deploy(cloud: LocalCloud) -> str:
    """Version 1 served on this stage's endpoint, tagged as the deploy function tags it."""
    dataset, stage = cloud.parameters["DatasetName"], cloud.parameters["Stage"]
    name = naming.endpoint_name(dataset, stage)
    bucket = cloud.resources["ArtifactsBucket"]
    key = f"models/{dataset}/{name}-fault-test/output/model.tar.gz"
    cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=model_tarball())
    sagemaker = cloud.client("sagemaker")
    sagemaker.create_model(
        ModelName=f"{name}-v1",
        ExecutionRoleArn=cloud.provisioned["SageMakerExecutionRole"].attributes["Arn"],
        PrimaryContainer={
            "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2",
            "ModelDataUrl": f"s3://{bucket}/{key}",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
        Tags=[{"Key": "model_package_version", "Value": "1"}],
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{name}-v1",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-v1",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-v1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService":
            return name
        time.sleep(0.2)
    raise AssertionError(f"{name} never came InService")


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    endpoint.clear_cache()
    fields.clear_cache()
    with LocalCloud(
        executors=["localcloud.executors.endpoint:EndpointExecutor"], publish=False
    ) as running:
        yield running
    endpoint.clear_cache()


@pytest.fixture(scope="module")
def served(cloud: LocalCloud) -> str:
    return deploy(cloud)


def the_executor(cloud: LocalCloud) -> EndpointExecutor:
    [executor] = [e for e in cloud.executors if isinstance(e, EndpointExecutor)]
    return executor


def the_worker(cloud: LocalCloud, name: str) -> Worker:
    deployment = the_executor(cloud).live(name)
    assert deployment is not None
    [worker] = deployment.workers
    return worker


def url(cloud: LocalCloud, path: str) -> str:
    return f"{cloud.http_api_url}{cloud.parameters['Stage']}/{path}"


def predict(cloud: LocalCloud, row: dict[str, Any]) -> requests.Response:
    return requests.post(url(cloud, "predictions"), json=row, timeout=60)


def health(cloud: LocalCloud) -> requests.Response:
    return requests.get(url(cloud, "health"), timeout=60)


def assert_retry_later(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert not [leak for leak in INTERNALS if leak in response.text], response.text


def test_health_of_a_container_that_has_not_predicted_yet_probes_the_model_server(
    cloud: LocalCloud, served: str
) -> None:
    endpoint.clear_cache()  # a new web container: it has seen nothing of the model yet

    response = health(cloud)

    assert response.status_code == 200, response.text
    assert response.json()["model_answers"] is True
    assert response.json()["version"] == "1"


def test_a_killed_model_server_gives_503s_then_predictions_and_health_recover_by_themselves(
    cloud: LocalCloud, served: str, event: Any
) -> None:
    row = json.loads(event("http_post_predictions.json")["body"])
    name = served
    assert predict(cloud, row).json()["predictions"] == [PRICE]
    assert health(cloud).json()["model_answers"] is True
    # Long enough a gap to look at; SageMaker itself takes minutes to replace an instance.
    the_executor(cloud).restart_delay = 4.0
    worker = the_worker(cloud, name)

    # when the model server dies
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(timeout=10)
    during_prediction = predict(cloud, row)
    during_health = health(cloud)

    # then both say "not now", without saying why
    assert_retry_later(during_prediction)
    assert_retry_later(during_health)
    assert during_health.json()["endpoint_status"] == "InService"
    assert during_health.json()["version"] == "1"
    assert during_health.json()["model_answers"] is False

    # and both recover with no one acting: the executor replaces the server
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        after_prediction, after_health = predict(cloud, row), health(cloud)
        if (after_prediction.status_code, after_health.status_code) == (200, 200):
            break
        time.sleep(0.5)
    assert after_prediction.status_code == 200, after_prediction.text
    assert after_prediction.json()["predictions"] == [PRICE]
    assert after_health.status_code == 200, after_health.text
    assert worker.restarts == 1
