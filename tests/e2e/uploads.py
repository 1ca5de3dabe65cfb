"""Uploads for end-to-end scenarios: demo-contract records in each format, and an upload
that waits for the pipeline and returns the object's validate record."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pandas as pd

from demosite.catalogue import COLUMNS
from localcloud.cloud import LocalCloud
from mlops.runs import run_id_for_object
from tests.e2e.reconcile import ledger_items


def car(n: int, **changes: Any) -> dict[str, Any]:
    record = {
        "listing_id": f"L{n:06d}",
        "make": "toyota",
        "model": "corolla",
        "year": 2015 + n % 8,
        "mileage": 60000 + 137 * n,
        "fuel": "petrol",
        "transmission": "manual",
        "engine_size": 1.6,
        "body": "sedan",
        "posted_date": "2026-10-01",
        "price": 9500.0 + 10 * n,
    }
    return record | changes


def as_csv(records: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode()


def as_jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def as_parquet(records: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    pd.DataFrame(records).to_parquet(out, index=False)
    return out.getvalue()


def upload(cloud: LocalCloud, key: str, body: bytes) -> tuple[str, dict[str, Any]]:
    """Put ``body`` in the raw zone and wait: the run id and the object's validate record."""
    put = cloud.client("s3").put_object(Bucket=cloud.resources["RawBucket"], Key=key, Body=body)
    assert cloud.wait_quiescent(timeout=120)
    run_id = run_id_for_object(key, put["VersionId"])
    validate = ledger_items(cloud, run_id)["validate"]
    return run_id, validate["part_counts"][key]
