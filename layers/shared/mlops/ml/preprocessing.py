"""The preprocessing artifact: fitted on the training split, applied identically everywhere.

``fit`` learns imputation values, scaling and category vocabularies from training rows only
and returns them as plain JSON (``preprocessing.json``), which also embeds the contract so
``prepare_for_inference`` can clean raw rows with nothing but the artifact. Model-ready
columns are named ``num__<column>`` and ``cat__<column>`` so they can sit next to the cleaned
source columns in the curated data (a later model re-prepares those with its own artifact).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops.ml.cleaning import NUMERIC_TYPES, clean, passthrough_columns
from mlops.ml.features import add_features, feature_set
from mlops.ml.statistics import column_stats, quantile_key

ARTIFACT_VERSION = 1
# HistGradientBoosting accepts at most 255 bins per categorical feature (one kept for missing).
MAX_CATEGORIES = 250
NUMERIC_PREFIX = "num__"
CATEGORICAL_PREFIX = "cat__"
DERIVED_IMPUTATION = "median"


@dataclass(frozen=True)
class Plan:
    """Which source columns become numeric and categorical features, and how each is imputed."""

    numeric: dict[str, str]
    categorical: dict[str, str]
    target_kind: str

    def stat_columns(self, target: str) -> tuple[list[str], list[str]]:
        """(numeric, categorical) columns whose statistics ``fit`` and ``profile`` need."""
        numeric, categorical = list(self.numeric), list(self.categorical)
        (numeric if self.target_kind == "numeric" else categorical).append(target)
        return numeric, categorical


def plan(contract: dict[str, Any]) -> Plan:
    """The feature plan of a contract: its feature columns plus the dataset's derived features.

    Booleans are numeric (0/1). Datetime columns are not model inputs themselves: a dataset
    turns them into numbers with a derived feature (e.g. car age).
    """
    numeric: dict[str, str] = {}
    categorical: dict[str, str] = {}
    for name, spec in contract["columns"].items():
        if not spec.get("feature", True) or name == contract["target"]:
            continue
        strategy = spec.get("impute") or "none"
        if spec["type"] in NUMERIC_TYPES or spec["type"] == "bool":
            numeric[name] = strategy
        elif spec["type"] in ("category", "string"):
            categorical[name] = strategy
    derived = feature_set(contract["name"])
    for name in derived.numeric:
        numeric.setdefault(name, DERIVED_IMPUTATION)
    for name in derived.categorical:
        categorical.setdefault(name, "most_frequent")
    target_kind = "categorical" if contract["task"] == "classification" else "numeric"
    return Plan(numeric=numeric, categorical=categorical, target_kind=target_kind)


def statistics_for(df: pd.DataFrame, contract: dict[str, Any]) -> dict[str, Any]:
    """The statistics ``fit_from_stats`` needs, computed on a pandas frame."""
    numeric, categorical = plan(contract).stat_columns(contract["target"])
    return column_stats(df, numeric, categorical)


def fit(train_df: pd.DataFrame, contract: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing artifact learnt from cleaned, featured training rows only."""
    return fit_from_stats(statistics_for(train_df, contract), contract)


def fit_from_stats(stats: dict[str, Any], contract: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing artifact from column statistics (pandas- or Spark-computed)."""
    feature_plan = plan(contract)
    spec = contract["columns"]
    numeric = []
    for name, strategy in feature_plan.numeric.items():
        s = stats["numeric"][name]
        fill_value = spec.get(name, {}).get("fill_value")
        numeric.append(
            {
                "name": NUMERIC_PREFIX + name,
                "source": name,
                "strategy": strategy,
                "impute": _numeric_fill(s, strategy, fill_value),
                "mean": s["mean"] if s["mean"] is not None else 0.0,
                "scale": s["std"] if s["std"] else 1.0,
            }
        )
    categorical = []
    for name, strategy in feature_plan.categorical.items():
        s = stats["categorical"][name]
        vocabulary = list(s["frequencies"])[:MAX_CATEGORIES]
        fill_value = spec.get(name, {}).get("fill_value")
        categorical.append(
            {
                "name": CATEGORICAL_PREFIX + name,
                "source": name,
                "strategy": strategy,
                "impute": _categorical_fill(vocabulary, strategy, fill_value),
                "vocabulary": vocabulary,
            }
        )
    classes = None
    if contract["task"] == "classification":
        classes = sorted(stats["categorical"][contract["target"]]["frequencies"])
    return {
        "version": ARTIFACT_VERSION,
        "dataset": contract["name"],
        "contract_version": str(contract["version"]),
        "task": contract["task"],
        "target": contract["target"],
        "key_columns": list(contract.get("keys") or []),
        "rows": stats["rows"],
        "numeric": numeric,
        "categorical": categorical,
        "feature_names": [f["name"] for f in numeric] + [f["name"] for f in categorical],
        "categorical_features": [f["name"] for f in categorical],
        "classes": classes,
        "contract": contract,
    }


def _numeric_fill(s: dict[str, Any], strategy: str, fill_value: Any) -> float | None:
    if strategy == "mean":
        return s["mean"]
    if strategy == "constant":
        return float(fill_value)
    if strategy in ("median", "most_frequent"):
        # Most frequent of a continuous column is noise; the median is its robust stand-in.
        return s["quantiles"][quantile_key(0.5)]
    return None


def _categorical_fill(vocabulary: Sequence[str], strategy: str, fill_value: Any) -> str | None:
    if strategy == "most_frequent":
        return vocabulary[0] if vocabulary else None
    if strategy == "constant":
        return str(fill_value)
    return None


def transform(df: pd.DataFrame, artifact: dict[str, Any]) -> pd.DataFrame:
    """Model-ready float columns in ``feature_names`` order, one row per input row.

    Numerics are imputed then standard-scaled; categoricals are imputed then coded by their
    position in the training vocabulary, with NaN for values training never saw (tree models
    treat it as missing).
    """
    out: dict[str, pd.Series] = {}
    for f in artifact["numeric"]:
        values = _source(df, f["source"])
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        if f["impute"] is not None:
            numbers = numbers.fillna(f["impute"])
        out[f["name"]] = (numbers - f["mean"]) / f["scale"]
    for f in artifact["categorical"]:
        codes = {value: float(i) for i, value in enumerate(f["vocabulary"])}
        values = _source(df, f["source"]).astype(object)
        if f["impute"] is not None:
            values = values.where(values.notna(), f["impute"])
        out[f["name"]] = pd.Series(
            [codes.get(str(v), np.nan) if v is not None and v == v else np.nan for v in values],
            index=df.index,
            dtype="float64",
        )
    return pd.DataFrame(out, index=df.index)[artifact["feature_names"]]


def _source(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def curated_columns(artifact: dict[str, Any], lineage: Sequence[str]) -> list[str]:
    """Columns of a curated row: cleaned contract columns, lineage, then model-ready features."""
    return list(artifact["contract"]["columns"]) + list(lineage) + artifact["feature_names"]


def curate(df: pd.DataFrame, artifact: dict[str, Any]) -> pd.DataFrame:
    """A curated frame: the cleaned source columns kept next to their model-ready encoding.

    Keeping the cleaned columns lets a champion model re-prepare the same rows with its own
    artifact, so champion and challenger are compared on identical test rows.
    """
    contract = artifact["contract"]
    lineage = passthrough_columns(df, contract)
    model_ready = transform(df, artifact)
    sources = df[[c for c in contract["columns"] if c in df.columns] + lineage]
    curated = pd.concat([sources, model_ready], axis=1)
    return curated.reindex(columns=curated_columns(artifact, lineage))


def prepare_for_inference(raw_df: pd.DataFrame, artifact: dict[str, Any]) -> pd.DataFrame:
    """Raw rows (API body, test rows) → model input from the artifact alone, row for row."""
    contract = artifact["contract"]
    cleaned = clean(raw_df, contract, training=False)
    featured = add_features(cleaned, contract["name"])
    return transform(featured, artifact)
