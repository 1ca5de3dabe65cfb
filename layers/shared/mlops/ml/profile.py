"""The data profile of a prepared run: the baseline later runs and live traffic are compared with.

Built from the same statistics shape as the preprocessing artifact (see ``statistics``), on
raw-scale (cleaned, featured, unscaled) training rows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops.ml.preprocessing import statistics_for

PROFILE_VERSION = 1
# Category frequencies kept in the profile; the rest are summed as "__other__".
PROFILE_TOP = 50
OTHER = "__other__"


def profile_from_stats(
    stats: dict[str, Any], contract: dict[str, Any], *, split: str = "train"
) -> dict[str, Any]:
    """The profile document from column statistics (pandas- or Spark-computed)."""
    categorical = {}
    for name, s in stats["categorical"].items():
        top = dict(list(s["frequencies"].items())[:PROFILE_TOP])
        rest = s["count"] - sum(top.values())
        if rest > 0:
            top[OTHER] = rest
        categorical[name] = {
            "count": s["count"],
            "nulls": s["nulls"],
            "distinct": s["distinct"],
            "frequencies": top,
        }
    return {
        "version": PROFILE_VERSION,
        "dataset": contract["name"],
        "contract_version": str(contract["version"]),
        "split": split,
        "rows": stats["rows"],
        "numeric": stats["numeric"],
        "categorical": categorical,
    }


def profile(df: pd.DataFrame, contract: dict[str, Any], *, split: str = "train") -> dict[str, Any]:
    """Profile of a cleaned, featured pandas frame."""
    return profile_from_stats(statistics_for(df, contract), contract, split=split)
