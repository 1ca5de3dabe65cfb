"""Site specs and value parsers: a spec is checked before any request; page text becomes values."""

from __future__ import annotations

import boto3
import pytest

from mlops.contract import bundled_contract
from mlops.scraping import SiteSpec, SpecError, load_spec, parse_spec
from mlops.scraping.parsers import ParseError, parse_value
from mlops.scraping.spec import BUILTIN_DIR, FieldSpec

DEMO_SPEC = (BUILTIN_DIR / "demo_cars.yaml").read_text()


def field(**options: object) -> FieldSpec:
    return FieldSpec(css="dd", **options)


def test_the_bundled_demo_spec_maps_every_column_of_the_used_cars_dataset() -> None:
    spec = load_spec("builtin:demo_cars")

    assert spec.dataset == "used_cars"
    # The contract is the dataset's one definition of its columns.
    assert set(spec.fields) == set(bundled_contract("used_cars").columns)
    assert set(spec.required) <= set(spec.fields)


@pytest.mark.parametrize(
    ("text", "options", "value"),
    [
        ("$12,500", {"parser": "currency"}, 12500.0),
        ("USD 1,234.50", {"parser": "currency"}, 1234.5),
        ("$1", {"parser": "currency"}, 1.0),
        ("45,000 mi", {"parser": "quantity", "cast": "int", "units": {"mi": 1.0}}, 45000),
        ("-6,000 mi", {"parser": "quantity", "cast": "int", "units": {"mi": 1.0}}, -6000),
        ("16,093 km", {"parser": "quantity", "cast": "int", "units": {"km": 0.621371192}}, 10000),
        ("1.6 L", {"parser": "quantity", "units": {"L": 1.0}}, 1.6),
        ("1,998 cc", {"parser": "quantity", "units": {"cc": 0.001}}, 1.998),
        ("2,099", {"parser": "int"}, 2099),
        ("3.5", {"parser": "float"}, 3.5),
        ("27 Nov 2026", {"parser": "date", "formats": ["%Y-%m-%d", "%d %b %Y"]}, "2026-11-27"),
        ("2026-11-01", {"parser": "date", "formats": ["%Y-%m-%d", "%d %b %Y"]}, "2026-11-01"),
        ("  Mercedes   Benz ", {"parser": "text"}, "Mercedes Benz"),
        ("SUV", {"parser": "text", "lowercase": True}, "suv"),
    ],
)
def test_parsers_turn_formatted_page_text_into_typed_values(
    text: str, options: dict[str, object], value: object
) -> None:
    assert parse_value(text, field(**options)) == value


@pytest.mark.parametrize("text", [None, "", "   "])
def test_a_blank_value_parses_to_none(text: str | None) -> None:
    assert parse_value(text, field(parser="int")) is None


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("call for price", {"parser": "currency"}),
        ("12.5", {"parser": "int"}),
        ("45,000 furlongs", {"parser": "quantity", "units": {"mi": 1.0}}),
        ("yesterday", {"parser": "date"}),
    ],
)
def test_text_that_does_not_fit_its_parser_raises_a_parse_error(
    text: str, options: dict[str, object]
) -> None:
    with pytest.raises(ParseError, match=r"not|unknown|matches none"):
        parse_value(text, field(**options))


def test_a_spec_that_is_not_yaml_is_rejected_with_its_source_named() -> None:
    with pytest.raises(SpecError, match=r"spec broken\.yaml is not valid YAML"):
        parse_spec("name: [unclosed", "broken.yaml")


def test_a_required_field_without_a_selector_is_rejected_by_name() -> None:
    text = DEMO_SPEC.replace("required: [listing_id,", "required: [vin, listing_id,")

    with pytest.raises(SpecError, match="required fields without a selector: vin"):
        parse_spec(text)


def test_a_field_with_neither_css_nor_xpath_is_rejected() -> None:
    text = DEMO_SPEC.replace("year: {css: dl.specs dd.year, parser: int}", "year: {parser: int}")

    with pytest.raises(SpecError, match=r"fields\.year: .*exactly one of 'css' or 'xpath'"):
        parse_spec(text)


def test_a_selector_that_does_not_compile_is_rejected() -> None:
    text = DEMO_SPEC.replace("css: dl.specs dd.year", "css: 'dd[[year'")

    with pytest.raises(SpecError, match="does not compile"):
        parse_spec(text)


def test_a_quantity_without_units_is_rejected() -> None:
    with pytest.raises(ValueError, match="needs 'units'"):
        FieldSpec(css="dd", parser="quantity")


def test_an_unknown_builtin_spec_names_the_bundled_ones() -> None:
    with pytest.raises(SpecError, match=r"no bundled site spec 'nope'.*demo_cars"):
        load_spec("builtin:nope")


def test_a_spec_uri_of_another_scheme_is_rejected() -> None:
    with pytest.raises(SpecError, match="builtin:<name> or s3://"):
        load_spec("https://example.com/spec.yaml")


def test_a_spec_is_read_from_s3(aws: None) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="mlops-artifacts")
    custom = DEMO_SPEC.replace("name: demo_cars", "name: other_cars")
    s3.put_object(Bucket="mlops-artifacts", Key="specs/other.yaml", Body=custom.encode())

    spec = load_spec("s3://mlops-artifacts/specs/other.yaml")

    assert isinstance(spec, SiteSpec)
    assert spec.name == "other_cars"


def test_a_missing_s3_spec_is_a_spec_error(aws: None) -> None:
    boto3.client("s3").create_bucket(Bucket="mlops-artifacts")

    with pytest.raises(SpecError, match="does not exist"):
        load_spec("s3://mlops-artifacts/specs/missing.yaml")
