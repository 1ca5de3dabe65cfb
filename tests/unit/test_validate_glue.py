"""The validation job's own parts (glue/validate.py): its arguments, how it cuts an object into
pieces, and how it adds the pieces' summaries up. The whole job runs end to end in
tests/e2e/test_large_objects.py; here one local Spark session serves the module."""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from glue.validate import (
    ValidationJobFailed,
    parse_args,
    piece_bounds,
    pieces,
    read_piece,
    tally,
)
from mlops.contract import bundled_contract

ROOT = Path(__file__).resolve().parents[2]
ARGS = [
    "--raw_path", "s3://raw/used_cars/big.csv",
    "--bucket", "raw",
    "--key", "used_cars/big.csv",
    "--version_id", "v1",
    "--event_time", "2026-12-03T19:00:00+00:00",
    "--run_id", "upload-0badcafe",
    "--dataset", "used_cars",
    "--ingest_date", "2026-12-03",
]  # fmt: skip


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from glue.validate import spark_session

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYSPARK_PYTHON", sys.executable)
        env.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "layers" / "shared")]))
        session = spark_session()
        yield session
        session.stop()


def test_job_arguments_become_the_settings_the_shared_package_reads() -> None:
    # given the run's arguments and the job's DefaultArguments, as Glue passes them
    argv = [*ARGS, "--validated_bucket", "v", "--quarantine_bucket", "q", "--ledger_table", "l"]
    argv += ["--JOB_NAME", "mlops-validate-dev", "--JOB_RUN_ID", "jr_1", "--enable-metrics", "true"]

    args = parse_args(argv)

    # then the buckets and table are the settings' variables, Glue's own ones are tolerated
    assert args.environment["VALIDATED_BUCKET"] == "v"
    assert args.environment["QUARANTINE_BUCKET"] == "q"
    assert args.environment["LEDGER_TABLE"] == "l"
    assert (args.job_name, args.job_run_id, args.version_id) == ("mlops-validate-dev", "jr_1", "v1")
    assert args.partition_lines == 200_000


def test_a_run_without_its_object_fails_naming_the_missing_arguments() -> None:
    with pytest.raises(ValidationJobFailed, match="--key"):
        parse_args([a for a in ARGS if a not in ("--key", "used_cars/big.csv")])


def test_pieces_start_every_block_of_lines() -> None:
    # given 10 lines after a header, in blocks of 4, no quoted value spanning lines
    bounds = piece_bounds(total=11, first=1, size=4, quote_lines=[])

    # then each block is a piece starting at its first line
    assert bounds == [(0, 1, -1), (1, 5, 1), (2, 9, 5)]


def test_a_piece_never_starts_inside_a_quoted_value_spanning_lines() -> None:
    # given a value opened on line 4 and closed on line 6 (odd quote counts), across block 1's
    # first line (5)
    bounds = piece_bounds(total=11, first=1, size=4, quote_lines=[4, 6])

    # then block 1's piece starts after the value; its lines before that stay with piece 1
    assert bounds == [(0, 1, -1), (1, 7, 1), (2, 9, 7)]


def test_a_value_open_to_the_end_keeps_the_rest_in_one_piece() -> None:
    # given a quote opened on line 3 and never closed
    bounds = piece_bounds(total=11, first=1, size=4, quote_lines=[3])

    # then no later piece starts: every later line belongs to the first piece
    assert [start for _, start, _ in bounds] == [1, 11, 11]
    assert [before for _, _, before in bounds] == [-1, 1, 1]


def test_a_json_piece_without_any_object_is_all_bad_lines_numbered_in_the_object() -> None:
    # given a piece of JSON lines starting at the object's line 10, none of them an object
    part = pd.DataFrame({"chunk": [3] * 3, "idx": [9, 10, 11], "line": ["{oops", "", "42"]})

    # when read
    frame, bad, text = read_piece(part, {"format": "jsonl"})

    # then no record, and each line is a bad line under its number in the object
    assert frame.empty and text
    assert [(b.line, b.reason) for b in bad] == [
        (10, "not JSON: Expecting property name enclosed in double quotes"),
        (12, "not a JSON object but int"),
    ]


def test_a_csv_is_cut_into_pieces_of_whole_records(spark: Any, tmp_path: Path) -> None:
    # given a CSV whose 7th record holds a value spanning three lines, across a piece boundary
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["listing_id", "note"])
    for n in range(1, 13):
        writer.writerow([f"L{n:06d}", "one\ntwo\nthree" if n == 7 else "plain"])
    path = tmp_path / "cars.csv"
    path.write_text(out.getvalue())

    # when it is cut into pieces of 4 lines
    frame, header, count = pieces(spark, str(path), "csv", 4)
    rows = frame.toPandas().sort_values("idx")

    # then the header is apart, and each piece parses as whole records
    assert header == "listing_id,note"
    # lines 1-4, 5-9 (the value's last line, 9, stays with the record it closes), 10-12, 13-14
    assert count == rows["chunk"].nunique() == 4
    assert sorted(rows["chunk"].unique()) == [1, 5, 10, 13]
    records = []
    for _, piece in rows.groupby("chunk"):
        text = header + "\n" + "\n".join(piece["line"]) + "\n"
        records += list(csv.DictReader(io.StringIO(text)))
    assert [r["listing_id"] for r in records] == [f"L{n:06d}" for n in range(1, 13)]
    assert records[6]["note"] == "one\ntwo\nthree"


def test_pieces_add_up_as_the_function_adds_its_chunks() -> None:
    # given two pieces' summaries, the second with 150 bad lines (100 reported)
    contract = bundled_contract("used_cars")
    common = {
        "unexpected_columns": [],
        "missing_optional_columns": ["mileage"],
        "normalised": {"make": 2},
        "missing_markers": {},
        "rejection_reason": None,
    }
    first = common | {
        "chunk": 1,
        "rows_in": 1000,
        "rows_valid": 990,
        "rows_quarantined": 10,
        "rule_failures": {"range:year": 10},
        "bad_lines": [],
        "bad_line_count": 0,
        "null_counts": {"year": 100},
    }
    second = common | {
        "chunk": 1001,
        "rows_in": 1000,
        "rows_valid": 850,
        "rows_quarantined": 150,
        "rule_failures": {"bad_line": 150},
        "bad_lines": [[1100 + n, "10 fields, expected 11"] for n in range(100)],
        "bad_line_count": 150,
        "null_counts": {"year": 0},
    }

    # when they are added up out of order
    summary = tally([second, first], contract).summary()

    # then the counts are the object's, and null shares are over the rows read (1,850)
    assert (summary["rows_in"], summary["rows_valid"], summary["rows_quarantined"]) == (
        2000,
        1840,
        160,
    )
    assert summary["rule_failures"] == {"range:year": 10, "bad_line": 150}
    assert summary["normalised"] == {"make": 4}
    assert summary["missing_optional_columns"] == ["mileage"]
    assert summary["null_share_over_tolerance"]["year"]["share"] == round(100 / 1850, 4)
    assert len(summary["bad_lines"]) == 100 and summary["bad_lines"][0]["line"] == 1100


def test_a_parquet_object_is_cut_by_row_groups_and_read_by_the_functions_reader(
    spark: Any, tmp_path: Path
) -> None:
    # given a parquet object of five row groups of 10 rows, one column nested
    import pyarrow as pa
    import pyarrow.parquet as pq

    from glue.validate import read_piece

    table = pa.table(
        {"listing_id": [f"L{n:06d}" for n in range(50)], "tags": [[n, n + 1] for n in range(50)]}
    )
    path = tmp_path / "cars.parquet"
    pq.write_table(table, path, row_group_size=10)

    # when it is cut into pieces of at most 20 rows, and each piece is read
    frame, _, count = pieces(spark, str(path), "parquet", 20)
    config = {"format": "parquet", "path": str(path)}
    read = [read_piece(piece, config) for _, piece in frame.toPandas().groupby("chunk")]

    # then whole row groups make each piece, read as the function reads parquet
    assert count == 3
    assert [len(r[0]) for r in read] == [20, 20, 10]
    assert read[0][0]["tags"].iloc[1] == "[1, 2]" and read[0][2] is False
