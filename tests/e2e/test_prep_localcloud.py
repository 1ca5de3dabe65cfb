"""Run Validated → start_preparation → Glue job on local Spark → Glue Job State Change → ledger.

Validated parquet for a run is put where the validate stage writes it and AWS-shaped
"Run Validated" events are emitted; from there the template's rules, the start_preparation
function, the Glue executor (glue/prepare.py on local Spark) and start_training's call of
``mlops.preparation.record_outcome`` do the rest. One local cloud serves the module.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from localcloud.cloud import LocalCloud
from localcloud.ledger_view import LedgerView, StageItem
from tests.conftest import load_event

pytestmark = pytest.mark.e2e

RUN = "20261127T083000Z-e2eprep1"
EMPTY_RUN = "20261127T083000Z-e2eprep0"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    executors = ["localcloud.executors.glue:GlueExecutor"]
    with LocalCloud(executors=executors, http_api=False, publish=True) as running:
        yield running


def validated_rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(9)
    return pd.DataFrame(
        {
            "listing_id": [f"L{i % (n - 10):06d}" for i in range(n)],
            "make": rng.choice(["toyota", "ford", "volkswagen"], n),
            "model": rng.choice(["corolla", "focus", "golf"], n),
            "year": rng.integers(2000, 2026, n),
            "mileage": rng.integers(0, 200_000, n),
            "fuel": rng.choice(["petrol", "diesel", "electric"], n),
            "transmission": rng.choice(["manual", "automatic"], n),
            "engine_size": rng.uniform(1.0, 3.0, n).round(1),
            "body": rng.choice(["sedan", "suv"], n),
            "posted_date": pd.Timestamp("2026-11-01"),
            "price": rng.uniform(2_000, 40_000, n).round(2),
            "source_url": "http://127.0.0.1/listing",
            "fetched_at": [f"2026-11-27T08:00:{i % 60:02d}Z" for i in range(n)],
            "ingest_time": pd.Timestamp("2026-11-27 08:30:00"),
        }
    )


def run_validated(cloud: LocalCloud, run_id: str, rows: pd.DataFrame | None) -> None:
    """Validated rows (if any) where the validate stage puts them, then its event."""
    bucket = cloud.resources["ValidatedBucket"]
    if rows is not None:
        buffer = io.BytesIO()
        rows.to_parquet(buffer)
        key = f"used_cars/ingest_date=2026-11-27/run_id={run_id}/src-e2e.snappy.parquet"
        cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    detail = load_event("run_validated.json")["detail"] | {
        "run_id": run_id,
        "validated_path": f"s3://{bucket}/used_cars/",
        "rows_valid": 0 if rows is None else len(rows),
    }
    if rows is None:
        # A run the validate stage counted rows for whose parquet never landed.
        detail["rows_valid"] = 5
    cloud.emit("mlops.pipeline", "Run Validated", detail)


def prepare_item(cloud: LocalCloud, run_id: str) -> StageItem:
    view = LedgerView(cloud.client("dynamodb"), cloud.resources["RunLedgerTable"])
    return next(i for i in view.run(run_id) if i.stage == "prepare")


@pytest.fixture(scope="module")
def pipeline_ran(cloud: LocalCloud) -> LocalCloud:
    run_validated(cloud, RUN, validated_rows(200))
    run_validated(cloud, EMPTY_RUN, None)
    assert cloud.wait_quiescent(timeout=600)
    return cloud


def test_a_validated_run_is_prepared_into_the_curated_zone(pipeline_ran):
    s3 = pipeline_ran.client("s3")
    bucket = pipeline_ran.resources["CuratedBucket"]
    prefix = f"dataset=used_cars/run_id={RUN}/"

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]

    assert any(k.startswith(f"{prefix}split=train/") for k in keys)
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{prefix}_manifest.json")["Body"].read()
    )
    assert manifest["counts"]["rows_in"] == 200
    assert manifest["counts"]["duplicates_dropped"] == 10


def test_the_ledger_records_prepare_succeeded_with_the_manifest_counts(pipeline_ran):
    item = prepare_item(pipeline_ran, RUN)

    assert item.status == "SUCCEEDED"
    assert item.counts["rows_in"] == 200
    assert item.counts["train"] + item.counts["validation"] + item.counts["test"] == 190


def test_a_run_without_validated_files_fails_prepare_with_the_job_error(pipeline_ran):
    item = prepare_item(pipeline_ran, EMPTY_RUN)

    assert item.status == "FAILED"
    assert item.reason.startswith(f"PreparationFailed: run {EMPTY_RUN} has no validated rows")


def test_each_signal_invoked_the_functions_the_template_routes_it_to(pipeline_ran):
    called: list[Any] = [r["function"] for r in pipeline_ran.invocations]

    # Two "Run Validated", then each run's Glue Job State Change drains the preparation queue.
    assert called.count("StartPreparationFunction") == 4
    assert "StartTrainingFunction" in called
