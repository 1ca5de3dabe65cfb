"""Contract → form fields and row checks (mlops.web.fields), on a small contract of its own."""

from __future__ import annotations

import jsonschema
import pytest

from mlops.contract import Contract
from mlops.web.fields import RowsRejected, row_json_schema, spec_from_contract, validate_rows

CONTRACT = Contract.from_yaml(
    """
name: flats
version: "1"
task: regression
target: rent
keys: [flat_id]
lineage_columns: [source_url]
columns:
  flat_id: {type: string, feature: false}
  rooms: {type: int, min: 1, max: 9}
  area: {type: float, min: 10, max: 500, required: false}
  city: {type: category, allowed: [berlin, paris], aliases: {"paname": paris}}
  balcony: {type: bool, required: false}
  built: {type: datetime, required: false}
  rent: {type: float, feature: false}
"""
)
SPEC = spec_from_contract(CONTRACT)


def check(**row: object) -> dict[str, object]:
    return validate_rows([row], SPEC)[0]


def errors_of(**row: object) -> dict[str | None, str]:
    with pytest.raises(RowsRejected) as rejected:
        validate_rows([row], SPEC)
    return {error.field: error.message for error in rejected.value.errors}


def test_the_fields_are_the_contract_features_in_contract_order() -> None:
    assert [field.name for field in SPEC.fields] == CONTRACT.features
    assert SPEC.ignored == {"flat_id", "rent", "source_url"}


def test_a_whole_number_float_or_numeric_text_is_accepted_for_an_int_column() -> None:
    assert check(rooms=3.0, city="paris")["rooms"] == 3
    assert check(rooms="4", city="paris")["rooms"] == 4


def test_a_fractional_number_is_refused_for_an_int_column() -> None:
    assert errors_of(rooms=2.5, city="paris") == {"rooms": "must be a whole number"}


def test_true_or_false_is_not_a_number() -> None:
    assert "rooms" in errors_of(rooms=True, city="paris")


def test_a_number_outside_the_contract_range_names_the_bound() -> None:
    assert errors_of(rooms=1, area=9.5, city="paris") == {"area": "must be at least 10"}


def test_category_matching_ignores_case_and_spacing_and_follows_aliases() -> None:
    assert check(rooms=1, city="  BERLIN ")["city"] == "berlin"
    assert check(rooms=1, city="Paname")["city"] == "paris"


def test_an_unknown_category_lists_the_allowed_options() -> None:
    assert errors_of(rooms=1, city="rome") == {"city": "must be one of: berlin, paris"}


def test_optional_fields_may_be_absent_or_null_and_reach_the_model_as_null() -> None:
    row = check(rooms=1, city="paris", area=None)

    assert row == {"rooms": 1, "area": None, "city": "paris", "balcony": None, "built": None}


def test_bool_and_datetime_columns_take_json_or_form_values() -> None:
    row = check(rooms=1, city="paris", balcony="true", built="2020-05-01")

    assert (row["balcony"], row["built"]) == (True, "2020-05-01")
    assert errors_of(rooms=1, city="paris", built="May 2020") == {
        "built": "must be an ISO 8601 date or date-time string"
    }


def test_contract_columns_that_are_not_features_are_dropped_and_others_refused() -> None:
    assert "rent" not in check(rooms=1, city="paris", rent=900.0, flat_id="F1")
    assert errors_of(rooms=1, city="paris", garden=True) == {"garden": "unknown field"}


def test_the_row_schema_requires_exactly_the_required_features() -> None:
    schema = row_json_schema(SPEC)

    assert schema["required"] == ["rooms", "city"]
    # The JSON form a client should send comes first; the text forms the API also reads follow.
    assert schema["properties"]["rooms"]["anyOf"][0] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 9,
    }
    assert schema["properties"]["city"]["anyOf"][0]["enum"] == ["berlin", "paris"]


def accepted_by_the_api(field: str, value: object) -> bool:
    row: dict[str, object] = {"rooms": 2, "city": "paris", field: value}
    try:
        validate_rows([row], SPEC)
    except RowsRejected:
        return False
    return True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rooms", 3),
        ("rooms", " 3 "),
        ("rooms", "three"),
        ("rooms", "1_0"),
        ("rooms", "nan"),
        ("rooms", ""),
        ("rooms", None),
        ("rooms", True),
        ("area", "55.5"),
        ("area", "5e1"),
        ("area", " "),
        ("area", None),
        ("area", "١٢"),
        ("city", "paris"),
        ("city", "  PARIS "),
        ("city", "Paname"),
        ("city", "london"),
        ("city", ""),
        ("city", 7),
        ("balcony", True),
        ("balcony", " TRUE"),
        ("balcony", "yes"),
        ("balcony", ""),
    ],
)
def test_the_row_schema_admits_exactly_the_values_the_api_accepts(
    field: str, value: object
) -> None:
    # Values in range: the schema cannot say "text of a number from 1 to 9", the API can.
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **row_json_schema(SPEC)}
    row = {"rooms": 2, "city": "paris", field: value}

    admitted = jsonschema.Draft202012Validator(schema).is_valid(row)

    assert admitted == accepted_by_the_api(field, value)
