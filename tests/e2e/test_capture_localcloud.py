"""Inference capture on the local cloud: predictions through the HTTP API reach the capture zone
through the template's Firehose stream (delivered as Firehose does: dated prefix, gzip, written as
the stream's role) and read back with ``mlops.web.capture.captured_inputs``.

The model is deployed directly (model, config and endpoint named and tagged as the deploy
function does) with a one-line inference.py, as in test_endpoint_faults.py: no training needed.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest
import requests

from localcloud.cloud import LocalCloud
from localcloud.executors.firehose import FirehoseDelivery
from mlops import clients, naming
from mlops.contract import load_contract
from mlops.web import capture, endpoint, fields

pytestmark = pytest.mark.e2e

PRICE = 12345.0
VERSION = "4"
INFERENCE = f"""
def model_fn(model_dir):
    return None

def predict_fn(rows, model):
    return [{PRICE} for _ in rows]
"""


def model_tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = INFERENCE.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def deploy(cloud: LocalCloud) -> str:
    """Version ``VERSION`` served on this stage's endpoint, tagged as deploy tags it."""
    dataset, stage = cloud.parameters["DatasetName"], cloud.parameters["Stage"]
    name = naming.endpoint_name(dataset, stage)
    bucket = cloud.resources["ArtifactsBucket"]
    key = f"models/{dataset}/{name}-capture-test/output/model.tar.gz"
    cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=model_tarball())
    sagemaker = cloud.client("sagemaker")
    variant = f"{name}-v{VERSION}"
    sagemaker.create_model(
        ModelName=variant,
        ExecutionRoleArn=cloud.provisioned["SageMakerExecutionRole"].attributes["Arn"],
        PrimaryContainer={
            "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2",
            "ModelDataUrl": f"s3://{bucket}/{key}",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
        Tags=[
            {"Key": "model_package_version", "Value": VERSION},
            {"Key": "run_id", "Value": "20261203T080000Z-0c0ffee0"},
        ],
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=variant,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": variant,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=variant)
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
    executors = [
        "localcloud.executors.endpoint:EndpointExecutor",
        "localcloud.executors.firehose:FirehoseDelivery",
    ]
    with LocalCloud(executors=executors, publish=False) as running:
        deploy(running)
        yield running
    endpoint.clear_cache()


def url(cloud: LocalCloud, path: str) -> str:
    return f"{cloud.http_api_url}{cloud.parameters['Stage']}/{path}"


def read_days(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch, *days: Any) -> pd.DataFrame:
    """``captured_inputs`` of each day, from this process as a user of the local cloud would."""
    for name, value in cloud.aws_environment().items():
        monkeypatch.setenv(name, value)
    clients.reset()
    try:
        bucket, dataset = cloud.resources["CaptureBucket"], cloud.parameters["DatasetName"]
        frames = [
            capture.captured_inputs(bucket, dataset, day, with_metadata=True)
            for day in dict.fromkeys(days)
        ]
    finally:
        clients.reset()
    return pd.concat(frames, ignore_index=True)


def test_predictions_through_the_http_api_are_captured_and_read_back_with_the_model_version(
    cloud: LocalCloud, event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a served model and three requests of one, two and one rows
    row = json.loads(event("http_post_predictions.json")["body"])
    bodies = [[row], [row | {"mileage": 1_000}, row | {"mileage": 2_000}], [row | {"year": 2011}]]
    before = datetime.now(timezone.utc).date()

    # When they are predicted through the HTTP API and Firehose has delivered
    answers = [requests.post(url(cloud, "predictions"), json=b, timeout=60) for b in bodies]
    assert cloud.wait_quiescent(timeout=60)
    after = datetime.now(timezone.utc).date()

    # Then every answer was served, and the capture zone holds one record per row
    assert [a.status_code for a in answers] == [200, 200, 200]
    frame = read_days(cloud, monkeypatch, before, after)
    assert len(frame) == 4
    assert set(frame["model_version"]) == {VERSION}
    assert set(frame["prediction"]) == {PRICE}
    assert sorted(frame["mileage"]) == sorted([row["mileage"], 1_000, 2_000, row["mileage"]])
    assert set(load_contract(cloud.parameters["DatasetName"]).features) <= set(frame.columns)
    assert frame["inference_id"].is_unique


def test_captures_land_gzipped_under_the_dated_prefix_as_the_streams_role_wrote_them(
    cloud: LocalCloud,
) -> None:
    # Given the captures of the test above (module-scoped cloud), when the zone is listed
    bucket = cloud.resources["CaptureBucket"]
    keys = [
        item["Key"]
        for item in cloud.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    ]
    today = datetime.now(timezone.utc).date()
    days = {today.isoformat(), (today - timedelta(days=1)).isoformat()}

    # Then each object is a .gz under dataset=<ds>/date=<day>/, and no delivery was refused
    assert keys
    dataset = cloud.parameters["DatasetName"]
    assert all(k.startswith(f"dataset={dataset}/date=") and k.endswith(".gz") for k in keys)
    assert {k.split("/")[1].removeprefix("date=") for k in keys} <= days
    [delivery] = [e for e in cloud.executors if isinstance(e, FirehoseDelivery)]
    assert delivery.failures == []
    # And the strict cloud checked both grants: the web role's batch, the delivery role's write
    assert cloud.gate is not None
    allowed = {(c.role_arn, c.request.action) for c in cloud.gate.checked if c.allowed}
    web_role = cloud.provisioned["WebFunctionRole"].attributes["Arn"]
    delivery_role = cloud.provisioned["CaptureDeliveryRole"].attributes["Arn"]
    assert (web_role, "firehose:PutRecordBatch") in allowed
    assert (delivery_role, "s3:PutObject") in allowed
