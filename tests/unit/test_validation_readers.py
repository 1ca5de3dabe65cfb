"""Reading raw objects: which names are read, and lines that cannot be read as records."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops.validation.readers import (
    BadLine,
    TooLarge,
    UnreadableObject,
    UnsupportedFormat,
    format_of_key,
    read_object,
)

CSV = b"id,make,year\nL1,toyota,2015\nL2,ford,2016\n"
JSONL = b'{"id": "L1", "make": "toyota"}\n{"id": "L2", "make": "ford"}\n'


@pytest.mark.parametrize(
    ("key", "fmt"),
    [
        ("ds/cars.csv", "csv"),
        ("ds/CARS.CSV", "csv"),
        ("ds/cars.csv.gz", "csv.gz"),
        ("ds/cars.CSV.GZ", "csv.gz"),
        ("ds/cars.jsonl", "jsonl"),
        ("ds/cars.JSONL.gz", "jsonl.gz"),
        ("ds/cars.Parquet", "parquet"),
    ],
)
def test_a_supported_extension_is_recognised_in_any_case(key: str, fmt: str) -> None:
    assert format_of_key(key) == fmt


@pytest.mark.parametrize("key", ["ds/cars.txt", "ds/cars.xlsx", "ds/cars.csv.bak", "ds/"])
def test_an_unsupported_name_is_refused_with_the_formats_that_are_read(key: str) -> None:
    with pytest.raises(UnsupportedFormat, match=r"unsupported format.*csv\.gz"):
        read_object(b"anything", key)


@pytest.mark.parametrize(
    ("key", "body"),
    [
        ("ds/a.csv", CSV),
        ("ds/a.csv.gz", gzip.compress(CSV)),
        ("ds/a.jsonl", JSONL),
        ("ds/a.jsonl.gz", gzip.compress(JSONL)),
    ],
)
def test_each_text_format_reads_its_records_as_text(key: str, body: bytes) -> None:
    read = read_object(body, key)

    assert read.frame["make"].tolist() == ["toyota", "ford"]
    assert read.bad_lines == []
    assert read.text_format


def test_a_ragged_csv_line_is_left_out_with_its_line_number_and_field_count() -> None:
    # given a CSV with one line short of a field and one with a field too many
    body = b"id,make,year\nL1,toyota,2015\nL2,ford\nL3,kia,2017,extra\nL4,audi,2018\n"
    # when read
    read = read_object(body, "ds/ragged.csv")
    # then the good lines are read and each bad one says where and why
    assert read.frame["id"].tolist() == ["L1", "L4"]
    assert read.bad_lines == [
        BadLine(3, "2 fields, expected 3", "L2,ford"),
        BadLine(4, "4 fields, expected 3", "L3,kia,2017,extra"),
    ]


def test_a_csv_line_number_counts_records_so_a_value_spanning_lines_counts_once() -> None:
    # given a quoted value spanning two lines before a short line
    body = b'id,make,year\n"L1","toy\nota",2015\nL2,ford\n'
    # when read
    read = read_object(body, "ds/multiline.csv")
    # then the quoted newline is kept, and the bad line is numbered as the third record
    assert read.frame["make"].tolist() == ["toy\nota"]
    assert [b.line for b in read.bad_lines] == [3]


def test_a_quoted_comma_is_one_field_not_a_ragged_line() -> None:
    read = read_object(b'id,make,year\nL1,toyota,"2,015"\n', "ds/q.csv")

    assert (read.frame["year"].tolist(), read.bad_lines) == (["2,015"], [])


def test_a_malformed_json_line_is_left_out_with_its_line_number_and_reason() -> None:
    # given JSON lines with a cut-off line and a line that is JSON but not an object
    body = b'{"id": "L1"}\n{"id": "L2", "ma\n[1, 2]\n\n{"id": "L5"}\n'
    # when read
    read = read_object(body, "ds/broken.jsonl")
    # then the good lines are read and each bad one says where and why
    assert read.frame["id"].tolist() == ["L1", "L5"]
    assert [(b.line, b.reason.split(":")[0]) for b in read.bad_lines] == [
        (2, "not JSON"),
        (3, "not a JSON object but list"),
    ]


@pytest.mark.parametrize("line", [b"42", b"null", b'"text"', b"[1, 2]", b"true"])
def test_a_json_line_that_is_not_an_object_is_a_bad_line(line: bytes) -> None:
    read = read_object(b'{"id": "L1"}\n' + line + b'\n{"id": "L3"}\n', "ds/values.jsonl")

    assert read.frame["id"].tolist() == ["L1", "L3"]
    assert [b.line for b in read.bad_lines] == [2]
    assert read.bad_lines[0].reason.startswith("not a JSON object")


def test_json_lines_where_no_line_is_an_object_are_unreadable() -> None:
    with pytest.raises(UnreadableObject, match="no line is a JSON object"):
        read_object(b"not json\n[1]\n", "ds/junk.jsonl")


def test_a_nested_parquet_column_is_read_as_json_text() -> None:
    # given a parquet file with a list column and a struct column
    table = pa.table(
        {
            "id": ["L1", "L2"],
            "tags": [["a", "b"], None],
            "spec": [{"doors": 5}, {"doors": 3}],
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    # when read
    read = read_object(buffer.getvalue(), "ds/nested.parquet")
    # then each nested value is its JSON text, and parquet is not a text format
    assert read.frame["tags"].tolist()[0] == json.dumps(["a", "b"])
    assert pd.isna(read.frame["tags"].iloc[1])
    assert [json.loads(v) for v in read.frame["spec"]] == [{"doors": 5}, {"doors": 3}]
    assert not read.text_format


def test_past_the_first_bad_lines_a_bad_line_keeps_its_number_and_reason_not_its_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an object with more bad lines than keep their text
    monkeypatch.setattr("mlops.validation.readers.KEPT_LINE_TEXTS", 1)
    body = b'{"id": "L1"}\n{bad\n{worse\n'
    # when read
    read = read_object(body, "ds/many.jsonl")
    # then every bad line is reported, the text only for the first
    assert [(b.line, b.text) for b in read.bad_lines] == [(2, "{bad"), (3, "")]


# ------------------------------------------------------------------ decompressed-size cap
def zeros_gzip(size: int, header: bytes = b"id,make,year\n") -> bytes:
    return gzip.compress(header + b"0" * size, compresslevel=9)


def test_a_gzip_declaring_more_than_the_cap_is_refused_as_too_large() -> None:
    body = zeros_gzip(10 * 1024**2)

    with pytest.raises(TooLarge, match="over the limit of 1,048,576 bytes"):
        read_object(body, "ds/bomb.csv.gz", max_bytes=1024**2)


def test_a_gzip_whose_trailer_hides_its_size_is_refused_once_it_passes_the_cap() -> None:
    # given a bomb followed by a tiny second member: the trailer declares only that member
    body = zeros_gzip(10 * 1024**2) + gzip.compress(b"L1,toyota,2015\n")

    with pytest.raises(TooLarge, match="decompressed size over the limit"):
        read_object(body, "ds/bomb.csv.gz", max_bytes=1024**2)


def test_a_gzip_within_the_cap_is_read_with_every_member() -> None:
    body = gzip.compress(b"id,make,year\nL1,toyota,2015\n") + gzip.compress(b"L2,ford,2016\n")

    read = read_object(body, "ds/two.csv.gz", max_bytes=len(CSV))

    assert list(read.frame["id"]) == ["L1", "L2"]


def test_a_cut_gzip_is_still_an_incomplete_stream_not_a_bomb() -> None:
    whole = zeros_gzip(1024**2)

    with pytest.raises(UnreadableObject, match="not a complete gzip stream"):
        read_object(whole[: len(whole) // 2], "ds/cut.csv.gz", max_bytes=2 * 1024**2)


def test_a_plain_object_over_the_cap_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(TooLarge, match=f"object of {len(CSV)} bytes over the limit of 40 bytes"):
        read_object(CSV, "ds/cars.csv", max_bytes=40)


def test_a_parquet_whose_row_groups_expand_past_the_cap_is_refused_before_reading() -> None:
    # given a parquet of one highly compressible column: small on disk, large uncompressed
    buffer = io.BytesIO()
    table = pa.table({"id": ["L" + "0" * 1000] * 2000})
    pq.write_table(table, buffer, compression="zstd", use_dictionary=False)
    body = buffer.getvalue()
    assert len(body) < 100_000

    with pytest.raises(TooLarge, match="parquet row groups of"):
        read_object(body, "ds/wide.parquet", max_bytes=1024**2)


def test_refusing_a_bomb_holds_at_most_the_cap_in_memory() -> None:
    # given a 64 MiB multi-member bomb (its trailer hides the size) and a cap of 8 MiB,
    # read in a fresh interpreter whose peak memory is measured around the read alone
    script = """
import gzip, resource, sys
from mlops.validation.readers import TooLarge, read_object
import pandas, pyarrow.csv
body = gzip.compress(b"id\\n" + b"0" * 64 * 1024**2, 9) + gzip.compress(b"L1\\n")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_object(body, "ds/bomb.csv.gz", max_bytes=8 * 1024**2)
except TooLarge:
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""
    shared = Path(__file__).resolve().parents[2] / "layers" / "shared"
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"PYTHONPATH": str(shared)},
    ).stdout

    # then the peak grew by about the cap, not the 64 MiB the stream expands to
    assert int(out) < 16 * 1024**2, out


def test_a_piece_of_a_larger_object_with_no_json_object_is_its_bad_lines() -> None:
    # given JSON lines where no line is an object, read as a piece of a larger object
    read = read_object(b"{bad\n42\n", "ds/piece.jsonl", piece=True)
    # then they are bad lines (the other pieces may hold records), not an unreadable object
    assert read.frame.empty
    assert [b.line for b in read.bad_lines] == [1, 2]
