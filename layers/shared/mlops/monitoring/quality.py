"""Model quality on fresh labelled rows, and the rule that calls it degraded.

Pure (stdlib, numpy, pandas). A scraped listing carries its asking price, so every run brings
labels: the champion is scored on the run's rows it did not train on (their keys were in
neither its train nor its validation split), with the decision metric evaluation used
(``training/train.py`` ``DECISION_METRIC``: rmse for regression, f1_macro for classification),
and compared with the test score it was approved on (the model package's ``candidate``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

# The metric evaluation decides on, per task (the same table as training/train.py).
DECISION_METRIC = {"regression": "rmse", "classification": "f1_macro"}
# Error metrics fall when the model gets better; the rest rise (mlops.evaluation.decision).
LOWER_IS_BETTER = ("rmse", "mae", "mse", "mape", "log_loss", "logloss")

OK, DEGRADED, INSUFFICIENT, SKIPPED = "ok", "degraded", "insufficient", "skipped"


@dataclass(frozen=True)
class QualitySettings:
    # Degraded when the fresh metric is worse than the approval test metric by this factor
    # (template parameter FreshQualityThreshold): 1.25 = 25% more error than at approval.
    threshold: float = 1.25
    # An RMSE on n rows has a relative standard error of about sqrt((kurtosis - 1) / (4 n)):
    # ~7% at 50 normal errors, small beside the 25% the threshold allows.
    min_rows: int = 50


@dataclass
class QualityResult:
    status: str
    metric: str
    threshold: float
    rows: int = 0
    fresh: float | None = None
    approval: float | None = None
    # > 1 means worse than at approval, whichever way the metric points.
    ratio: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def lower_is_better(metric: str) -> bool:
    return metric.lower().startswith(LOWER_IS_BETTER)


def score(metric: str, y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """``metric`` of predictions, computed as scikit-learn does (tests compare them)."""
    name = metric.lower()
    if name in ("rmse", "mae", "mse", "r2"):
        t = np.asarray(y_true, dtype=float)
        p = np.asarray(y_pred, dtype=float)
        err = p - t
        if name == "rmse":
            return float(np.sqrt(np.mean(err**2)))
        if name == "mse":
            return float(np.mean(err**2))
        if name == "mae":
            return float(np.mean(np.abs(err)))
        total = float(np.sum((t - t.mean()) ** 2))
        return 1.0 - float(np.sum(err**2)) / total if total else 0.0
    t = np.asarray([str(v) for v in y_true])
    p = np.asarray([str(v) for v in y_pred])
    if name == "accuracy":
        return float(np.mean(t == p))
    if name == "f1_macro":
        # sklearn's f1_score(average="macro", zero_division=0) over the union of labels.
        scores = []
        for label in sorted(set(t) | set(p)):
            tp = float(np.sum((t == label) & (p == label)))
            fp = float(np.sum((t != label) & (p == label)))
            fn = float(np.sum((t == label) & (p != label)))
            scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        return float(np.mean(scores)) if scores else 0.0
    raise ValueError(f"no fresh-data scorer for metric {metric!r}")


def ratio(fresh: float, approval: float, metric: str) -> float:
    """How much worse ``fresh`` is than ``approval``: fresh/approval for an error, inverted
    for a score, so > 1 is worse either way."""
    worse_up = lower_is_better(metric)
    num, den = (fresh, approval) if worse_up else (approval, fresh)
    if den == 0:
        return 1.0 if num == 0 else math.inf
    return num / den


def judge(
    metric: str,
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    approval: float,
    settings: QualitySettings | None = None,
) -> QualityResult:
    """The fresh metric and whether it degraded past ``threshold`` x the approval metric."""
    settings = settings or QualitySettings()
    rows = len(y_true)
    result = QualityResult(
        status=INSUFFICIENT,
        metric=metric,
        threshold=settings.threshold,
        rows=rows,
        approval=approval,
    )
    if rows < settings.min_rows:
        result.reason = f"{rows} fresh labelled rows, fewer than {settings.min_rows}"
        return result
    result.fresh = score(metric, y_true, y_pred)
    result.ratio = ratio(result.fresh, approval, metric)
    result.status = DEGRADED if result.ratio > settings.threshold else OK
    return result


def skipped(metric: str, reason: str, settings: QualitySettings | None = None) -> QualityResult:
    settings = settings or QualitySettings()
    return QualityResult(status=SKIPPED, metric=metric, threshold=settings.threshold, reason=reason)


def fresh_rows(
    rows: pd.DataFrame, keys: Sequence[str], seen: Iterable[tuple[Any, ...]]
) -> pd.DataFrame:
    """Rows whose key the model never trained or early-stopped on."""
    if not keys or any(k not in rows.columns for k in keys):
        return rows
    known = set(seen)
    mask = [
        tuple(str(v) for v in row) not in known for row in rows[list(keys)].itertuples(index=False)
    ]
    return rows.loc[mask]


def key_tuples(frame: pd.DataFrame, keys: Sequence[str]) -> set[tuple[str, ...]]:
    if not keys or any(k not in frame.columns for k in keys):
        return set()
    return {tuple(str(v) for v in row) for row in frame[list(keys)].itertuples(index=False)}
