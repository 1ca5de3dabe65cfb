"""Where things live in the data lake: one function per kind of key, so no stage hand-builds one.

Partitions are Hive-style (``dataset=…/ingest_date=…/run_id=…``) so Glue and Athena see them.
"""

from __future__ import annotations

import re

MANIFEST = "_manifest.json"
_DATASET_IN_KEY = re.compile(r"^(?:dataset=)?([A-Za-z0-9_\-]+)/")


def run_prefix(dataset: str, ingest_date: str, run_id: str) -> str:
    """Prefix of one run in the raw zone: ``dataset=…/ingest_date=YYYY-MM-DD/run_id=…/``."""
    return f"dataset={dataset}/ingest_date={ingest_date}/run_id={run_id}/"


def raw_part_key(dataset: str, ingest_date: str, run_id: str, part: int) -> str:
    return f"{run_prefix(dataset, ingest_date, run_id)}part-{part:05d}.jsonl.gz"


def raw_manifest_key(dataset: str, ingest_date: str, run_id: str) -> str:
    return f"{run_prefix(dataset, ingest_date, run_id)}{MANIFEST}"


def dataset_of_key(key: str) -> str | None:
    """The dataset a raw object belongs to: its first path segment (``dataset=`` optional)."""
    match = _DATASET_IN_KEY.match(key)
    return match.group(1) if match else None


def validated_path(bucket: str, dataset: str) -> str:
    """Root of the validated parquet dataset (partitioned by ingest_date and run_id)."""
    return f"s3://{bucket}/{dataset}/"


def quarantine_rows_path(bucket: str, dataset: str) -> str:
    return f"s3://{bucket}/rows/{dataset}/"


def quarantine_object_key(dataset: str, run_id: str, source_key: str) -> str:
    return f"objects/dataset={dataset}/run_id={run_id}/{source_key}"


def validation_report_key(dataset: str, run_id: str, source_key: str) -> str:
    safe = source_key.replace("/", "__")
    return f"reports/dataset={dataset}/run_id={run_id}/{safe}.json"


def quarantined_rows_csv_key(dataset: str, run_id: str, source_key: str) -> str:
    """The quarantined rows of one object as CSV for people (formulas neutralised)."""
    safe = source_key.replace("/", "__")
    return f"reports/dataset={dataset}/run_id={run_id}/{safe}.quarantined.csv"


def refusal_report_key(dataset: str, run_id: str, source_key: str, version: str) -> str:
    """Report of an object version refused because its run was already complete.

    Apart from the run's own reports (``validation_report_key``): the refused version must not
    overwrite the report of the version the run was validated with.
    """
    safe = source_key.replace("/", "__")
    label = re.sub(r"[^A-Za-z0-9._-]", "_", version)[:64]
    return f"reports/dataset={dataset}/run_id={run_id}/refused/{safe}@{label}.json"


def run_summary_key(dataset: str, run_id: str) -> str:
    return f"reports/dataset={dataset}/run_id={run_id}/_run_summary.json"


def curated_run_prefix(dataset: str, run_id: str) -> str:
    return f"dataset={dataset}/run_id={run_id}/"


def curated_split_prefix(dataset: str, run_id: str, split: str) -> str:
    return f"{curated_run_prefix(dataset, run_id)}split={split}/"


def curated_artifacts_prefix(dataset: str, run_id: str) -> str:
    """Preprocessing artifact, data profile and contract of a run (a training channel)."""
    return f"{curated_run_prefix(dataset, run_id)}artifacts/"


def model_output_prefix(dataset: str) -> str:
    """Where training jobs write ``<job name>/output/model.tar.gz`` in the artifacts bucket."""
    return f"models/{dataset}/"


def evaluation_report_prefix(dataset: str, run_id: str) -> str:
    return f"evaluations/dataset={dataset}/run_id={run_id}/"
