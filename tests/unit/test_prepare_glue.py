"""The Glue job on local Spark agrees with the pandas reference preparation (mlops.ml).

One small run is prepared once per module (Spark is slow on a shared 2-core box) and the
tests read its output files.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.contract import bundled_contract
from mlops.ml.pipeline import Prepared, prepare

ROOT = Path(__file__).resolve().parents[2]
RUN = "20261127T080000Z-0badcafe"


def used_car_rows(n: int, seed: int = 3) -> pd.DataFrame:
    """Validated-zone rows with messy labels, missing values, unusable targets and re-fetches."""
    rng = np.random.default_rng(seed)
    electric = rng.random(n) < 0.2
    rows = pd.DataFrame(
        {
            "listing_id": [f"L{i % (n - n // 8):06d}" for i in range(n)],
            "make": rng.choice(["toyota", "Ford", "VW", "BMW ", "Mercedes Benz", "kia"], n),
            "model": rng.choice(["corolla", "focus", "golf", None], n),
            "year": rng.integers(1995, 2027, n),
            "mileage": rng.integers(0, 300_000, n),
            "fuel": np.where(electric, "electric", rng.choice(["petrol", "Diesel", "hybrid"], n)),
            "transmission": rng.choice(["manual", "Auto"], n),
            "engine_size": np.where(electric, np.nan, rng.uniform(1.0, 3.5, n).round(1)),
            "body": rng.choice(["sedan", "SUV", "estate"], n),
            "posted_date": "2026-10-01",
            "price": np.where(rng.random(n) < 0.05, np.nan, rng.uniform(1_000, 60_000, n)),
            "source_url": "http://127.0.0.1/listing",
            "fetched_at": [f"2026-11-27T08:{i // 60 % 60:02d}:{i % 60:02d}Z" for i in range(n)],
        }
    )
    return rows


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from glue.prepare import spark_session

    with pytest.MonkeyPatch.context() as env:
        # Spark's Python workers import mlops.ml and the job's functions from these paths.
        env.setenv("PYSPARK_PYTHON", sys.executable)
        env.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "layers" / "shared")]))
        session = spark_session()
        yield session
        session.stop()


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return bundled_contract("used_cars").model_dump(mode="json")


def stage(tmp: Path, rows: pd.DataFrame, contract: dict[str, Any], run_id: str) -> list[str]:
    """Lay rows out as the validated zone does and return the job's arguments."""
    partition = tmp / "validated" / "used_cars" / "ingest_date=2026-11-27" / f"run_id={run_id}"
    partition.mkdir(parents=True)
    if len(rows):
        rows.to_parquet(partition / "part-0.parquet")
    (tmp / "contract.json").write_text(json.dumps(contract))
    return [
        "--JOB_NAME", "mlops-prepare-dev",
        "--job-bookmark-option", "job-bookmark-disable",
        "--run_id", run_id,
        "--dataset", "used_cars",
        "--validated_path", str(tmp / "validated" / "used_cars") + "/",
        "--curated_path", str(tmp / "curated" / "dataset=used_cars" / f"run_id={run_id}"),
        "--contract_uri", str(tmp / "contract.json"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def prepared_both_ways(spark, contract, tmp_path_factory) -> tuple[Path, Prepared]:
    from glue.prepare import parse_args, run

    rows = used_car_rows(400)
    tmp = tmp_path_factory.mktemp("glue")
    run(spark, parse_args(stage(tmp, rows, contract, RUN)))
    return tmp / "curated" / "dataset=used_cars" / f"run_id={RUN}", prepare(
        rows, contract, run_id=RUN
    )


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as objects with None for missing (parquet reads back pandas' str dtype)."""
    frame = frame.sort_values("listing_id").reset_index(drop=True)
    for name in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[name].dtype):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def close(a: Any, b: Any) -> bool:
    """Equal, with floats compared to 1e-9 relative (Spark and pandas sum in other orders)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_spark_and_pandas_curate_the_same_rows_and_values(prepared_both_ways, split):
    out, reference = prepared_both_ways
    expected = comparable(reference.splits[split])

    written = comparable(pd.read_parquet(out / f"split={split}"))

    assert list(written.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, rtol=1e-9)


def test_spark_fits_the_same_preprocessing_artifact_and_profile(prepared_both_ways):
    out, reference = prepared_both_ways

    artifact = json.loads((out / "artifacts" / "preprocessing.json").read_text())
    profile = json.loads((out / "artifacts" / "profile.json").read_text())

    assert close(artifact, reference.artifact)
    assert close(profile, reference.profile)


def test_the_manifest_reports_the_same_counts_and_is_written_with_the_contract(
    prepared_both_ways, contract
):
    out, reference = prepared_both_ways

    manifest = json.loads((out / "_manifest.json").read_text())

    assert manifest["counts"] == reference.counts
    assert manifest["counts"]["duplicates_dropped"] > 0
    assert manifest["counts"]["rows_dropped"] > 0
    assert manifest["run_id"] == RUN
    assert manifest["feature_names"] == reference.artifact["feature_names"]
    assert json.loads((out / "artifacts" / "contract.json").read_text()) == contract
    assert not list(out.rglob("_SUCCESS"))


def test_a_run_with_no_validated_rows_fails_with_the_reason(spark, contract, tmp_path):
    from glue.prepare import PreparationFailed, parse_args, run

    args = parse_args(stage(tmp_path, used_car_rows(10).iloc[0:0], contract, "r-empty"))

    with pytest.raises(PreparationFailed, match="run r-empty has no validated rows"):
        run(spark, args)
    assert not (tmp_path / "curated").exists()


def test_a_run_whose_rows_all_lack_a_target_fails_with_the_reason(spark, contract, tmp_path):
    from glue.prepare import PreparationFailed, parse_args, run

    rows = used_car_rows(30).assign(price=np.nan)
    args = parse_args(stage(tmp_path, rows, contract, "r-no-target"))

    with pytest.raises(PreparationFailed, match="no usable rows in run r-no-target"):
        run(spark, args)


def test_a_run_too_small_to_fill_its_splits_fails_with_the_reason_before_writing(
    spark, contract, tmp_path
):
    from glue.prepare import PreparationFailed, parse_args, run

    # given a run of 12 validated rows (the case: too few to train and evaluate on)
    args = parse_args(stage(tmp_path, used_car_rows(12), contract, "r-tiny"))

    # when the job runs, then it fails naming the short split and its minimum
    with pytest.raises(PreparationFailed, match=r"too few usable rows in run r-tiny .*minimum"):
        run(spark, args)
    # and nothing reaches the curated zone, so nothing can be trained on it
    assert not (tmp_path / "curated").exists()
