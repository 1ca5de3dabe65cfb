"""Whether a trained candidate goes to production: thresholds, baseline, champion, policy.

Pure functions on the evaluation a training job wrote (no AWS), so every branch is testable.
Runs on Python 3.10+ like the rest of the shared package.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Prefixes, so variants such as ``f1_macro`` or ``roc_auc_ovr`` find their direction.
_LOWER_IS_BETTER = ("rmse", "mae", "mse", "mape", "log_loss", "logloss", "neg_")
_HIGHER_IS_BETTER = (
    "r2",
    "accuracy",
    "balanced_accuracy",
    "f1",
    "auc",
    "roc_auc",
    "precision",
    "recall",
)


class Status(str, Enum):
    """The Model Registry's approval statuses."""

    APPROVED = "Approved"
    PENDING = "PendingManualApproval"
    REJECTED = "Rejected"


class Bounds(BaseModel):
    """Acceptable range of one metric (the contract's ``acceptance`` section)."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None


class Evaluation(BaseModel):
    """The ``evaluation.json`` a training job ships inside model.tar.gz (see ARCHITECTURE.md)."""

    model_config = ConfigDict(extra="allow")

    task: str = "regression"
    metric: str
    # Training states the direction when it knows it; otherwise the metric's name decides.
    higher_is_better: bool | None = None
    candidate: dict[str, float]
    baseline: dict[str, float] = Field(default_factory=dict)
    champion: dict[str, float] | None = None
    test_rows: int | None = None
    sample: dict[str, list[Any]] | None = None
    feature_importance: dict[str, float] | None = None
    confusion_matrix: Any = None
    noise_floor: float | None = None


class Decision(BaseModel):
    """The outcome and every number it was based on, so a reader can check it."""

    status: Status
    metric: str
    lower_is_better: bool
    candidate: float
    baseline: float | None
    champion: float | None
    improvement_vs_baseline: float | None
    improvement_vs_champion: float | None
    margin: float
    policy: Literal["auto", "manual"]
    reasons: list[str]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def lower_is_better(metric: str) -> bool:
    """Direction of a metric: error metrics fall, scores rise; an unknown metric is an error."""
    name = metric.lower()
    if name.startswith(_LOWER_IS_BETTER):
        return True
    if name.startswith(_HIGHER_IS_BETTER):
        return False
    raise ValueError(f"unknown metric {metric!r}: cannot tell whether lower or higher is better")


def improvement(candidate: float, reference: float, lower: bool) -> float:
    """Relative improvement of ``candidate`` over ``reference`` (positive = better)."""
    gain = reference - candidate if lower else candidate - reference
    if reference == 0:
        return math.inf if gain > 0 else (0.0 if gain == 0 else -math.inf)
    return gain / abs(reference)


def _threshold_failures(candidate: dict[str, float], thresholds: dict[str, Bounds]) -> list[str]:
    failures = []
    for name, bounds in sorted(thresholds.items()):
        value = candidate.get(name)
        if value is None or not math.isfinite(value):
            failures.append(f"{name} missing from the candidate's metrics")
            continue
        if bounds.min is not None and value < bounds.min:
            failures.append(f"{name} {value:.6g} below the minimum {bounds.min:g}")
        if bounds.max is not None and value > bounds.max:
            failures.append(f"{name} {value:.6g} above the maximum {bounds.max:g}")
    return failures


def decide(
    evaluation: Evaluation | dict[str, Any],
    policy: Literal["auto", "manual"],
    thresholds: dict[str, Bounds] | dict[str, dict[str, float]] | None = None,
    margin: float = 0.0,
) -> Decision:
    """Rejected below the thresholds or the naive baseline; else Approved (auto policy, beats the
    champion by ``margin`` relative or no champion) or PendingManualApproval."""
    ev = evaluation if isinstance(evaluation, Evaluation) else Evaluation.model_validate(evaluation)
    bounds = {
        k: v if isinstance(v, Bounds) else Bounds.model_validate(v)
        for k, v in (thresholds or {}).items()
    }
    lower = lower_is_better(ev.metric) if ev.higher_is_better is None else not ev.higher_is_better
    if ev.metric not in ev.candidate:
        raise ValueError(f"the evaluation's candidate metrics lack its own metric {ev.metric!r}")
    candidate = float(ev.candidate[ev.metric])
    baseline = ev.baseline.get(ev.metric)
    champion = ev.champion.get(ev.metric) if ev.champion else None
    vs_baseline = improvement(candidate, baseline, lower) if baseline is not None else None
    vs_champion = improvement(candidate, champion, lower) if champion is not None else None

    reasons = _threshold_failures(ev.candidate, bounds)
    if baseline is None:
        reasons.append(f"no naive baseline {ev.metric} to compare with")
    elif vs_baseline is None or vs_baseline <= 0:
        reasons.append(
            f"{ev.metric} {candidate:.6g} does not beat the naive baseline {baseline:.6g}"
        )

    if reasons:
        status = Status.REJECTED
    elif policy == "manual":
        status = Status.PENDING
        reasons.append("approval policy is manual")
    elif champion is None:
        status = Status.APPROVED
        reasons.append("no champion in production; beats the baseline")
    elif vs_champion is not None and vs_champion > 0 and vs_champion >= margin:
        status = Status.APPROVED
        reasons.append(
            f"{ev.metric} {candidate:.6g} beats the champion {champion:.6g} "
            f"by {vs_champion:.2%} (margin {margin:.2%})"
        )
    else:
        status = Status.PENDING
        reasons.append(
            f"{ev.metric} {candidate:.6g} does not beat the champion {champion:.6g} "
            f"by the margin {margin:.2%}; a person decides"
        )
    return Decision(
        status=status,
        metric=ev.metric,
        lower_is_better=lower,
        candidate=candidate,
        baseline=baseline,
        champion=champion,
        improvement_vs_baseline=vs_baseline,
        improvement_vs_champion=vs_champion,
        margin=margin,
        policy=policy,
        reasons=reasons,
    )
