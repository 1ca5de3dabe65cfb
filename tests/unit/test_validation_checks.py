"""The in-memory contract checks: which rows pass, which rule each failing row broke."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from mlops.contract import Contract, bundled_contract
from mlops.validation.checks import FAILED_RULES, REJECTED_RULE, check_frame


@pytest.fixture(scope="module")
def contract() -> Contract:
    contract = bundled_contract("used_cars")
    assert contract is not None
    return contract


def car(n: int, **changes: Any) -> dict[str, Any]:
    """A valid raw record as the scraper writes it, with ``changes`` applied."""
    record = {
        "listing_id": f"L{n:06d}",
        "make": "toyota",
        "model": "corolla",
        "year": 2015,
        "mileage": 60000 + n,
        "fuel": "petrol",
        "transmission": "manual",
        "engine_size": 1.6,
        "body": "sedan",
        "posted_date": "2026-10-01",
        "price": 9500.0,
        "source_url": f"http://127.0.0.1/listings/L{n:06d}",
        "fetched_at": "2026-11-27T08:30:00Z",
    }
    return record | changes


def frame(*records: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(records))


def clean(count: int) -> list[dict[str, Any]]:
    return [car(i) for i in range(1, count + 1)]


def test_clean_rows_are_all_valid_and_typed_by_the_contract(contract: Contract) -> None:
    result = check_frame(frame(*clean(5)), contract)

    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (5, 5, 0)
    assert result.rule_failures == {}
    dtypes = result.valid.dtypes.astype(str).to_dict()
    assert dtypes["year"] == "Int64"
    assert dtypes["price"] == "Float64"
    assert dtypes["make"] == "category"
    assert pd.api.types.is_string_dtype(result.valid["listing_id"])
    assert dtypes["posted_date"].startswith("datetime64")
    assert list(result.valid.columns[-2:]) == ["source_url", "fetched_at"]


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"year": 2099}, "range:year"),
        ({"mileage": -5000}, "range:mileage"),
        ({"price": 1.0}, "range:price"),
        ({"engine_size": 9.9}, "range:engine_size"),
        ({"posted_date": "1990-01-01"}, "range:posted_date"),
        ({"fuel": "steam"}, "allowed:fuel"),
        ({"make": "tesla"}, "allowed:make"),
        ({"year": "two thousand"}, "type:year"),
        ({"year": 2015.5}, "type:year"),
        ({"posted_date": "yesterday"}, "type:posted_date"),
        ({"mileage": "12.500,00"}, "type:mileage"),
        ({"listing_id": "X-1"}, "pattern:listing_id"),
        ({"listing_id": None}, "null_key:listing_id"),
        ({"make": None}, "not_null:make"),
        ({"price": "  "}, "not_null:price"),
    ],
)
def test_a_bad_row_is_quarantined_naming_the_rule_it_broke(
    contract: Contract, change: dict[str, Any], rule: str
) -> None:
    result = check_frame(frame(*clean(4), car(99, **change)), contract)

    assert result.rows_valid == 4
    assert result.invalid[FAILED_RULES].tolist() == [rule]
    assert result.rule_failures == {rule: 1}


def test_a_repeated_key_quarantines_every_copy_after_the_first(contract: Contract) -> None:
    records = [*clean(3), car(2, price=12000.0), car(2, price=13000.0)]

    result = check_frame(frame(*records), contract)

    assert result.rows_valid == 3
    assert result.invalid["price"].tolist() == ["12000.0", "13000.0"]
    assert set(result.invalid[FAILED_RULES]) == {"duplicate_key"}


def test_a_row_breaking_several_rules_names_them_all(contract: Contract) -> None:
    result = check_frame(frame(*clean(4), car(9, year=1980, fuel="steam")), contract)

    assert result.invalid[FAILED_RULES].tolist() == ["range:year;allowed:fuel"]


def test_row_counts_reconcile(contract: Contract) -> None:
    records = [*clean(6), car(7, year=2099), car(8, make=None), car(1)]

    result = check_frame(frame(*records), contract)

    assert result.rows_in == len(records)
    assert result.rows_in == result.rows_valid + result.rows_quarantined
    assert sum(result.rule_failures.values()) == result.rows_quarantined


def test_casing_aliases_and_formatted_numbers_are_normalised(contract: Contract) -> None:
    records = [
        car(1, make=" TOYOTA ", model="Corolla", fuel="Petrol"),
        car(2, make="VW", model="Golf", transmission="Auto"),
        car(3, make="Mercedes Benz", model="C-Class", body="Saloon"),
        car(4, make="V.W.", model="Polo", mileage="12,500", price="$12,500"),
    ]

    result = check_frame(frame(*records), contract)

    assert result.rows_quarantined == 0
    valid = result.valid
    assert valid["make"].tolist() == ["toyota", "volkswagen", "mercedes-benz", "volkswagen"]
    assert valid["model"].tolist() == ["corolla", "golf", "c-class", "polo"]
    assert valid.loc[1, "transmission"] == "automatic"
    assert valid.loc[2, "body"] == "sedan"
    assert (valid.loc[3, "mileage"], valid.loc[3, "price"]) == (12500, 12500.0)
    assert result.normalised["make"] == 4
    assert result.normalised["price"] == 1


def test_identifiers_are_trimmed_and_a_blank_one_is_a_null_key(contract: Contract) -> None:
    records = [*clean(3), car(4, listing_id=" L000004 "), car(5, listing_id="   ")]

    result = check_frame(frame(*records), contract)

    assert result.valid["listing_id"].tolist() == ["L000001", "L000002", "L000003", "L000004"]
    assert result.invalid[FAILED_RULES].tolist() == ["null_key:listing_id"]
    assert result.normalised["listing_id"] == 1


def test_an_object_over_the_invalid_share_is_rejected_whole(contract: Contract) -> None:
    records = [*clean(2), *(car(10 + i, year=2099) for i in range(3))]

    result = check_frame(frame(*records), contract)

    assert result.rejected
    assert "max_invalid_share" in (result.rejection_reason or "")
    assert (result.rows_valid, result.rows_quarantined) == (0, 5)
    assert result.rule_failures == {"range:year": 3, REJECTED_RULE: 2}


def test_an_object_with_fewer_rows_than_the_minimum_is_rejected(contract: Contract) -> None:
    strict = contract.model_copy(update={"min_rows": 10})

    result = check_frame(frame(*clean(3)), strict)

    assert result.rejected
    assert result.rejection_reason == "3 rows, fewer than min_rows 10"
    assert result.rows_quarantined == 3


def test_unexpected_columns_are_reported_and_dropped_not_fatal(contract: Contract) -> None:
    result = check_frame(frame(*(car(i, colour="red") for i in range(1, 4))), contract)

    assert result.unexpected_columns == ["colour"]
    assert result.rows_valid == 3
    assert "colour" not in result.valid.columns


def test_a_missing_optional_column_is_filled_with_nulls_and_reported(contract: Contract) -> None:
    records = [{k: v for k, v in car(i).items() if k != "body"} for i in range(1, 4)]

    result = check_frame(frame(*records), contract)

    assert result.rows_valid == 3
    assert result.missing_optional_columns == ["body"]
    assert result.valid["body"].isna().all()


def test_a_missing_required_column_fails_every_row(contract: Contract) -> None:
    records = [{k: v for k, v in car(i).items() if k != "fuel"} for i in range(1, 4)]

    result = check_frame(frame(*records), contract)

    assert result.rejected
    assert result.rule_failures == {"required_column:fuel": 3}


def test_a_null_share_over_the_tolerance_is_reported(contract: Contract) -> None:
    records = [*clean(8), car(20, transmission=None), car(21, transmission=None)]

    result = check_frame(frame(*records), contract)

    assert result.rows_valid == 10
    assert result.null_share_over_tolerance == {"transmission": {"share": 0.2, "max": 0.05}}


def free_ids(contract: Contract) -> Contract:
    """``contract`` with identifiers of any shape (no pattern on listing_id)."""
    columns = dict(contract.columns)
    columns["listing_id"] = columns["listing_id"].model_copy(update={"pattern": None})
    return contract.model_copy(update={"columns": columns})


@pytest.mark.parametrize(
    "ids",
    [
        # Same first and last 8 bytes: only the middle tells them apart.
        [f"prefix-A{i % 7:06d}-suffix-Z" for i in range(40)],
        # Around the 8-byte word: shorter, exactly 8, longer; trailing NUL bytes; non-ASCII.
        ["a", "a\x00", "abcdefgh", "abcdefghi", "bcdefghi", "é", "日本語", "a", "abcdefgh"] * 3,
        # Copies that only match once trimmed.
        ["L000001", " L000001", "L000001 ", "L000002", "L000002"],
    ],
)
def test_repeated_keys_are_found_exactly_whatever_the_key_looks_like(
    contract: Contract, ids: list[str]
) -> None:
    records = [car(i, listing_id=key) for i, key in enumerate(ids)]
    expected = pd.Series([key.strip() for key in ids]).duplicated(keep="first")

    result = check_frame(
        frame(*records), free_ids(contract).model_copy(update={"max_invalid_share": 1.0})
    )

    assert result.rule_failures.get("duplicate_key", 0) == int(expected.sum())
    assert result.valid["listing_id"].tolist() == [
        k.strip() for k, d in zip(ids, expected, strict=True) if not d
    ]


def test_keys_in_several_arrow_chunks_are_checked_as_one_column(contract: Contract) -> None:
    raw = frame(*clean(6), car(2), car(5))
    chunks = pa.chunked_array([raw["listing_id"].tolist()[:3], raw["listing_id"].tolist()[3:]])
    raw["listing_id"] = pd.Series(pd.arrays.ArrowStringArray(chunks.cast(pa.large_string())))
    raw["make"] = pd.Series(
        pd.arrays.ArrowStringArray(
            pa.chunked_array([["VW"] * 4, ["Toyota"] * 4], pa.large_string())
        )
    )

    result = check_frame(raw, contract)

    assert result.rule_failures == {"duplicate_key": 2}
    assert result.valid["make"].tolist() == ["volkswagen"] * 4 + ["toyota"] * 2


def test_a_pattern_must_match_the_whole_value_even_with_alternatives(contract: Contract) -> None:
    columns = dict(contract.columns)
    columns["body"] = columns["body"].model_copy(update={"pattern": "sedan|suv"})
    patterned = contract.model_copy(update={"columns": columns})
    records = [car(1, body="sedan"), car(2, body="SUV"), car(3, body="wagon"), car(4)]

    result = check_frame(frame(*records), patterned)

    assert result.invalid[FAILED_RULES].tolist() == ["pattern:body"]
    assert result.invalid["body"].tolist() == ["wagon"]


def test_dates_are_parsed_once_per_distinct_text_and_checked_per_row(contract: Contract) -> None:
    dates = ["2026-10-01", "2026-10-01T12:00:00+02:00", "  ", "1990-01-01", "soon", "2026-10-01"]
    records = [car(i, posted_date=d) for i, d in enumerate(dates, start=1)]

    result = check_frame(frame(*records), contract.model_copy(update={"max_invalid_share": 1.0}))

    assert result.invalid[FAILED_RULES].tolist() == ["range:posted_date", "type:posted_date"]
    posted = result.valid["posted_date"]
    assert posted.dt.strftime("%Y-%m-%d %H:%M").tolist()[:2] == [
        "2026-10-01 00:00",
        "2026-10-01 10:00",
    ]
    assert posted.isna().tolist() == [False, False, True, False]


def test_whole_numbers_past_2_62_and_infinities_are_type_errors(contract: Contract) -> None:
    raw = frame(*clean(4), car(5), car(6))
    raw["year"] = pd.Series([2015, 2016, 2017, 2018, 2**62 + 2**11, 2019], dtype="int64")
    raw["price"] = [9500.0, 9600.0, 9700.0, 9800.0, 9900.0, float("inf")]

    result = check_frame(raw, contract)

    assert result.invalid[FAILED_RULES].tolist() == ["type:year", "type:price"]
    assert result.valid["year"].tolist() == [2015, 2016, 2017, 2018]
