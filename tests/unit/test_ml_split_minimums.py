"""Too little data fails clearly: a run whose splits fall short of their minimums is refused.

The check runs in preparation (the pandas reference here, the Glue job on Spark in
test_prepare_glue.py), before anything is curated, trained or registered.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.contract import Contract, ContractError
from mlops.ml.cleaning import UnusableData
from mlops.ml.pipeline import check_splits, prepare
from mlops.ml.splitting import MIN_ROWS_PER_SPLIT, min_rows_per_split

CONTRACT: dict[str, Any] = {
    "name": "tiny",
    "version": "1",
    "task": "regression",
    "target": "y",
    "keys": ["id"],
    "columns": {
        "id": {"type": "string", "feature": False},
        "x": {"type": "float", "impute": "median"},
        "y": {"type": "float", "feature": False},
    },
}


def rows(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [f"r{i}" for i in range(n)], "x": np.arange(n, dtype=float), "y": np.arange(n) * 2.0}
    )


def test_a_five_row_dataset_is_refused_at_preparation_with_the_split_sizes_and_minimums():
    # given the dataset of the issue: 5 usable rows
    five = rows(5)

    # when it is prepared
    with pytest.raises(UnusableData) as refused:
        prepare(five, CONTRACT, run_id="r-tiny")

    # then the run is refused, naming the split that fell short, its size and its minimum
    message = str(refused.value)
    assert "too few usable rows in run r-tiny to train and evaluate a model" in message
    assert "train=" in message and "(minimum 20)" in message
    assert "min_rows_per_split" in message


def test_splits_at_their_minimums_pass():
    # given split sizes exactly at the default minimums
    counts = dict(MIN_ROWS_PER_SPLIT)

    # when they are checked, then nothing is raised
    check_splits(counts, "r1")


def test_only_the_split_below_its_minimum_is_named():
    # given a validation split one row short
    counts = {"train": 500, "validation": MIN_ROWS_PER_SPLIT["validation"] - 1, "test": 100}

    # when they are checked
    with pytest.raises(UnusableData) as refused:
        check_splits(counts, "r1")

    # then the reason names validation alone, and how many rows the run would need
    message = str(refused.value)
    assert f"validation={counts['validation']} (minimum 5)" in message
    assert "train=" not in message and "test=" not in message
    assert "about 34 usable rows are needed" in message


def test_the_contract_overrides_a_minimum_and_keeps_the_defaults_of_the_others():
    # given a contract asking for 100 train rows
    contract = {**CONTRACT, "min_rows_per_split": {"train": 100}}

    # when its minimums are read
    minimums = min_rows_per_split(contract)

    # then train is 100 and validation and test keep their defaults
    assert minimums == {"train": 100, "validation": 5, "test": 5}
    with pytest.raises(UnusableData, match=r"train=99 \(minimum 100\)"):
        check_splits({"train": 99, "validation": 20, "test": 20}, "r1", contract)


def test_a_minimum_of_zero_still_requires_one_row():
    # given a contract turning the test minimum off
    contract = {**CONTRACT, "min_rows_per_split": {"test": 0}}

    # when an empty test split is checked, then it is refused: evaluation reads it
    with pytest.raises(UnusableData, match=r"test=0 \(minimum 1\)"):
        check_splits({"train": 50, "validation": 10, "test": 0}, "r1", contract)


def test_a_contract_naming_an_unknown_split_is_refused():
    # given a contract whose min_rows_per_split misspells a split
    text = (
        "name: tiny\nversion: '1'\ntask: regression\ntarget: y\n"
        "columns: {x: {type: float}, y: {type: float, feature: false}}\n"
        "min_rows_per_split: {training: 50}\n"
    )

    # when it is parsed, then it fails naming the field
    with pytest.raises(ContractError, match="min_rows_per_split"):
        Contract.from_yaml(text)
