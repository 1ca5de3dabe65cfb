"""Hostile uploads on the local cloud: a gzip bomb is refused in bounded memory, oversized
values (data or lineage columns) are quarantined, and formulas never reach a person's
spreadsheet; every scenario ends with the lake and the ledger agreeing."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from localcloud.cloud import LocalCloud
from mlops import lake
from mlops.runs import run_id_for_object
from tests.e2e.reconcile import assert_lake_matches_ledger, ledger_items
from tests.unit.test_validation_checks import car

pytestmark = pytest.mark.e2e

BOMB_BYTES = 512 * 1024**2
# The validation of a few rows, moto and the function's own imports stay well inside this.
MEMORY_BOUND = 128 * 1024**2


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(executors=[], http_api=False, publish=False) as running:
        yield running


def upload(cloud: LocalCloud, key: str, body: bytes) -> str:
    """Put ``body`` in the raw zone, wait for the pipeline to settle; the object's run id."""
    put = cloud.client("s3").put_object(Bucket=cloud.resources["RawBucket"], Key=key, Body=body)
    assert cloud.wait_quiescent(timeout=120)
    return run_id_for_object(key, put["VersionId"])


def gzip_bomb() -> bytes:
    """A CSV header and 512 MiB of zeros in about 510 KB of gzip."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as stream:
        stream.write(b"listing_id,make,year\n")
        block = b"0" * 1024**2
        for _ in range(BOMB_BYTES // len(block)):
            stream.write(block)
    return buffer.getvalue()


def memory() -> dict[str, int]:
    """This process's resident and peak resident memory in bytes (Linux /proc)."""
    status = Path("/proc/self/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status)
    return {name: int(fields[name].split()[0]) * 1024 for name in ("VmRSS", "VmHWM")}


def as_csv(records: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode()


def quarantined(cloud: LocalCloud, run_id: str) -> pd.DataFrame:
    s3 = cloud.client("s3")
    bucket = cloud.resources["QuarantineBucket"]
    prefix = f"rows/used_cars/run_id={run_id}/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    tables = [
        pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in keys
    ]
    return pd.concat([t.to_pandas() for t in tables], ignore_index=True)


def validated(cloud: LocalCloud, run_id: str) -> pd.DataFrame:
    s3 = cloud.client("s3")
    bucket = cloud.resources["ValidatedBucket"]
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix="used_cars/")["Contents"]
        if f"/run_id={run_id}/" in o["Key"]
    ]
    tables = [
        pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in keys
    ]
    return pd.concat([t.to_pandas() for t in tables], ignore_index=True)


def report(cloud: LocalCloud, run_id: str, key: str) -> dict[str, Any]:
    body = cloud.client("s3").get_object(
        Bucket=cloud.resources["QuarantineBucket"],
        Key=lake.validation_report_key("used_cars", run_id, key),
    )["Body"]
    return json.loads(body.read())


def test_a_gzip_bomb_is_refused_with_its_reason_in_bounded_memory(cloud: LocalCloud) -> None:
    # given a 510 KB gzip that expands to 512 MiB, and this process's peak memory reset
    bomb = gzip_bomb()
    assert len(bomb) < 1024**2
    key = "used_cars/bomb.csv.gz"
    Path("/proc/self/clear_refs").write_text("5")
    before = memory()["VmRSS"]

    # when it is uploaded
    run_id = upload(cloud, key, bomb)

    # then it is unreadable for its size, in the ledger and in its report, and validating it
    # never held anything like its expanded size
    grew = memory()["VmHWM"] - before
    part = ledger_items(cloud, run_id)["validate"]["part_counts"][key]
    assert part["outcome"] == "unreadable"
    assert "MAX_DECOMPRESSED_BYTES" in part["reason"], part["reason"]
    assert report(cloud, run_id, key)["reason"] == part["reason"]
    assert grew < MEMORY_BOUND, f"peak memory grew {grew / 1024**2:.0f} MiB"
    assert_lake_matches_ledger(cloud, run_id)


def test_oversized_values_in_a_data_and_a_lineage_column_are_quarantined(
    cloud: LocalCloud,
) -> None:
    # given 30 good listings, one whose model is 20,000 characters and one whose source_url
    # (a lineage column the scraper adds) is a megabyte
    records = [car(i) for i in range(1, 31)]
    records.append(car(31, model="x" * 20_000))
    records.append(car(32, source_url="http://127.0.0.1/" + "a" * 1024**2))
    key = "used_cars/oversized.csv"

    # when they are uploaded
    run_id = upload(cloud, key, as_csv(records))

    # then each is a quarantined row saying which column was too long, nothing oversized is
    # validated, and the zones hold what the ledger counts
    rows = quarantined(cloud, run_id).set_index("listing_id")
    assert "too_long:model" in rows.loc["L000031", "failed_rules"].split(";")
    assert "too_long:source_url" in rows.loc["L000032", "failed_rules"].split(";")
    good = validated(cloud, run_id)
    assert len(good) == 30
    assert good["source_url"].str.len().max() <= 10_000
    assert good["model"].str.len().max() <= 10_000
    assert report(cloud, run_id, key)["rule_failures"]["too_long:source_url"] == 1
    assert_lake_matches_ledger(cloud, run_id)


def test_a_formula_in_a_quarantined_row_is_neutralised_for_people_but_kept_in_the_zone(
    cloud: LocalCloud,
) -> None:
    # given listings whose make is a formula, and one with a negative price
    formula = '=HYPERLINK("http://evil.example","click")'
    records = [car(i) for i in range(1, 21)]
    records.append(car(21, make=formula))
    records.append(car(22, make="@SUM(1+1)", price="-3.5"))
    key = "used_cars/formulas.csv"

    # when they are uploaded
    run_id = upload(cloud, key, as_csv(records))

    # then the zone keeps the cells exactly, and the CSV for people shows them as text while
    # the negative price stays a number
    rows = quarantined(cloud, run_id).set_index("listing_id")
    assert rows.loc["L000021", "make"] == formula
    body = cloud.client("s3").get_object(
        Bucket=cloud.resources["QuarantineBucket"],
        Key=lake.quarantined_rows_csv_key("used_cars", run_id, key),
    )["Body"]
    people = list(csv.DictReader(io.StringIO(body.read().decode("utf-8-sig"))))
    by_id = {row["listing_id"]: row for row in people}
    assert by_id["L000021"]["make"] == "'" + formula
    assert by_id["L000022"]["make"] == "'@SUM(1+1)"
    assert by_id["L000022"]["price"] == "-3.5"
    assert_lake_matches_ledger(cloud, run_id)
