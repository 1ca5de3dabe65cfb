"""Monitoring on the strict local cloud: an uploaded day is judged against the served champion.

A champion is set up cheaply (as tests/e2e/test_deploy_local.py does): day 1 of the demo
site's calendar prepared with the pipeline's own code into the curated zone (splits, profile),
a small regression with its own inference.py registered Approved with the metadata evaluate
writes, deployed by the template's rules. Day 2 of the calendar (nothing changed but the
listings sold and added) is then uploaded as a CSV: validate, Run Validated, and the monitor
function with its own role, reading the zones and invoking the endpoint.
"""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from collections.abc import Iterator

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from demosite.catalogue import COLUMNS
from demosite.scenario import Scenario
from localcloud.cloud import LocalCloud
from mlops.ml.pipeline import prepare
from tests.e2e.reconcile import ledger_items
from tests.scenario_rows import QUIET, contract, published, zones

pytestmark = pytest.mark.e2e

EXECUTORS = [
    "localcloud.executors.endpoint:EndpointExecutor",
    "localcloud.executors.registry:ModelRegistryEvents",
]
GROUP = "mlops-used-cars-dev"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
CHAMPION_RUN = "20261126T083000Z-0c0c0c0c"
FEATURES = ["year", "mileage"]

# The model reads the records the monitor sends (every contract column but the price) and
# answers as training/inference.py does: predictions and the model's identity.
INFERENCE = textwrap.dedent(
    """
    import json
    import os

    import joblib

    RUN_ID = {run_id!r}
    FILL = {fill!r}


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    def input_fn(body, content_type):
        records = json.loads(body)
        return [[r.get(f) if r.get(f) is not None else FILL[f] for f in FILL] for r in records]


    def predict_fn(rows, model):
        return model.predict(rows)


    def output_fn(prediction, accept):
        return json.dumps({{"predictions": prediction.tolist(), "model": {{"run_id": RUN_ID}}}})
    """
)


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(executors=EXECUTORS, http_api=False, publish=False) as running:
        yield running


def crown(cloud: LocalCloud, rows: pd.DataFrame) -> float:
    """The champion of ``rows``: curated zone, artifact, Approved package; its test RMSE."""
    prepared = prepare(rows, contract(), run_id=CHAMPION_RUN)
    s3 = cloud.client("s3")
    curated = cloud.resources["CuratedBucket"]
    prefix = f"dataset=used_cars/run_id={CHAMPION_RUN}/"
    for split, frame in prepared.splits.items():
        body = io.BytesIO()
        frame.to_parquet(body, index=False)
        s3.put_object(
            Bucket=curated, Key=f"{prefix}split={split}/part-0.parquet", Body=body.getvalue()
        )
    s3.put_object(
        Bucket=curated,
        Key=f"{prefix}artifacts/profile.json",
        Body=json.dumps(prepared.profile).encode(),
    )
    train, test = prepared.splits["train"], prepared.splits["test"]
    fill = {f: float(train[f].median()) for f in FEATURES}
    model = LinearRegression().fit(train[FEATURES].fillna(fill), train["price"])
    approval = float(
        np.sqrt(np.mean((model.predict(test[FEATURES].fillna(fill)) - test["price"]) ** 2))
    )
    saved, archive_bytes = io.BytesIO(), io.BytesIO()
    joblib.dump(model, saved)
    code = INFERENCE.format(run_id=CHAMPION_RUN, fill=fill).encode()
    with tarfile.open(fileobj=archive_bytes, mode="w:gz") as archive:
        for name, data in {"model.joblib": saved.getvalue(), "code/inference.py": code}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    artifacts = cloud.resources["ArtifactsBucket"]
    key = f"models/used_cars/mlops-used-cars-{CHAMPION_RUN}/output/model.tar.gz"
    s3.put_object(Bucket=artifacts, Key=key, Body=archive_bytes.getvalue())
    cloud.client("sagemaker").create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": IMAGE,
                    "ModelDataUrl": f"s3://{artifacts}/{key}",
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    },
                }
            ],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={
            "run_id": CHAMPION_RUN,
            "dataset": "used_cars",
            "curated_prefix": f"s3://{curated}/{prefix}",
            "metric": "rmse",
            "candidate": repr(approval),
        },
    )
    assert cloud.wait_quiescent(timeout=120)
    return approval


def emitted(cloud: LocalCloud, function: str) -> dict[str, float]:
    """The EMF metrics in a function's captured log (what CloudWatch would receive)."""
    values: dict[str, float] = {}
    for path in cloud.log_dir.glob(f"*{function}*.log"):
        for line in path.read_text().splitlines():
            if line.startswith("{") and '"_aws"' in line:
                document = json.loads(line)
                for directive in document["_aws"]["CloudWatchMetrics"]:
                    for metric in directive["Metrics"]:
                        value = document[metric["Name"]]
                        values[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return values


def test_an_uploaded_stable_day_is_monitored_against_the_served_champion(cloud) -> None:
    # Given a champion trained on day 1, deployed and InService
    scenario = Scenario(seed=7, plan=QUIET)
    approval = crown(cloud, zones(scenario.day(1))[0])
    sagemaker = cloud.client("sagemaker")
    assert sagemaker.describe_endpoint(EndpointName=GROUP)["EndpointStatus"] == "InService"

    # When day 2 is uploaded as a CSV and goes through validation
    day = published(scenario.day(2))
    body = day.reindex(columns=list(COLUMNS)).to_csv(index=False).encode()
    put = cloud.client("s3").put_object(
        Bucket=cloud.resources["RawBucket"], Key="used_cars/day-2.csv", Body=body
    )
    assert cloud.wait_quiescent(timeout=240)

    # Then the monitor recorded the run: no drift, the champion scored on its fresh rows
    from mlops.runs import run_id_for_object

    stages = ledger_items(cloud, run_id_for_object("used_cars/day-2.csv", put["VersionId"]))
    monitor = stages["monitor"]
    assert monitor["status"] == "SUCCEEDED", monitor.get("reason")
    assert monitor["model_version"] == 1 and monitor["champion_run_id"] == CHAMPION_RUN
    assert monitor["drift"]["drifted_features"] == [] and not monitor["drift"]["target_drift"]
    quality = monitor["quality"]
    assert quality["status"] == "ok", quality
    assert quality["approval"] == pytest.approx(approval, rel=1e-6)
    assert 0 < quality["rows"] < monitor["counts"]["rows"]
    # and emitted the metrics the template's alarms watch
    metrics = emitted(cloud, "Monitor")
    assert metrics["DriftedColumns"] == 0
    assert metrics["FreshMetricRatio"] == pytest.approx(quality["ratio"], rel=1e-3)
