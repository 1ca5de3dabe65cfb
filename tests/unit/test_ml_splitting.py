"""Deterministic key-hash splits: an entity stays in its split across runs and machines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlops.ml.splitting import assign_splits, fractions, identity_columns, split_of

ROOT = Path(__file__).resolve().parents[2]


def keys(n: int) -> pd.DataFrame:
    return pd.DataFrame({"listing_id": [f"L{i:06d}" for i in range(n)]})


def test_the_same_key_lands_in_the_same_split_in_another_process():
    sample = [f"L{i:06d}" for i in range(50)]
    here = [split_of(k) for k in sample]
    code = (
        "import sys; from mlops.ml.splitting import split_of; "
        f"print(','.join(split_of(k) for k in {sample!r}))"
    )
    # A fresh interpreter has a different hash seed: string hashing would not survive this.
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "layers" / "shared"), "PYTHONHASHSEED": "123"},
    ).stdout.strip()

    assert other.split(",") == here


def test_a_key_keeps_its_split_when_the_run_holds_other_rows():
    first = assign_splits(keys(100), ["listing_id"])
    bigger = assign_splits(keys(5000), ["listing_id"])

    assert bigger.iloc[:100].tolist() == first.tolist()


def test_split_sizes_follow_the_configured_fractions_roughly():
    splits = assign_splits(keys(20_000), ["listing_id"], fractions(0.6, 0.2))

    shares = splits.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.6, abs=0.02)
    assert shares["validation"] == pytest.approx(0.2, abs=0.02)
    assert shares["test"] == pytest.approx(0.2, abs=0.02)


def test_default_fractions_are_seventy_fifteen_fifteen():
    assert fractions() == (0.7, 0.15, 0.15)


@pytest.mark.parametrize("train, validation", [(0.9, 0.2), (0.0, 0.5), (0.5, 0.0)])
def test_impossible_fractions_are_refused(train, validation):
    with pytest.raises(ValueError, match="fractions"):
        fractions(train, validation)


def test_a_split_needs_a_key():
    with pytest.raises(ValueError, match="key"):
        assign_splits(keys(3), [])


def test_without_contract_keys_a_row_is_identified_by_its_non_target_values():
    contract = {
        "target": "y",
        "keys": [],
        "columns": {"a": {"type": "int"}, "b": {"type": "string"}, "y": {"type": "float"}},
    }
    rows = pd.DataFrame({"a": [1, 1, None], "b": ["x", "x", "z"], "y": [1.0, 99.0, 2.0]})

    columns = identity_columns(contract)
    splits = assign_splits(rows, columns)

    assert columns == ["a", "b"]
    # The same values with another target are the same record: same split.
    assert splits[0] == splits[1]
    assert splits[2] == split_of("\x1fz")
