"""Drafting a contract from data: each inference rule, and the draft passes its own data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from localcloud import cli
from mlops.contract import Contract
from mlops.contract_draft import (
    DraftError,
    dataset_name,
    draft_contract,
    draft_file,
    infer_column,
    outliers,
    read_sample,
)

MARKERS = frozenset({"NA", "N/A", "NULL", "None", "NaN", "null", "#N/A"})


def _text(values: list[object]) -> pd.Series:
    return pd.Series(["" if v is None else str(v) for v in values], dtype=object)


def _frame(n: int = 200, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    area = rng.uniform(30, 250, n).round(1)
    return pd.DataFrame(
        {
            "house_id": [f"H{i:05d}" for i in range(n)],
            "area_m2": area.astype(str),
            "rooms": rng.integers(1, 8, n).astype(str),
            "district": rng.choice(["North", "south", "EAST", "west"], n),
            "sold_on": [f"2026-0{1 + i % 9}-1{i % 10}" for i in range(n)],
            "price": (area * 3000 + rng.normal(0, 20000, n)).round(0).astype(str),
        }
    )


def test_whole_numbers_are_an_int_column_with_a_margin_beyond_the_range_seen() -> None:
    column = infer_column("rooms", _text([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 3), MARKERS)
    assert (column.type, column.min, column.max, column.impute) == ("int", 0, 11, "median")


def test_decimals_are_a_float_column_never_below_zero_when_none_was_negative() -> None:
    column = infer_column("area", _text([0.5, 10.25, 99.5, 20.0] * 10), MARKERS)
    assert column.type == "float"
    assert column.min == 0.0 and column.max >= 99.5 + 0.1 * (99.5 - 0.5)


def test_numbers_with_leading_zeros_are_kept_as_text() -> None:
    column = infer_column("zip", _text(["02134", "10001", "00501", "94105"] * 10), MARKERS)
    assert column.type == "string"
    assert "leading zeros" in column.seen


def test_iso_dates_are_a_datetime_column_widened_by_a_year_and_not_a_feature() -> None:
    column = infer_column("sold_on", _text(["2026-01-05", "2026-03-01", "2025-12-31"]), MARKERS)
    assert (column.type, column.min, column.max) == ("datetime", "2024-12-31", "2027-03-01")
    assert column.feature is False


def test_true_and_false_are_a_bool_column() -> None:
    column = infer_column("garden", _text(["true", "False", "TRUE", "false"] * 5), MARKERS)
    assert (column.type, column.impute) == ("bool", "most_frequent")


def test_few_repeating_labels_are_a_category_with_normalised_allowed_values() -> None:
    column = infer_column("district", _text(["North", " south", "EAST", "north "] * 10), MARKERS)
    assert column.type == "category"
    assert column.allowed == ["east", "north", "south"]


def test_many_distinct_texts_are_a_string_that_is_not_a_feature() -> None:
    notes = [f"seller note number {i} with words" for i in range(40)] + ["same"] * 40
    column = infer_column("notes", _text(notes), MARKERS)
    assert (column.type, column.feature) == ("string", False)


def test_a_unique_text_column_is_an_identifier() -> None:
    column = infer_column("listing", _text([f"L{i:04d}" for i in range(50)]), MARKERS)
    assert column.identifier and column.feature is False


def test_a_unique_integer_counter_is_an_identifier_but_unique_measurements_are_not() -> None:
    counter = infer_column("row", _text(list(range(100, 150))), MARKERS)
    mileage = infer_column("mileage", _text([i * 1013 + 7 for i in range(50)][::-1]), MARKERS)
    assert counter.identifier and not counter.feature
    assert not mileage.identifier and mileage.feature


def test_missing_value_markers_and_blanks_count_as_empty_and_set_the_null_tolerance() -> None:
    column = infer_column("mileage", _text([1000, "NA", None, "N/A", 2000, 3000] * 10), MARKERS)
    assert column.type == "int"
    assert column.required is False
    assert column.max_null_share == pytest.approx(0.76)  # half empty, with room above


def test_a_column_never_empty_is_required() -> None:
    assert infer_column("x", _text([1, 2, 3] * 10), MARKERS).required is True


def test_a_constant_column_is_not_a_feature_and_warns() -> None:
    column = infer_column("country", _text(["uk"] * 30), MARKERS)
    assert column.feature is False
    assert any("one value" in note for note in column.notes)


def test_an_empty_column_is_an_optional_string_and_warns() -> None:
    column = infer_column("notes", _text([None, "NA"] * 10), MARKERS)
    assert (column.type, column.required, column.feature) == ("string", False, False)
    assert column.notes


def test_a_numeric_column_named_like_a_code_warns() -> None:
    column = infer_column("postcode", _text([1000 + i % 30 for i in range(60)]), MARKERS)
    assert any("code" in note for note in column.notes)


def test_a_rare_negative_and_a_value_cut_off_from_the_rest_are_outliers() -> None:
    values = pd.Series([float(v) for v in range(1995, 2027)] * 10 + [2099.0, -5.0])
    flagged = outliers(values)
    assert sorted(values[flagged]) == [-5.0, 2099.0]


@pytest.mark.parametrize(("sigma", "n"), [(0.6, 2000), (0.4, 1500), (0.3, 300)])
def test_a_long_continuous_tail_is_not_an_outlier(sigma: float, n: int) -> None:
    for seed in range(5):
        values = pd.Series(np.random.default_rng(seed).lognormal(10.6, sigma, n).round(-2))
        assert not outliers(values).any(), sorted(values)[-3:]


def test_outliers_fall_outside_the_drafted_range_and_are_named_in_a_warning() -> None:
    prices = [1.0] * 3 + [float(p) for p in range(5000, 65000, 100)]
    column = infer_column("price", _text(prices), MARKERS)
    assert column.outliers == 3
    assert 1.0 < column.min <= 5000
    assert any("look like errors" in note for note in column.notes)


def test_a_numeric_target_with_many_values_is_regression() -> None:
    draft = draft_contract(_frame(), target="price", name="houses")
    assert draft.contract.task == "regression"
    assert draft.contract.columns["price"].type == "float"
    assert draft.contract.columns["price"].feature is False


def test_a_target_with_few_labels_is_classification_with_its_classes_allowed() -> None:
    frame = _frame()
    frame["sold"] = np.where(frame.index % 3 == 0, "yes", "no")
    draft = draft_contract(frame.drop(columns="price"), target="sold", name="sold")
    assert draft.contract.task == "classification"
    assert draft.contract.columns["sold"].allowed == ["no", "yes"]


def test_a_task_given_overrides_the_inferred_one() -> None:
    frame = _frame()
    frame["grade"] = (frame.index % 5 + 1).astype(str)
    draft = draft_contract(frame, target="grade", name="g", task="regression")
    assert draft.contract.task == "regression"


def test_a_class_with_few_rows_warns() -> None:
    frame = _frame()
    frame["label"] = ["rare" if i < 3 else "common" for i in range(len(frame))]
    draft = draft_contract(frame, target="label", name="labels")
    assert any("fewer than" in w and "'rare' (3)" in w for w in draft.warnings)


def test_the_identifier_is_proposed_as_the_key() -> None:
    assert draft_contract(_frame(), target="price", name="h").contract.keys == ["house_id"]


def test_a_draft_reads_back_as_the_same_contract_and_every_choice_has_a_comment() -> None:
    draft = draft_contract(_frame(), target="price", name="houses")
    assert Contract.model_validate(yaml.safe_load(draft.text)) == draft.contract
    column_lines = draft.text.split("columns:\n", 1)[1].splitlines()
    assert len(column_lines) == 6 and all("  # " in line for line in column_lines)


def test_acceptance_thresholds_are_left_as_commented_suggestions() -> None:
    draft = draft_contract(_frame(), target="price", name="houses")
    assert draft.contract.acceptance == {}
    assert "#   r2: {min: 0.5}" in draft.text and "#   rmse: {max:" in draft.text


def test_a_missing_target_column_is_refused_with_the_columns_listed() -> None:
    with pytest.raises(DraftError, match=r"no column 'cost'.*house_id"):
        draft_contract(_frame(), target="cost", name="houses")


def test_a_text_target_cannot_be_regressed() -> None:
    with pytest.raises(DraftError, match="not numeric"):
        draft_contract(_frame(), target="district", name="d", task="regression")


def test_a_target_with_one_class_is_refused() -> None:
    frame = _frame()
    frame["same"] = "yes"
    with pytest.raises(DraftError, match="fewer than two classes"):
        draft_contract(frame, target="same", name="s")


def test_a_tiny_dataset_warns_that_preparation_needs_more_rows() -> None:
    draft = draft_contract(_frame(n=30), target="price", name="h")
    assert any("only 30 rows" in w for w in draft.warnings)


@pytest.mark.parametrize("suffix", ["csv", "CSV", "csv.gz", "jsonl", "jsonl.gz", "parquet"])
def test_every_supported_format_drafts_the_same_types(tmp_path: Path, suffix: str) -> None:
    frame = _frame()
    path = tmp_path / f"houses.{suffix}"
    if suffix.lower().startswith("csv"):
        data = frame.to_csv(index=False).encode()
    elif suffix.startswith("jsonl"):
        data = "".join(json.dumps(r) + "\n" for r in frame.to_dict("records")).encode()
    else:
        typed = frame.astype({"area_m2": float, "rooms": int, "price": float})
        typed.to_parquet(path)
        data = b""
    if data:
        path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    types = {n: c.type for n, c in draft_file(path, target="price").contract.columns.items()}
    assert types == {
        "house_id": "string",
        "area_m2": "float",
        "rooms": "int",
        "district": "category",
        "sold_on": "datetime",
        "price": "float",
    }


def test_a_large_file_is_drafted_from_a_sample_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "houses.csv"
    path.write_text(_frame(n=500).to_csv(index=False))
    frame, sampled = read_sample(path, max_rows=100)
    draft = draft_file(path, target="price", max_rows=100)
    assert (len(frame), sampled, draft.rows) == (100, True, 100)
    assert "the first 100 rows" in draft.text


def test_the_dataset_name_comes_from_the_file_name() -> None:
    assert dataset_name(Path("Used Cars (2024).csv.gz")) == "used_cars_2024"


def test_contract_init_writes_a_contract_that_loads(tmp_path: Path) -> None:
    data, out = tmp_path / "houses.csv", tmp_path / "houses.yaml"
    data.write_text(_frame().to_csv(index=False))
    assert cli.main(["contract", "init", str(data), "--target", "price", "-o", str(out)]) == 0
    assert Contract.from_file(out).name == "houses"


def test_contract_init_on_an_unreadable_file_fails_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "houses.xlsx"
    data.write_bytes(b"PK\x03\x04")
    assert cli.main(["contract", "init", str(data), "--target", "price"]) == 2
    assert "unsupported format" in capsys.readouterr().out


def test_a_run_without_a_contract_drafts_one_next_to_the_data_and_reuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "houses.csv"
    data.write_text(_frame().to_csv(index=False))
    args = cli._parser().parse_args(["local", "run", "--data", str(data)])
    first = cli._draft_for_run(args)
    second = cli._draft_for_run(args)
    said = capsys.readouterr().out
    assert first == second == tmp_path / "houses.contract.yaml"
    assert Contract.from_file(first).target == "price"
    assert "predicting the last column, price" in said
    assert "drafted earlier" in said


def test_a_run_for_another_target_drafts_again_instead_of_reusing_the_earlier_draft(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "houses.csv"
    data.write_text(_frame().to_csv(index=False))
    cli._draft_for_run(cli._parser().parse_args(["local", "run", "--data", str(data)]))

    again = ["local", "run", "--data", str(data), "--target", "rooms"]
    path = cli._draft_for_run(cli._parser().parse_args(again))

    assert path is not None and Contract.from_file(path).target == "rooms"
    assert "drafting it again for rooms" in capsys.readouterr().out
