"""The data profile: per-column statistics of the training rows, the drift baseline."""

from __future__ import annotations

import pandas as pd

from mlops.contract import bundled_contract
from mlops.ml.profile import OTHER, PROFILE_TOP, profile
from mlops.ml.statistics import rank_quantile


def test_numeric_columns_have_counts_moments_extremes_and_quantiles():
    contract = bundled_contract("used_cars").model_dump(mode="json")
    rows = pd.DataFrame({"mileage": [10.0, 20.0, None, 40.0], "price": [1.0, 2.0, 3.0, 4.0]})

    stats = profile(rows, contract)["numeric"]["mileage"]

    assert (stats["count"], stats["nulls"]) == (3, 1)
    assert (stats["min"], stats["max"]) == (10.0, 40.0)
    assert stats["mean"] == rows["mileage"].mean()
    assert stats["std"] == rows["mileage"].std()
    assert stats["quantiles"]["0.5"] == 20.0


def test_categories_keep_the_most_frequent_and_sum_the_rest_as_other():
    contract = bundled_contract("used_cars").model_dump(mode="json")
    models = [f"m{i:03d}" for i in range(PROFILE_TOP + 10)] + ["m000"] * 5
    rows = pd.DataFrame({"model": models, "price": 1.0})

    stats = profile(rows, contract)["categorical"]["model"]

    assert stats["distinct"] == PROFILE_TOP + 10
    assert next(iter(stats["frequencies"])) == "m000"
    assert stats["frequencies"][OTHER] == 10
    assert sum(stats["frequencies"].values()) == len(models)


def test_rank_quantile_is_the_smallest_value_covering_the_share():
    values = [1.0, 2.0, 3.0, 4.0]

    assert [rank_quantile(values, q) for q in (0.25, 0.5, 0.51, 1.0)] == [1.0, 2.0, 3.0, 4.0]
    assert rank_quantile([], 0.5) is None
