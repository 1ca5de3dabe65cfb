"""Draft a dataset contract from the data itself (``mlops contract init``).

Each column's type, range, allowed values, null tolerance and imputation is inferred from
a sample of the file, read with the same readers and missing-value markers as validation;
every choice carries a comment saying what was seen, so a person reviews the draft in one
read. The draft is checked against its own sample with the validator before it is
written: a contract that would quarantine the data it was drafted from is a bug here.

Build-time tooling (never inside a Lambda): it runs where the user's data is.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlops.contract import (
    DEFAULT_MISSING_VALUES,
    Contract,
    Task,
    normalise_label,
)
from mlops.ml.splitting import SPLITS, min_rows_per_split, rows_needed

# A sample this large pins types and ranges well and reads in seconds.
DEFAULT_SAMPLE_ROWS = 100_000
# Bytes read from the head of a text file for a sample (a whole file when smaller).
_SAMPLE_BYTES = 64 * 1024 * 1024
# A file on the user's own disk: read as far as the sample needs, whatever it decodes to.
_NO_CAP = 2**62
# Text with at most this many distinct labels (and repeating) is a category.
MAX_CATEGORIES = 50
# A numeric target with more distinct values than this is a regression target.
MAX_CLASSES = 20
# Fewest rows per class for a classification target before the draft warns.
MIN_ROWS_PER_CLASS = 10
# Ranges get this share of the seen span as a margin on each side.
RANGE_MARGIN = 0.1
# Outlier rules (see ``outliers``): a rare sign, and distance from the quartiles in IQRs.
OUTLIER_SIGN_SHARE = 0.01
OUTLIER_IQRS = 3.0
OUTLIER_GAP_IQRS = 2.0
OUTLIER_MIN_ROWS = 20
_INT = re.compile(r"^[+-]?\d+$")
_LEADING_ZERO = re.compile(r"^0\d")
_ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)
_ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key)$|^id_", re.IGNORECASE)
_CODE_NAME = re.compile(r"(code|zip|postcode|postal|phone|sku|ean|isbn)", re.IGNORECASE)
# Text YAML writes unquoted and reads back unchanged; the words it would read as
# booleans or null are quoted.
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*( [A-Za-z0-9_]+)*$")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
_BOOL_LABELS = ({"true", "false"}, {"t", "f"})
ColumnType = Literal["int", "float", "string", "category", "bool", "datetime"]


class DraftError(ValueError):
    """The data cannot be drafted into a contract (no rows, no such target …)."""


@dataclass
class ColumnDraft:
    """What the draft says about one column, and why."""

    name: str
    type: ColumnType
    seen: str
    required: bool = True
    max_null_share: float = 0.0
    min: int | float | str | None = None
    max: int | float | str | None = None
    allowed: list[Any] | None = None
    feature: bool = True
    impute: str = "none"
    identifier: bool = False
    # Values seen but left outside the range as likely entry errors (quarantined).
    outliers: int = 0
    notes: list[str] = field(default_factory=list)

    def spec(self) -> dict[str, Any]:
        """The column as the contract's ``ColumnSpec`` fields, defaults left out."""
        out: dict[str, Any] = {"type": self.type}
        if not self.required:
            out["required"] = False
        if self.max_null_share:
            out["max_null_share"] = self.max_null_share
        for bound in ("min", "max"):
            if getattr(self, bound) is not None:
                out[bound] = getattr(self, bound)
        if self.allowed is not None:
            out["allowed"] = self.allowed
        if not self.feature:
            out["feature"] = False
        if self.impute != "none":
            out["impute"] = self.impute
        return out


@dataclass
class Draft:
    """A drafted contract: its YAML text, the parsed contract and what the drafter warns."""

    text: str
    contract: Contract
    columns: list[ColumnDraft]
    warnings: list[str]
    rows: int


# ---------------------------------------------------------------------------- reading
def read_sample(path: Path, max_rows: int = DEFAULT_SAMPLE_ROWS) -> tuple[pd.DataFrame, bool]:
    """The first ``max_rows`` records of ``path`` and whether the file had more.

    Read by validation's own readers (same formats, markers as text, bad lines left out).
    """
    from mlops.validation.readers import check_format, read_chunks

    fmt = check_format(path.name)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        batches, taken = [], 0
        for batch in parquet.iter_batches(batch_size=min(max_rows, 65_536)):
            batches.append(batch)
            taken += batch.num_rows
            if taken >= max_rows:
                break
        if not batches:
            raise DraftError(f"{path.name} has no records")
        import pyarrow as pa

        frame = pa.Table.from_batches(batches).to_pandas().head(max_rows)
        return frame, parquet.metadata.num_rows > len(frame)
    # The first chunk of whole records, as validation would read it (quoted line breaks kept).
    with path.open("rb") as stream:
        chunks = read_chunks(stream, path.name, max_bytes=_NO_CAP, chunk_bytes=_SAMPLE_BYTES)
        frame = next(chunks).frame
        more = len(frame) > max_rows or next(chunks, None) is not None
    return frame.head(max_rows).reset_index(drop=True), more


# ---------------------------------------------------------------------------- inference
def _text(series: pd.Series, markers: frozenset[str]) -> pd.Series:
    """Non-null values as trimmed text, missing-value markers and blanks dropped."""
    values = series.dropna().astype(str).str.strip()
    return values[(values != "") & ~values.isin(markers)]


def _margin(
    lo: float, hi: float, integral: bool, below: float | None = None, above: float | None = None
) -> tuple[float, float]:
    """``lo..hi`` widened by a margin that stops halfway to the nearest outlier either side."""
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    low, high = lo - RANGE_MARGIN * span, hi + RANGE_MARGIN * span
    if lo >= 0:
        low = max(0.0, low)  # a quantity seen never negative stays so
    if below is not None:
        low = max(low, (lo + below) / 2)
    if above is not None:
        high = min(high, (hi + above) / 2)
    if integral:
        return float(math.floor(low)), float(math.ceil(high))
    return _round(low, math.floor), _round(high, math.ceil)


def outliers(numbers: pd.Series) -> pd.Series:
    """Which values look like entry errors rather than data (flags, same index).

    Two rules a reviewer can check by eye: a sign seen in under 1% of the values (a
    negative mileage among positive ones), and values cut off from the rest: beyond three
    interquartile ranges of the quartiles *and* across a gap of over two interquartile
    ranges from every value nearer the middle (a year 2099 among 1995..2026; a price of 1
    among prices from 500 up, on a log scale when the column is positive and spans an
    order of magnitude). A long but continuous tail is data, not an error.
    """
    flagged = pd.Series(False, index=numbers.index)
    negative = numbers < 0
    if 0 < negative.mean() < OUTLIER_SIGN_SHARE:
        flagged |= negative
    rest = numbers[~flagged]
    if len(rest) < OUTLIER_MIN_ROWS:
        return flagged
    scale = rest
    if (rest > 0).all() and rest.max() / rest.min() >= 10:
        scale = np.log10(rest)
    q1, q3 = float(scale.quantile(0.25)), float(scale.quantile(0.75))
    iqr = q3 - q1
    if iqr <= 0:
        return flagged
    distinct = np.unique(scale.to_numpy(dtype=float))
    cut_low, cut_high = -np.inf, np.inf
    lower = distinct[distinct < q1][::-1]
    for nearer, value in zip(np.concatenate([[q1], lower]), lower, strict=False):
        if nearer - value > OUTLIER_GAP_IQRS * iqr and value < q1 - OUTLIER_IQRS * iqr:
            cut_low = value
            break
    upper = distinct[distinct > q3]
    for nearer, value in zip(np.concatenate([[q3], upper]), upper, strict=False):
        if value - nearer > OUTLIER_GAP_IQRS * iqr and value > q3 + OUTLIER_IQRS * iqr:
            cut_high = value
            break
    beyond = (scale <= cut_low) | (scale >= cut_high)
    flagged.loc[beyond[beyond].index] = True
    return flagged


def _round(value: float, direction: Any) -> float:
    """``value`` rounded outward to three significant digits."""
    if value == 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(abs(value))) - 2)
    return float(direction(value / scale) * scale)


def _number(value: float, integral: bool) -> int | float:
    return int(value) if integral else float(f"{value:.6g}")


def _null_tolerance(draft: ColumnDraft, nulls: int, rows: int) -> str:
    if not nulls:
        return "never empty"
    share = nulls / rows
    draft.required = False
    # Room above the share seen, so a slightly emptier day still passes.
    draft.max_null_share = min(1.0, math.ceil((share * 1.5 + 0.01) * 100) / 100)
    return f"{share:.1%} empty"


def infer_column(
    name: str, series: pd.Series, markers: frozenset[str], *, target: bool = False
) -> ColumnDraft:
    """The draft of one column from its values (text or typed, as the reader gave them)."""
    rows = len(series)
    if pd.api.types.is_bool_dtype(series):
        values = series.dropna()
        kind: ColumnType = "bool"
    elif pd.api.types.is_numeric_dtype(series):
        values = series.dropna()
        integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
        kind = "int" if pd.api.types.is_integer_dtype(series) or integral else "float"
    elif pd.api.types.is_datetime64_any_dtype(series):
        values = series.dropna()
        kind = "datetime"
    else:
        values = _text(series, markers)
        kind = _text_kind(values)
    nulls = rows - len(values)
    if len(values) == 0:
        draft = ColumnDraft(name, "string", "always empty", feature=False)
        draft.notes.append(f"column {name} is empty in every row seen: kept out of the features")
        _null_tolerance(draft, nulls, rows)
        return draft
    distinct = values.nunique()
    if kind in ("int", "float"):
        draft = _numeric(name, values, kind, distinct, rows)
    elif kind == "datetime":
        draft = _dates(name, values)
    elif kind == "bool":
        draft = ColumnDraft(name, "bool", f"{distinct} labels", impute="most_frequent")
    else:
        draft = _labels(name, values, distinct, rows, kind)
    empty = _null_tolerance(draft, nulls, rows)
    draft.seen = f"{draft.seen}; {empty}" if draft.seen else empty
    if distinct == 1 and not target:
        draft.feature, draft.impute = False, "none"
        draft.notes.append(f"column {name} has one value in every row: not a feature")
    if not draft.feature:
        draft.impute = "none"
    return draft


def _text_kind(values: pd.Series) -> ColumnType:
    if values.str.fullmatch(_INT).all():
        if values.str.match(_LEADING_ZERO).any():
            return "string"  # leading zeros: a code, whose zeros a number would lose
        return "int"
    if (
        pd.to_numeric(values, errors="coerce").notna().all()
        and not values.str.contains("[a-zA-Z]", regex=True).any()
    ):
        return "float"
    labels = set(values.str.lower().unique()[:3])
    if any(labels <= pair for pair in _BOOL_LABELS) and values.nunique() <= 4:
        return "bool"
    if values.str.fullmatch(_ISO_DATE).all():
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
        if parsed.notna().all():
            return "datetime"
    return "category"


def _numeric(
    name: str, values: pd.Series, kind: ColumnType, distinct: int, rows: int
) -> ColumnDraft:
    numbers = pd.to_numeric(values).astype(float)
    odd = outliers(numbers)
    inliers = numbers[~odd]
    lo, hi = float(inliers.min()), float(inliers.max())
    integral = kind == "int"
    below = numbers[odd & (numbers < lo)]
    above = numbers[odd & (numbers > hi)]
    low, high = _margin(
        lo,
        hi,
        integral,
        float(below.max()) if len(below) else None,
        float(above.min()) if len(above) else None,
    )
    seen = f"{_number(lo, integral)}..{_number(hi, integral)}"
    draft = ColumnDraft(
        name, kind, seen, min=_number(low, integral), max=_number(high, integral), impute="median"
    )
    if odd.any():
        shown = ", ".join(f"{_number(v, integral)}" for v in sorted(numbers[odd].unique())[:5])
        draft.outliers = int(odd.sum())
        draft.seen += f"; {draft.outliers} outliers left out ({shown})"
        draft.notes.append(
            f"column {name}: {draft.outliers} values look like errors ({shown}) and fall outside "
            "the drafted range, so validation quarantines them; widen min/max if they are real"
        )
    counter = integral and distinct == len(values) and hi - lo + 1 == len(values)
    if integral and distinct == len(values) == rows and (_ID_NAME.search(name) or counter):
        draft.identifier, draft.feature, draft.min, draft.max = True, False, None, None
        draft.seen += ", unique: an identifier"
    elif integral and _CODE_NAME.search(name):
        draft.notes.append(
            f"column {name} is numeric but its name suggests a code: if its numbers do not "
            "measure anything, make it a category"
        )
    elif integral and 2 < distinct <= 5:
        draft.notes.append(
            f"column {name} is numeric with only {distinct} values: if they are codes for "
            "categories, make it a category"
        )
    return draft


def _dates(name: str, values: pd.Series) -> ColumnDraft:
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    lo, hi = parsed.min(), parsed.max()
    # A year either side: dates move on, and a draft should pass next month's data.
    low = (lo - pd.DateOffset(years=1)).date().isoformat()
    high = (hi + pd.DateOffset(years=1)).date().isoformat()
    draft = ColumnDraft(
        name, "datetime", f"{lo.date()}..{hi.date()}", min=low, max=high, feature=False
    )
    draft.seen += "; dates are not model inputs as they are"
    return draft


def _labels(
    name: str, values: pd.Series, distinct: int, rows: int, kind: ColumnType
) -> ColumnDraft:
    labels = values.map(normalise_label)
    counts = labels.value_counts()
    if kind == "string" or (len(counts) > MAX_CATEGORIES or len(counts) > max(2, len(values) // 2)):
        unique = distinct == len(values) == rows
        draft = ColumnDraft(name, "string", f"{distinct} distinct values", feature=False)
        if unique:
            draft.identifier = True
            draft.seen += ", unique: an identifier"
        elif kind == "string":
            draft.seen += ", leading zeros: a code kept as text"
        else:
            draft.seen += ": free text, not a feature"
        return draft
    allowed = sorted(counts.index.tolist())
    draft = ColumnDraft(
        name,
        "category",
        f"{len(allowed)} labels, most common {counts.index[0]!r} ({counts.iloc[0]})",
        allowed=allowed,
        impute="most_frequent",
    )
    spellings: dict[str, list[str]] = {}
    for label in allowed:
        spellings.setdefault(re.sub(r"[^0-9a-z]", "", label), []).append(label)
    alike = [group for group in spellings.values() if len(group) > 1]
    if alike:
        shown = "; ".join(" / ".join(group) for group in alike)
        draft.notes.append(
            f"column {name}: labels that differ only in spaces or punctuation ({shown}): if "
            "they mean the same, keep one in allowed and map the others with aliases"
        )
    return draft


def infer_task(draft: ColumnDraft, series: pd.Series, markers: frozenset[str]) -> Task:
    """Regression for a numeric target with many values, classification otherwise."""
    if draft.type in ("int", "float"):
        distinct = pd.to_numeric(_text(series, markers)).nunique()
        if draft.type == "float" or distinct > MAX_CLASSES:
            return "regression"
    return "classification"


def _target(
    name: str, series: pd.Series, draft: ColumnDraft, task: Task, markers: frozenset[str]
) -> tuple[ColumnDraft, list[str]]:
    warnings: list[str] = []
    if not draft.required:
        warnings.append(
            f"target {name} is empty in some rows: those rows will be quarantined (a target is "
            "required)"
        )
    if task == "regression":
        if draft.type not in ("int", "float"):
            raise DraftError(f"target {name} is not numeric ({draft.type}): it cannot be regressed")
        target = ColumnDraft(name, "float", draft.seen, min=draft.min, max=draft.max)
        target.outliers = draft.outliers
    else:
        labels = _text(series, markers).map(normalise_label)
        counts = labels.value_counts()
        if len(counts) < 2:
            raise DraftError(f"target {name} has fewer than two classes: nothing to classify")
        target = ColumnDraft(
            name,
            "category",
            f"{len(counts)} classes: "
            + ", ".join(f"{label!r} {count}" for label, count in counts.items()),
            allowed=sorted(counts.index.tolist()),
        )
        rare = [f"{c!r} ({n})" for c, n in counts.items() if n < MIN_ROWS_PER_CLASS]
        if rare:
            warnings.append(
                f"target {name}: classes with fewer than {MIN_ROWS_PER_CLASS} rows: "
                f"{', '.join(rare)}; a split may see none of them"
            )
    target.feature, target.required, target.impute = False, True, "none"
    return target, warnings


def draft_contract(
    frame: pd.DataFrame,
    *,
    target: str,
    name: str,
    task: Task | None = None,
    source: str = "the data",
    sampled: bool = False,
) -> Draft:
    """Draft a contract for ``frame`` predicting ``target``; checked against ``frame``."""
    if target not in frame.columns:
        raise DraftError(
            f"no column {target!r} in {source}; columns: {', '.join(map(str, frame.columns))}"
        )
    if len(frame) == 0:
        raise DraftError(f"{source} has no records")
    markers = frozenset(DEFAULT_MISSING_VALUES)
    columns = [infer_column(str(c), frame[c], markers, target=c == target) for c in frame.columns]
    warnings = [note for c in columns for note in c.notes]
    position = list(frame.columns).index(target)
    chosen = task or infer_task(columns[position], frame[target], markers)
    columns[position], target_warnings = _target(
        target, frame[target], columns[position], chosen, markers
    )
    warnings += target_warnings
    keys = [c.name for c in columns if c.identifier][:1]
    if not any(c.feature for c in columns):
        raise DraftError(f"no column of {source} can be a feature")
    minimums = min_rows_per_split()
    if len(frame) < rows_needed(minimums):
        wanted = "/".join(str(minimums[s]) for s in SPLITS)
        warnings.append(
            f"only {len(frame)} rows: preparation needs at least {wanted} rows in "
            f"train/validation/test (about {rows_needed(minimums)} rows in all)"
        )
    text = _render(
        name=name,
        task=chosen,
        target=target,
        keys=keys,
        columns=columns,
        source=source,
        rows=len(frame),
        sampled=sampled,
        target_series=frame[target],
        markers=markers,
        task_given=task is not None,
    )
    contract = Contract.from_yaml(text, source=f"draft for {source}")
    _check_against(frame, contract, columns, source)
    return Draft(text, contract, columns, warnings, len(frame))


def _check_against(
    frame: pd.DataFrame, contract: Contract, columns: list[ColumnDraft], source: str
) -> None:
    """The draft must accept every row it was drafted from (targets left empty aside)."""
    from mlops.validation.checks import check_frame

    result = check_frame(frame, contract)
    expected = {f"range:{c.name}": c.outliers for c in columns if c.outliers}
    expected[f"not_null:{contract.target}"] = len(frame)
    unexpected = {rule: n for rule, n in result.rule_failures.items() if n > expected.get(rule, 0)}
    unexpected |= {f"max_null_share:{c}": 1 for c in result.null_share_over_tolerance}
    if unexpected or result.rejected:
        raise DraftError(
            f"the draft for {source} would quarantine rows of its own data "
            f"({unexpected or result.rejection_reason}); please report this with the file"
        )


# ---------------------------------------------------------------------------- rendering
def _yaml(value: Any) -> str:
    """A scalar or flow list as YAML: plain where YAML reads it back as the same text."""
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, str) and _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value, ensure_ascii=False)  # JSON is YAML: quoted, escaped


def _flow(spec: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in spec.items()) + "}"


def _render(
    *,
    name: str,
    task: Task,
    target: str,
    keys: list[str],
    columns: list[ColumnDraft],
    source: str,
    rows: int,
    sampled: bool,
    target_series: pd.Series,
    markers: frozenset[str],
    task_given: bool,
) -> str:
    sample = f"the first {rows:,} rows" if sampled else f"all {rows:,} rows"
    how = "as asked" if task_given else "inferred from the target"
    lines = [
        f"# Drafted by `mlops contract init` from {source} ({sample}) on {date.today()}.",
        "# Every choice says what was seen; review it, then keep or change it.",
        f"name: {_yaml(name)}",
        'version: "0.1.0"',
        f"description: {_yaml(f'Drafted from {source}.')}",
        f"task: {task}  # {how}",
        f"target: {_yaml(target)}",
    ]
    if keys:
        lines.append(f"keys: {_yaml(keys)}  # unique in every row seen")
    else:
        lines.append("keys: []  # no column is unique in every row: duplicates are whole rows")
    lines.append(
        "missing_values: "
        + _yaml(sorted(markers, key=DEFAULT_MISSING_VALUES.index))
        + "  # read as empty"
    )
    lines += _acceptance(task, target_series, markers)
    lines.append("")
    lines.append("columns:")
    for column in columns:
        role = " (target)" if column.name == target else ""
        lines.append(f"  {_yaml(column.name)}: {_flow(column.spec())}  # {column.seen}{role}")
    return "\n".join(lines) + "\n"


def _acceptance(task: Task, series: pd.Series, markers: frozenset[str]) -> list[str]:
    """Thresholds left as comments: what a model must at least beat, from the target."""
    lines = ["# acceptance:  # uncomment to make evaluation hold models to fixed bounds"]
    if task == "regression":
        values = pd.to_numeric(_text(series, markers), errors="coerce").dropna()
        spread = float(values.std()) if len(values) > 1 else 0.0
        lines.append("#   r2: {min: 0.5}  # explains at least half the variance")
        lines.append(
            f"#   rmse: {{max: {_round(spread, math.ceil) if spread else 1}}}"
            "  # the target's standard deviation: predicting the mean scores this"
        )
    else:
        labels = _text(series, markers).map(normalise_label)
        majority = float(labels.value_counts(normalize=True).iloc[0]) if len(labels) else 0.0
        floor = min(0.99, math.ceil(majority * 100) / 100)
        lines.append(
            f"#   accuracy: {{min: {floor}}}  # the majority class alone scores {majority:.2f}"
        )
        lines.append("#   f1_macro: {min: 0.5}")
    return lines


def dataset_name(path: Path) -> str:
    """A contract name from a file name: ``Used Cars (2024).csv.gz`` → ``used_cars_2024``."""
    from mlops.validation.readers import FORMATS

    stem = path.name
    suffix = next((s for s in FORMATS if stem.lower().endswith(s)), "")
    stem = stem[: len(stem) - len(suffix)]
    name = re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_").lower()
    return name or "dataset"


def draft_file(
    path: Path,
    *,
    target: str | None,
    task: Task | None = None,
    name: str | None = None,
    max_rows: int = DEFAULT_SAMPLE_ROWS,
) -> Draft:
    """Read a sample of ``path`` and draft its contract (``target`` None: the last column)."""
    frame, sampled = read_sample(path, max_rows)
    return draft_contract(
        frame,
        target=str(frame.columns[-1]) if target is None else target,
        name=name or dataset_name(path),
        task=task,
        source=path.name,
        sampled=sampled,
    )
