"""The dataset contract: the bundled used_cars contract, contract-file errors and lookup order."""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest
import yaml

from mlops.contract import (
    BUNDLED,
    Contract,
    ContractError,
    ContractNotFound,
    bundled_contract,
    load_contract,
)

USED_CARS = BUNDLED / "used_cars.yaml"


def _used_cars_data() -> dict:
    return yaml.safe_load(USED_CARS.read_text())


def _write(tmp_path: Path, data: dict, name: str = "used_cars.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_used_cars_contract_predicts_price_from_the_car_columns() -> None:
    contract = Contract.from_file(USED_CARS)

    assert contract.task == "regression"
    assert contract.target == "price"
    assert contract.keys == ["listing_id"]
    assert "price" not in contract.features
    assert "listing_id" not in contract.features
    assert {"make", "model", "year", "mileage", "fuel"} <= set(contract.features)
    assert contract.lineage_columns == ["source_url", "fetched_at"]


def test_every_used_cars_feature_tells_the_web_form_its_type_and_values() -> None:
    contract = Contract.from_file(USED_CARS)

    for name in contract.numeric_features:
        spec = contract.columns[name]
        assert spec.min is not None and spec.max is not None, name
    for name in contract.categorical_features:
        assert contract.columns[name].allowed, name
    for name in contract.features:
        assert contract.columns[name].impute != "none", name


def test_used_cars_acceptance_bounds_are_absolute_metric_thresholds() -> None:
    contract = Contract.from_file(USED_CARS)

    assert contract.acceptance["r2"].min is not None
    assert contract.acceptance["rmse"].max is not None


def test_contract_survives_a_round_trip_through_json() -> None:
    contract = Contract.from_file(USED_CARS)

    again = Contract.model_validate(contract.model_dump(mode="json"))

    assert again == contract


def test_a_wrong_column_type_names_the_file_and_the_field(tmp_path: Path) -> None:
    data = _used_cars_data()
    data["columns"]["year"]["type"] = "integer"

    with pytest.raises(ContractError) as error:
        Contract.from_file(_write(tmp_path, data))

    message = str(error.value)
    assert message.startswith("contract used_cars.yaml: columns.year.type: Input should be 'int'")


def test_a_misspelt_column_setting_is_an_error_not_ignored(tmp_path: Path) -> None:
    data = _used_cars_data()
    data["columns"]["mileage"]["requird"] = True

    with pytest.raises(ContractError, match=r"columns\.mileage\.requird: Extra inputs"):
        Contract.from_file(_write(tmp_path, data))


def test_an_alias_must_map_onto_an_allowed_value(tmp_path: Path) -> None:
    data = _used_cars_data()
    data["columns"]["fuel"]["aliases"]["lpg"] = "autogas"

    with pytest.raises(ContractError, match=r"columns\.fuel: aliases map onto .*autogas"):
        Contract.from_file(_write(tmp_path, data))


def test_the_target_must_be_one_of_the_columns(tmp_path: Path) -> None:
    data = _used_cars_data()
    data["target"] = "asking_price"

    with pytest.raises(ContractError, match="target 'asking_price' is not one of the columns"):
        Contract.from_file(_write(tmp_path, data))


def test_an_inverted_range_is_an_error(tmp_path: Path) -> None:
    data = _used_cars_data()
    data["columns"]["year"].update(min=2026, max=1995)

    with pytest.raises(ContractError, match=r"columns\.year: min 2026 is greater than max 1995"):
        Contract.from_file(_write(tmp_path, data))


def test_text_that_is_not_yaml_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match=r"contract broken\.yaml: not valid YAML"):
        Contract.from_yaml("columns: [unclosed", source="broken.yaml")


@pytest.fixture
def artifacts_bucket(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    bucket = "mlops-artifacts-dev"
    boto3.client("s3").create_bucket(Bucket=bucket)
    monkeypatch.setenv("ARTIFACTS_BUCKET", bucket)
    return bucket


def test_a_users_contract_in_the_artifacts_bucket_overrides_the_bundled_one(
    artifacts_bucket: str,
) -> None:
    data = _used_cars_data()
    data["version"] = "2.0-user"
    boto3.client("s3").put_object(
        Bucket=artifacts_bucket, Key="contracts/used_cars.yaml", Body=yaml.safe_dump(data)
    )

    assert load_contract("used_cars").version == "2.0-user"


def test_the_bundled_contract_is_used_when_the_user_has_none(artifacts_bucket: str) -> None:
    assert load_contract("used_cars") == bundled_contract("used_cars")


def test_a_broken_user_contract_fails_naming_its_s3_location(artifacts_bucket: str) -> None:
    data = _used_cars_data()
    data["task"] = "forecasting"
    boto3.client("s3").put_object(
        Bucket=artifacts_bucket, Key="contracts/used_cars.yaml", Body=yaml.safe_dump(data)
    )

    where = re.escape(f"s3://{artifacts_bucket}/contracts/used_cars.yaml: task")
    with pytest.raises(ContractError, match=where):
        load_contract("used_cars")


def test_a_dataset_without_any_contract_is_a_clear_error(artifacts_bucket: str) -> None:
    with pytest.raises(ContractNotFound, match="no contract for dataset boats"):
        load_contract("boats")


def test_a_contract_without_missing_values_reads_the_common_markers_as_missing() -> None:
    contract = Contract.from_file(USED_CARS)

    assert contract.missing_values_of("mileage") == {
        "NA",
        "N/A",
        "#N/A",
        "NULL",
        "null",
        "NaN",
        "None",
    }


def test_a_columns_missing_values_replace_the_datasets_for_that_column_only(
    tmp_path: Path,
) -> None:
    # given a contract with its own list, and a column (where "None" is a value) with another
    data = _used_cars_data()
    data["missing_values"] = ["NA", " - "]
    data["columns"]["body"]["missing_values"] = []
    # when it is loaded
    contract = Contract.from_file(_write(tmp_path, data))
    # then markers are trimmed, the column's list wins there and the dataset's elsewhere
    assert contract.missing_values_of("mileage") == {"NA", "-"}
    assert contract.missing_values_of("body") == frozenset()


def test_an_unquoted_null_among_missing_values_is_an_error_saying_to_quote_it(
    tmp_path: Path,
) -> None:
    # given a contract file listing NULL bare, which YAML reads as no value
    path = tmp_path / "used_cars.yaml"
    text = re.sub(r"(?m)^missing_values: .*$", "missing_values: [NA, NULL]", USED_CARS.read_text())
    path.write_text(text)
    # when it is loaded, then the error names the field and says to quote it
    with pytest.raises(ContractError, match=r"missing_values: quote NULL"):
        Contract.from_file(path)


def test_a_contract_without_a_field_cap_caps_text_at_ten_thousand_characters() -> None:
    data = _used_cars_data()
    data.pop("max_field_chars", None)

    contract = Contract.model_validate(data)

    assert contract.max_field_chars == 10_000
    assert contract.max_chars_of("model") == 10_000
    assert contract.max_chars_of("source_url") == 10_000  # a lineage column


def test_a_columns_max_chars_replaces_the_contract_cap_for_that_column_only() -> None:
    data = _used_cars_data() | {"max_field_chars": 500}
    data["columns"]["listing_id"]["max_chars"] = 7

    contract = Contract.model_validate(data)

    assert contract.max_chars_of("listing_id") == 7
    assert contract.max_chars_of("model") == 500


@pytest.mark.parametrize("where", ["contract", "column"])
def test_a_field_cap_below_one_character_is_an_error(tmp_path: Path, where: str) -> None:
    data = _used_cars_data()
    if where == "contract":
        data["max_field_chars"] = 0
    else:
        data["columns"]["model"]["max_chars"] = 0

    with pytest.raises(ContractError, match="greater than or equal to 1"):
        Contract.from_file(_write(tmp_path, data))
