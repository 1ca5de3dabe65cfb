"""Uploads off the happy path on the strict local cloud (issue 10 items 3, 4, 5 and 10):
every object leaves a trace, missing values as people write them are nulls, one bad line does
not sink a file, and `mlops status` names each failed object's reason (too little data:
test_too_little_data.py). Each scenario ends with the lake and the ledger agreeing
(tests/e2e/lake_check.py)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.cli import status_text
from localcloud.cloud import LocalCloud
from localcloud.ledger_view import LedgerView
from mlops import lake
from tests.e2e.reconcile import assert_lake_matches_ledger
from tests.e2e.uploads import as_csv, as_jsonl, as_parquet, car, upload

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(executors=[], http_api=False, publish=False) as running:
        yield running


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("cars.CSV", as_csv),
        ("cars.csv.gz", lambda r: gzip.compress(as_csv(r))),
        ("cars.jsonl", as_jsonl),
        ("cars.JSONL.GZ", lambda r: gzip.compress(as_jsonl(r))),
        ("cars.Parquet", as_parquet),
    ],
)
def test_every_supported_format_in_any_case_is_validated(
    cloud: LocalCloud, name: str, encode: Any
) -> None:
    records = [car(i) for i in range(1, 31)]

    run_id, part = upload(cloud, f"used_cars/{name}", encode(records))

    assert (part["outcome"], part["rows_in"], part["rows_valid"]) == ("validated", 30, 30)
    assert_lake_matches_ledger(cloud, run_id)


def test_an_unsupported_format_is_rejected_with_a_reason_and_a_report(cloud: LocalCloud) -> None:
    run_id, part = upload(cloud, "used_cars/cars.xlsx", b"PK\x03\x04 not a csv")

    assert part["outcome"] == "unreadable"
    assert "unsupported format" in part["reason"] and "csv.gz" in part["reason"]
    report = lake.validation_report_key("used_cars", run_id, "used_cars/cars.xlsx")
    body = cloud.client("s3").get_object(Bucket=cloud.resources["QuarantineBucket"], Key=report)
    assert "unsupported format" in body["Body"].read().decode()


def test_a_parquet_with_a_nested_column_is_validated_under_its_own_run(
    cloud: LocalCloud,
) -> None:
    records = [car(i) | {"features": {"seats": 5, "extras": ["nav"]}} for i in range(1, 21)]

    run_id, part = upload(cloud, "used_cars/nested.parquet", as_parquet(records))

    assert run_id != "unknown"
    assert part["outcome"] == "validated" and part["rows_in"] == 20


def test_missing_values_as_people_write_them_are_nulls_not_type_failures(
    cloud: LocalCloud,
) -> None:
    # given an export where optional columns say NA, N/A, NULL or nothing
    markers = ["NA", "N/A", "NULL", "", "None", "#N/A", "null", "NaN"]
    records = [car(i, mileage=markers[i % len(markers)]) for i in range(1, 41)]

    _, part = upload(cloud, "used_cars/r_export.csv", as_csv(records))

    # then no row is lost to them: the marked rows are valid with a null mileage
    assert part["rows_quarantined"] == 0 and part["rows_valid"] == 40


def test_a_ragged_line_is_quarantined_with_its_line_number_and_the_rest_validated(
    cloud: LocalCloud,
) -> None:
    body = as_csv([car(i) for i in range(1, 21)]).decode().splitlines()
    body.insert(6, "L999999,toyota,corolla,2015")  # line 7 of the file: four fields
    run_id, part = upload(cloud, "used_cars/ragged.csv", ("\n".join(body) + "\n").encode())
    report_key = lake.validation_report_key("used_cars", run_id, "used_cars/ragged.csv")

    assert part["rows_valid"] == 20 and part["rows_quarantined"] == 1
    assert part["rows_in"] == 21
    report = json.loads(
        cloud.client("s3")
        .get_object(Bucket=cloud.resources["QuarantineBucket"], Key=report_key)["Body"]
        .read()
    )
    assert [line["line"] for line in report["bad_lines"]] == [7]


def test_status_names_the_reason_of_each_failed_object(cloud: LocalCloud) -> None:
    run_id, _ = upload(cloud, "used_cars/notes.txt", b"hello")
    view = LedgerView(cloud.client("dynamodb"), cloud.resources["RunLedgerTable"])

    text = status_text(view, run_id)

    assert "unreadable: used_cars/notes.txt" in text and "unsupported format" in text
