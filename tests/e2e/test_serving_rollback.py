"""The serving rule on the local cloud, driven only by what people do (`mlops approve`, `reject`,
`pin`, `unpin`): the registry's events and the pin event reach the deploy function through the
template's rules, under its IAM policy, and the endpoint's answers show which version serves.
"""

from __future__ import annotations

import pytest

from localcloud import model_commands
from localcloud.cloud import LocalCloud
from tests.e2e.test_deploy_local import (
    ENDPOINT,
    RECORDS,
    cloud,  # noqa: F401 - the fixture
    expected,
    fitted,
    register,
)

pytestmark = pytest.mark.e2e


def serves(running: LocalCloud) -> list[float]:
    """Once the cloud has settled, what `mlops predict` answers."""
    assert running.wait_quiescent(timeout=120)
    return model_commands.predict(running, RECORDS)["predictions"]


def test_approve_reject_pin_and_unpin_decide_which_version_serves(cloud) -> None:  # noqa: F811
    first, second = fitted(slope=500), fitted(slope=800)
    first_run = register(cloud, 1, first, "PendingManualApproval")
    register(cloud, 2, second, "PendingManualApproval")
    # approving v1 then v2: the newest Approved serves
    model_commands.approve(cloud, 1)
    assert serves(cloud) == pytest.approx(expected(first))
    assert model_commands.approve(cloud, 2)["serving"] == "v2 (newest Approved)"
    assert serves(cloud) == pytest.approx(expected(second))
    # pinning v1 serves it; unpinning serves the newest again
    model_commands.pin(cloud, 1)
    assert serves(cloud) == pytest.approx(expected(first))
    model_commands.unpin(cloud)
    assert serves(cloud) == pytest.approx(expected(second))
    # rejecting the serving v2 serves the next newest Approved
    model_commands.reject(cloud, 2)
    assert serves(cloud) == pytest.approx(expected(first))
    # rejecting the last Approved version takes the endpoint out of service, on the record
    assert model_commands.reject(cloud, 1)["serving"] == "nothing (no Approved version)"
    assert cloud.wait_quiescent(timeout=60)
    sagemaker = cloud.client("sagemaker")
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == []
    item = cloud.client("dynamodb").get_item(
        TableName=cloud.resources["RunLedgerTable"],
        Key={"run_id": {"S": first_run}, "stage": {"S": "out_of_service"}},
    )["Item"]
    assert f"endpoint {ENDPOINT} deleted" in item["reason"]["S"]
    assert cloud.dead_letters == []
