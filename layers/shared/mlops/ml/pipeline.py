"""The whole preparation on one pandas frame: the reference the Glue job must agree with.

Used for small data and tests; the Glue job runs the same steps through Spark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops.ml.cleaning import UnusableData, clean, deduplicate
from mlops.ml.features import add_features
from mlops.ml.preprocessing import curate, fit_from_stats, statistics_for
from mlops.ml.profile import profile_from_stats
from mlops.ml.splitting import (
    DEFAULT_FRACTIONS,
    SPLITS,
    assign_splits,
    identity_columns,
    min_rows_per_split,
    rows_needed,
    short_splits,
)

SPLIT_COLUMN = "split"


@dataclass
class Prepared:
    """Curated frames per split, the artifacts, and the counts the manifest reports."""

    splits: dict[str, pd.DataFrame]
    artifact: dict[str, Any]
    profile: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)


def featurise(cleaned: pd.DataFrame, contract: dict[str, Any], shares: Any) -> pd.DataFrame:
    """Derived features plus the split column (one row-level step, as Spark runs it)."""
    featured = add_features(cleaned, contract["name"])
    featured[SPLIT_COLUMN] = assign_splits(featured, identity_columns(contract), shares)
    return featured


def check_splits(
    counts: dict[str, int],
    run_id: str,
    contract: dict[str, Any] | None = None,
    shares: Any = DEFAULT_FRACTIONS,
) -> None:
    """Every split needs its minimum of rows (``splitting.min_rows_per_split``): training,
    early stopping and evaluation each read one. Raises ``UnusableData`` saying which fell short.
    """
    minimums = min_rows_per_split(contract)
    short = short_splits(counts, minimums)
    if short:
        sizes = ", ".join(f"{s}={counts.get(s, 0)} (minimum {minimums[s]})" for s in short)
        raise UnusableData(
            f"too few usable rows in run {run_id} to train and evaluate a model: {sizes}; "
            f"about {rows_needed(minimums, shares)} usable rows are needed at these split "
            "fractions (the contract's min_rows_per_split sets the minimums)"
        )


def prepare(
    df: pd.DataFrame,
    contract: dict[str, Any],
    *,
    run_id: str = "",
    shares: Any = DEFAULT_FRACTIONS,
) -> Prepared:
    """Clean, add features and split, de-duplicate, fit on train, curate every split."""
    rows_in = len(df)
    if rows_in == 0:
        raise UnusableData(f"run {run_id} has no validated rows")
    cleaned = clean(df, contract, training=True)
    if cleaned.empty:
        raise UnusableData(f"no usable rows in run {run_id}: every row lacks a key or target")
    # Row-level features commute with keeping one row per key: computing them first lets the
    # Glue job clean and featurise in a single pass over the data.
    featured = featurise(cleaned, contract, shares)
    unique = deduplicate(featured, contract)
    counts = {s: int((unique[SPLIT_COLUMN] == s).sum()) for s in SPLITS}
    check_splits(counts, run_id, contract, shares)
    train = unique[unique[SPLIT_COLUMN] == "train"]
    stats = statistics_for(train, contract)
    artifact = fit_from_stats(stats, contract)
    splits = {
        s: curate(unique[unique[SPLIT_COLUMN] == s].reset_index(drop=True), artifact)
        for s in SPLITS
    }
    return Prepared(
        splits=splits,
        artifact=artifact,
        profile=profile_from_stats(stats, contract),
        counts={
            "rows_in": rows_in,
            "rows_dropped": rows_in - len(cleaned),
            "duplicates_dropped": len(cleaned) - len(unique),
            **counts,
        },
    )
