"""Deterministic train/validation/test assignment from a hash of each record's key.

A key always lands in the same split, across runs, processes, machines and engines, so a
listing seen in training never reappears as a test example in a later run.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
# Fewest rows each split must hold after cleaning and de-duplication, or the run is refused at
# preparation (nothing is trained or registered). A floor against degenerate runs, not a
# guarantee of a good model (the acceptance thresholds and the baseline judge that):
# - train 20: the default min_samples_leaf of the model (HistGradientBoosting), one leaf's
#   worth: with fewer rows the model is a constant and the imputation, scaling and vocabularies
#   are fitted on a handful of rows (the case: 2 train rows, a model that could only
#   be rejected, and a run that looked fine);
# - validation and test 5: below that, each row is more than a fifth of the sample that early
#   stopping and the test metrics rest on.
# Kept low so a small but real dataset still runs: about 34 usable rows at the default
# fractions. A contract's ``min_rows_per_split`` overrides any of them.
MIN_ROWS_PER_SPLIT = {"train": 20, "validation": 5, "test": 5}
_SEPARATOR = "\x1f"


def fractions(train: float | None = None, validation: float | None = None) -> tuple[float, ...]:
    """(train, validation, test) fractions; test takes the rest. Raises on impossible values."""
    t = DEFAULT_FRACTIONS[0] if train is None else float(train)
    v = DEFAULT_FRACTIONS[1] if validation is None else float(validation)
    if not (0 < t < 1 and 0 < v < 1 and t + v < 1):
        raise ValueError(
            f"split fractions must be positive and leave room for test: train={t}, validation={v}"
        )
    return (t, v, round(1 - t - v, 10))


def unit_interval(key: str) -> float:
    """A stable number in [0, 1) for a key (first 8 bytes of its BLAKE2b digest)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(key: str, shares: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """The split a key belongs to."""
    point = unit_interval(key)
    if point < shares[0]:
        return SPLITS[0]
    if point < shares[0] + shares[1]:
        return SPLITS[1]
    return SPLITS[2]


def identity_columns(contract: dict[str, Any]) -> list[str]:
    """Columns identifying a record: the contract's keys, else every non-target column.

    Without keys the record's own values are its identity, so an identical row still lands in
    the same split in every run.
    """
    keys = list(contract.get("keys") or [])
    return keys or [c for c in contract["columns"] if c != contract["target"]]


def _text(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def key_text(df: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """One string per row joining its key values (missing values as empty text)."""
    if not keys:
        raise ValueError("no key columns given: a stable split needs a key")
    parts = [[_text(v) for v in df[k].tolist()] for k in keys]
    return pd.Series(
        [_SEPARATOR.join(values) for values in zip(*parts, strict=True)],
        index=df.index,
        dtype=object,
    )


def assign_splits(
    df: pd.DataFrame, keys: Sequence[str], shares: Sequence[float] = DEFAULT_FRACTIONS
) -> pd.Series:
    """The split name of every row of ``df``."""
    texts = key_text(df, keys)
    return pd.Series([split_of(t, shares) for t in texts.tolist()], index=df.index, dtype=object)


def min_rows_per_split(contract: dict[str, Any] | None = None) -> dict[str, int]:
    """Each split's minimum: the contract's ``min_rows_per_split``, else ``MIN_ROWS_PER_SPLIT``.

    A minimum below 1 counts as 1: training, early stopping and evaluation each read a split.
    """
    overrides = (contract or {}).get("min_rows_per_split") or {}
    return {s: max(1, int(overrides.get(s, MIN_ROWS_PER_SPLIT[s]))) for s in SPLITS}


def rows_needed(minimums: dict[str, int], shares: Sequence[float] = DEFAULT_FRACTIONS) -> int:
    """About how many usable rows fill every split to its minimum at these fractions."""
    return max(math.ceil(minimums[s] / share) for s, share in zip(SPLITS, shares, strict=True))


def short_splits(counts: dict[str, int], minimums: dict[str, int]) -> list[str]:
    """The splits holding fewer rows than their minimum."""
    return [s for s in SPLITS if counts.get(s, 0) < minimums[s]]
