"""Row-level derived features, selected per dataset by the registry."""

from __future__ import annotations

import math

import pandas as pd

from mlops.ml.features import FEATURES, add_features, feature_set


def cars() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "year": [2016, 2026, 2010],
            "mileage": [50_000, 3_000, 0],
            "fuel": ["petrol", "electric", None],
            "engine_size": [1.6, None, None],
            "posted_date": ["2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z", None],
        }
    )


def test_car_age_is_posting_year_minus_model_year():
    featured = add_features(cars(), "used_cars")

    assert featured.loc[0, "car_age"] == 10
    assert featured.loc[1, "car_age"] == 0


def test_a_car_without_a_posting_date_is_aged_as_of_today():
    featured = add_features(cars(), "used_cars")

    assert featured.loc[2, "car_age"] == pd.Timestamp.now(tz="UTC").year - 2010


def test_mileage_per_year_never_divides_by_less_than_half_a_year():
    featured = add_features(cars(), "used_cars")

    assert featured.loc[0, "mileage_per_year"] == 5_000
    assert featured.loc[1, "mileage_per_year"] == 6_000


def test_log_mileage_and_is_electric():
    featured = add_features(cars(), "used_cars")

    assert featured.loc[0, "log_mileage"] == math.log1p(50_000)
    assert featured["is_electric"].tolist()[:2] == [0.0, 1.0]
    assert math.isnan(featured.loc[2, "is_electric"])


def test_an_electric_car_has_a_zero_litre_engine_but_unknown_fuel_stays_unknown():
    featured = add_features(cars(), "used_cars")

    assert featured.loc[1, "engine_size"] == 0.0
    assert math.isnan(featured.loc[2, "engine_size"])


def test_the_registry_declares_the_columns_each_feature_set_adds():
    featured = add_features(cars(), "used_cars")

    added = set(featured.columns) - set(cars().columns)
    declared = FEATURES["used_cars"]
    assert added == set(declared.numeric) | set(declared.categorical)


def test_an_unknown_dataset_gets_no_derived_features_and_still_works():
    frame = pd.DataFrame({"sepal_length": [5.1], "species": ["setosa"]})

    featured = add_features(frame, "iris")

    pd.testing.assert_frame_equal(featured, frame)
    assert feature_set("iris").numeric == ()
