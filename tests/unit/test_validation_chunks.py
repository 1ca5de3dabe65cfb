"""Validation a chunk at a time: readers that yield whole records per chunk, and objects of
many chunks validated with the same zones, counts and reports as objects read whole."""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops.validation.checks import FAILED_RULES, REJECTED_RULE
from mlops.validation.readers import TooLarge, UnreadableObject, read_chunks, read_object
from tests.unit.test_validate_function import Lake, cars, lake_env  # noqa: F401
from tests.unit.test_validation_checks import car

CHUNK = 4096  # bytes: a few dozen records of used_cars per chunk


def csv_body(records: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode()


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def chunks_of(body: bytes, key: str, chunk_bytes: int = CHUNK, **kwargs: Any) -> list[Any]:
    return list(read_chunks(io.BytesIO(body), key, chunk_bytes=chunk_bytes, **kwargs))


# ---------------------------------------------------------------------------- readers


@pytest.mark.parametrize(
    ("key", "encode"),
    [
        ("ds/cars.csv", csv_body),
        ("ds/cars.csv.gz", lambda r: gzip.compress(csv_body(r))),
        ("ds/cars.jsonl", jsonl),
        ("ds/cars.jsonl.gz", lambda r: gzip.compress(jsonl(r))),
    ],
)
def test_chunks_of_a_text_object_hold_every_record_once_in_order(key: str, encode: Any) -> None:
    # given 400 records, many chunks' worth
    body = encode([car(i) for i in range(400)])
    # when read a chunk at a time
    chunks = chunks_of(body, key)
    # then there are several chunks and, together, exactly the records read whole
    assert len(chunks) > 3
    joined = pd.concat([c.frame for c in chunks], ignore_index=True)
    whole = read_object(body, key).frame
    pd.testing.assert_frame_equal(joined, whole)


def test_a_quoted_value_spanning_lines_is_never_cut_between_chunks() -> None:
    # given records whose note spans three lines, enough to cross several chunk boundaries
    records = [car(i) | {"note": f"line one\nline two, {i}\nline three"} for i in range(300)]
    body = csv_body(records)
    # when read a chunk at a time
    chunks = chunks_of(body, "ds/notes.csv")
    # then every note arrives whole and no line is bad
    notes = pd.concat([c.frame["note"] for c in chunks], ignore_index=True)
    assert len(chunks) > 3
    assert notes.tolist() == [r["note"] for r in records]
    assert not [line for c in chunks for line in c.bad_lines]


def test_a_bad_csv_line_in_a_later_chunk_keeps_its_line_number_in_the_object() -> None:
    # given 300 records and a ragged line as the object's line 251 (the header is line 1)
    lines = csv_body([car(i) for i in range(300)]).split(b"\n")
    lines[250] = b"L999999,toyota"
    body = b"\n".join(lines)
    # when read a chunk at a time
    chunks = chunks_of(body, "ds/ragged.csv")
    # then the line is reported once, from a chunk past the first, with its own number
    bad = [(index, line.line) for index, c in enumerate(chunks) for line in c.bad_lines]
    assert len(bad) == 1 and bad[0][0] > 0
    assert bad[0][1] == 251
    assert sum(len(c.frame) for c in chunks) == 299


def test_a_bad_json_line_in_a_later_chunk_keeps_its_line_number_in_the_object() -> None:
    lines = jsonl([car(i) for i in range(300)]).split(b"\n")
    lines[250] = b"{not json"
    chunks = chunks_of(b"\n".join(lines), "ds/bad.jsonl")
    bad = [(index, line.line) for index, c in enumerate(chunks) for line in c.bad_lines]
    assert len(bad) == 1 and bad[0][0] > 0
    assert bad[0][1] == 251


def test_a_parquet_object_is_read_in_batches_of_about_a_chunk() -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([car(i) for i in range(2000)]), buffer)
    chunks = chunks_of(buffer.getvalue(), "ds/cars.parquet")
    assert len(chunks) > 3
    assert sum(len(c.frame) for c in chunks) == 2000
    assert not chunks[0].text_format


def test_a_record_longer_than_two_chunks_makes_the_object_unreadable() -> None:
    body = csv_body([car(1) | {"note": "x" * (3 * CHUNK)}])
    with pytest.raises(UnreadableObject, match="a record longer than 8,192 bytes"):
        chunks_of(body, "ds/long.csv")


def test_a_gzip_passing_the_cap_mid_stream_is_too_large_after_its_first_chunks() -> None:
    # given a gzip of 400 records whose decoded size is over the cap, with a chunk well under it
    body = gzip.compress(jsonl([car(i) for i in range(400)]))
    chunks = read_chunks(io.BytesIO(body), "ds/cars.jsonl.gz", max_bytes=20_000, chunk_bytes=CHUNK)
    # when read: the first chunks come, then the refusal
    assert len(next(chunks).frame) > 0
    with pytest.raises(TooLarge, match="decompressed size over the limit of 20,000 bytes"):
        list(chunks)


def test_an_object_of_headers_only_is_empty_after_its_chunks() -> None:
    with pytest.raises(UnreadableObject, match="empty object: no records"):
        chunks_of(b"listing_id,make\n", "ds/empty.csv")


# ------------------------------------------------------------------ objects of many chunks


@pytest.fixture
def small_chunks(lake_env: Lake, monkeypatch: pytest.MonkeyPatch) -> Lake:  # noqa: F811
    monkeypatch.setenv("VALIDATION_CHUNK_BYTES", str(CHUNK))
    return lake_env


def test_an_object_of_many_chunks_lands_and_counts_as_one_read_whole(small_chunks: Lake) -> None:
    # given 300 cars of which 6 break a rule, spread over many chunks
    records = [car(i, price=1.0) if i % 50 == 7 else car(i) for i in range(300)]
    event = small_chunks.upload("used_cars/many.csv", csv_body(records))
    # when validated
    result = small_chunks.invoke(event)
    # then the zones, the ledger and the report count every row once, as for one chunk
    assert result["outcome"] == "validated"
    assert (result["rows_in"], result["rows_valid"], result["rows_quarantined"]) == (300, 294, 6)
    assert len(small_chunks.validated_rows()) == 294
    assert len(small_chunks.quarantined_rows()) == 6
    report = small_chunks.report(result)
    assert report["chunks"] > 3
    assert report["rule_failures"] == {"range:price": 6}
    assert "across chunks" in report["duplicate_keys_checked"]
    part = small_chunks.ledger_item(result["run_id"])["part_counts"]["used_cars/many.csv"]
    assert (part["rows_in"], part["rows_valid"], part["rows_quarantined"]) == (300, 294, 6)


def test_a_key_repeated_within_a_chunk_is_quarantined_and_across_chunks_left_to_preparation(
    small_chunks: Lake,
) -> None:
    # given 300 cars where car 1 repeats right after itself and car 2 repeats at the end
    records = [car(i) for i in range(300)]
    records.insert(2, car(1))
    records.append(car(2))
    event = small_chunks.upload("used_cars/dupes.csv", csv_body(records))
    # when validated
    result = small_chunks.invoke(event)
    # then the neighbour is a duplicate_key and the far copy passes, for preparation to drop
    report = small_chunks.report(result)
    assert report["rule_failures"] == {"duplicate_key": 1}
    assert result["rows_valid"] == 301
    assert (small_chunks.validated_rows()["listing_id"] == "L000002").sum() == 2


def test_an_object_over_the_invalid_share_across_chunks_is_quarantined_whole(
    small_chunks: Lake,
) -> None:
    # given 300 cars, two thirds of them priced out of range: no single chunk decides it
    records = [car(i, price=1.0) if i % 3 else car(i) for i in range(300)]
    event = small_chunks.upload("used_cars/mostly-bad.csv", csv_body(records))
    # when validated
    result = small_chunks.invoke(event)
    # then it is rejected whole: nothing validated, every row quarantined, the good ones
    # under the rejection rule, counted in the report and the ledger alike
    assert result["outcome"] == "rejected"
    assert small_chunks.validated_rows().empty
    quarantined = small_chunks.quarantined_rows()
    assert len(quarantined) == 300
    assert (quarantined[FAILED_RULES] == REJECTED_RULE).sum() == 100
    report = small_chunks.report(result)
    assert (report["rows_valid"], report["rows_quarantined"]) == (0, 300)
    assert report["rule_failures"] == {"range:price": 200, REJECTED_RULE: 100}
    assert "max_invalid_share" in report["reason"]


def test_an_object_unreadable_in_a_later_chunk_leaves_no_rows_from_its_earlier_chunks(
    small_chunks: Lake,
) -> None:
    # given 300 good cars and then a record too long for any chunk
    body = csv_body([car(i) for i in range(300)]) + b"L9," + b"x" * (3 * CHUNK) + b"\n"
    event = small_chunks.upload("used_cars/cut.csv", body)
    # when validated
    result = small_chunks.invoke(event)
    # then the object is unreadable and the rows its first chunks wrote are gone
    assert result["outcome"] == "unreadable"
    assert "a record longer than" in result["reason"]
    assert small_chunks.validated_rows().empty
    assert small_chunks.quarantined_rows().empty


def test_a_gzip_declaring_more_than_the_cap_is_refused_before_any_chunk_is_read(
    small_chunks: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a cap of 100 KB and a gzip of zeros declaring 1 MiB
    monkeypatch.setenv("MAX_DECOMPRESSED_BYTES", str(100_000))
    body = gzip.compress(b"listing_id\n" + b"0" * 1024**2)
    event = small_chunks.upload("used_cars/bomb.csv.gz", body)
    # when validated
    result = small_chunks.invoke(event)
    # then it is refused for its size, nothing written
    assert result["outcome"] == "unreadable"
    assert "MAX_DECOMPRESSED_BYTES" in result["reason"]
    assert small_chunks.validated_rows().empty


def test_only_the_final_chunk_says_it_is_the_last() -> None:
    # given an object of many chunks and one of a single chunk
    many = chunks_of(csv_body([car(i) for i in range(400)]), "ds/cars.csv")
    one = chunks_of(csv_body([car(i) for i in range(3)]), "ds/cars.csv")
    # then only the final chunk of each says so: a lone chunk can be judged as the object
    assert [c.last for c in many] == [False] * (len(many) - 1) + [True]
    assert [c.last for c in one] == [True]


def test_an_inch_mark_in_an_unquoted_value_neither_stops_nor_misplaces_a_cut() -> None:
    # given a CSV written by hand: inch marks left unquoted (a quote inside a value, which CSV
    # readers take as a character) and, around them, quoted values spanning lines
    rows = [
        f"L{i:06d},5'10\" driver" if i % 7 == 0 else f'L{i:06d},"line one\nline {i}"'
        for i in range(1000)
    ]
    body = ("listing_id,note\n" + "\n".join(rows) + "\n").encode()
    # when read a chunk at a time and whole
    chunks = chunks_of(body, "ds/notes.csv")
    whole = read_object(body, "ds/notes.csv").frame
    # then the chunks hold exactly what a whole read does: every note intact, no bad line
    joined = pd.concat([c.frame for c in chunks], ignore_index=True)
    assert len(chunks) > 3
    pd.testing.assert_frame_equal(joined, whole)
    assert len(joined) == 1000 and joined["note"].str.startswith(("5'10", "line one")).all()
    assert not [line for c in chunks for line in c.bad_lines]


def test_a_line_ending_in_a_lone_carriage_return_is_a_place_to_cut() -> None:
    body = csv_body([car(i) for i in range(300)]).replace(b"\n", b"\r")
    chunks = chunks_of(body, "ds/mac.csv")
    assert len(chunks) > 3
    assert sum(len(c.frame) for c in chunks) == 300


def test_a_bad_json_line_after_a_blank_chunk_keeps_its_number() -> None:
    # given blank lines filling a whole chunk before a bad line
    body = b'{"a": 1}\n' + b"\n" * (3 * CHUNK) + b"not json\n"
    bad = [line.line for c in chunks_of(body, "ds/blank.jsonl") for line in c.bad_lines]
    assert bad == [3 * CHUNK + 2]


def test_an_error_reading_a_gzip_is_the_readers_to_retry_not_an_unreadable_object() -> None:
    from botocore.exceptions import ReadTimeoutError

    class Flaky(io.RawIOBase):
        """A gzip whose reading times out part way, as a ranged GET can."""

        def __init__(self, body: bytes) -> None:
            self.body, self.sent = body, 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if self.sent > 100:
                raise ReadTimeoutError(endpoint_url="https://s3.example")
            piece = self.body[self.sent : self.sent + 64]
            buffer[: len(piece)] = piece
            self.sent += len(piece)
            return len(piece)

    body = gzip.compress(jsonl([car(i) for i in range(400)]))
    with pytest.raises(ReadTimeoutError):
        list(read_chunks(io.BufferedReader(Flaky(body)), "ds/cars.jsonl.gz", chunk_bytes=CHUNK))
