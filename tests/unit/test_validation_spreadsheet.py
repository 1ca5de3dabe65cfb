"""CSV for people: a cell a spreadsheet would run as a formula is shown as text instead."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from mlops.validation.spreadsheet import MAX_CELL_CHARS, TRUNCATED, cell, neutralise, to_csv


def read_back(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


@pytest.mark.parametrize(
    "value",
    ["=1+2", "+1+2", "-1+2", "@SUM(A1)", "\t=1+2", "\r=1+2", '=HYPERLINK("http://x","y")'],
)
def test_a_cell_starting_like_a_formula_gets_a_quote_in_front(value: str) -> None:
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["toyota", "1.6", "", " =1+2", "a=b", "'=already"])
def test_a_cell_that_cannot_start_a_formula_is_left_as_it_is(value: str) -> None:
    assert neutralise(value) == value


@pytest.mark.parametrize("value", ["-3.5", "+4", "-12", "1e-3", "-.5", "3."])
def test_a_number_in_a_numeric_column_stays_a_number(value: str) -> None:
    assert neutralise(value, numeric=True) == value


@pytest.mark.parametrize("value", ["-3+5", "-A1", "+cmd|' /C calc'!A0", "-3.5e"])
def test_a_formula_in_a_numeric_column_is_still_neutralised(value: str) -> None:
    assert neutralise(value, numeric=True) == "'" + value


def test_a_negative_number_in_a_text_column_is_shown_as_text() -> None:
    assert neutralise("-3.5") == "'-3.5"


def test_a_null_is_an_empty_cell_and_an_overlong_one_is_cut_with_a_mark() -> None:
    assert cell(None) == ""
    assert cell(float("nan")) == ""
    long = cell("x" * (MAX_CELL_CHARS + 10))
    assert len(long) == MAX_CELL_CHARS
    assert long.endswith(TRUNCATED)


def test_a_frame_is_written_with_every_cell_neutralised_and_numbers_kept() -> None:
    # given quarantined rows as validation keeps them: every cell as text, some null
    frame = pd.DataFrame(
        {
            "make": pd.array(["=cmd|' /C calc'!A0", "toyota, the best", None], dtype="string"),
            "price": pd.array(["-3.5", "=1+1", None], dtype="string"),
            "failed_rules": pd.array(["allowed:make", "type:price", "not_null:make"]),
        }
    )

    body = to_csv(frame, numeric_columns=["price"])

    # then a spreadsheet opening it finds text where formulas were, numbers where numbers were
    assert body.startswith("\ufeff".encode())
    assert read_back(body) == [
        ["make", "price", "failed_rules"],
        ["'=cmd|' /C calc'!A0", "-3.5", "allowed:make"],
        ["toyota, the best", "'=1+1", "type:price"],
        ["", "", "not_null:make"],
    ]


def test_a_formula_in_a_column_name_is_neutralised_too() -> None:
    frame = pd.DataFrame({"=1+2": ["a"]})

    assert read_back(to_csv(frame))[0] == ["'=1+2"]
