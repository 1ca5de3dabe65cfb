"""Column statistics in one plain-dict shape, whichever engine computed them.

``preprocessing`` (imputation, scaling, vocabularies) and ``profile`` (the drift baseline) are
built from this shape, so the Glue job can compute it with Spark aggregations (without
collecting rows) and get exactly what ``column_stats`` gives on a pandas frame.

Shape::

    {"rows": n,
     "numeric": {col: {"count", "nulls", "mean", "std", "min", "max", "quantiles": {"0.5": v}}},
     "categorical": {col: {"count", "nulls", "distinct", "frequencies": {value: count}}}}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# Frequencies kept per categorical column, most frequent first (a vocabulary never needs more).
TOP_CATEGORIES = 1000


def quantile_key(q: float) -> str:
    return repr(float(q))


def rank_quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """The smallest value with at least a share ``q`` of values at or below it.

    This is what Spark's ``percentile_approx`` returns when its accuracy covers the data, so
    both engines agree on medians.
    """
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(math.ceil(q * n), 1)
    return float(sorted_values[min(rank, n) - 1])


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def numeric_stats(values: pd.Series, quantiles: Sequence[float] = QUANTILES) -> dict[str, Any]:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    present = numbers.dropna().sort_values(kind="mergesort")
    count = len(present)
    ordered = present.tolist()
    return {
        "count": count,
        "nulls": int(len(numbers) - count),
        "mean": _finite(present.mean()) if count else None,
        "std": _finite(present.std(ddof=1)) if count > 1 else None,
        "min": ordered[0] if count else None,
        "max": ordered[-1] if count else None,
        "quantiles": {quantile_key(q): rank_quantile(ordered, q) for q in quantiles},
    }


def top_frequencies(counts: dict[str, int], limit: int = TOP_CATEGORIES) -> dict[str, int]:
    """The ``limit`` most frequent values, ties broken by value, most frequent first."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return dict(ranked[:limit])


def categorical_stats(values: pd.Series, limit: int = TOP_CATEGORIES) -> dict[str, Any]:
    present = values.dropna().astype(str)
    counts = {str(k): int(v) for k, v in present.value_counts(sort=False).items()}
    return {
        "count": len(present),
        "nulls": int(len(values) - len(present)),
        "distinct": len(counts),
        "frequencies": top_frequencies(counts, limit),
    }


def column_stats(
    df: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> dict[str, Any]:
    """Statistics of the named columns of a pandas frame (a column absent counts as all null)."""

    def column(name: str) -> pd.Series:
        if name in df.columns:
            return df[name]
        return pd.Series([None] * len(df), index=df.index, dtype=object)

    return {
        "rows": len(df),
        "numeric": {name: numeric_stats(column(name)) for name in numeric},
        "categorical": {name: categorical_stats(column(name)) for name in categorical},
    }
