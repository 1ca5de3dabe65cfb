"""decide(): thresholds, naive baseline, champion margin, no champion, approval policy."""

from __future__ import annotations

import pytest

from mlops.evaluation import Status, decide, lower_is_better


def evaluation(
    candidate: float, baseline: float, champion: float | None, metric: str = "rmse"
) -> dict:
    return {
        "task": "regression" if metric in ("rmse", "mae", "r2") else "classification",
        "metric": metric,
        "candidate": {metric: candidate, "r2": 0.8},
        "baseline": {metric: baseline},
        "champion": None if champion is None else {metric: champion},
    }


def test_candidate_outside_the_contract_thresholds_is_rejected() -> None:
    # given a candidate whose r2 is below the contract's minimum
    ev = evaluation(candidate=1000, baseline=5000, champion=None)
    # when deciding
    decision = decide(ev, "auto", {"r2": {"min": 0.9}})
    # then it is rejected and the reason names the metric
    assert decision.status is Status.REJECTED
    assert "r2" in decision.reason and "minimum" in decision.reason


def test_candidate_above_a_maximum_threshold_is_rejected() -> None:
    decision = decide(evaluation(4000, 5000, None), "auto", {"rmse": {"max": 3000}})
    assert decision.status is Status.REJECTED
    assert "maximum" in decision.reason


def test_a_threshold_on_a_metric_the_candidate_lacks_rejects_it() -> None:
    decision = decide(evaluation(1000, 5000, None), "auto", {"mape": {"max": 0.2}})
    assert decision.status is Status.REJECTED
    assert "mape missing" in decision.reason


def test_candidate_that_does_not_beat_the_naive_baseline_is_rejected() -> None:
    # given an error no better than predicting the mean
    decision = decide(evaluation(candidate=5000, baseline=5000, champion=None), "auto")
    assert decision.status is Status.REJECTED
    assert "baseline" in decision.reason


def test_without_a_champion_a_candidate_that_beats_the_baseline_is_approved() -> None:
    decision = decide(evaluation(candidate=1000, baseline=5000, champion=None), "auto")
    assert decision.status is Status.APPROVED
    assert decision.champion is None


def test_candidate_beating_the_champion_by_the_margin_is_approved() -> None:
    # given a 10 % lower error than the champion and a 5 % margin
    decision = decide(evaluation(candidate=900, baseline=5000, champion=1000), "auto", margin=0.05)
    assert decision.status is Status.APPROVED
    assert decision.improvement_vs_champion == pytest.approx(0.1)


def test_candidate_better_than_the_champion_but_within_the_margin_waits_for_a_person() -> None:
    decision = decide(evaluation(candidate=980, baseline=5000, champion=1000), "auto", margin=0.05)
    assert decision.status is Status.PENDING
    assert "margin" in decision.reason


def test_candidate_worse_than_the_champion_waits_for_a_person() -> None:
    decision = decide(evaluation(candidate=1100, baseline=5000, champion=1000), "auto")
    assert decision.status is Status.PENDING


def test_manual_policy_never_approves_automatically() -> None:
    decision = decide(evaluation(candidate=500, baseline=5000, champion=1000), "manual")
    assert decision.status is Status.PENDING
    assert "manual" in decision.reason


def test_manual_policy_still_rejects_a_candidate_below_the_baseline() -> None:
    decision = decide(evaluation(candidate=6000, baseline=5000, champion=None), "manual")
    assert decision.status is Status.REJECTED


def test_higher_is_better_metrics_compare_the_other_way() -> None:
    # given an f1 score that rises above the champion's
    decision = decide(
        evaluation(candidate=0.9, baseline=0.4, champion=0.8, metric="f1_macro"), "auto", margin=0.1
    )
    assert decision.status is Status.APPROVED
    assert decision.lower_is_better is False


@pytest.mark.parametrize(
    ("metric", "lower"),
    [
        ("rmse", True),
        ("mae", True),
        ("log_loss", True),
        ("r2", False),
        ("accuracy", False),
        ("f1_macro", False),
        ("roc_auc", False),
    ],
)
def test_metric_direction(metric: str, lower: bool) -> None:
    assert lower_is_better(metric) is lower


def test_the_direction_stated_by_training_wins_over_the_metric_name() -> None:
    # given a custom metric training declares higher-is-better
    ev = evaluation(candidate=0.7, baseline=0.5, champion=0.6, metric="custom_score")
    ev["higher_is_better"] = True
    ev["candidate"]["custom_score"] = 0.7
    decision = decide(ev, "auto")
    assert decision.status is Status.APPROVED
    assert decision.lower_is_better is False


def test_an_unknown_metric_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        decide(evaluation(1, 2, None, metric="banana"), "auto")
