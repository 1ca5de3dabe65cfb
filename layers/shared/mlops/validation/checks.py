"""Vectorized contract checks of one frame, in memory (no S3): the core of validation.

Every check is a whole-column pandas/numpy operation; category columns are checked on their
distinct values (``pd.factorize``) and mapped back through the codes, so a million rows with
ten makes cost ten label look-ups, not a million.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops.contract import NUMERIC_TYPES, ColumnSpec, Contract, normalise_label

# Columns validation adds to every validated row; a raw column of the same name is not "unexpected".
LINEAGE_ADDED = ("run_id", "ingest_date", "ingest_time", "source_object")
FAILED_RULES = "failed_rules"
REJECTED_RULE = "object_rejected"

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
# Only formats with one reading are normalised: a leading currency sign and US thousands
# separators ("$12,500.50"). "12.500" or "12 500" could mean two things and stay type errors.
_CURRENCY = r"^[+-]?\s*[$€£]\s*"
_THOUSANDS = r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$"
_DTYPES = {"int": "Int64", "float": "Float64", "string": "string", "category": "string"}


@dataclass
class CheckResult:
    """What checking one frame found; ``valid`` is typed per the contract, ``invalid`` is raw."""

    valid: pd.DataFrame
    invalid: pd.DataFrame
    rows_in: int
    rule_failures: dict[str, int]
    rejected: bool = False
    rejection_reason: str | None = None
    unexpected_columns: list[str] = field(default_factory=list)
    missing_optional_columns: list[str] = field(default_factory=list)
    null_share_over_tolerance: dict[str, dict[str, float]] = field(default_factory=dict)
    normalised: dict[str, int] = field(default_factory=dict)

    @property
    def rows_valid(self) -> int:
        return len(self.valid)

    @property
    def rows_quarantined(self) -> int:
        return len(self.invalid)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready part of a validation report."""
        return {
            "rows_in": self.rows_in,
            "rows_valid": self.rows_valid,
            "rows_quarantined": self.rows_quarantined,
            "rejected": self.rejected,
            "rejection_reason": self.rejection_reason,
            "rule_failures": self.rule_failures,
            "unexpected_columns": self.unexpected_columns,
            "missing_optional_columns": self.missing_optional_columns,
            "null_share_over_tolerance": self.null_share_over_tolerance,
            "normalised": self.normalised,
        }


@dataclass
class _Column:
    values: pd.Series
    type_failed: np.ndarray
    allowed_failed: np.ndarray | None = None
    pattern_failed: np.ndarray | None = None
    normalised: int = 0


def expected_columns(contract: Contract) -> set[str]:
    return set(contract.columns) | set(contract.lineage_columns)


def check_frame(raw: pd.DataFrame, contract: Contract) -> CheckResult:
    """Check ``raw`` against ``contract``: typed valid rows, raw invalid rows with their rules."""
    raw = raw.reset_index(drop=True)
    n = len(raw)
    failures: dict[str, np.ndarray] = {}
    typed: dict[str, pd.Series] = {}
    missing_optional: list[str] = []
    over_tolerance: dict[str, dict[str, float]] = {}
    normalised: dict[str, int] = {}

    for name, spec in contract.columns.items():
        if name not in raw.columns:
            typed[name] = pd.Series(pd.array([None] * n, dtype=_dtype(spec)))
            if spec.required:
                failures[f"required_column:{name}"] = np.ones(n, dtype=bool)
            else:
                missing_optional.append(name)
            continue
        original = raw[name]
        null = _nulls(original)
        column = _coerce(original, null, spec)
        typed[name] = column.values
        if column.normalised:
            normalised[name] = column.normalised
        if spec.required:
            rule = "null_key" if name in contract.keys else "not_null"
            failures[f"{rule}:{name}"] = null
        failures[f"type:{name}"] = column.type_failed
        failures[f"range:{name}"] = _out_of_range(column.values, spec)
        if column.allowed_failed is not None:
            failures[f"allowed:{name}"] = column.allowed_failed
        if column.pattern_failed is not None:
            failures[f"pattern:{name}"] = column.pattern_failed
        share = float(null.mean()) if n else 0.0
        if share > spec.max_null_share:
            over_tolerance[name] = {"share": round(share, 4), "max": spec.max_null_share}

    if contract.keys:
        keys = pd.DataFrame({k: typed[k] for k in contract.keys})
        complete = keys.notna().all(axis=1).to_numpy()
        failures["duplicate_key"] = keys.duplicated(keep="first").to_numpy() & complete

    failures = {rule: mask for rule, mask in failures.items() if mask.any()}
    invalid = np.zeros(n, dtype=bool)
    for mask in failures.values():
        invalid |= mask

    rejection = _rejection(n, int(invalid.sum()), contract)
    if rejection:
        # Rows that passed every check still leave with the object; say why.
        if not invalid.all():
            failures[REJECTED_RULE] = ~invalid
        invalid = np.ones(n, dtype=bool)

    lineage = [c for c in contract.lineage_columns if c in raw.columns]
    valid = pd.DataFrame(typed)
    for name in lineage:
        valid[name] = raw[name].astype("string")
    valid = valid.loc[~invalid].reset_index(drop=True)

    quarantined = raw.loc[invalid].astype("string").reset_index(drop=True)
    quarantined[FAILED_RULES] = _rule_labels({r: m[invalid] for r, m in failures.items()})

    declared = expected_columns(contract) | set(LINEAGE_ADDED)
    return CheckResult(
        valid=valid,
        invalid=quarantined,
        rows_in=n,
        rule_failures={rule: int(mask.sum()) for rule, mask in failures.items()},
        rejected=rejection is not None,
        rejection_reason=rejection,
        unexpected_columns=sorted(str(c) for c in raw.columns if c not in declared),
        missing_optional_columns=missing_optional,
        null_share_over_tolerance=over_tolerance,
        normalised=normalised,
    )


def _rejection(rows: int, invalid: int, contract: Contract) -> str | None:
    if rows < contract.min_rows:
        return f"{rows} rows, fewer than min_rows {contract.min_rows}"
    share = invalid / rows if rows else 0.0
    if share > contract.max_invalid_share:
        return (
            f"{share:.1%} of rows invalid, over max_invalid_share {contract.max_invalid_share:.0%}"
        )
    return None


def _dtype(spec: ColumnSpec) -> str:
    if spec.type == "bool":
        return "boolean"
    if spec.type == "datetime":
        return "datetime64[us]"
    return _DTYPES[spec.type]


def _nulls(series: pd.Series) -> np.ndarray:
    null = series.isna().to_numpy(dtype=bool, copy=True)
    if not pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_datetime64_any_dtype(
        series
    ):
        # An empty or blank cell (CSV) means "no value", not the string "".
        text = series.astype("string")
        null |= text.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    return null


def _coerce(series: pd.Series, null: np.ndarray, spec: ColumnSpec) -> _Column:
    if spec.type in NUMERIC_TYPES:
        return _numbers(series, null, spec)
    if spec.type == "datetime":
        return _datetimes(series, null)
    return _labels(series, null, spec)


def _numbers(series: pd.Series, null: np.ndarray, spec: ColumnSpec) -> _Column:
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = series.astype("float64")
        repaired = 0
    else:
        numbers = pd.to_numeric(series.where(~null), errors="coerce").astype("float64")
        unparsed = numbers.isna().to_numpy() & ~null
        repaired = 0
        if unparsed.any():
            # Only the few values that failed take the slower text route.
            text = series[unparsed].astype("string").str.strip()
            text = text.str.replace(_CURRENCY, "", regex=True)
            text = text.where(
                ~text.str.fullmatch(_THOUSANDS).fillna(False), text.str.replace(",", "")
            )
            fixed = pd.to_numeric(text, errors="coerce").astype("float64")
            numbers[unparsed] = fixed.to_numpy()
            repaired = int(fixed.notna().sum())
    values = numbers.to_numpy()
    bad = np.isnan(values) & ~null
    if spec.type == "int":
        fractional = np.zeros(len(values), dtype=bool)
        finite = np.isfinite(values)
        fractional[finite] = values[finite] != np.floor(values[finite])
        bad |= fractional
        values = np.where(bad, np.nan, values)
        out = pd.Series(pd.array(values, dtype="Float64")).round().astype("Int64")
    else:
        bad |= np.isinf(values)
        values = np.where(bad, np.nan, values)
        out = pd.Series(pd.array(values, dtype="Float64"))
    out[null | bad] = pd.NA
    allowed = None
    if spec.allowed is not None:
        allowed = ~out.isin([float(v) for v in spec.allowed]).to_numpy(dtype=bool) & ~null & ~bad
    return _Column(out, bad, allowed_failed=allowed, normalised=repaired)


def _datetimes(series: pd.Series, null: np.ndarray) -> _Column:
    if pd.api.types.is_datetime64_any_dtype(series):
        parsed = pd.to_datetime(series, utc=True)
    else:
        parsed = pd.to_datetime(series.where(~null), errors="coerce", utc=True, format="ISO8601")
    # Naive UTC: what Glue/Athena's `timestamp` holds.
    values = parsed.dt.tz_convert(None).astype("datetime64[us]")
    bad = values.isna().to_numpy() & ~null
    return _Column(values, bad)


def _labels(series: pd.Series, null: np.ndarray, spec: ColumnSpec) -> _Column:
    """Strings, categories and booleans, checked on their distinct values."""
    codes, uniques = pd.factorize(series.where(~null), use_na_sentinel=True)
    raw_labels = [str(u) for u in uniques]
    if spec.type == "string":
        labels = [" ".join(u.split()) for u in raw_labels]
    else:
        aliases = {normalise_label(a): normalise_label(c) for a, c in spec.aliases.items()}
        labels = [aliases.get(lbl, lbl) for lbl in (normalise_label(u) for u in raw_labels)]
    changed = np.array([a != b for a, b in zip(raw_labels, labels, strict=True)], dtype=bool)
    present = codes >= 0
    normalised = int(changed[codes[present]].sum()) if len(changed) else 0

    type_bad_unique = np.zeros(len(labels), dtype=bool)
    if spec.type == "bool":
        type_bad_unique = np.array([lbl not in _TRUE | _FALSE for lbl in labels], dtype=bool)
        truth = [lbl in _TRUE if lbl in _TRUE | _FALSE else None for lbl in labels]
        values = _take(pd.array(truth, dtype="boolean"), codes)
    else:
        values = _take(pd.array(labels, dtype="string"), codes)

    allowed = None
    if spec.allowed is not None:
        permitted = {normalise_label(v) for v in spec.allowed}
        compare = labels if spec.type != "string" else [normalise_label(u) for u in labels]
        allowed = _per_row(np.array([c not in permitted for c in compare], dtype=bool), codes)
    pattern = None
    if spec.pattern is not None:
        matches = pd.Series(labels, dtype="string").str.fullmatch(spec.pattern).fillna(False)
        pattern = _per_row(~matches.to_numpy(dtype=bool), codes)
    return _Column(
        values,
        _per_row(type_bad_unique, codes),
        allowed_failed=allowed,
        pattern_failed=pattern,
        normalised=normalised,
    )


def _take(table: Any, codes: np.ndarray) -> pd.Series:
    return pd.Series(table.take(codes, allow_fill=True))


def _per_row(unique_flags: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Spread a flag per distinct value to every row holding it (nulls are never flagged)."""
    if len(unique_flags) == 0:
        return np.zeros(len(codes), dtype=bool)
    return np.where(codes >= 0, unique_flags[np.maximum(codes, 0)], False)


def _out_of_range(values: pd.Series, spec: ColumnSpec) -> np.ndarray:
    failed = np.zeros(len(values), dtype=bool)
    for bound, outside in ((spec.min, values.lt), (spec.max, values.gt)):
        if bound is None:
            continue
        if spec.type == "datetime":
            bound = pd.Timestamp(bound)
        elif spec.type not in NUMERIC_TYPES:
            continue
        failed |= outside(bound).fillna(False).to_numpy(dtype=bool)
    return failed


def _rule_labels(masks: dict[str, np.ndarray]) -> pd.Series:
    """``"range:year;allowed:fuel"`` per row, built once per distinct combination of rules."""
    rules = list(masks)
    if not rules:
        return pd.Series([], dtype="string")
    matrix = np.column_stack([masks[r] for r in rules])
    combos, inverse = np.unique(np.packbits(matrix, axis=1), axis=0, return_inverse=True)
    unpacked = np.unpackbits(combos, axis=1, count=len(rules)).astype(bool)
    names = [";".join(r for r, hit in zip(rules, row, strict=True) if hit) for row in unpacked]
    return pd.Series(pd.array(names, dtype="string").take(inverse.ravel()))
