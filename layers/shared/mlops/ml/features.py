"""Row-level derived features, chosen per dataset through a registry.

Row-level only (no statistics over other rows), so a feature computed on one web-form row at
inference equals the one computed on that row inside the Glue job. A dataset without an entry
gets no derived features and still works: its contract columns are the features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from mlops.ml.cleaning import to_utc


@dataclass(frozen=True)
class FeatureSet:
    """A dataset's feature function and the columns it adds, by kind (numeric/categorical)."""

    apply: Callable[[pd.DataFrame], pd.DataFrame]
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = field(default=())


def _identity(df: pd.DataFrame) -> pd.DataFrame:
    return df


def _posted_or_today(df: pd.DataFrame) -> pd.Series:
    # A listing priced now (a web-form row usually has no posted date) is as old as today makes it.
    today = pd.Timestamp(datetime.now(timezone.utc).date(), tz="UTC")
    if "posted_date" in df.columns:
        posted = to_utc(df["posted_date"])
    else:
        posted = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
    return posted.fillna(today)


def add_used_car_features(df: pd.DataFrame) -> pd.DataFrame:
    """Car age at posting, mileage per year, log mileage, is_electric; engine size 0 for EVs."""
    out = df.copy()
    year = pd.to_numeric(out.get("year"), errors="coerce").astype("float64")
    mileage = pd.to_numeric(out.get("mileage"), errors="coerce").astype("float64")
    posted_year = _posted_or_today(out).dt.year.astype("float64")
    age = (posted_year - year).clip(lower=0)
    out["car_age"] = age
    # A car in its first year has driven for part of one: never divide by less than half a year.
    out["mileage_per_year"] = mileage / age.clip(lower=0.5)
    out["log_mileage"] = np.log1p(mileage.clip(lower=0))
    fuel = out["fuel"] if "fuel" in out.columns else pd.Series(None, index=out.index, dtype=object)
    electric = fuel.astype(object) == "electric"
    out["is_electric"] = np.where(fuel.isna(), np.nan, electric.astype("float64"))
    if "engine_size" in out.columns:
        engine = pd.to_numeric(out["engine_size"], errors="coerce").astype("float64")
        # An electric car has no engine: 0 litres is the truth, a median would be invented.
        out["engine_size"] = engine.mask(electric & engine.isna(), 0.0)
    return out


FEATURES: dict[str, FeatureSet] = {
    "used_cars": FeatureSet(
        apply=add_used_car_features,
        numeric=("car_age", "mileage_per_year", "log_mileage", "is_electric"),
    ),
}
_NONE = FeatureSet(apply=_identity)


def feature_set(dataset: str) -> FeatureSet:
    """The registered feature set of ``dataset``, or no derived features for unknown datasets."""
    return FEATURES.get(dataset, _NONE)


def add_features(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """``df`` with the dataset's row-level derived features added (unchanged for unknown ones)."""
    return feature_set(dataset).apply(df)
