"""Cleaning: contract-driven normalisation shared by the Glue job and the model's inference."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mlops.contract import bundled_contract
from mlops.ml.cleaning import clean, deduplicate


@pytest.fixture
def contract() -> dict[str, Any]:
    return bundled_contract("used_cars").model_dump(mode="json")


def listing(**values: Any) -> dict[str, Any]:
    row = {
        "listing_id": "L000001",
        "make": "toyota",
        "model": "corolla",
        "year": 2015,
        "mileage": 60000,
        "fuel": "petrol",
        "transmission": "manual",
        "engine_size": 1.6,
        "body": "sedan",
        "posted_date": "2026-11-01",
        "price": 9000.0,
        "source_url": "http://127.0.0.1/listings/L000001",
        "fetched_at": "2026-11-27T08:00:00Z",
    }
    return row | values


def test_makes_spelt_messily_map_to_their_canonical_lower_case_name(contract):
    spellings = ["VW", "Volkswagen ", "TOYOTA", "Mercedes", "Mercedes  Benz", " bmw"]
    rows = pd.DataFrame([listing(listing_id=f"L00000{i}", make=m) for i, m in enumerate(spellings)])

    cleaned = clean(rows, contract)

    assert cleaned["make"].tolist() == [
        "volkswagen",
        "volkswagen",
        "toyota",
        "mercedes-benz",
        "mercedes-benz",
        "bmw",
    ]


def test_category_aliases_of_other_columns_apply_too(contract):
    rows = pd.DataFrame([listing(fuel="Gasoline", transmission="AUTO", body="Estate")])

    cleaned = clean(rows, contract)

    assert cleaned.loc[0, ["fuel", "transmission", "body"]].tolist() == [
        "petrol",
        "automatic",
        "wagon",
    ]


def test_numbers_printed_as_text_are_coerced_to_the_contract_type(contract):
    rows = pd.DataFrame([listing(year="2015", mileage="61,500", price="$9,950")])

    cleaned = clean(rows, contract)

    assert cleaned.loc[0, "year"] == 2015
    assert cleaned.loc[0, "mileage"] == 61500
    assert cleaned.loc[0, "price"] == 9950.0
    assert str(cleaned["year"].dtype) == "Int64"


def test_out_of_range_features_and_unknown_categories_become_missing_not_dropped(contract):
    rows = pd.DataFrame([listing(mileage=999_999, fuel="steam")])

    cleaned = clean(rows, contract)

    assert len(cleaned) == 1
    assert pd.isna(cleaned.loc[0, "mileage"])
    assert cleaned.loc[0, "fuel"] is None


def test_training_drops_rows_whose_target_is_missing_or_out_of_range(contract):
    rows = pd.DataFrame(
        [
            listing(listing_id="L000001", price=9000.0),
            listing(listing_id="L000002", price=None),
            listing(listing_id="L000003", price=10.0),
        ]
    )

    cleaned = clean(rows, contract, training=True)

    assert cleaned["listing_id"].tolist() == ["L000001"]


def test_inference_keeps_every_row_and_needs_no_target(contract):
    rows = pd.DataFrame([{"make": "VW", "year": 2015}, {"make": "kia"}])

    cleaned = clean(rows, contract, training=False)

    assert len(cleaned) == 2
    assert "price" not in cleaned.columns
    assert cleaned["make"].tolist() == ["volkswagen", "kia"]
    assert cleaned["mileage"].isna().all()


def test_dates_are_normalised_to_iso_utc_text(contract):
    rows = pd.DataFrame([listing(posted_date="2026-11-01"), listing(posted_date="not a date")])

    cleaned = clean(rows, contract, training=False)

    assert cleaned["posted_date"].tolist() == ["2026-11-01T00:00:00Z", None]


def test_the_key_keeps_its_case(contract):
    cleaned = clean(pd.DataFrame([listing(listing_id=" L000042 ")]), contract)

    assert cleaned.loc[0, "listing_id"] == "L000042"


def test_deduplication_keeps_the_latest_fetch_of_each_listing(contract):
    rows = pd.DataFrame(
        [
            listing(listing_id="L000001", price=9000.0, fetched_at="2026-11-27T08:00:00Z"),
            listing(listing_id="L000001", price=8500.0, fetched_at="2026-11-27T09:00:00Z"),
            listing(listing_id="L000002", price=5000.0),
        ]
    )

    unique = deduplicate(clean(rows, contract), contract)

    assert sorted(unique["listing_id"]) == ["L000001", "L000002"]
    assert unique.set_index("listing_id").loc["L000001", "price"] == 8500.0
