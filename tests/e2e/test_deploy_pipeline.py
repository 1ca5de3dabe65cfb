"""From a prepared run to a served prediction: training, evaluation, registry, deploy, endpoint.

The training stage's own fixtures provide a curated used_cars run; everything after the
"Glue Job State Change" is the template's rules and the real code: train.py under the
training executor, the evaluate function, the registry's event, the deploy function, and the
artifact's inference.py behind the SageMaker runtime API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud import model_commands
from localcloud.cloud import LocalCloud
from tests.e2e.test_train_localcloud import RUN, prepared_signal, put_prepared_run

pytestmark = pytest.mark.e2e

EXECUTORS = [
    "localcloud.executors.training:TrainingExecutor",
    "localcloud.executors.endpoint:EndpointExecutor",
    "localcloud.executors.registry:ModelRegistryEvents",
]
CAR = {
    "make": "toyota", "model": "corolla", "year": 2018, "mileage": 40000, "fuel": "petrol",
    "transmission": "automatic", "engine_size": 1.8, "body": "sedan", "posted_date": "2026-11-01",
}  # fmt: skip


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(executors=EXECUTORS, http_api=False, publish=True) as running:
        yield running


def stages(cloud: LocalCloud) -> dict[str, dict[str, str]]:
    items = cloud.client("dynamodb").query(
        TableName=cloud.resources["RunLedgerTable"],
        KeyConditionExpression="run_id = :r",
        ExpressionAttributeValues={":r": {"S": RUN}},
    )["Items"]
    return {
        item["stage"]["S"]: {k: next(iter(v.values())) for k, v in item.items()} for item in items
    }


def test_a_prepared_run_ends_as_a_served_model_with_its_report(cloud, tmp_path: Path) -> None:
    # given a prepared run and the auto approval policy
    prepared_signal(cloud, put_prepared_run(cloud, tmp_path))
    # when the pipeline settles
    assert cloud.wait_quiescent(timeout=300)
    # then every stage after preparation succeeded, version 1 serves, and the report exists
    ledger = stages(cloud)
    assert {s: ledger[s]["status"] for s in ("train", "evaluate", "deploy")} == {
        "train": "SUCCEEDED", "evaluate": "SUCCEEDED", "deploy": "SUCCEEDED",
    }  # fmt: skip
    assert ledger["evaluate"]["decision"] == "Approved"
    answer = model_commands.predict(cloud, CAR)
    assert answer["model"]["run_id"] == RUN
    assert len(answer["predictions"]) == 1 and answer["predictions"][0] > 0
    bucket, key = ledger["evaluate"]["report_url"].removeprefix("s3://").split("/", 1)
    page = cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert "Predicted vs actual" in page and RUN in page
    assert cloud.dead_letters == []


def test_with_manual_approval_the_model_is_served_only_after_mlops_approve(tmp_path: Path) -> None:
    manual = {"ApprovalPolicy": "manual"}
    with LocalCloud(parameters=manual, executors=EXECUTORS, http_api=False) as running:
        cloud = running
        prepared_signal(cloud, put_prepared_run(cloud, tmp_path))
        assert cloud.wait_quiescent(timeout=300)
        # the run stops at PendingManualApproval with nothing deployed
        assert stages(cloud)["evaluate"]["status"] == "PENDING"
        assert cloud.client("sagemaker").list_endpoints()["Endpoints"] == []
        # `mlops approve 1`
        model_commands.approve(cloud, 1)
        assert cloud.wait_quiescent(timeout=120)
        assert stages(cloud)["deploy"]["status"] == "SUCCEEDED"
        assert model_commands.predict(cloud, CAR)["model"]["run_id"] == RUN
