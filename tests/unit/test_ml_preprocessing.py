"""The preprocessing artifact: fitted on training rows only, enough on its own for inference."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.contract import bundled_contract
from mlops.ml.cleaning import UnusableData, clean
from mlops.ml.features import add_features
from mlops.ml.pipeline import prepare
from mlops.ml.preprocessing import fit, prepare_for_inference, transform


@pytest.fixture
def contract() -> dict[str, Any]:
    return bundled_contract("used_cars").model_dump(mode="json")


def listings(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "listing_id": [f"L{i:06d}" for i in range(n)],
            "make": rng.choice(["toyota", "ford", "VW", "bmw"], n),
            "model": rng.choice(["corolla", "focus", "golf", None], n),
            "year": rng.integers(2000, 2026, n),
            "mileage": rng.integers(0, 250_000, n),
            "fuel": rng.choice(["petrol", "diesel", "electric"], n),
            "transmission": rng.choice(["manual", "automatic"], n),
            "engine_size": rng.uniform(1.0, 3.0, n).round(1),
            "body": rng.choice(["sedan", "suv"], n),
            "posted_date": "2026-11-01",
            "price": rng.uniform(2_000, 60_000, n).round(2),
            "fetched_at": "2026-11-27T08:00:00Z",
        }
    )


def featured(rows: pd.DataFrame, contract: dict[str, Any]) -> pd.DataFrame:
    return add_features(clean(rows, contract), contract["name"])


def test_changing_validation_and_test_rows_does_not_change_the_artifact(contract):
    prepared = prepare(listings(400), contract, run_id="r1")
    rows = listings(400)
    held_out = prepared.splits["validation"]["listing_id"].tolist()
    held_out += prepared.splits["test"]["listing_id"].tolist()
    is_held_out = rows["listing_id"].isin(held_out)
    rows.loc[is_held_out, "mileage"] = 399_000
    rows.loc[is_held_out, "make"] = "kia"
    rows.loc[is_held_out, "price"] = 149_000.0

    again = prepare(rows, contract, run_id="r1")

    assert again.artifact == prepared.artifact
    assert again.splits["test"]["mileage"].eq(399_000).all()


def test_the_artifact_is_plain_json_with_what_inference_reads(contract):
    artifact = fit(featured(listings(100), contract), contract)

    assert json.loads(json.dumps(artifact)) == artifact
    assert artifact["target"] == "price"
    assert artifact["task"] == "regression"
    assert artifact["classes"] is None
    assert artifact["key_columns"] == ["listing_id"]
    assert set(artifact["categorical_features"]) <= set(artifact["feature_names"])
    assert "cat__make" in artifact["categorical_features"]
    assert "num__car_age" in artifact["feature_names"]
    assert "price" not in {f["source"] for f in artifact["numeric"]}


def test_numeric_imputation_uses_the_training_median_and_scaling_its_mean_and_std(contract):
    rows = featured(listings(101), contract)

    artifact = fit(rows, contract)

    mileage = next(f for f in artifact["numeric"] if f["source"] == "mileage")
    assert mileage["impute"] == float(rows["mileage"].median())
    assert mileage["mean"] == pytest.approx(rows["mileage"].mean())
    assert mileage["scale"] == pytest.approx(rows["mileage"].std())


def test_transform_imputes_scales_and_codes_in_feature_order(contract):
    rows = featured(listings(100), contract)
    artifact = fit(rows, contract)
    mileage = next(f for f in artifact["numeric"] if f["source"] == "mileage")
    make = next(f for f in artifact["categorical"] if f["source"] == "make")
    probe = rows.head(2).copy()
    probe["mileage"] = [np.nan, 10_000]
    probe["make"] = [make["vocabulary"][1], None]

    model_input = transform(probe, artifact)

    assert list(model_input.columns) == artifact["feature_names"]
    expected = (10_000 - mileage["mean"]) / mileage["scale"]
    assert model_input["num__mileage"].tolist()[1] == pytest.approx(expected)
    assert model_input["num__mileage"].tolist()[0] == pytest.approx(
        (mileage["impute"] - mileage["mean"]) / mileage["scale"]
    )
    # The most frequent make fills a missing one: code 0 in a most-frequent-first vocabulary.
    assert model_input["cat__make"].tolist() == [1.0, 0.0]


def test_a_category_training_never_saw_is_coded_missing(contract):
    rows = featured(listings(100), contract)
    artifact = fit(rows, contract)
    probe = rows.head(1).copy()
    probe["make"] = "nissan"

    assert math.isnan(transform(probe, artifact).loc[probe.index[0], "cat__make"])


def test_prepare_for_inference_needs_only_the_artifact_and_keeps_every_row(contract):
    rows = featured(listings(200), contract)
    artifact = json.loads(json.dumps(fit(rows, contract)))
    raw = pd.DataFrame(
        [
            {"make": "VW ", "model": "golf", "year": "2015", "mileage": 80_000, "fuel": "Gas"},
            {"make": "unknown brand"},
        ]
    )

    model_input = prepare_for_inference(raw, artifact)

    assert len(model_input) == 2
    assert list(model_input.columns) == artifact["feature_names"]
    make = next(f for f in artifact["categorical"] if f["source"] == "make")
    assert model_input.loc[0, "cat__make"] == make["vocabulary"].index("volkswagen")
    assert not model_input.drop(columns=["cat__make"]).loc[1].isna().any()


def test_training_rows_and_inference_rows_get_identical_features(contract):
    prepared = prepare(listings(300), contract, run_id="r1")
    test_rows = prepared.splits["test"]
    source_columns = list(contract["columns"])

    again = prepare_for_inference(test_rows[source_columns], prepared.artifact)

    names = prepared.artifact["feature_names"]
    pd.testing.assert_frame_equal(again[names], test_rows[names], check_dtype=False)


def test_classification_records_the_classes_seen_in_training():
    contract = {
        "name": "iris",
        "version": "1",
        "task": "classification",
        "target": "species",
        "keys": ["id"],
        "columns": {
            "id": {"type": "string", "feature": False},
            "petal_length": {"type": "float", "impute": "mean"},
            "species": {"type": "category", "feature": False},
        },
    }
    rows = pd.DataFrame(
        {
            "id": [f"i{i}" for i in range(60)],
            "petal_length": np.linspace(1, 6, 60),
            "species": ["Setosa ", "versicolor", "virginica"] * 20,
        }
    )

    prepared = prepare(rows, contract, run_id="r1", shares=(0.5, 0.25, 0.25))

    assert prepared.artifact["classes"] == ["setosa", "versicolor", "virginica"]
    assert prepared.artifact["feature_names"] == ["num__petal_length"]


def test_a_run_without_any_usable_row_is_refused_with_the_reason(contract):
    rows = listings(20)
    rows["price"] = None

    with pytest.raises(UnusableData, match="no usable rows in run r9"):
        prepare(rows, contract, run_id="r9")


def test_the_counts_reconcile_duplicates_and_dropped_rows(contract):
    rows = listings(300)
    rows.loc[:9, "price"] = None
    duplicates = rows.iloc[10:30].assign(fetched_at="2026-11-26T08:00:00Z")

    prepared = prepare(pd.concat([rows, duplicates]), contract, run_id="r1")

    counts = prepared.counts
    assert counts["rows_in"] == 320
    assert counts["rows_dropped"] == 10
    assert counts["duplicates_dropped"] == 20
    assert counts["train"] + counts["validation"] + counts["test"] == 290


def test_a_contract_without_keys_is_prepared_with_rows_as_their_own_identity():
    contract = {
        "name": "user_upload",
        "version": "1",
        "task": "regression",
        "target": "y",
        "keys": [],
        "columns": {
            "x": {"type": "float", "impute": "median"},
            "colour": {"type": "category"},
            "y": {"type": "float", "feature": False},
        },
    }
    rows = pd.DataFrame(
        {
            "x": np.arange(80, dtype=float),
            "colour": ["Red", "blue"] * 40,
            "y": np.arange(80, dtype=float) * 2,
        }
    )

    prepared = prepare(rows, contract, run_id="u1")

    counts = prepared.counts
    assert counts["duplicates_dropped"] == 0
    assert counts["train"] + counts["validation"] + counts["test"] == 80
    assert prepared.artifact["feature_names"] == ["num__x", "cat__colour"]
