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


# ------------------------------------------------------- missing values as people write them


@pytest.mark.parametrize("marker", ["NA", "N/A", "#N/A", "NULL", "null", "NaN", "None", " NA "])
def test_a_missing_value_marker_in_an_optional_column_is_a_null_not_a_type_failure(
    contract: Contract, marker: str
) -> None:
    # given text input where optional columns of every kind hold a missing-value marker
    records = [
        *clean(3),
        car(4, mileage=marker, engine_size=marker, transmission=marker, posted_date=marker),
    ]
    # when the frame is checked
    result = check_frame(frame(*records), contract)
    # then the row is valid, those cells null, and the markers are counted per column
    assert result.rows_quarantined == 0
    row = result.valid.iloc[3]
    assert row[["mileage", "engine_size", "transmission", "posted_date"]].isna().all()
    assert result.missing_markers == {
        "mileage": 1,
        "transmission": 1,
        "engine_size": 1,
        "posted_date": 1,
    }


def test_a_missing_value_marker_in_a_required_column_fails_as_a_null(contract: Contract) -> None:
    # given "NA" as the make and as the identifier of two rows
    records = [*clean(4), car(5, make="NA"), car(6, listing_id="N/A")]
    # when checked
    result = check_frame(frame(*records), contract)
    # then each fails as a missing value, not as a type or allowed-value failure
    assert result.invalid[FAILED_RULES].tolist() == ["not_null:make", "null_key:listing_id"]


def test_markers_are_matched_as_written_so_lower_case_none_is_a_value(contract: Contract) -> None:
    # given "none" (not the marker "None") as a body style
    result = check_frame(frame(*clean(3), car(4, body="none")), contract)
    # then it is a value, checked against the allowed list
    assert result.invalid[FAILED_RULES].tolist() == ["allowed:body"]


def test_a_contract_sets_its_own_missing_values_for_the_dataset(contract: Contract) -> None:
    # given a contract that reads only "-" as missing
    own = contract.model_copy(update={"missing_values": ["-"]})
    records = [*clean(3), car(4, mileage="-"), car(5, mileage="NA")]
    # when checked
    result = check_frame(frame(*records), own.model_copy(update={"max_invalid_share": 1.0}))
    # then "-" is a null and "NA" is no longer one
    assert result.valid["mileage"].isna().tolist() == [False, False, False, True]
    assert result.invalid[FAILED_RULES].tolist() == ["type:mileage"]


def test_a_columns_own_list_overrides_the_dataset_list(contract: Contract) -> None:
    # given a category where "None" is a real value: its own list leaves it out
    columns = dict(contract.columns)
    body = columns["body"]
    columns["body"] = body.model_copy(
        update={"allowed": [*(body.allowed or []), "none"], "missing_values": ["?"]}
    )
    trims = contract.model_copy(update={"columns": columns})
    records = [*clean(2), car(3, body="None"), car(4, body="?"), car(5, mileage="None")]
    # when checked
    result = check_frame(frame(*records), trims)
    # then "None" is a body style there, "?" is a null, and other columns keep the default list
    assert result.rows_quarantined == 0
    assert result.valid["body"].iloc[2] == "none"
    assert pd.isna(result.valid["body"].iloc[3])
    assert pd.isna(result.valid["mileage"].iloc[4])


def test_markers_are_not_read_when_missing_values_is_off(contract: Contract) -> None:
    # given a parquet-like frame whose text "NA" is a literal value
    result = check_frame(
        frame(*clean(3), car(4, transmission="NA")), contract, missing_values=False
    )
    # then "NA" is checked as a value
    assert result.invalid[FAILED_RULES].tolist() == ["allowed:transmission"]


# ---------------------------------------------------------------- bad lines


def test_bad_lines_are_quarantined_rows_and_counts_reconcile_line_for_line(
    contract: Contract,
) -> None:
    from mlops.validation.checks import BAD_LINE_RULE
    from mlops.validation.readers import BadLine

    # given four good records and two lines the reader could not read
    bad = [BadLine(3, "12 fields, expected 11", "L1,a,b"), BadLine(7, "not JSON", "{")]
    # when checked together
    result = check_frame(frame(*clean(4)), contract, bad_lines=bad)
    # then each bad line is one quarantined row with its number and reason
    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (6, 4, 2)
    assert result.rule_failures == {BAD_LINE_RULE: 2}
    lines = result.invalid
    assert lines[FAILED_RULES].tolist() == [BAD_LINE_RULE] * 2
    assert lines["line_number"].tolist() == [3, 7]
    assert lines["line_reason"].tolist() == ["12 fields, expected 11", "not JSON"]
    assert result.summary()["bad_lines"] == [
        {"line": 3, "reason": "12 fields, expected 11"},
        {"line": 7, "reason": "not JSON"},
    ]


def test_bad_lines_count_towards_the_invalid_share(contract: Contract) -> None:
    from mlops.validation.readers import BadLine

    # given one good record and two bad lines (two thirds invalid, over the contract's half)
    bad = [BadLine(2, "not JSON", "{"), BadLine(3, "not JSON", "[")]
    # when checked
    result = check_frame(frame(*clean(1)), contract, bad_lines=bad)
    # then the object is rejected whole
    assert result.rejected
    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (3, 0, 3)


# ---------------------------------------------------------------------- field-length caps
def rules_of(result: Any, listing_id: str) -> list[str]:
    rows = result.invalid.set_index("listing_id")
    return str(rows.loc[listing_id, FAILED_RULES]).split(";")


def test_a_value_longer_than_the_contract_cap_fails_its_row_as_too_long(
    contract: Contract,
) -> None:
    long_model = "x" * (contract.max_field_chars + 1)

    result = check_frame(frame(*clean(5), car(6, model=long_model)), contract)

    assert result.rows_valid == 5
    assert "too_long:model" in rules_of(result, "L000006")
    assert result.rule_failures["too_long:model"] == 1


def test_an_oversized_lineage_value_fails_its_row_and_never_reaches_the_valid_rows(
    contract: Contract,
) -> None:
    url = "http://127.0.0.1/" + "a" * 1024**2

    result = check_frame(frame(*clean(5), car(6, source_url=url)), contract)

    assert rules_of(result, "L000006") == ["too_long:source_url"]
    assert result.valid["source_url"].str.len().max() < contract.max_field_chars


def test_a_value_exactly_at_the_cap_passes(contract: Contract) -> None:
    capped = contract.model_copy(update={"max_field_chars": 40})
    url = "http://127.0.0.1/" + "a" * (40 - len("http://127.0.0.1/"))

    result = check_frame(frame(car(1, source_url=url)), capped)

    assert result.rows_valid == 1


def test_the_cap_counts_characters_not_bytes(contract: Contract) -> None:
    # given a cap of 30 characters and a URL of 30 characters but 43 bytes
    capped = contract.model_copy(update={"max_field_chars": 30})
    url = "http://127.0.0.1/" + "é" * 13

    result = check_frame(frame(car(1, source_url=url), car(2, source_url=url + "é")), capped)

    assert list(result.valid["listing_id"]) == ["L000001"]
    assert rules_of(result, "L000002") == ["too_long:source_url"]


def test_a_column_cap_replaces_the_contract_cap_for_that_column(contract: Contract) -> None:
    # given a listing id capped at 7 characters (its pattern allows exactly 7)
    columns = dict(contract.columns)
    columns["listing_id"] = columns["listing_id"].model_copy(update={"max_chars": 7})
    capped = contract.model_copy(update={"columns": columns})

    result = check_frame(frame(car(1), car(2, listing_id="L0000002")), capped)

    assert result.rows_valid == 1
    assert "too_long:listing_id" in rules_of(result, "L0000002")


def test_numbers_from_parquet_are_not_measured(contract: Contract) -> None:
    records = frame(*clean(3))
    records["year"] = records["year"].astype("int64")
    capped = contract.model_copy(update={"max_field_chars": 2})
    columns = {n: s.model_copy(update={"max_chars": 100}) for n, s in capped.columns.items()}
    columns["year"] = columns["year"].model_copy(update={"max_chars": None})
    capped = capped.model_copy(update={"columns": columns, "lineage_columns": []})

    result = check_frame(records, capped)

    assert result.rows_valid == 3
