"""Registry → deploy → endpoint on the local cloud: served models, updates, rollback, approval.

A tiny scikit-learn model with its own inference.py stands in for the training output; each
test registers versions the way the evaluate stage does and lets the template's rules,
the deploy function and the endpoint executor do the rest.
"""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from collections.abc import Iterator
from typing import Any

import boto3
import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from localcloud import model_commands
from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

EXECUTORS = [
    "localcloud.executors.endpoint:EndpointExecutor",
    "localcloud.executors.registry:ModelRegistryEvents",
]
GROUP = ENDPOINT = "mlops-used-cars-dev"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
RECORDS = [{"year": 2015, "mileage": 60000}, {"year": 2020, "mileage": 15000}]

INFERENCE = textwrap.dedent(
    """
    import json
    import os

    import joblib


    def model_fn(model_dir):
        {load}
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    def input_fn(body, content_type):
        records = json.loads(body)
        records = records if isinstance(records, list) else [records]
        return [[r["year"], r["mileage"]] for r in records]


    def predict_fn(rows, model):
        {predict}
        return model.predict(rows)


    def output_fn(prediction, accept):
        return json.dumps({{"predictions": prediction.tolist(), "model": {{"name": "tiny"}}}})
    """
)


def fitted(slope: float) -> LinearRegression:
    """A model whose price rises with year by ``slope`` (so versions predict differently)."""
    x = np.array([[2010, 100000], [2015, 60000], [2020, 20000], [2022, 5000]], dtype=float)
    y = 1000 + slope * (x[:, 0] - 2000) - 0.05 * x[:, 1]
    return LinearRegression().fit(x, y)


def tarball(model: LinearRegression, broken: str | None = None) -> bytes:
    """model.tar.gz as training writes it; ``broken`` = "load" or "predict" plants a failure."""
    code = INFERENCE.format(
        load='raise RuntimeError("corrupt model artifact")' if broken == "load" else "pass",
        predict='raise ValueError("feature mismatch")' if broken == "predict" else "pass",
    )
    saved = io.BytesIO()
    joblib.dump(model, saved)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in {
            "model.joblib": saved.getvalue(),
            "code/inference.py": code.encode(),
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(executors=EXECUTORS, http_api=False, publish=False) as running:
        yield running


def register(
    cloud: LocalCloud, version: int, model: LinearRegression, status: str, broken: str | None = None
) -> str:
    """Upload the artifact and register it, as the evaluate stage does."""
    run_id = f"2026112{version}T083000Z-0000000{version}"
    bucket = cloud.resources["ArtifactsBucket"]
    key = f"models/used_cars/mlops-used-cars-{run_id}/output/model.tar.gz"
    cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=tarball(model, broken))
    cloud.client("sagemaker").create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [
                {
                    "Image": IMAGE,
                    "ModelDataUrl": f"s3://{bucket}/{key}",
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    },
                }
            ],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={"run_id": run_id, "dataset": "used_cars"},
    )
    assert cloud.wait_quiescent(timeout=90)
    return run_id


def runtime(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A plain boto3 sagemaker-runtime client: only AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME points it."""
    url = cloud.subprocess_env()["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
    return boto3.client("sagemaker-runtime", region_name="us-east-1")


def invoke(client: Any) -> list[float]:
    response = client.invoke_endpoint(
        EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps(RECORDS)
    )
    return json.loads(response["Body"].read())["predictions"]


def expected(model: LinearRegression) -> list[float]:
    return model.predict([[r["year"], r["mileage"]] for r in RECORDS]).tolist()


def deploy_item(cloud: LocalCloud, run_id: str) -> dict[str, Any]:
    table = cloud.client("dynamodb")
    item = table.get_item(
        TableName=cloud.resources["RunLedgerTable"],
        Key={"run_id": {"S": run_id}, "stage": {"S": "deploy"}},
    )["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def test_an_approved_model_is_served_through_the_sagemaker_runtime_api(cloud, monkeypatch) -> None:
    model = fitted(slope=500)
    run_id = register(cloud, 1, model, "Approved")
    client = runtime(cloud, monkeypatch)
    assert invoke(client) == pytest.approx(expected(model))
    assert deploy_item(cloud, run_id)["status"] == "SUCCEEDED"
    status = cloud.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"]
    assert status == "InService"


def test_a_pending_model_is_served_only_once_approved(cloud, monkeypatch) -> None:
    # given a model waiting for manual approval
    model = fitted(slope=500)
    register(cloud, 1, model, "PendingManualApproval")
    assert cloud.client("sagemaker").list_endpoints()["Endpoints"] == []
    # when a person approves version 1 (`mlops approve 1`)
    result = model_commands.approve(cloud, 1)
    assert result["previous_status"] == "PendingManualApproval"
    assert cloud.wait_quiescent(timeout=90)
    # then the registry's event deployed it, and `mlops predict` reaches it
    answer = model_commands.predict(cloud, RECORDS)
    assert answer["predictions"] == pytest.approx(expected(model))


def test_a_new_version_replaces_the_served_one(cloud, monkeypatch) -> None:
    first, second = fitted(slope=500), fitted(slope=800)
    register(cloud, 1, first, "Approved")
    client = runtime(cloud, monkeypatch)
    invoke(client)
    run_id = register(cloud, 2, second, "Approved")
    assert invoke(client) == pytest.approx(expected(second))
    endpoint = cloud.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == "mlops-used-cars-dev-v2"
    assert deploy_item(cloud, run_id)["status"] == "SUCCEEDED"


@pytest.mark.parametrize("broken", ["load", "predict"])
def test_a_broken_new_version_rolls_back_and_the_old_one_keeps_serving(
    cloud, monkeypatch, broken
) -> None:
    # given version 1 serving traffic
    good = fitted(slope=500)
    register(cloud, 1, good, "Approved")
    client = runtime(cloud, monkeypatch)
    invoke(client)
    # when version 2 fails to load, or fails the canary replay of that traffic
    run_id = register(cloud, 2, fitted(slope=800), "Approved", broken=broken)
    # then the endpoint is back in service on version 1, which still answers
    endpoint = cloud.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "mlops-used-cars-dev-v1"
    assert invoke(client) == pytest.approx(expected(good))
    item = deploy_item(cloud, run_id)
    assert item["status"] == "FAILED"
    assert item["reason"].startswith("rolled back; version 1 still serving")


def test_rejecting_a_version_deploys_nothing(cloud) -> None:
    register(cloud, 1, fitted(slope=500), "PendingManualApproval")
    model_commands.reject(cloud, 1)
    assert cloud.wait_quiescent(timeout=60)
    assert cloud.client("sagemaker").list_endpoints()["Endpoints"] == []


def test_stopping_the_cloud_stops_the_model_servers() -> None:
    with LocalCloud(executors=EXECUTORS, http_api=False, publish=False) as running:
        register(running, 1, fitted(slope=500), "Approved")
        [executor] = [e for e in running.executors if type(e).__name__ == "EndpointExecutor"]
        workers = [w for d in executor._routes.values() for w in d.workers]
        assert workers and all(w.process.poll() is None for w in workers)
    assert all(w.process.poll() is not None for w in workers)
