"""The unchanged-window skip end to end on the strict local cloud.

Two uploads of the same listings on two ingest dates: the first is validated, prepared on its
window (local Spark), trained and registered Approved with its window's fingerprint; the
second's window (both days, the latest copy of each key: the same rows) has that fingerprint,
so its preparation is SKIPPED with the reason and no second training job runs. Every call is
made by the functions under their own template roles.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcloud.cloud import LocalCloud
from mlops import naming
from tests.e2e.reconcile import assert_lake_matches_ledger, ledger_items
from tests.e2e.uploads import as_csv, car, upload

pytestmark = pytest.mark.e2e

LISTINGS = [car(n) for n in range(240)]


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    executors = [
        "localcloud.executors.glue:GlueExecutor",
        "localcloud.executors.training:TrainingExecutor",
        # SageMaker's UpdateModelPackage keeps the metadata an approval does not name (moto's
        # drops it): the champion's fingerprint must survive its approval.
        "localcloud.executors.registry:ModelRegistryEvents",
    ]
    with LocalCloud(executors=executors, http_api=False, publish=True) as running:
        yield running


def test_a_second_upload_of_the_same_data_skips_preparation_and_training(cloud: LocalCloud):
    sagemaker = cloud.client("sagemaker")
    group = naming.model_package_group("used_cars", "dev")

    # given day 1's upload, prepared, trained and approved: the champion
    day1, _ = upload(cloud, "used_cars/ingest_date=2026-11-27/cars.csv", as_csv(LISTINGS))
    assert cloud.wait_quiescent(timeout=240)
    assert ledger_items(cloud, day1)["evaluate"]["status"] == "SUCCEEDED"
    (package,) = sagemaker.list_model_packages(ModelPackageGroupName=group)[
        "ModelPackageSummaryList"
    ]
    assert package["ModelApprovalStatus"] == "Approved"
    described = sagemaker.describe_model_package(ModelPackageName=package["ModelPackageArn"])
    metadata = described["CustomerMetadataProperties"]
    fingerprint = ledger_items(cloud, day1)["prepare"]["fingerprint"]
    assert metadata["window_fingerprint"] == fingerprint

    # when the same listings are uploaded on day 2
    day2, _ = upload(cloud, "used_cars/ingest_date=2026-11-28/cars.csv", as_csv(LISTINGS))
    assert cloud.wait_quiescent(timeout=240)

    # then day 2's preparation read both days, found the champion's data, and says so
    prepare = ledger_items(cloud, day2)["prepare"]
    assert prepare["status"] == "SKIPPED"
    assert prepare["reason"] == (
        f"window unchanged since the champion (run {day1}) (fingerprint {fingerprint})"
    )
    assert [r["run_id"] for r in prepare["window"]["runs"]] == [day1, day2]
    assert prepare["counts"]["rows_in"] == 2 * len(LISTINGS)
    assert prepare["counts"]["rows_unique"] == len(LISTINGS)
    # and no second training job, no second model package
    jobs = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in jobs] == [naming.training_job_name("used_cars", day1)]
    assert "train" not in ledger_items(cloud, day2)
    # and the counts still reconcile, run by run of the window, with the lake
    assert_lake_matches_ledger(cloud, day2)
    assert_lake_matches_ledger(cloud, day1)
