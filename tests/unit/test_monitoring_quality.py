"""Fresh-data quality (mlops.monitoring.quality): the metric evaluation uses, and the rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, mean_absolute_error, mean_squared_error, r2_score

from mlops.monitoring.quality import (
    DEGRADED,
    INSUFFICIENT,
    OK,
    QualitySettings,
    fresh_rows,
    judge,
    key_tuples,
    score,
)


def test_metrics_equal_scikit_learns_on_the_same_predictions() -> None:
    # Given predictions of a regression and of a three-class classifier
    rng = np.random.default_rng(3)
    y, p = rng.normal(10_000, 3_000, 200), rng.normal(10_000, 3_000, 200)
    labels = rng.choice(["a", "b", "c"], 200)
    guesses = rng.choice(["a", "b", "d"], 200)

    # When the monitor scores them
    # Then they equal what training's scikit-learn metrics report
    assert score("rmse", y, p) == pytest.approx(np.sqrt(mean_squared_error(y, p)))
    assert score("mae", y, p) == pytest.approx(mean_absolute_error(y, p))
    assert score("r2", y, p) == pytest.approx(r2_score(y, p))
    assert score("f1_macro", labels, guesses) == pytest.approx(
        f1_score(labels, guesses, average="macro", zero_division=0)
    )


def test_an_error_metric_past_the_threshold_times_its_approval_value_is_degraded() -> None:
    # Given an approval RMSE of 1,000 and fresh errors of 1,300 on 100 rows
    y = np.zeros(100)

    # When the fresh RMSE is judged against 1.25 x the approval one
    result = judge("rmse", y, y + 1_300, approval=1_000.0)

    # Then it is degraded with the ratio 1.3; errors of 1,200 are not
    assert result.status == DEGRADED and result.ratio == pytest.approx(1.3)
    assert judge("rmse", y, y + 1_200, approval=1_000.0).status == OK


def test_a_score_where_higher_is_better_is_inverted_so_the_ratio_still_means_worse() -> None:
    # Given an f1 of 0.9 at approval and about 0.5 on fresh rows (most b taken for a)
    y = ["a"] * 60 + ["b"] * 40
    pred = ["a"] * 60 + ["a"] * 35 + ["b"] * 5

    # When it is judged
    result = judge("f1_macro", y, pred, approval=0.9)

    # Then the ratio is approval over fresh, past the threshold
    assert result.ratio == pytest.approx(0.9 / result.fresh)
    assert result.status == DEGRADED


def test_too_few_fresh_rows_are_insufficient_not_degraded() -> None:
    # Given 20 fresh rows with huge errors and a minimum of 50
    y = np.zeros(20)

    # When they are judged
    result = judge("rmse", y, y + 10_000, approval=1_000.0, settings=QualitySettings(min_rows=50))

    # Then no metric is computed and nothing is degraded
    assert result.status == INSUFFICIENT and result.fresh is None
    assert "20 fresh labelled rows" in (result.reason or "")


def test_fresh_rows_leave_out_the_keys_the_model_trained_on() -> None:
    # Given a run of four listings, two of which were in the champion's train split
    rows = pd.DataFrame({"listing_id": ["L1", "L2", "L3", "L4"], "price": [1, 2, 3, 4]})
    trained = pd.DataFrame({"listing_id": ["L2", "L4", "L9"]})

    # When the fresh rows are taken
    fresh = fresh_rows(rows, ["listing_id"], key_tuples(trained, ["listing_id"]))

    # Then only the two unseen listings remain
    assert fresh["listing_id"].tolist() == ["L1", "L3"]
