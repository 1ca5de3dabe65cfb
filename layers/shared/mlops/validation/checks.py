"""Vectorized contract checks of one frame, in memory (no S3): the core of validation.

Every check is a whole-column pandas/numpy operation, with no Python loop over rows.
Categories, booleans and dates are normalised and checked once per distinct value
(``pd.factorize``) and spread back through the codes, so a million rows with ten makes cost
ten label look-ups; free text (identifiers) is checked row-wise by Arrow string kernels;
numbers take a text route only for the few values that did not parse as numbers.
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
_DTYPES = {"int": "Int64", "float": "Float64", "string": "string", "category": "category"}


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
    null: np.ndarray
    # None: no row fails that rule (saves a pass over the rows per rule that found nothing).
    type_failed: np.ndarray | None
    allowed_failed: np.ndarray | None = None
    pattern_failed: np.ndarray | None = None
    normalised: int = 0


def expected_columns(contract: Contract) -> set[str]:
    return set(contract.columns) | set(contract.lineage_columns)


def check_frame(raw: pd.DataFrame, contract: Contract) -> CheckResult:
    """Check ``raw`` against ``contract``: typed valid rows, raw invalid rows with their rules."""
    if not isinstance(raw.index, pd.RangeIndex) or raw.index.start != 0:
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
        column = _coerce(raw[name], spec)
        null = column.null
        typed[name] = column.values
        if column.normalised:
            normalised[name] = column.normalised
        if spec.required:
            rule = "null_key" if name in contract.keys else "not_null"
            failures[f"{rule}:{name}"] = null
        if column.type_failed is not None:
            failures[f"type:{name}"] = column.type_failed
        failures[f"range:{name}"] = _out_of_range(column.values, spec)
        if column.allowed_failed is not None:
            failures[f"allowed:{name}"] = column.allowed_failed
        if column.pattern_failed is not None:
            failures[f"pattern:{name}"] = column.pattern_failed
        share = np.count_nonzero(null) / n if n else 0.0
        if share > spec.max_null_share:
            over_tolerance[name] = {"share": round(share, 4), "max": spec.max_null_share}

    if contract.keys:
        failures["duplicate_key"] = _repeated_keys([typed[k] for k in contract.keys])

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

    for name in (c for c in contract.lineage_columns if c in raw.columns):
        typed[name] = _as_text(raw[name])
    if invalid.any():
        # Masking each column's array directly skips DataFrame.loc's per-column bookkeeping.
        keep = ~invalid
        valid = pd.DataFrame({k: v.array[keep] for k, v in typed.items()}, copy=False)
    else:
        valid = pd.DataFrame(typed, copy=False)

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


def _repeated_keys(keys: list[pd.Series]) -> np.ndarray:
    """Rows whose complete key appeared on an earlier row (the first copy stays valid)."""
    complete = np.logical_and.reduce([k.notna().to_numpy(dtype=bool) for k in keys])
    if len(keys) == 1:
        repeated = keys[0].duplicated(keep="first")
    else:
        repeated = pd.DataFrame(dict(enumerate(keys)), copy=False).duplicated(keep="first")
    return repeated.to_numpy(dtype=bool) & complete


def _as_text(series: pd.Series) -> pd.Series:
    """Text in Arrow-backed strings, so string methods run in C (no copy if it already is).

    pandas 3 reads text that way by default; pandas 2 (AWS's managed layer) gives Python
    objects, whose string methods loop per row.
    """
    if isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow":
        return series
    return series.astype("string[pyarrow]")


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


def _coerce(series: pd.Series, spec: ColumnSpec) -> _Column:
    # Nulls start as what pandas calls missing; each type adds its blanks ("" or spaces in a
    # CSV cell mean "no value"), found where it is cheapest for that type.
    null = series.isna().to_numpy(dtype=bool, copy=True)
    if spec.type in NUMERIC_TYPES:
        return _numbers(series, null, spec)
    if spec.type == "datetime":
        return _datetimes(series, null)
    if spec.type == "string":
        return _strings(series, null, spec)
    return _labels(series, null, spec)


def _blank(values: pd.Series) -> np.ndarray:
    return values.astype("string").str.strip().eq("").to_numpy(dtype=bool, na_value=False)


def _numbers(series: pd.Series, null: np.ndarray, spec: ColumnSpec) -> _Column:
    repaired = 0
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = series.to_numpy(dtype="float64", na_value=np.nan, copy=True)
    else:
        numbers = pd.to_numeric(series.where(~null), errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan, copy=True
        )
        unparsed = np.flatnonzero(np.isnan(numbers) & ~null)
        if len(unparsed):
            # Only the few values that failed take the slower text route.
            text = series.iloc[unparsed].astype("string").str.strip()
            null[unparsed[text.eq("").to_numpy(dtype=bool, na_value=False)]] = True
            text = text.str.replace(_CURRENCY, "", regex=True)
            grouped = text.str.fullmatch(_THOUSANDS).to_numpy(dtype=bool, na_value=False)
            text = text.where(~grouped, text.str.replace(",", ""))
            fixed = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            numbers[unparsed] = fixed
            repaired = int(np.count_nonzero(~np.isnan(fixed)))
    bad = ~np.isfinite(numbers) & ~null
    if spec.type == "int":
        finite = ~bad & ~null
        # Past 2**62 a float no longer holds an exact integer (and Int64 would overflow).
        bad[finite] = (numbers[finite] != np.floor(numbers[finite])) | (
            np.abs(numbers[finite]) > 2.0**62
        )
        missing = bad | null
        numbers[missing] = np.nan
        whole = np.where(missing, 0, numbers).astype("int64")
        out = pd.Series(pd.arrays.IntegerArray(whole, missing))
    else:
        missing = bad | null
        numbers[missing] = np.nan
        out = pd.Series(pd.arrays.FloatingArray(np.where(missing, 0.0, numbers), missing))
    allowed = None
    if spec.allowed is not None:
        permitted = [float(v) for v in spec.allowed]
        allowed = ~np.isin(numbers, permitted) & ~null & ~bad
    return _Column(out, null, bad, allowed_failed=allowed, normalised=repaired)


def _datetimes(series: pd.Series, null: np.ndarray) -> _Column:
    if pd.api.types.is_datetime64_any_dtype(series):
        values = pd.to_datetime(series, utc=True)
    else:
        # Dates repeat (a scrape spans days, not rows): parse each distinct text once.
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        parsed = pd.to_datetime(
            pd.Series(uniques, dtype="string"), errors="coerce", utc=True, format="ISO8601"
        )
        values = pd.Series(parsed.array.take(codes, allow_fill=True))
    # Naive UTC: what Glue/Athena's `timestamp` holds.
    values = values.dt.tz_convert(None).astype("datetime64[us]")
    unparsed = np.flatnonzero(values.isna().to_numpy() & ~null)
    if len(unparsed):
        null[unparsed[_blank(series.iloc[unparsed])]] = True
    bad = values.isna().to_numpy() & ~null
    return _Column(values, null, bad)


def _labels(series: pd.Series, null: np.ndarray, spec: ColumnSpec) -> _Column:
    """Categories and booleans, normalised and checked once per distinct value."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    raw = pd.Series(uniques, dtype="string")
    # normalise_label, vectorized: trimmed, one inner space, lower case, then the aliases.
    text = raw.str.strip().str.replace(r"\s+", " ", regex=True).str.lower()
    aliases = {normalise_label(a): normalise_label(c) for a, c in spec.aliases.items()}
    if aliases:
        # One hash look-up of every distinct value (Series.replace makes a pass per alias).
        position = pd.Index(list(aliases)).get_indexer(text)
        canonical = np.array(list(aliases.values()), dtype=object)
        hit = position >= 0
        if hit.any():
            text = text.mask(hit, pd.Series(canonical[position[hit]], index=text.index[hit]))
    blank = text.eq("").to_numpy(dtype=bool, na_value=False)
    if blank.any():
        codes = np.where(_per_row(blank, codes), -1, codes)
        null |= codes < 0
    changed = text.ne(raw).to_numpy(dtype=bool, na_value=False) & ~blank
    normalised = int(np.count_nonzero(_per_row(changed, codes))) if changed.any() else 0

    type_bad = np.zeros(len(text), dtype=bool)
    if spec.type == "bool":
        truth = pd.Series(pd.NA, index=text.index, dtype="boolean")
        truth[text.isin(_TRUE).to_numpy(dtype=bool)] = True
        truth[text.isin(_FALSE).to_numpy(dtype=bool)] = False
        type_bad = truth.isna().to_numpy(dtype=bool) & ~blank
        values = _take(truth.array, codes)
    else:
        # Codes into the distinct labels: no per-row string copies. Aliases can make two
        # distinct raw values one label, so the categories are the unique labels.
        labels, label_codes = np.unique(text.fillna("").to_numpy(dtype=object), return_inverse=True)
        row_codes = np.append(label_codes.ravel(), -1)[codes]
        values = pd.Series(
            pd.Categorical.from_codes(
                row_codes, categories=pd.Index(labels, dtype="string"), validate=False
            )
        )

    allowed = None
    if spec.allowed is not None:
        permitted = sorted({normalise_label(v) for v in spec.allowed})
        allowed = _rows_flagged(~text.isin(permitted).to_numpy(dtype=bool), codes)
    pattern = None
    if spec.pattern is not None:
        matches = text.str.fullmatch(spec.pattern).to_numpy(dtype=bool, na_value=False)
        pattern = _rows_flagged(~matches, codes)
    return _Column(
        values,
        null,
        _rows_flagged(type_bad, codes),
        allowed_failed=allowed,
        pattern_failed=pattern,
        normalised=normalised,
    )


def _strings(series: pd.Series, null: np.ndarray, spec: ColumnSpec) -> _Column:
    """Free text (identifiers, URLs): mostly distinct values, so checked row-wise in Arrow."""
    raw = _as_text(series)
    text = raw.str.strip()
    blank = text.eq("").to_numpy(dtype=bool, na_value=False)
    if blank.any():
        null |= blank
        text = text.where(~null)
    # Same length after trimming means nothing was trimmed: cheaper than comparing text.
    trimmed = text.str.len().ne(raw.str.len()).to_numpy(dtype=bool, na_value=False) & ~null
    allowed = None
    if spec.allowed is not None:
        permitted = sorted({normalise_label(v) for v in spec.allowed})
        allowed = ~text.str.lower().isin(permitted).to_numpy(dtype=bool) & ~null
    pattern = None
    if spec.pattern is not None:
        matches = text.str.fullmatch(spec.pattern).to_numpy(dtype=bool, na_value=False)
        pattern = ~matches & ~null
    return _Column(
        text.reset_index(drop=True),
        null,
        None,
        allowed_failed=allowed,
        pattern_failed=pattern,
        normalised=int(np.count_nonzero(trimmed)),
    )


def _take(table: Any, codes: np.ndarray) -> pd.Series:
    return pd.Series(table.take(codes, allow_fill=True))


def _per_row(unique_flags: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Spread a flag per distinct value to every row holding it (nulls are never flagged)."""
    # A trailing False is what code -1 (null) picks: one gather, no masking pass.
    return np.append(unique_flags, False)[codes]


def _rows_flagged(unique_flags: np.ndarray, codes: np.ndarray) -> np.ndarray | None:
    """``_per_row``, or None when no distinct value is flagged (the usual case)."""
    return _per_row(unique_flags, codes) if unique_flags.any() else None


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
