"""Turn validated (or user-submitted) rows into typed, normalised rows the contract describes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

NUMERIC_TYPES = ("int", "float")
# Columns that record where and when a row was fetched; the latest copy of a record wins.
ORDER_COLUMNS = ("fetched_at", "ingest_time", "ingested_at")
# Cleaned column kinds, so an engine with declared schemas (Spark) can state the output types.
KINDS = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "category": "string",
    "string": "string",
    "datetime": "string",
}


class UnusableData(ValueError):
    """The rows cannot be prepared at all (e.g. none has a usable target)."""


def normalise_label(value: object) -> str:
    """Lower case, single inner spaces, trimmed (the same rule the contract uses)."""
    return " ".join(str(value).split()).lower()


def columns(contract: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The contract's column specs by name, in contract order."""
    return dict(contract["columns"])


def cleaned_kinds(contract: dict[str, Any], extra: list[str] | None = None) -> dict[str, str]:
    """Kind (int/float/bool/string) of every column ``clean`` returns, in output order."""
    kinds = {name: KINDS[spec["type"]] for name, spec in columns(contract).items()}
    for name in extra or []:
        kinds.setdefault(name, "string")
    return kinds


def passthrough_columns(df: pd.DataFrame, contract: dict[str, Any]) -> list[str]:
    """Lineage columns present in ``df`` that travel with the rows untouched (as text)."""
    wanted = list(contract.get("lineage_columns") or []) + list(ORDER_COLUMNS)
    names = [c for c in dict.fromkeys(wanted) if c in df.columns and c not in contract["columns"]]
    return names


def clean(df: pd.DataFrame, contract: dict[str, Any], *, training: bool = True) -> pd.DataFrame:
    """Normalise and type every contract column; in training mode drop rows without a usable target.

    Out-of-range numbers and categories outside the allowed list become missing (imputed later)
    rather than dropping the row, so inference returns one output row per input row. Missing
    optional columns are added as nulls. Lineage columns (``source_url``, ``fetched_at``…) are
    kept as text; anything else is dropped.
    """
    if not training:
        return _normalise(df, contract, with_target=contract["target"] in df.columns)
    marked = mark_usable(df, contract)
    usable = marked.pop(USABLE)
    return marked.loc[usable].reset_index(drop=True)


USABLE = "_usable"


def mark_usable(df: pd.DataFrame, contract: dict[str, Any]) -> pd.DataFrame:
    """Every row cleaned, plus a boolean ``_usable`` column: has its key(s) and a valid target.

    Lets an engine count the rows it drops in the same pass that cleans them.
    """
    out = _normalise(df, contract, with_target=True)
    usable = out[contract["target"]].notna()
    for key in contract.get("keys") or []:
        usable &= out[key].notna()
    out[USABLE] = usable.astype(bool)
    return out


def _normalise(df: pd.DataFrame, contract: dict[str, Any], *, with_target: bool) -> pd.DataFrame:
    keys = list(contract.get("keys") or [])
    out = pd.DataFrame(index=df.index)
    for name, spec in columns(contract).items():
        if name == contract["target"] and not with_target:
            continue
        raw = df[name] if name in df.columns else pd.Series(None, index=df.index, dtype=object)
        out[name] = _clean_column(raw, spec, is_key=name in keys)
    for name in passthrough_columns(df, contract):
        out[name] = _as_text(df[name])
    return out


def _clean_column(raw: pd.Series, spec: dict[str, Any], *, is_key: bool) -> pd.Series:
    kind = spec["type"]
    if kind in NUMERIC_TYPES:
        return _clean_number(raw, spec)
    if kind == "bool":
        return _clean_bool(raw)
    if kind == "datetime":
        return _clean_datetime(raw, spec)
    if kind == "category" or (kind == "string" and not is_key):
        return _clean_label(raw, spec, lower=kind == "category")
    return _as_text(raw)


def _as_text(raw: pd.Series) -> pd.Series:
    values = [None if _missing(v) else " ".join(str(v).split()) or None for v in raw.tolist()]
    return pd.Series(values, index=raw.index, dtype=object)


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _clean_number(raw: pd.Series, spec: dict[str, Any]) -> pd.Series:
    if raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype):
        # Thousands separators and currency signs are how sites print numbers.
        text = [
            None if _missing(v) else str(v).strip().replace(",", "").lstrip("$£€")
            for v in raw.tolist()
        ]
        values = pd.to_numeric(pd.Series(text, index=raw.index, dtype=object), errors="coerce")
    else:
        values = pd.to_numeric(raw, errors="coerce")
    values = values.astype("float64")
    values[~np.isfinite(values)] = np.nan
    lo, hi = spec.get("min"), spec.get("max")
    if lo is not None:
        values[values < float(lo)] = np.nan
    if hi is not None:
        values[values > float(hi)] = np.nan
    if spec["type"] == "int":
        values = values.round()
        return values.astype("Int64")
    return values


def _clean_bool(raw: pd.Series) -> pd.Series:
    truthy = {"true", "1", "yes", "y", "t"}
    falsy = {"false", "0", "no", "n", "f"}

    def one(value: Any) -> bool | None:
        if _missing(value):
            return None
        text = normalise_label(value)
        if text in truthy:
            return True
        if text in falsy:
            return False
        return None

    return pd.Series([one(v) for v in raw.tolist()], index=raw.index, dtype="boolean")


def _clean_datetime(raw: pd.Series, spec: dict[str, Any]) -> pd.Series:
    parsed = to_utc(raw)
    lo, hi = spec.get("min"), spec.get("max")
    if lo is not None:
        parsed[parsed < to_utc(pd.Series([lo])).iloc[0]] = pd.NaT
    if hi is not None:
        # An upper bound given as a date covers that whole day.
        bound = to_utc(pd.Series([hi])).iloc[0]
        if len(str(hi)) <= 10:
            bound = bound + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        parsed[parsed > bound] = pd.NaT
    text = parsed.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return pd.Series(
        [None if _missing(v) else v for v in text.astype(object).tolist()],
        index=raw.index,
        dtype=object,
    )


# pandas < 2 has no "ISO8601" format (it would silently coerce every value to NaT) but
# parses ISO 8601 by inference; older sklearn containers ship pandas 1.x.
_ISO_FORMAT: dict[str, str] = (
    {"format": "ISO8601"} if int(pd.__version__.split(".", 1)[0]) >= 2 else {}
)


def to_utc(raw: pd.Series) -> pd.Series:
    """Timestamps (UTC) from datetimes or ISO 8601 text; anything unparsable becomes NaT."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        parsed = pd.to_datetime(raw, errors="coerce", utc=True)
    else:
        text = [None if _missing(v) else str(v).strip() for v in raw.tolist()]
        parsed = pd.to_datetime(
            pd.Series(text, index=raw.index, dtype=object),
            errors="coerce",
            utc=True,
            **_ISO_FORMAT,
        )
    return parsed.astype("datetime64[ns, UTC]")


def _clean_label(raw: pd.Series, spec: dict[str, Any], *, lower: bool) -> pd.Series:
    pairs = (spec.get("aliases") or {}).items()
    aliases = {normalise_label(k): normalise_label(v) for k, v in pairs}
    allowed = {normalise_label(v) for v in spec.get("allowed") or []}

    def one(value: Any) -> str | None:
        if _missing(value):
            return None
        text = normalise_label(value) if lower else " ".join(str(value).split())
        if not text:
            return None
        text = aliases.get(normalise_label(text), text)
        if allowed and normalise_label(text) not in allowed:
            return None
        return text

    return pd.Series([one(v) for v in raw.tolist()], index=raw.index, dtype=object)


def order_column(df: pd.DataFrame) -> str | None:
    """The column telling which copy of a record is the latest, if the rows have one."""
    return next((c for c in ORDER_COLUMNS if c in df.columns), None)


def dedup_order(contract: dict[str, Any], available: list[str]) -> list[str]:
    """Tie-break columns after the order column: every contract column, so ties are resolved
    the same way on every engine."""
    return [c for c in columns(contract) if c in available]


def deduplicate(df: pd.DataFrame, contract: dict[str, Any]) -> pd.DataFrame:
    """Keep one row per key: the latest by ``fetched_at`` (nulls last), ties by column values."""
    keys = list(contract.get("keys") or [])
    if not keys or df.empty:
        return df.reset_index(drop=True)
    latest = order_column(df)
    by = ([latest] if latest else []) + dedup_order(contract, list(df.columns))
    ascending = ([False] if latest else []) + [True] * (len(by) - (1 if latest else 0))
    ordered = df.sort_values(by=by, ascending=ascending, na_position="last", kind="mergesort")
    return ordered.drop_duplicates(subset=keys, keep="first").reset_index(drop=True)
