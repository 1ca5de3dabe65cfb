"""Does the lake hold what the ledger says? A check to end any end-to-end scenario with.

``assert_lake_matches_ledger(cloud, run_id)`` reads the run's ledger items and the rows
actually present in the raw, validated, quarantine and curated zones of a local cloud, and
asserts, for every object the run recorded:

- raw rows (counted here from the object version the ledger names, independently of the
  validation readers) = the ledger's ``rows_in`` = validated + quarantined rows of that
  object in the zones (an unreadable or missing object has none in either);
- no rows in the run's partitions come from an object the run did not record;
- once validated: the validate counts are the sums over the run's parts, and the run summary
  in quarantine says the same;
- once prepared (or skipped as unchanged): the prepare ``rows_in`` is the validated rows of
  the runs in its training window, each run's share (the ledger's ``window``) is that run's
  rows in the validated zone and its own validate ``rows_valid``, this run's share is its
  validated rows; ``rows_in`` = rows dropped + duplicates dropped + rows kept (the splits, or
  ``rows_unique`` of a skip); each split's count is the curated rows of that split, and the
  curated manifest's counts are the ledger's.

It returns what it counted, for a test to make its own claims on top.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq
from boto3.dynamodb.types import TypeDeserializer

from localcloud.ledger_view import plain
from mlops import lake

SPLITS = ("train", "validation", "test")
_ZONE_ROWS = ("validated", "quarantined")


@dataclass
class Reconciled:
    """What the check counted for one run."""

    run_id: str
    dataset: str
    raw: dict[str, int] = field(default_factory=dict)  # source key → rows in its raw version
    validated: Counter[str] = field(default_factory=Counter)  # source key → rows
    quarantined: Counter[str] = field(default_factory=Counter)
    curated: dict[str, int] = field(default_factory=dict)  # split → rows
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)


def ledger_items(cloud: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """The run's ledger items by stage, as plain Python values."""
    deserialize = TypeDeserializer().deserialize
    page = cloud.client("dynamodb").query(
        TableName=cloud.resources["RunLedgerTable"],
        KeyConditionExpression="run_id = :r",
        ExpressionAttributeValues={":r": {"S": run_id}},
        ConsistentRead=True,
    )
    items = [{k: plain(deserialize(v)) for k, v in raw.items()} for raw in page["Items"]]
    return {item["stage"]: item for item in items}


def assert_lake_matches_ledger(cloud: Any, run_id: str) -> Reconciled:
    """Assert that the zones hold exactly the rows the ledger counts for ``run_id``."""
    stages = ledger_items(cloud, run_id)
    validate = stages.get("validate")
    assert validate, f"run {run_id} has no validate item in the ledger"
    dataset = validate["dataset"]
    found = Reconciled(run_id, dataset, stages=stages)
    s3 = cloud.client("s3")
    raw_bucket = cloud.resources["RawBucket"]
    parts: dict[str, dict[str, Any]] = validate.get("part_counts") or {}

    found.validated = _rows_by_source(
        s3, cloud.resources["ValidatedBucket"], f"{dataset}/", f"/run_id={run_id}/"
    )
    found.quarantined = _rows_by_source(
        s3, cloud.resources["QuarantineBucket"], f"rows/{dataset}/run_id={run_id}/", ""
    )
    uri = f"s3://{raw_bucket}/"
    strays = {
        zone: sorted(k for k in counts if k.removeprefix(uri) not in parts)
        for zone, counts in zip(_ZONE_ROWS, (found.validated, found.quarantined), strict=True)
    }
    assert not any(strays.values()), f"rows of objects run {run_id} never recorded: {strays}"

    for key, part in parts.items():
        source = uri + key
        valid, quarantined = found.validated[source], found.quarantined[source]
        zones = f"{key}: ledger {part}, zones validated={valid} quarantined={quarantined}"
        assert (valid, quarantined) == (
            part.get("rows_valid", 0),
            part.get("rows_quarantined", 0),
        ), zones
        if part["outcome"] in ("unreadable", "missing"):
            assert part.get("rows_in", 0) == 0, zones
            continue
        raw = count_raw_rows(s3, raw_bucket, key, part.get("version_id"))
        found.raw[key] = raw
        assert raw == part["rows_in"] == valid + quarantined, f"raw rows {raw}; {zones}"

    if validate.get("status") == "SUCCEEDED":
        _assert_validate_totals(s3, cloud, validate, parts, found)
    prepare = stages.get("prepare")
    if prepare and prepare.get("status") in ("SUCCEEDED", "SKIPPED") and prepare.get("counts"):
        _assert_window(s3, cloud, prepare, found)
    if prepare and prepare.get("status") == "SUCCEEDED":
        _assert_prepared(s3, cloud, prepare, found)
    return found


def _assert_validate_totals(
    s3: Any,
    cloud: Any,
    validate: dict[str, Any],
    parts: dict[str, dict[str, Any]],
    found: Reconciled,
) -> None:
    counts = validate.get("counts") or {}
    sums = {
        name: sum(part.get(name, 0) for part in parts.values())
        for name in ("rows_in", "rows_valid", "rows_quarantined")
    }
    assert {k: counts.get(k) for k in sums} == sums, (counts, sums)
    assert sum(found.validated.values()) == counts["rows_valid"], (found.validated, counts)
    assert sum(found.quarantined.values()) == counts["rows_quarantined"], (
        found.quarantined,
        counts,
    )
    summary_key = lake.run_summary_key(found.dataset, found.run_id)
    body = s3.get_object(Bucket=cloud.resources["QuarantineBucket"], Key=summary_key)["Body"]
    summary = json.loads(body.read())
    assert {k: summary[k] for k in sums} == {k: counts[k] for k in sums}, (summary, counts)


def _assert_window(s3: Any, cloud: Any, prepare: dict[str, Any], found: Reconciled) -> None:
    """Rows read per run of the window = what validation wrote and counted for that run."""
    counts = prepare.get("counts") or {}
    runs = (prepare.get("window") or {}).get("runs") or [
        {"run_id": found.run_id, "rows": counts.get("rows_in")}
    ]
    assert counts.get("rows_in") == sum(r["rows"] for r in runs), (counts, runs)
    shares = {r["run_id"]: r["rows"] for r in runs}
    assert shares.get(found.run_id) == sum(found.validated.values()), (shares, found.validated)
    bucket = cloud.resources["ValidatedBucket"]
    for run in runs:
        in_lake = sum(
            _parquet_rows(s3, bucket, f"{found.dataset}/", f"/run_id={run['run_id']}/").values()
        )
        validated = (ledger_items(cloud, run["run_id"]).get("validate") or {}).get("counts") or {}
        assert run["rows"] == in_lake == validated.get("rows_valid"), (run, in_lake, validated)
    kept = counts.get("rows_unique")
    if kept is None:
        kept = sum(counts.get(s, 0) for s in SPLITS)
    dropped = counts.get("rows_dropped", 0) + counts.get("duplicates_dropped", 0)
    assert counts["rows_in"] == dropped + kept, counts


def _assert_prepared(s3: Any, cloud: Any, prepare: dict[str, Any], found: Reconciled) -> None:
    counts = prepare.get("counts") or {}
    bucket = cloud.resources["CuratedBucket"]
    for split in SPLITS:
        prefix = lake.curated_split_prefix(found.dataset, found.run_id, split)
        found.curated[split] = sum(_parquet_rows(s3, bucket, prefix).values())
    assert found.curated == {s: counts.get(s) for s in SPLITS}, (found.curated, counts)
    manifest_key = lake.curated_run_prefix(found.dataset, found.run_id) + "_manifest.json"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert manifest["counts"] == counts, (manifest["counts"], counts)


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def _parquet_rows(s3: Any, bucket: str, prefix: str, within: str = "") -> dict[str, int]:
    """Rows of each parquet file under ``prefix`` whose key contains ``within``."""
    return {
        key: pq.ParquetFile(
            io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        ).metadata.num_rows
        for key in _keys(s3, bucket, prefix)
        if key.endswith(".parquet") and within in key
    }


def _rows_by_source(s3: Any, bucket: str, prefix: str, within: str) -> Counter[str]:
    """Rows per ``source_object`` in the parquet files under ``prefix`` (containing ``within``)."""
    counts: Counter[str] = Counter()
    for key in _keys(s3, bucket, prefix):
        if not key.endswith(".parquet") or within not in key:
            continue
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        table = pq.read_table(io.BytesIO(body), columns=["source_object"])
        counts.update(table.column("source_object").to_pylist())
    return counts


def count_raw_rows(s3: Any, bucket: str, key: str, version_id: str | None) -> int:
    """Records in one raw object version, counted without the validation readers.

    CSV: records after the header (a ragged one counts, it is quarantined as a bad line);
    blank lines do not. JSON lines: non-blank lines. Parquet: the footer's row count.
    """
    params = {"Bucket": bucket, "Key": key} | ({"VersionId": version_id} if version_id else {})
    body = s3.get_object(**params)["Body"].read()
    name = key.lower()
    if name.endswith(".gz"):
        body = gzip.decompress(body)
        name = name.removesuffix(".gz")
    if name.endswith(".parquet"):
        return pq.ParquetFile(io.BytesIO(body)).metadata.num_rows
    text = body.decode("utf-8-sig")
    if name.endswith(".jsonl"):
        return sum(1 for line in text.splitlines() if line.strip())
    # Raw cells may be as long as an upload makes them (the checks quarantine long ones).
    limit = csv.field_size_limit(len(text) + 1)
    try:
        records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    finally:
        csv.field_size_limit(limit)
    return max(len(records) - 1, 0)
