"""Re-uploads on the local cloud: a key uploaded again into an open run replaces its rows; an
object arriving into a run that is already validated and prepared is refused with a reason,
and the lake is left as the ledger counts it. Every scenario ends with the reconciliation."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from mlops import lake
from mlops.runs import run_id_for_object
from tests.e2e.reconcile import assert_lake_matches_ledger, ledger_items
from tests.unit.test_validation_checks import car

pytestmark = pytest.mark.e2e

DAY = "2026-11-27"
OPEN_RUN = "20261127T083000Z-e2ereup1"
DONE_RUN = "20261127T083000Z-e2ereup2"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    # The Glue executor prepares completed runs (local Spark), so a late object finds its run
    # prepared, with curated rows and prepare counts to reconcile.
    executors = ["localcloud.executors.glue:GlueExecutor"]
    with LocalCloud(executors=executors, http_api=False, publish=True) as running:
        yield running


def jsonl_gz(records: list[dict[str, Any]]) -> bytes:
    return gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())


def cars(first: int, count: int, **changes: Any) -> list[dict[str, Any]]:
    return [car(i, **changes) for i in range(first, first + count)]


def put(cloud: LocalCloud, key: str, body: bytes) -> str:
    """Put an object in the raw zone and wait until the pipeline is idle; its version id."""
    bucket = cloud.resources["RawBucket"]
    version = cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=body)["VersionId"]
    assert cloud.wait_quiescent(timeout=600)
    return version


def part_key(run_id: str, number: int) -> str:
    return lake.raw_part_key("used_cars", DAY, run_id, number)


def manifest(run_id: str, *keys: str) -> bytes:
    parts = [{"key": key} for key in keys]
    return json.dumps(
        {"run_id": run_id, "dataset": "used_cars", "ingest_date": DAY, "parts": parts}
    ).encode()


def zone_keys(cloud: LocalCloud, run_id: str) -> dict[str, list[str]]:
    """Every object of the run in the validated and quarantine buckets (reports aside)."""
    s3 = cloud.client("s3")
    found: dict[str, list[str]] = {}
    for bucket in ("ValidatedBucket", "QuarantineBucket"):
        listed = s3.list_objects_v2(Bucket=cloud.resources[bucket]).get("Contents", [])
        found[bucket] = sorted(
            o["Key"]
            for o in listed
            if f"run_id={run_id}/" in o["Key"] and "/refused/" not in o["Key"]
        )
    return found


def test_a_key_uploaded_again_into_an_open_run_replaces_its_rows(cloud: LocalCloud) -> None:
    # given a part of a run whose manifest has not arrived, uploaded with 40 listings
    key = part_key(OPEN_RUN, 0)
    put(cloud, key, jsonl_gz(cars(1, 40)))

    # when the same key is uploaded again with 35 listings, two of them invalid, and then
    # the manifest completes the run
    put(cloud, key, jsonl_gz(cars(101, 33) + cars(201, 2, year=1800)))
    put(cloud, lake.raw_manifest_key("used_cars", DAY, OPEN_RUN), manifest(OPEN_RUN, key))

    # then the zones hold the second version once, and the ledger counts it alone
    found = assert_lake_matches_ledger(cloud, OPEN_RUN)
    source = f"s3://{cloud.resources['RawBucket']}/{key}"
    assert (found.validated[source], found.quarantined[source]) == (33, 2)
    counts = ledger_items(cloud, OPEN_RUN)["validate"]["counts"]
    assert (counts["rows_in"], counts["rows_valid"], counts["rows_quarantined"]) == (35, 33, 2)


def test_a_lone_upload_sent_twice_is_two_runs_each_holding_one_copy(cloud: LocalCloud) -> None:
    # given a user's file outside any run prefix
    key = "used_cars/reuploaded.jsonl.gz"
    first = put(cloud, key, jsonl_gz(cars(1, 30)))

    # when a corrected version of it is uploaded
    second = put(cloud, key, jsonl_gz(cars(1, 32)))

    # then each version is its own run with its own rows, once
    runs = [run_id_for_object(key, version) for version in (first, second)]
    assert runs[0] != runs[1]
    source = f"s3://{cloud.resources['RawBucket']}/{key}"
    counted = [assert_lake_matches_ledger(cloud, run).validated[source] for run in runs]
    assert counted == [30, 32]


def test_an_object_arriving_into_a_prepared_run_is_refused_and_the_lake_is_unchanged(
    cloud: LocalCloud,
) -> None:
    # given a run validated and prepared from one part of 80 listings
    key = part_key(DONE_RUN, 0)
    put(cloud, key, jsonl_gz(cars(1, 80)))
    put(cloud, lake.raw_manifest_key("used_cars", DAY, DONE_RUN), manifest(DONE_RUN, key))
    stages = ledger_items(cloud, DONE_RUN)
    assert stages["prepare"]["status"] == "SUCCEEDED", stages["prepare"].get("reason")
    before = assert_lake_matches_ledger(cloud, DONE_RUN)
    objects = zone_keys(cloud, DONE_RUN)

    # when the part is uploaded again with fewer rows, and a part the manifest never named
    # arrives as well
    late = part_key(DONE_RUN, 1)
    put(cloud, key, jsonl_gz(cars(1, 50)))
    put(cloud, late, jsonl_gz(cars(500, 10)))

    # then both are refused with the reason in the ledger and a report each; the run's
    # zones, counts and stages are as they were, and still reconcile
    validate = ledger_items(cloud, DONE_RUN)["validate"]
    for refused in (key, late):
        reason = validate["refused"][refused]["reason"]
        assert f"run {DONE_RUN} is already validated" in reason
        assert "upload into a new run prefix" in reason
    assert late not in validate["part_counts"]
    assert zone_keys(cloud, DONE_RUN) == objects
    after = assert_lake_matches_ledger(cloud, DONE_RUN)
    assert (after.raw, after.validated, after.curated) == (
        before.raw,
        before.validated,
        before.curated,
    )
    assert after.stages["validate"]["counts"] == before.stages["validate"]["counts"]
    assert after.stages["prepare"]["counts"] == before.stages["prepare"]["counts"]
    reports = cloud.client("s3").list_objects_v2(
        Bucket=cloud.resources["QuarantineBucket"],
        Prefix=f"reports/dataset=used_cars/run_id={DONE_RUN}/refused/",
    )
    assert len(reports.get("Contents", [])) == 2
