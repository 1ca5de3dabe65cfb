"""The check every end-to-end scenario ends with (tests/e2e/lake_check.py) can fail: a lake that
lost rows the ledger counts stops the scenario's cloud with a failure naming the run."""

from __future__ import annotations

import pytest

from localcloud.cloud import LocalCloud
from mlops.runs import run_id_for_object

pytestmark = pytest.mark.e2e

CSV = (
    "listing_id,make,model,year,mileage,fuel,transmission,engine_size,body,posted_date,price\n"
    "L000001,toyota,corolla,2018,42000,petrol,automatic,1.8,sedan,2026-11-01,13500\n"
    "L000002,ford,focus,2016,61000,diesel,manual,1.6,hatchback,2026-11-02,9800\n"
    "L000003,kia,picanto,2020,15000,petrol,manual,1.0,hatchback,2026-11-03,abc\n"
)


def test_a_validated_row_missing_from_the_lake_fails_the_scenario_when_its_cloud_stops() -> None:
    # given a run validated on the local cloud, whose validated parquet is then deleted
    cloud = LocalCloud(executors=[], http_api=False, publish=False).start()
    s3 = cloud.client("s3")
    key = "used_cars/three.csv"
    put = s3.put_object(Bucket=cloud.resources["RawBucket"], Key=key, Body=CSV.encode())
    assert cloud.wait_quiescent(timeout=120)
    bucket = cloud.resources["ValidatedBucket"]
    for found in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=found["Key"])

    # when the cloud stops at the end of the scenario
    with pytest.raises(pytest.fail.Exception) as failed:
        cloud.stop()

    # then the failure names the run, and the cloud is stopped all the same
    assert run_id_for_object(key, put["VersionId"]) in str(failed.value)
    assert "the lake and the ledger disagree" in str(failed.value)
    assert cloud._server is None


def test_a_run_whose_lake_and_ledger_agree_stops_quietly() -> None:
    cloud = LocalCloud(executors=[], http_api=False, publish=False).start()
    s3 = cloud.client("s3")
    s3.put_object(Bucket=cloud.resources["RawBucket"], Key="used_cars/ok.csv", Body=CSV.encode())
    assert cloud.wait_quiescent(timeout=120)

    cloud.stop()

    assert cloud._server is None
