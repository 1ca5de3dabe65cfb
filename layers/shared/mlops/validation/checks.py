"""Vectorized contract checks of one frame, in memory (no S3): the core of validation.

Every check is a whole-column numpy or Arrow operation, with no Python loop over rows.
Categories, booleans and dates are normalised and checked once per distinct value (Arrow's
dictionary encoding) and spread back through the codes, so a million rows with ten makes
cost ten label look-ups; free text (identifiers) is checked row-wise by Arrow string
kernels; numbers take a text route only for the few values that did not parse as numbers.

Missing values as people write them ("NA", "N/A", "NULL", …: ``Contract.missing_values``, a
column's own list overriding) are nulls in text input (CSV cells, JSON strings), found where
each type already looks at its text: per distinct value for labels and dates, among the
unparsed values for numbers, and for free text only when some value is short enough to be one.
Lines a reader could not turn into a record (``BadLine``) count as one quarantined row each.

No text value longer than its column's cap (``Contract.max_chars_of``) passes: a contract
column's or a lineage column's oversized value fails its row under ``too_long:<column>``.
Byte lengths (Arrow's offsets) rule most columns out before any character is counted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlops.contract import NUMERIC_TYPES, ColumnSpec, Contract, normalise_label
from mlops.validation.readers import BadLine

# Columns validation adds to every validated row; a raw column of the same name is not "unexpected".
LINEAGE_ADDED = ("run_id", "ingest_date", "ingest_time", "source_object")
FAILED_RULES = "failed_rules"
REJECTED_RULE = "object_rejected"
BAD_LINE_RULE = "bad_line"
# A report lists at most this many bad lines (all are quarantined and counted).
REPORTED_BAD_LINES = 100

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
# Only formats with one reading are normalised: a leading currency sign and US thousands
# separators ("$12,500.50"). "12.500" or "12 500" could mean two things and stay type errors.
_CURRENCY = r"^[+-]?\s*[$€£]\s*"
_THOUSANDS = r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$"
# A number as pandas and Arrow both read it: sign, digits, a point, an exponent.
_PLAIN_NUMBER = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_DTYPES = {"int": "Int64", "float": "Float64", "string": "string", "category": "category"}
# Masks keeping the first k bytes of a little-endian 8-byte word, k = 0..8.
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
# An odd multiplier (2**64 / golden ratio) so a string's last 8 bytes do not cancel its first.
_MIX = np.uint64(0x9E3779B97F4A7C15)
# A bitmap of 2**20 buckets (1 MiB) finds the rows holding one of a few repeated fingerprints.
_BUCKET_BITS = 20


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
    missing_markers: dict[str, int] = field(default_factory=dict)
    bad_lines: list[BadLine] = field(default_factory=list)
    # Nulls per contract column present in the frame: what ``Tally`` sums across chunks.
    null_counts: dict[str, int] = field(default_factory=dict)
    # Whether the frame was judged as a whole object (min_rows, max_invalid_share, reject).
    judged: bool = True

    @property
    def rows_valid(self) -> int:
        return len(self.valid)

    @property
    def rows_quarantined(self) -> int:
        return len(self.invalid)

    def counts(self) -> dict[str, Any]:
        """What ``Tally`` adds up of this result, JSON-ready: counts, not rows."""
        return {
            "rows_in": self.rows_in,
            "rows_valid": self.rows_valid,
            "rows_quarantined": self.rows_quarantined,
            "rejection_reason": self.rejection_reason,
            "judged": self.judged,
            "rule_failures": self.rule_failures,
            "unexpected_columns": self.unexpected_columns,
            "missing_optional_columns": self.missing_optional_columns,
            "normalised": self.normalised,
            "missing_markers": self.missing_markers,
            "null_counts": self.null_counts,
            "bad_lines": [[b.line, b.reason] for b in self.bad_lines[:REPORTED_BAD_LINES]],
            "bad_line_count": len(self.bad_lines),
        }

    def summary(self) -> dict[str, Any]:
        """The JSON-ready part of a validation report."""
        return {
            "rows_in": self.rows_in,
            "rows_valid": self.rows_valid,
            "rows_quarantined": self.rows_quarantined,
            "rejected": self.rejected,
            "rejection_reason": self.rejection_reason,
            "judged": self.judged,
            "rule_failures": self.rule_failures,
            "unexpected_columns": self.unexpected_columns,
            "missing_optional_columns": self.missing_optional_columns,
            "null_share_over_tolerance": self.null_share_over_tolerance,
            "normalised": self.normalised,
            "missing_markers": self.missing_markers,
            "bad_lines": [
                {"line": b.line, "reason": b.reason} for b in self.bad_lines[:REPORTED_BAD_LINES]
            ],
        }


@dataclass
class _Column:
    values: pd.Series
    null: np.ndarray
    # None: no row fails that rule (saves a pass over the rows per rule that found nothing).
    type_failed: np.ndarray | None
    range_failed: np.ndarray | None = None
    allowed_failed: np.ndarray | None = None
    pattern_failed: np.ndarray | None = None
    normalised: int = 0
    # Rows whose value was a missing-value marker (now null).
    markers: int = 0


def expected_columns(contract: Contract) -> set[str]:
    return set(contract.columns) | set(contract.lineage_columns)


def check_frame(
    raw: pd.DataFrame,
    contract: Contract,
    *,
    bad_lines: Sequence[BadLine] = (),
    missing_values: bool = True,
    judge: bool = True,
    reject: str | None = None,
) -> CheckResult:
    """Check ``raw`` against ``contract``: typed valid rows, raw invalid rows with their rules.

    ``bad_lines`` are the lines of the same object its reader could not turn into records:
    each is one more row in, quarantined under ``bad_line``. ``missing_values`` reads the
    contract's missing-value markers as nulls (text formats; parquet carries real nulls).
    The object is rejected whole (every row quarantined) for ``reject``, or when ``judge`` and
    ``raw`` breaks the contract's ``min_rows`` or ``max_invalid_share``; a chunk of a larger
    object is checked with ``judge=False`` and the object judged by its ``Tally``.
    """
    if not isinstance(raw.index, pd.RangeIndex) or raw.index.start != 0:
        raw = raw.reset_index(drop=True)
    n = len(raw)
    failures: dict[str, np.ndarray] = {}
    typed: dict[str, pd.Series] = {}
    missing_optional: list[str] = []
    over_tolerance: dict[str, dict[str, float]] = {}
    normalised: dict[str, int] = {}
    marked: dict[str, int] = {}
    null_counts: dict[str, int] = {}

    for name, spec in contract.columns.items():
        if name not in raw.columns:
            typed[name] = pd.Series(pd.array([None] * n, dtype=_dtype(spec)))
            if spec.required:
                failures[f"required_column:{name}"] = np.ones(n, dtype=bool)
            else:
                missing_optional.append(name)
            continue
        markers = contract.missing_values_of(name) if missing_values else frozenset()
        column = _coerce(raw[name], spec, markers)
        null = column.null
        typed[name] = column.values
        if column.normalised:
            normalised[name] = column.normalised
        if column.markers:
            marked[name] = column.markers
        if spec.required:
            rule = "null_key" if name in contract.keys else "not_null"
            failures[f"{rule}:{name}"] = null
        found = {
            "type": column.type_failed,
            "range": column.range_failed,
            "allowed": column.allowed_failed,
            "pattern": column.pattern_failed,
        }
        failures.update({f"{rule}:{name}": m for rule, m in found.items() if m is not None})
        null_counts[name] = int(np.count_nonzero(null))
        share = null_counts[name] / n if n else 0.0
        if share > spec.max_null_share:
            over_tolerance[name] = {"share": round(share, 4), "max": spec.max_null_share}

    for name in [*contract.columns, *contract.lineage_columns]:
        if name in raw.columns:
            too_long = _too_long(raw[name], contract.max_chars_of(name))
            if too_long is not None:
                failures[f"too_long:{name}"] = too_long

    if contract.keys:
        failures["duplicate_key"] = _repeated_keys([typed[k] for k in contract.keys])

    failures = {rule: mask for rule, mask in failures.items() if mask.any()}
    invalid = np.zeros(n, dtype=bool)
    for mask in failures.values():
        invalid |= mask

    lines = len(bad_lines)
    if lines:
        failures[BAD_LINE_RULE] = np.zeros(n, dtype=bool)  # none of the read rows
    rejection = reject
    if rejection is None and judge:
        rejection = _rejection(n + lines, np.count_nonzero(invalid) + lines, contract)
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

    # The few invalid rows by position: gathering them from each mask is cheaper than
    # masking a million rows once per rule.
    rows = np.flatnonzero(invalid)
    quarantined = _as_cells(raw.take(rows))
    quarantined[FAILED_RULES] = _rule_labels({r: m[rows] for r, m in failures.items()})
    rule_failures = {rule: int(np.count_nonzero(mask)) for rule, mask in failures.items()}
    if lines:
        quarantined = _with_bad_lines(quarantined, bad_lines)
        rule_failures[BAD_LINE_RULE] = lines

    declared = expected_columns(contract) | set(LINEAGE_ADDED)
    return CheckResult(
        valid=valid,
        invalid=quarantined,
        rows_in=n + lines,
        rule_failures=rule_failures,
        rejected=rejection is not None,
        rejection_reason=rejection,
        unexpected_columns=sorted(str(c) for c in raw.columns if c not in declared),
        missing_optional_columns=missing_optional,
        null_share_over_tolerance=over_tolerance,
        normalised=normalised,
        missing_markers=marked,
        bad_lines=list(bad_lines),
        null_counts=null_counts,
        judged=judge or reject is not None,
    )


@dataclass
class Tally:
    """An object checked chunk by chunk: its chunks' results summed, judged once at the end."""

    contract: Contract
    chunks: int = 0
    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    rule_failures: Counter[str] = field(default_factory=Counter)
    unexpected_columns: set[str] = field(default_factory=set)
    missing_optional_columns: set[str] | None = None
    normalised: Counter[str] = field(default_factory=Counter)
    missing_markers: Counter[str] = field(default_factory=Counter)
    bad_lines: list[BadLine] = field(default_factory=list)
    nulls: Counter[str] = field(default_factory=Counter)
    rows_with_column: Counter[str] = field(default_factory=Counter)
    # The object was one chunk, judged by its own checks (``judged``: why it was rejected).
    whole: bool = False
    judged: str | None = None

    def add(self, result: CheckResult) -> None:
        self.add_counts(result.counts())

    def add_counts(self, counts: dict[str, Any]) -> None:
        """Add a chunk's ``CheckResult.counts()`` (a Spark piece sends them to its driver)."""
        self.chunks += 1
        self.whole = self.chunks == 1 and counts.get("judged", False)
        self.judged = counts["rejection_reason"]
        self.rows_in += counts["rows_in"]
        self.rows_valid += counts["rows_valid"]
        self.rows_quarantined += counts["rows_quarantined"]
        self.rule_failures.update(counts["rule_failures"])
        self.unexpected_columns.update(counts["unexpected_columns"])
        # Absent from the object: absent from every chunk (a JSON key may come and go).
        missing = set(counts["missing_optional_columns"])
        if self.missing_optional_columns is None:
            self.missing_optional_columns = missing
        else:
            self.missing_optional_columns &= missing
        self.normalised.update(counts["normalised"])
        self.missing_markers.update(counts["missing_markers"])
        room = max(REPORTED_BAD_LINES - len(self.bad_lines), 0)
        self.bad_lines += [BadLine(line, reason) for line, reason in counts["bad_lines"][:room]]
        self.nulls.update(counts["null_counts"])
        read = counts["rows_in"] - counts["bad_line_count"]
        self.rows_with_column.update(dict.fromkeys(counts["null_counts"], read))

    def rejection(self) -> str | None:
        """Why the whole object is rejected (``min_rows``, ``max_invalid_share``), if it is."""
        if self.whole:
            return self.judged
        return _rejection(self.rows_in, self.rows_quarantined, self.contract)

    def summary(self, rejection: str | None = None) -> dict[str, Any]:
        """The report's part ``CheckResult.summary`` gives for an object read whole."""
        failures = dict(self.rule_failures)
        valid, quarantined = self.rows_valid, self.rows_quarantined
        if rejection:
            if valid:
                failures[REJECTED_RULE] = valid
            valid, quarantined = 0, self.rows_in
        over = {}
        for name, nulls in self.nulls.items():
            share = nulls / self.rows_with_column[name] if self.rows_with_column[name] else 0.0
            tolerated = self.contract.columns[name].max_null_share
            if share > tolerated:
                over[name] = {"share": round(share, 4), "max": tolerated}
        return {
            "rows_in": self.rows_in,
            "rows_valid": valid,
            "rows_quarantined": quarantined,
            "rejected": rejection is not None,
            "rejection_reason": rejection,
            "rule_failures": failures,
            "unexpected_columns": sorted(self.unexpected_columns),
            "missing_optional_columns": [
                name
                for name in self.contract.columns
                if name in (self.missing_optional_columns or set())
            ],
            "null_share_over_tolerance": over,
            "normalised": dict(self.normalised),
            "missing_markers": dict(self.missing_markers),
            "bad_lines": [{"line": b.line, "reason": b.reason} for b in self.bad_lines],
        }


def _with_bad_lines(quarantined: pd.DataFrame, bad_lines: Sequence[BadLine]) -> pd.DataFrame:
    """``quarantined`` and one row per bad line: no cells, its number, reason and text."""
    count = len(bad_lines)
    rows = pd.DataFrame(
        {c: pd.array([None] * count, dtype="string") for c in quarantined.columns},
        index=pd.RangeIndex(count),
    )
    rows[FAILED_RULES] = pd.array([BAD_LINE_RULE] * count, dtype="string")
    rows["line_number"] = pd.array([b.line for b in bad_lines], dtype="Int64")
    rows["line_reason"] = pd.array([b.reason for b in bad_lines], dtype="string")
    rows["line_text"] = pd.array([b.text for b in bad_lines], dtype="string")
    if not len(quarantined):
        return rows
    return pd.concat([quarantined, rows], ignore_index=True)


def _as_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows as they came, every cell as text (``astype("string")``), on a fresh index."""
    cells = pd.DataFrame(
        {i: _cell_text(column) for i, (_, column) in enumerate(rows.items())},
        index=pd.RangeIndex(len(rows)),
        copy=False,
    )
    cells.columns = rows.columns
    return cells


def _cell_text(column: pd.Series) -> pd.array:
    """``column.astype("string")``, each distinct float written once.

    Writing a float as text (its shortest repr) is the slowest step of quarantining rows,
    and the same prices and sizes recur; whole floats, the usual kind, are written by
    Arrow as integers with ".0" (what repr gives below 1e16).
    """
    floats = isinstance(column.dtype, np.dtype) and column.dtype == np.float64
    # A few rows are not worth finding their distinct values.
    if not floats or len(column) < 256:
        return column.array.astype("string")
    values = column.to_numpy()
    if np.signbit(values[values == 0]).any():
        # Distinct values would make -0.0 and 0.0 one: the per-value route keeps both.
        return column.array.astype("string")
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    whole = (np.abs(distinct) < 1e16) & (distinct == np.trunc(distinct))
    text = np.empty(len(distinct), dtype=object)
    text[~whole] = [str(value) for value in distinct[~whole].tolist()]
    if whole.any():
        digits = pa.array(distinct[whole].astype(np.int64)).cast(pa.string())
        text[whole] = pc.binary_join_element_wise(digits, ".0", "").to_numpy(zero_copy_only=False)
    return pd.array(text, dtype="string").take(codes, allow_fill=True)


def _repeated_keys(keys: list[pd.Series]) -> np.ndarray:
    """Rows whose complete key appeared on an earlier row (the first copy stays valid)."""
    complete = np.logical_and.reduce([k.notna().to_numpy(dtype=bool) for k in keys])
    if len(keys) > 1:
        repeated = pd.DataFrame(dict(enumerate(keys)), copy=False).duplicated(keep="first")
        return repeated.to_numpy(dtype=bool) & complete
    key = keys[0]
    if _is_arrow_text(key):
        return _repeated_text(key, complete)
    return key.duplicated(keep="first").to_numpy(dtype=bool) & complete


def _repeated_text(key: pd.Series, complete: np.ndarray) -> np.ndarray:
    """``duplicated(keep="first")`` of an Arrow text key, by fingerprints and an exact recheck.

    Identifiers are mostly distinct, and hashing a million distinct strings into a table (what
    ``duplicated`` does) was the costliest step of validation. A fingerprint of each string
    (its first and last 8 bytes, read straight from Arrow's buffers) is an integer, and
    integers sort fast: equal neighbours in sorted order are the fingerprints that repeat.
    Only rows holding one of those can be copies; they alone are compared as text, so the
    answer is exact whatever the fingerprints collide on.
    """
    repeated = np.zeros(len(key), dtype=bool)
    fingerprints = _fingerprints(_arrow(key))
    ordered = np.sort(fingerprints)
    shared = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(shared):
        return repeated
    # Rows holding a shared fingerprint: a bitmap over a hash of the fingerprints rules out
    # nearly every row in one gather (a set look-up per row costs several times more), and
    # the few rows left are looked up exactly.
    bitmap = np.zeros(1 << _BUCKET_BITS, dtype=bool)
    bitmap[_bucket(shared)] = True
    maybe = np.flatnonzero(bitmap[_bucket(fingerprints)] & complete)
    candidates = maybe[pd.Series(fingerprints[maybe], copy=False).isin(shared).to_numpy()]
    # Kept in row order, so the first copy among the candidates is the first copy overall.
    copies = key.iloc[candidates].duplicated(keep="first").to_numpy(dtype=bool)
    repeated[candidates[copies]] = True
    return repeated


def _bucket(fingerprints: np.ndarray) -> np.ndarray:
    """The top bits of a multiplicative hash: short strings' fingerprints vary in any bits."""
    # As signed integers (a view: the values are small) numpy indexes without converting.
    return ((fingerprints * _MIX) >> np.uint64(64 - _BUCKET_BITS)).view(np.int64)


def _text_bytes(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Each string's byte offsets (from 0) and all the bytes, 8 zero bytes after the last.

    Read straight from Arrow's buffers; the zeros let a read of 8 bytes at any string's
    start stay inside.
    """
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if not pa.types.is_large_string(text.type):
        text = text.cast(pa.large_string())  # 64-bit offsets: one layout to read
    _, offsets_buffer, data_buffer = text.buffers()
    bounds = np.frombuffer(offsets_buffer, dtype=np.int64)[
        text.offset : text.offset + len(text) + 1
    ]
    begin, end = int(bounds[0]), int(bounds[-1])
    data = np.zeros(end - begin + 8, dtype=np.uint8)
    if data_buffer is not None:
        data[: end - begin] = np.frombuffer(data_buffer, dtype=np.uint8)[begin:end]
    return bounds - begin, data


def _fingerprints(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit fingerprint per string: equal strings always share one."""
    bounds, data = _text_bytes(text)
    # The little-endian 8-byte word at every byte offset, as a view (no copy).
    words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    starts, ends = bounds[:-1], bounds[1:]
    lengths = ends - starts
    shortest, longest = (int(lengths.min()), int(lengths.max())) if len(lengths) else (0, 0)
    # Bytes past a string's end belong to the next one: masked off strings under 8 bytes.
    keep = _BYTE_MASKS[np.minimum(lengths, 8)] if shortest < 8 else None
    head = words[starts]
    if keep is not None:
        head &= keep
    if longest <= 8:
        return head  # the first 8 bytes are the whole string
    tail = words[np.maximum(ends - 8, starts)]
    if keep is not None:
        tail &= keep
    return head ^ tail * _MIX


def _untrimmed(text: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Empty strings if no string could need trimming, else None (they must be trimmed).

    Whitespace is an ASCII byte up to the space or a non-ASCII character, so a string whose
    first and last bytes are neither has nothing to trim: two bytes per row, not a copy of
    every string.
    """
    bounds, data = _text_bytes(text)
    starts, ends = bounds[:-1], bounds[1:]
    filled = ends > starts
    for edge in (data[starts], data[np.maximum(ends - 1, 0)]):
        if np.any(filled & ((edge <= 0x20) | (edge >= 0x80))):
            return None
    return ~filled


def _is_arrow_text(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow"


def _as_text(series: pd.Series) -> pd.Series:
    """Text in Arrow-backed strings, so string methods run in C (no copy if it already is).

    pandas 3 reads text that way by default; pandas 2 (AWS's managed layer) gives Python
    objects, whose string methods loop per row.
    """
    if _is_arrow_text(series):
        return series
    return series.astype("string[pyarrow]")


def _arrow(text: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The Arrow data under an Arrow-backed text Series (no copy).

    Arrow's kernels called directly return Arrow results: no conversion back to a pandas
    array per call, which is most of the cost of a string method on a few distinct values.
    """
    return pa.array(text.array)


def _flags(result: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow boolean result as a numpy mask, null counting as False."""
    if result.null_count:
        result = pc.fill_null(result, False)
    return np.asarray(result.to_numpy(zero_copy_only=False), dtype=bool)


def _fullmatch(text: pd.Series, pattern: str) -> np.ndarray:
    """Rows of Arrow-backed ``text`` that ``pattern`` matches whole, as Python's ``re`` would."""
    if any(t in pattern.replace("(?:", "") for t in ("\\", "(?", "[:", "{,")):
        # Escapes (\s, \w, \d...), lookarounds, inline flags, POSIX classes and open
        # repeats read differently in RE2, Arrow's engine, or not at all: pandas knows
        # when to fall back to Python's re.
        return text.str.fullmatch(pattern).to_numpy(dtype=bool, na_value=False)
    # Literals, classes, quantifiers and anchors read the same in both. Arrow's kernel
    # called directly skips pandas' conversion of the result; the pattern is anchored
    # around a group so the whole value must match even with alternatives (a|b).
    return _flags(pc.match_substring_regex(_arrow(text), pattern=f"^(?:{pattern})$"))


def _distinct(series: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """Each row's code into the distinct values (-1 for null) and those values as text."""
    if _is_arrow_text(series):
        # Arrow's dictionary encoding straight away: pandas' factorize wraps the same call
        # with copies of the codes.
        encoded = _arrow(series).dictionary_encode()
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()  # one dictionary for every chunk
        indices = encoded.indices
        if indices.null_count:
            indices = pc.fill_null(indices, -1)
        # numpy gathers through platform-size indices several times faster than through
        # Arrow's 32-bit ones, and the codes are gathered through more than once.
        return indices.to_numpy(zero_copy_only=False).astype(np.intp), encoded.dictionary
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return codes, pa.array(pd.array(uniques, dtype="string[pyarrow]"))


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


def _coerce(series: pd.Series, spec: ColumnSpec, markers: frozenset[str]) -> _Column:
    # Nulls start as what pandas calls missing; each type adds its blanks ("" or spaces in a
    # CSV cell mean "no value") and its missing-value markers, found where it is cheapest for
    # that type.
    null = series.isna().to_numpy(dtype=bool, copy=True)
    if spec.type in NUMERIC_TYPES:
        return _numbers(series, null, spec, markers)
    if spec.type == "datetime":
        return _datetimes(series, null, spec, markers)
    if spec.type == "string":
        return _strings(series, null, spec, markers)
    return _labels(series, null, spec, markers)


def _blank(values: pd.Series) -> np.ndarray:
    return values.astype("string").str.strip().eq("").to_numpy(dtype=bool, na_value=False)


def _numbers(
    series: pd.Series, null: np.ndarray, spec: ColumnSpec, markers: frozenset[str]
) -> _Column:
    repaired = 0
    marked = 0
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = series.to_numpy(dtype="float64", na_value=np.nan, copy=True)
    else:
        numbers = _plain_numbers(series, null)
        unparsed = np.flatnonzero(np.isnan(numbers) & ~null)
        if len(unparsed):
            # Only the few values that failed take the slower text route.
            text = series.iloc[unparsed].astype("string").str.strip()
            blank = text.eq("").to_numpy(dtype=bool, na_value=False)
            if markers:
                marker = text.isin(markers).to_numpy(dtype=bool, na_value=False)
                marked = int(np.count_nonzero(marker))
                blank |= marker
            null[unparsed[blank]] = True
            text = text.str.replace(_CURRENCY, "", regex=True)
            grouped = text.str.fullmatch(_THOUSANDS).to_numpy(dtype=bool, na_value=False)
            text = text.where(~grouped, text.str.replace(",", ""))
            fixed = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            numbers[unparsed] = fixed
            repaired = int(np.count_nonzero(~np.isnan(fixed)))
    # An int is a whole number within 2**62, past which a float no longer holds an exact
    # integer (and Int64 would overflow).
    if spec.type == "int" and isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":
        # Plain integers: no nulls and nothing fractional, so the extremes are enough.
        within = len(numbers) == 0 or max(-numbers.min(), numbers.max()) <= 2.0**62
        bad = np.zeros(len(numbers), dtype=bool) if within else np.abs(numbers) > 2.0**62
    elif spec.type == "int":
        # Comparisons with NaN are False: nulls, NaN and inf all fall out of ``whole``.
        whole = (np.abs(numbers) <= 2.0**62) & (numbers == np.floor(numbers))
        bad = ~whole & ~null
    else:
        bad = ~np.isfinite(numbers) & ~null
    missing = bad | null
    filled = numbers
    if missing.any():
        numbers[missing] = np.nan
        filled = np.where(missing, 0, numbers)
    if spec.type == "int":
        out = pd.arrays.IntegerArray(filled.astype("int64"), missing)
    else:
        out = pd.arrays.FloatingArray(filled, missing)
    # Bounds on the floats themselves: NaN (every missing value) compares False.
    outside = None
    if spec.min is not None:
        outside = numbers < spec.min
    if spec.max is not None:
        above = numbers > spec.max
        outside = above if outside is None else outside | above
    allowed = None
    if spec.allowed is not None:
        permitted = [float(v) for v in spec.allowed]
        allowed = ~np.isin(numbers, permitted) & ~missing
    return _Column(
        pd.Series(out),
        null,
        bad,
        range_failed=outside,
        allowed_failed=allowed,
        normalised=repaired,
        markers=marked,
    )


def _plain_numbers(series: pd.Series, null: np.ndarray) -> np.ndarray:
    """The values written as plain numbers ("12", "-0.5", "1e3", " 7 "); NaN for the rest.

    Parsed by Arrow when the text is Arrow's (a CSV's cells): ``pd.to_numeric`` on text was
    three quarters of a chunk's checks. Anything else ("12,500", "$5", markers) is NaN here
    and takes the text route, as before.
    """
    if _is_arrow_text(series):
        text = pc.utf8_trim_whitespace(_arrow(series))
        try:
            parsed = pc.cast(text, pa.float64())  # a column of numbers only: the usual case
        except pa.ArrowInvalid:
            try:
                plain = pc.match_substring_regex(text, _PLAIN_NUMBER)
                parsed = pc.cast(pc.if_else(plain, text, None), pa.float64())
            except pa.ArrowInvalid:
                parsed = None  # a form the pattern admits and Arrow does not: pandas decides
        if parsed is not None:
            return np.asarray(parsed.to_numpy(zero_copy_only=False), dtype="float64").copy()
    return pd.to_numeric(series.where(~null), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan, copy=True
    )


def _datetimes(
    series: pd.Series, null: np.ndarray, spec: ColumnSpec, markers: frozenset[str]
) -> _Column:
    if pd.api.types.is_datetime64_any_dtype(series):
        values = pd.to_datetime(series, utc=True).dt.tz_convert(None).astype("datetime64[us]")
        bad = values.isna().to_numpy() & ~null
        return _Column(values, null, bad, range_failed=_dates_out_of_range(values, spec))
    # Dates repeat (a scrape spans days, not rows): parse, convert and check each distinct
    # text once, then spread the dates and the flags to the rows.
    codes, distinct = _distinct(series)
    parsed = pd.to_datetime(
        pd.Series(pd.arrays.ArrowStringArray(distinct)).astype("string"),
        errors="coerce",
        utc=True,
        format="ISO8601",
    )
    # Naive UTC: what Glue/Athena's `timestamp` holds.
    parsed = parsed.dt.tz_convert(None).astype("datetime64[us]")
    failed = parsed.isna().to_numpy()
    trimmed = pc.utf8_trim_whitespace(distinct)
    blank = failed & _flags(pc.equal(trimmed, ""))
    marked = 0
    if markers and failed.any():
        marker = failed & _is_marker(trimmed, markers)
        if marker.any():
            marked = int(np.count_nonzero(_per_row(marker, codes)))
            blank |= marker
    if blank.any():
        null |= _per_row(blank, codes)
    return _Column(
        pd.Series(parsed.array.take(codes, allow_fill=True)),
        null,
        _per_row(failed & ~blank, codes),
        range_failed=_rows_flagged(_dates_out_of_range(parsed, spec), codes),
        markers=marked,
    )


def _is_marker(text: pa.Array | pa.ChunkedArray, markers: frozenset[str]) -> np.ndarray:
    """Which of ``text`` (already trimmed) are missing-value markers."""
    return _flags(pc.is_in(text, value_set=pa.array(sorted(markers), type=text.type)))


def _labels(
    series: pd.Series, null: np.ndarray, spec: ColumnSpec, markers: frozenset[str]
) -> _Column:
    """Categories and booleans, normalised and checked once per distinct value.

    The distinct values are few, so they are handled as Python strings, with the contract's
    own ``normalise_label`` and Python's ``re``: the same rules the contract's labels,
    aliases and patterns are written and checked with, at a cost that does not grow with
    the rows. Only the codes are per row.
    """
    codes, distinct = _distinct(series)
    raw = distinct.to_pylist()
    aliases = {normalise_label(a): normalise_label(c) for a, c in spec.aliases.items()}
    text = [aliases.get(label, label) for label in map(normalise_label, raw)]
    blank = np.array([label == "" for label in text], dtype=bool)
    marked = 0
    if markers:
        # Before normalising: markers are matched as written ("None", not "none").
        marker = np.array([str(value).strip() in markers for value in raw], dtype=bool)
        if marker.any():
            marked = int(np.count_nonzero(_per_row(marker, codes)))
            blank |= marker
    if blank.any():
        codes = np.where(_per_row(blank, codes), -1, codes)
        null |= codes < 0
    changed = np.array([a != b for a, b in zip(text, raw, strict=True)], dtype=bool) & ~blank
    normalised = int(np.count_nonzero(_per_row(changed, codes))) if changed.any() else 0

    type_bad = None
    if spec.type == "bool":
        true = np.array([label in _TRUE for label in text], dtype=bool)
        false = np.array([label in _FALSE for label in text], dtype=bool)
        truth = pd.arrays.BooleanArray(true, ~(true | false))
        type_bad = _rows_flagged(~(true | false) & ~blank, codes)
        values = pd.Series(truth.take(codes, allow_fill=True))
    else:
        # Codes into the distinct labels: no per-row string copies. Aliases can make two
        # distinct raw values one label, so the categories are the unique labels.
        labels, label_codes = np.unique(np.array(text, dtype=object), return_inverse=True)
        # Looked up in the smallest integer type holding every code (what Categorical keeps),
        # so the per-row gather writes bytes, not 8-byte integers converted afterwards.
        lookup = np.append(label_codes.ravel(), -1).astype(np.min_scalar_type(-len(labels) - 1))
        values = pd.Series(
            pd.Categorical.from_codes(
                lookup[codes], categories=pd.Index(labels, dtype="string"), validate=False
            )
        )

    allowed = None
    if spec.allowed is not None:
        permitted = {normalise_label(v) for v in spec.allowed}
        listed = np.array([label in permitted for label in text], dtype=bool)
        allowed = _rows_flagged(~listed, codes)
    pattern = None
    if spec.pattern is not None:
        compiled = re.compile(spec.pattern)
        matched = np.array([compiled.fullmatch(label) is not None for label in text], dtype=bool)
        pattern = _rows_flagged(~matched, codes)
    return _Column(
        values,
        null,
        type_bad,
        allowed_failed=allowed,
        pattern_failed=pattern,
        normalised=normalised,
        markers=marked,
    )


def _strings(
    series: pd.Series, null: np.ndarray, spec: ColumnSpec, markers: frozenset[str]
) -> _Column:
    """Free text (identifiers, URLs): mostly distinct values, so checked row-wise in Arrow."""
    raw = _as_text(series)
    empty = _untrimmed(_arrow(raw))
    if empty is not None:
        # Nothing to trim (the usual case for identifiers): blanks are the empty strings.
        text, blank, changed = raw, empty & ~null, np.zeros(len(raw), dtype=bool)
    else:
        text = raw.str.strip()
        # Byte lengths answer both questions without comparing text: nothing left is a
        # blank, fewer bytes than before means something was trimmed.
        length = pc.binary_length(_arrow(text))
        blank = _flags(pc.equal(length, 0))
        changed = _flags(pc.not_equal(length, pc.binary_length(_arrow(raw))))
    trimmed = _arrow(text)
    marked = 0
    if markers:
        # Identifiers are mostly longer than any marker: only short values are looked up.
        longest = max(len(m.encode()) for m in markers)
        if np.any(_flags(pc.less_equal(pc.binary_length(trimmed), longest)) & ~blank):
            marker = _is_marker(trimmed, markers) & ~null
            marked = int(np.count_nonzero(marker))
            blank = blank | marker
    if blank.any():
        null |= blank
        text = text.where(~null)
    changed &= ~null
    allowed = None
    if spec.allowed is not None:
        permitted = sorted({normalise_label(v) for v in spec.allowed})
        lowered = pc.utf8_lower(trimmed)
        listed = _flags(pc.is_in(lowered, value_set=pa.array(permitted, type=lowered.type)))
        allowed = ~listed & ~null
    pattern = None
    if spec.pattern is not None:
        pattern = ~_fullmatch(text, spec.pattern) & ~null
    return _Column(
        text.reset_index(drop=True),
        null,
        None,
        allowed_failed=allowed,
        pattern_failed=pattern,
        normalised=int(np.count_nonzero(changed)),
        markers=marked,
    )


def _too_long(series: pd.Series, limit: int) -> np.ndarray | None:
    """Rows whose value as text is longer than ``limit`` characters; None when no row is."""
    dtype = series.dtype
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return None  # parquet's numbers, booleans and timestamps have short texts
    text = _arrow(_as_text(series))
    # A UTF-8 character is 1 to 4 bytes: no value longer in characters than in bytes, so a
    # column whose longest value has at most ``limit`` bytes needs no characters counted.
    longest = pc.max(pc.binary_length(text)).as_py()
    if longest is None or longest <= limit:
        return None
    over = _flags(pc.greater(pc.utf8_length(text), limit))
    return over if over.any() else None


def _per_row(unique_flags: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Spread a flag per distinct value to every row holding it (nulls are never flagged)."""
    # A trailing False is what code -1 (null) picks: one gather, no masking pass.
    return np.append(unique_flags, False)[codes]


def _rows_flagged(unique_flags: np.ndarray, codes: np.ndarray) -> np.ndarray | None:
    """``_per_row``, or None when no distinct value is flagged (the usual case)."""
    return _per_row(unique_flags, codes) if unique_flags.any() else None


def _dates_out_of_range(values: pd.Series, spec: ColumnSpec) -> np.ndarray:
    failed = np.zeros(len(values), dtype=bool)
    for bound, outside in ((spec.min, values.lt), (spec.max, values.gt)):
        if bound is not None:
            failed |= outside(pd.Timestamp(bound)).fillna(False).to_numpy(dtype=bool)
    return failed


def _rule_labels(masks: dict[str, np.ndarray]) -> pd.Series:
    """``"range:year;allowed:fuel"`` per row, built once per distinct combination of rules."""
    rules = list(masks)
    if not rules:
        return pd.Series([], dtype="string")
    packed = np.packbits(np.column_stack([masks[r] for r in rules]), axis=1)
    # Each row's bits as one opaque value: np.unique of those is several times faster than
    # np.unique(axis=0), which compares rows column by column.
    width = packed.shape[1]
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, width))).ravel()
    combos, inverse = np.unique(keys, return_inverse=True)
    combo_bits = combos.view(np.uint8).reshape(-1, width)
    unpacked = np.unpackbits(combo_bits, axis=1, count=len(rules)).astype(bool)
    names = [";".join(r for r, hit in zip(rules, row, strict=True) if hit) for row in unpacked]
    return pd.Series(pd.array(names, dtype="string").take(inverse.ravel()))
