"""Objects too large for one validate invocation (issue 12 item 2), on the strict local cloud:
the function hands them to the validation Glue job by their stored size, and the job leaves
the same report, quarantine rows and ledger part as the function leaves for the same rows.

The threshold (ValidationGlueMinBytes) is lowered to 100 KB and the job's pieces to 1,000
lines, so a CSV of a few hundred KB takes the Glue path in several partitions while its gzip
(the same rows, a tenth of the bytes) takes the function's: the two are compared field by
field. Each cloud ends with the lake and the ledger agreeing (tests/e2e/lake_check.py).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from samtranslator.yaml_helper import yaml_parse

from localcloud.cloud import PROJECT_ROOT, LocalCloud
from mlops import lake
from mlops.runs import run_id_for_object
from tests.e2e.reconcile import assert_lake_matches_ledger, ledger_items
from tests.e2e.uploads import as_csv, car

pytestmark = pytest.mark.e2e

THRESHOLD = 100_000
PIECE_LINES = 1000
ROWS = 3000
# The report's CheckResult.summary() keys, which both paths must agree on.
SUMMARY_KEYS = (
    "rows_in",
    "rows_valid",
    "rows_quarantined",
    "rejected",
    "rejection_reason",
    "rule_failures",
    "unexpected_columns",
    "missing_optional_columns",
    "null_share_over_tolerance",
    "normalised",
    "missing_markers",
    "bad_lines",
)


def validation_only_template() -> str:
    """template.yaml with the job cutting 1,000-line pieces, and preparation's rule for Run
    Validated matching nothing: these tests are about validation, and each preparation run
    would start Spark again (JSON is YAML)."""
    sam = yaml_parse((PROJECT_ROOT / "template.yaml").read_text())
    job = sam["Resources"]["ValidateLargeJob"]["Properties"]
    job["DefaultArguments"]["--partition_lines"] = str(PIECE_LINES)
    rule = sam["Resources"]["StartPreparationFunction"]["Properties"]["Events"]["RunValidated"]
    rule["Properties"]["Pattern"]["detail-type"] = ["Run Validated, not in these tests"]
    return json.dumps(sam)


def listings() -> bytes:
    """3,000 listings as CSV: a year out of range, a make not allowed, a copied key (within
    one 1,000-line piece) and a line with a missing field."""
    records = [car(i, mileage=60000 + 37 * i) for i in range(1, ROWS + 1)]
    records[10]["year"] = 1890
    records[1500]["make"] = "trabant"
    records[2200]["listing_id"] = records[2150]["listing_id"]
    lines = as_csv(records).decode().splitlines()
    lines[2500] = ",".join(lines[2500].split(",")[:-1])
    return ("\n".join(lines) + "\n").encode()


def mostly_invalid_json_lines() -> bytes:
    """3,000 listings as JSON lines, three in five with a year out of range (over the
    contract's max_invalid_share of 50 %), and a line that is not JSON."""
    records = [
        car(i, mileage=60000 + 37 * i, year=1890 if i % 5 < 3 else 2020) for i in range(1, ROWS + 1)
    ]
    lines = [json.dumps(r) for r in records]
    lines[1200] = "{not json"
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(
        parameters={"ValidationGlueMinBytes": str(THRESHOLD)},
        executors=["localcloud.executors.glue:GlueExecutor"],
        http_api=False,
        template_text=validation_only_template(),
    ) as running:
        yield running


def put(cloud: LocalCloud, key: str, body: bytes) -> str:
    answer = cloud.client("s3").put_object(Bucket=cloud.resources["RawBucket"], Key=key, Body=body)
    return run_id_for_object(key, answer["VersionId"])


def report(cloud: LocalCloud, run_id: str, key: str) -> dict[str, Any]:
    body = cloud.client("s3").get_object(
        Bucket=cloud.resources["QuarantineBucket"],
        Key=lake.validation_report_key("used_cars", run_id, key),
    )["Body"]
    return json.loads(body.read())


def quarantined(cloud: LocalCloud, run_id: str) -> pd.DataFrame:
    s3 = cloud.client("s3")
    bucket = cloud.resources["QuarantineBucket"]
    found = s3.list_objects_v2(Bucket=bucket, Prefix=f"rows/used_cars/run_id={run_id}/")
    frames = [
        pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()))
        for o in found.get("Contents", [])
    ]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def both(cloud: LocalCloud) -> dict[str, Any]:
    """The same listings uploaded twice: as CSV over the threshold, as gzip under it; and
    mostly invalid listings as JSON lines over the threshold, and as gzip under it."""
    uploads = {
        "large": ("used_cars/large.csv", listings()),
        "small": ("used_cars/small.csv.gz", gzip.compress(listings())),
        "rejected_large": ("used_cars/rejected.jsonl", mostly_invalid_json_lines()),
        "rejected_small": (
            "used_cars/rejected.jsonl.gz",
            gzip.compress(mostly_invalid_json_lines()),
        ),
    }
    for name, (_, body) in uploads.items():
        assert (len(body) > THRESHOLD) == name.endswith("large"), name
    runs = {name: (put(cloud, key, body), key) for name, (key, body) in uploads.items()}
    assert cloud.wait_quiescent(timeout=150)
    return runs


def test_an_object_over_the_threshold_is_validated_by_the_glue_job(
    cloud: LocalCloud, both: dict[str, Any]
) -> None:
    # given the CSV stored over ValidationGlueMinBytes, uploaded
    run_id, key = both["large"]
    # then the function delegated it (the ledger names the job run), and the job's report says
    # that run validated it in pieces
    written = report(cloud, run_id, key)
    by = written["validated_by"]
    assert by["job_name"] == cloud.resources["ValidateLargeJob"]
    assert written["chunks"] == 3 and "preparation" in written["duplicate_keys_checked"]
    # and the run completed: the job recorded the part and Run Validated went out
    validate = ledger_items(cloud, run_id)["validate"]
    assert validate["status"] == "SUCCEEDED" and validate["completion"] == "emitted"
    assert validate["delegated"][key]["job_run_id"] == by["job_run_id"]


def test_the_glue_path_reports_what_the_function_reports_for_the_same_rows(
    cloud: LocalCloud, both: dict[str, Any]
) -> None:
    # given the same rows validated by the job (CSV) and by the function (its gzip)
    large = report(cloud, *both["large"])
    small = report(cloud, *both["small"])
    # then every summary field of the two reports agrees, bad line numbers included
    assert {k: large[k] for k in SUMMARY_KEYS} == {k: small[k] for k in SUMMARY_KEYS}
    assert large["status"] == small["status"] == "validated"
    assert large["rule_failures"] == {
        "range:year": 1,
        "allowed:make": 1,
        "duplicate_key": 1,
        "bad_line": 1,
    }
    assert large["bad_lines"] == [{"line": 2501, "reason": small["bad_lines"][0]["reason"]}]


def test_the_glue_path_quarantines_and_records_what_the_function_does(
    cloud: LocalCloud, both: dict[str, Any]
) -> None:
    # given the two runs
    (large_run, large_key), (small_run, small_key) = both["large"], both["small"]
    # then the ledger holds the same counts for each object
    large_part = ledger_items(cloud, large_run)["validate"]["part_counts"][large_key]
    small_part = ledger_items(cloud, small_run)["validate"]["part_counts"][small_key]
    counts = ("outcome", "rows_in", "rows_valid", "rows_quarantined")
    assert {k: large_part[k] for k in counts} == {k: small_part[k] for k in counts}
    # and quarantine holds the same rows under the same rules
    rules = ["failed_rules", "listing_id"]
    large_rows = quarantined(cloud, large_run)[rules].fillna("").sort_values(rules)
    small_rows = quarantined(cloud, small_run)[rules].fillna("").sort_values(rules)
    assert large_rows.to_numpy().tolist() == small_rows.to_numpy().tolist()
    # and the quarantined rows are there for people as CSV too
    csv_key = lake.quarantined_rows_csv_key("used_cars", large_run, large_key)
    csv = cloud.client("s3").get_object(Bucket=cloud.resources["QuarantineBucket"], Key=csv_key)
    assert csv["Body"].read().decode().count("\n") == 1 + 4
    # and the lake agrees with the ledger for both
    assert_lake_matches_ledger(cloud, large_run)
    assert_lake_matches_ledger(cloud, small_run)


def test_a_rejected_object_ends_in_quarantine_as_the_function_leaves_it(
    cloud: LocalCloud, both: dict[str, Any]
) -> None:
    # given the same mostly invalid JSON lines validated by the job and by the function
    (large_run, large_key), (small_run, small_key) = both["rejected_large"], both["rejected_small"]
    large, small = report(cloud, large_run, large_key), report(cloud, small_run, small_key)
    # then both reject the object for its share of invalid rows, with the same summary
    assert large["status"] == small["status"] == "rejected"
    assert "max_invalid_share" in large["rejection_reason"]
    assert {k: large[k] for k in SUMMARY_KEYS} == {k: small[k] for k in SUMMARY_KEYS}
    assert large["chunks"] == 3 and large["bad_lines"][0]["line"] == 1201
    # and every row is in quarantine, the passing ones under object_rejected, none validated
    rows = quarantined(cloud, large_run)
    assert len(rows) == large["rows_in"] == ROWS
    rejected_only = rows["failed_rules"] == "object_rejected"
    assert rejected_only.sum() == large["rule_failures"]["object_rejected"] > 0
    part = ledger_items(cloud, large_run)["validate"]["part_counts"][large_key]
    assert (part["outcome"], part["rows_valid"], part["rows_quarantined"]) == (
        "rejected",
        0,
        ROWS,
    )
    assert_lake_matches_ledger(cloud, large_run)
