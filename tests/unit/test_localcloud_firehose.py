"""The local cloud's Firehose delivery (localcloud.executors.firehose): S3 keys and bodies as
Firehose makes them, from the prefix expressions the template uses."""

from __future__ import annotations

import gzip
import re
from datetime import datetime, timezone

import pytest

from localcloud.executors.firehose import (
    UnsupportedPrefix,
    evaluate_prefix,
    java_date,
    object_body,
    object_key,
)

ARRIVED = datetime(2026, 12, 3, 23, 59, 58, tzinfo=timezone.utc)
CAPTURE = {
    "Prefix": "dataset=used_cars/date=!{timestamp:yyyy-MM-dd}/",
    "CompressionFormat": "GZIP",
}


def test_the_timestamp_namespace_is_formatted_as_java_date_time_patterns() -> None:
    assert java_date("yyyy-MM-dd", ARRIVED) == "2026-12-03"
    assert java_date("yyyy/MM/dd/HH", ARRIVED) == "2026/12/03/23"
    assert java_date("'hour='HH", ARRIVED) == "hour=23"


def test_the_capture_prefix_evaluates_to_the_arrival_day_partition() -> None:
    prefix = evaluate_prefix(CAPTURE["Prefix"], ARRIVED)

    assert prefix == "dataset=used_cars/date=2026-12-03/"


def test_a_prefix_without_expressions_gets_the_default_hourly_folders() -> None:
    assert evaluate_prefix("plain/", ARRIVED) == "plain/2026/12/03/23/"


def test_an_expression_not_reproduced_locally_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedPrefix, match="partitionKeyFromQuery"):
        evaluate_prefix("!{partitionKeyFromQuery:customer}/", ARRIVED)


def test_objects_are_named_stream_version_arrival_uuid_and_compression_extension() -> None:
    key = object_key(CAPTURE, "capture-stream", "1", ARRIVED)

    pattern = (
        r"dataset=used_cars/date=2026-12-03/capture-stream-1-2026-12-03-23-59-58-"
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.gz"
    )
    assert re.fullmatch(pattern, key)


def test_a_gzip_stream_writes_the_concatenated_records_compressed() -> None:
    body = object_body(CAPTURE, b'{"a":1}\n{"a":2}\n')

    assert gzip.decompress(body) == b'{"a":1}\n{"a":2}\n'
