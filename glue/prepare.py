"""Glue 5.0 job (Spark 3.5, Python 3.11): prepare one validated run for training.

Reads the run's validated rows; cleans them, adds derived features and assigns each row its
split (key hash) in one pass; keeps the latest copy of each record; refuses the run when a
split holds fewer rows than its minimum (the contract's ``min_rows_per_split``); fits
imputation/scaling/vocabularies on the train split with Spark aggregations; and writes curated
parquet per split plus ``artifacts/`` and ``_manifest.json`` (last, so its presence means the
output is complete). A refused run raises ``PreparationFailed`` before anything is written: its
message is the job run's ErrorMessage, which the ledger records as the prepare stage's reason.

Every row-level step runs ``mlops.ml`` on pandas batches through ``mapInPandas``: the exact
code the model artifact runs at inference. Nothing collects the data to the driver; only
statistics (a few numbers per column) come back.

Arguments are Glue's ``--KEY value`` pairs: ``--run_id --dataset --validated_path
--curated_path --contract_uri [--train_fraction --validation_fraction --window_runs
--window_days --champion_fingerprint --champion_run_id]``.

The training window: ``--window_runs`` names the validated partitions to read
(``ingest_date=…/run_id=…``, comma-separated, oldest first, this run last), chosen by
``mlops.preparation``; without it only this run is read. The latest copy of each key wins
across them (the newest run first, then the in-run rule). The window's fingerprint is a hash of
those latest copies' contract columns (not lineage: ``fetched_at`` changes every day), the
contract version and this code; when it equals ``--champion_fingerprint`` (the served model's)
the job writes a ``skipped`` manifest only and ends: nothing to prepare or train. Glue's own extra
arguments (``--JOB_NAME``, ``--job-bookmark-option``…) are tolerated. Paths are ``s3://`` on
Glue and local directories when the local cloud stages the data (no s3a connector offline).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mlops.ml import cleaning as _cleaning
from mlops.ml import features as _features
from mlops.ml import pipeline as _pipeline
from mlops.ml import preprocessing as _preprocessing
from mlops.ml import profile as _profile
from mlops.ml import splitting as _splitting
from mlops.ml import statistics as _statistics
from mlops.ml.cleaning import (
    USABLE,
    UnusableData,
    cleaned_kinds,
    dedup_order,
    mark_usable,
    order_column,
    passthrough_columns,
)
from mlops.ml.cleaning import columns as contract_columns
from mlops.ml.features import feature_set
from mlops.ml.pipeline import SPLIT_COLUMN, check_splits, featurise
from mlops.ml.preprocessing import curate, curated_columns, fit_from_stats, plan
from mlops.ml.profile import profile_from_stats
from mlops.ml.splitting import SPLITS, fractions
from mlops.ml.statistics import QUANTILES, TOP_CATEGORIES, quantile_key

REQUIRED = ("run_id", "dataset", "validated_path", "curated_path", "contract_uri")
SPARK_TYPES = {
    "int": T.LongType(),
    "float": T.DoubleType(),
    "bool": T.BooleanType(),
    "string": T.StringType(),
}
# Spark's default accuracy: exact for up to 10,000 values per column, 0.01 % rank error beyond.
PERCENTILE_ACCURACY = 10_000
# A row's place in the window (0 = oldest run): travels through the row steps, then dropped.
WINDOW_ORDER = "_window_order"
# The fingerprint adds up two 60-bit slices of each row's SHA-256 (order-free, so Spark's
# partitioning cannot change it); as decimals no sum can overflow (10^38 > 2^60 x 10^19 rows).
_HASH_SLICES = ((1, 15), (16, 15))


class PreparationFailed(RuntimeError):
    """The run cannot be prepared; the message becomes the Glue job run's ErrorMessage."""


@dataclass(frozen=True)
class JobArgs:
    run_id: str
    dataset: str
    validated_path: str
    curated_path: str
    contract_uri: str
    shares: tuple[float, ...]
    window_runs: tuple[str, ...] = ()
    window_days: int = 0
    champion_fingerprint: str | None = None
    champion_run_id: str | None = None


@dataclass
class SparkPrepared:
    """The curated rows (with their split column), artifacts and manifest counts."""

    curated: DataFrame
    artifact: dict[str, Any]
    profile: dict[str, Any]
    counts: dict[str, int]
    columns: list[str]
    fingerprint: str | None = None
    rows_by_run: dict[str, int] | None = None


@dataclass
class WindowRows:
    """The window's latest copy of each key (cleaned, featured), before any statistic."""

    featured: DataFrame
    feature_kinds: dict[str, str]
    lineage: list[str]
    counts: dict[str, int]
    rows_by_run: dict[str, int]
    rows_unique: int


def parse_args(argv: Sequence[str]) -> JobArgs:
    """Glue-style ``--KEY value`` (or ``--KEY=value``) arguments; unknown keys are ignored."""
    values: dict[str, str] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item.startswith("--"):
            key, eq, value = item[2:].partition("=")
            if not eq and i + 1 < len(items) and not items[i + 1].startswith("--"):
                value = items[i + 1]
                i += 1
            values[key] = value
        i += 1
    missing = [k for k in REQUIRED if not values.get(k)]
    if missing:
        raise PreparationFailed(f"missing job arguments: {', '.join('--' + k for k in missing)}")
    shares = fractions(
        values.get("train_fraction") or None, values.get("validation_fraction") or None
    )
    window = tuple(p.strip().strip("/") for p in (values.get("window_runs") or "").split(","))
    return JobArgs(
        run_id=values["run_id"],
        dataset=values["dataset"],
        validated_path=values["validated_path"],
        curated_path=values["curated_path"].rstrip("/") + "/",
        contract_uri=values["contract_uri"],
        shares=shares,
        window_runs=tuple(p for p in window if p),
        window_days=int(values.get("window_days") or 0),
        champion_fingerprint=values.get("champion_fingerprint") or None,
        champion_run_id=values.get("champion_run_id") or None,
    )


def spark_session() -> SparkSession:
    """Glue's session on Glue; a small local one (2 cores, quiet, no UI) anywhere else."""
    try:
        from awsglue.context import GlueContext  # type: ignore[import-not-found]
        from pyspark.context import SparkContext

        return GlueContext(SparkContext.getOrCreate()).spark_session
    except ImportError:
        pass
    spark = (
        SparkSession.builder.appName("mlops-prepare")
        .master(os.environ.get("MLOPS_SPARK_MASTER", "local[2]"))
        .config("spark.driver.memory", os.environ.get("MLOPS_SPARK_DRIVER_MEMORY", "2g"))
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# ------------------------------------------------------------------------------------ I/O
def read_text(uri: str) -> str:
    if uri.startswith("s3://"):
        import boto3

        bucket, _, key = uri[5:].partition("/")
        return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return open(uri.removeprefix("file://"), encoding="utf-8").read()


def write_json(uri: str, document: dict[str, Any]) -> None:
    body = json.dumps(document, indent=2, sort_keys=False, default=str)
    if uri.startswith("s3://"):
        import boto3

        bucket, _, key = uri[5:].partition("/")
        boto3.client("s3").put_object(
            Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json"
        )
        return
    path = uri.removeprefix("file://")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(body)


def load_contract(uri: str) -> dict[str, Any]:
    """The resolved contract the launcher wrote (JSON)."""
    try:
        contract = json.loads(read_text(uri))
    except (OSError, ValueError) as exc:
        raise PreparationFailed(f"cannot read the contract at {uri}: {exc}") from exc
    for field in ("name", "task", "target", "columns"):
        if field not in contract:
            raise PreparationFailed(f"contract at {uri} has no {field!r}")
    return contract


def _glob(spark: SparkSession, pattern: str) -> list[str]:
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(pattern)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    found = fs.globStatus(path) or []
    return [str(status.getPath().toString()) for status in found]


def read_validated(
    spark: SparkSession, path: str, run_id: str, window: Sequence[str] = ()
) -> DataFrame:
    """The rows to prepare, with ``run_id`` and ``WINDOW_ORDER`` (0 = the oldest run).

    ``path`` is the run's partition, or the dataset root holding it. ``window`` names the
    partitions to read (``ingest_date=…/run_id=…``, oldest first); without it, the run's own.
    Only those directories are listed: the rest of the dataset is never touched.
    """
    root = path.rstrip("/")
    if window:
        partitions = [p for w in window for p in _glob(spark, f"{root}/{w}")]
        order = {_run_of(w): i for i, w in enumerate(window)}
        order.setdefault(run_id, len(window))
    elif f"run_id={run_id}" in root:
        partitions = _glob(spark, root)
        order = {run_id: 0}
    else:
        partitions = _glob(spark, f"{root}/run_id={run_id}") + _glob(
            spark, f"{root}/*/run_id={run_id}"
        )
        order = {run_id: 0}
    files = [f for p in partitions for f in _glob(spark, f"{p.rstrip('/')}/*.parquet")]
    if not any(f"run_id={run_id}/" in f for f in files):
        raise PreparationFailed(f"run {run_id} has no validated rows under {path}")
    # basePath keeps the partition directories' columns discoverable: run_id says which run a
    # row came from (the cross-run latest copy and the per-run counts need it).
    base = root.split("/run_id=")[0].split("/ingest_date=")[0]
    df = spark.read.option("basePath", base).parquet(*files)
    if "run_id" not in df.columns:  # a single partition read as the base itself
        df = df.withColumn("run_id", F.lit(run_id))
    for partition_column in ("ingest_date", "dataset"):
        if partition_column in df.columns:
            df = df.drop(partition_column)
    ranks = F.create_map(*[F.lit(x) for r, i in order.items() for x in (r, i)])
    return df.withColumn(WINDOW_ORDER, ranks[F.col("run_id")].cast("long"))


def _run_of(partition: str) -> str:
    return partition.rsplit("run_id=", 1)[-1].strip("/")


# ------------------------------------------------------------------------------- schemas
def schema_of(kinds: dict[str, str]) -> T.StructType:
    return T.StructType([T.StructField(n, SPARK_TYPES[k], True) for n, k in kinds.items()])


def conform(df: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Give a pandas batch exactly the declared column order and types (Arrow is strict)."""
    out = pd.DataFrame(index=df.index)
    for name, kind in kinds.items():
        column = df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index)
        if kind == "int":
            out[name] = pd.to_numeric(column, errors="coerce").round().astype("Int64")
        elif kind == "float":
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
        elif kind == "bool":
            out[name] = column.astype("boolean")
        else:
            out[name] = column.astype(object).where(column.notna(), None)
    return out


# ---------------------------------------------------------------------------- the steps
def window_rows(
    validated: DataFrame, contract: dict[str, Any], run_id: str, shares: Sequence[float]
) -> WindowRows:
    """Clean, mark, feature and split every row in one pass; keep the latest copy of each key.

    Rows read per run are counted before anything is dropped, so the ledger can reconcile each
    run of the window with what validation wrote for it.
    """
    specs = contract["columns"]
    lineage = passthrough_columns(pd.DataFrame(columns=validated.columns), contract)
    selected = [
        (F.col(c).cast("string") if specs[c]["type"] == "datetime" else F.col(c)).alias(c)
        for c in specs
        if c in validated.columns
    ] + [F.col(c).cast("string").alias(c) for c in lineage]
    if WINDOW_ORDER in validated.columns:
        selected.append(F.col(WINDOW_ORDER).cast("long").alias(WINDOW_ORDER))
    rows = validated.select(*selected)
    by_run = validated.groupBy("run_id").count().collect() if "run_id" in validated.columns else []
    rows_by_run = {str(r["run_id"]): int(r["count"]) for r in by_run}

    clean_kinds = cleaned_kinds(contract, lineage)
    derived = feature_set(contract["name"])
    feature_kinds = dict(clean_kinds)
    feature_kinds.update({n: "float" for n in derived.numeric})
    feature_kinds.update({n: "string" for n in derived.categorical})
    feature_kinds[SPLIT_COLUMN] = "string"
    marked_kinds = {**feature_kinds, USABLE: "bool", WINDOW_ORDER: "int"}

    # One pass over the data for every row-level step: clean, mark usable, features, split.
    def row_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            order = batch.pop(WINDOW_ORDER) if WINDOW_ORDER in batch.columns else None
            marked = mark_usable(batch, contract)
            usable = marked.pop(USABLE)
            featured = featurise(marked, contract, shares)
            featured[USABLE] = usable
            # Row steps keep rows and their order: the run's place goes back by position.
            featured[WINDOW_ORDER] = 0 if order is None else order.to_numpy()
            yield conform(featured, marked_kinds)

    marked = rows.mapInPandas(row_batches, schema_of(marked_kinds)).cache()
    tally = marked.agg(
        F.count(F.lit(1)).alias("rows"), F.sum(F.col(USABLE).cast("long")).alias("usable")
    ).collect()[0]
    rows_in, rows_clean = int(tally["rows"]), int(tally["usable"] or 0)
    if rows_in == 0:
        raise PreparationFailed(f"run {run_id} has no validated rows")
    if rows_clean == 0:
        raise PreparationFailed(f"no usable rows in run {run_id}: every row lacks a key or target")
    featured = (
        deduplicate(marked.where(F.col(USABLE)).drop(USABLE), contract).drop(WINDOW_ORDER).cache()
    )
    rows_unique = featured.count()
    marked.unpersist()
    return WindowRows(
        featured=featured,
        feature_kinds=feature_kinds,
        lineage=lineage,
        counts={
            "rows_in": rows_in,
            "rows_dropped": rows_in - rows_clean,
            "duplicates_dropped": rows_clean - rows_unique,
        },
        rows_by_run=rows_by_run,
        rows_unique=rows_unique,
    )


def code_version() -> str | None:
    """SHA-256 of this script and the ``mlops.ml`` modules it runs (None if unreadable).

    Part of the fingerprint: the same rows prepared by other code are other training data.
    """
    digest = hashlib.sha256()
    modules = (
        sys.modules[__name__],
        _cleaning,
        _features,
        _pipeline,
        _preprocessing,
        _profile,
        _splitting,
        _statistics,
    )
    try:
        for module in modules:
            digest.update(inspect.getsource(module).encode())
    except (OSError, TypeError):
        return None
    return digest.hexdigest()


def fingerprint(featured: DataFrame, contract: dict[str, Any]) -> str | None:
    """What the model would learn from, as one hash: the latest copies' contract columns.

    Keys, features and target as cleaned (lineage such as ``fetched_at`` is left out, so an
    unchanged site scraped on another day is unchanged), plus the contract version and the code
    version. Order-free (a sum of per-row hashes), computed by one aggregation.
    None when the code cannot be read: such a run never skips.
    """
    code = code_version()
    if code is None:
        return None
    names = sorted(c for c in contract_columns(contract) if c in featured.columns)
    text = F.concat_ws(
        "\u001f",
        *[F.coalesce(F.col(c).cast("string"), F.lit("\u0000")) for c in names],
    )
    row_hash = F.sha2(text, 256)
    sums = [
        F.sum(F.conv(F.substring(row_hash, pos, size), 16, 10).cast("decimal(38,0)")).alias(f"h{i}")
        for i, (pos, size) in enumerate(_HASH_SLICES)
    ]
    total = featured.agg(F.count(F.lit(1)).alias("rows"), *sums).collect()[0]
    document = {
        "rows": int(total["rows"]),
        "sums": [str(total[f"h{i}"] or 0) for i in range(len(_HASH_SLICES))],
        "columns": names,
        "contract_version": str(contract.get("version")),
        "code": code,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def prepare_spark(
    validated: DataFrame,
    contract: dict[str, Any],
    run_id: str,
    shares: Sequence[float],
    window: WindowRows | None = None,
) -> SparkPrepared:
    """Every preparation step on Spark; mirrors ``mlops.ml.pipeline.prepare`` step for step."""
    window = window or window_rows(validated, contract, run_id, shares)
    featured, feature_kinds, lineage = window.featured, window.feature_kinds, window.lineage
    stats, split_counts = spark_statistics(featured, contract)
    try:
        check_splits(split_counts, run_id, contract, shares)
    except UnusableData as exc:
        raise PreparationFailed(str(exc)) from exc

    artifact = fit_from_stats(stats, contract)

    columns = curated_columns(artifact, lineage)
    curated_kinds = {c: feature_kinds.get(c, "float") for c in columns}
    curated_kinds[SPLIT_COLUMN] = "string"

    def curate_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            batch = conform(batch, feature_kinds)
            out = curate(batch, artifact)
            out[SPLIT_COLUMN] = batch[SPLIT_COLUMN].to_numpy()
            yield conform(out, curated_kinds)

    curated = featured.mapInPandas(curate_batches, schema_of(curated_kinds))
    return SparkPrepared(
        curated=curated,
        artifact=artifact,
        profile=profile_from_stats(stats, contract),
        counts={**window.counts, **split_counts},
        columns=columns,
        rows_by_run=window.rows_by_run,
    )


def deduplicate(cleaned: DataFrame, contract: dict[str, Any]) -> DataFrame:
    """One row per key: the newest run's copy first (``WINDOW_ORDER``, when the rows span a
    window), then the latest ``fetched_at`` (nulls last), ties by column values."""
    keys = list(contract.get("keys") or [])
    if not keys:
        return cleaned
    latest = order_column(pd.DataFrame(columns=cleaned.columns))
    order = [F.col(WINDOW_ORDER).desc_nulls_last()] if WINDOW_ORDER in cleaned.columns else []
    order += [F.col(latest).desc_nulls_last()] if latest else []
    order += [F.col(c).asc_nulls_last() for c in dedup_order(contract, cleaned.columns)]
    window = Window.partitionBy(*keys).orderBy(*order)
    ranked = cleaned.withColumn("_rank", F.row_number().over(window))
    return ranked.where(F.col("_rank") == 1).drop("_rank")


def spark_statistics(
    featured: DataFrame, contract: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, int]]:
    """Rows per split, and ``mlops.ml.statistics.column_stats`` of the train split only.

    One aggregation over all rows (each train statistic reads its column only where the row is
    in train) and one for category counts: no rows reach the driver, only the numbers.
    """
    numeric, categorical = plan(contract).stat_columns(contract["target"])
    in_train = F.col(SPLIT_COLUMN) == "train"
    aggregates = [
        F.sum(F.when(F.col(SPLIT_COLUMN) == s, 1).otherwise(0)).alias(f"split_{s}") for s in SPLITS
    ]
    for i, name in enumerate(numeric):
        column = F.when(in_train, F.col(name).cast("double"))
        aggregates += [
            F.count(column).alias(f"n{i}_count"),
            F.mean(column).alias(f"n{i}_mean"),
            F.stddev_samp(column).alias(f"n{i}_std"),
            F.min(column).alias(f"n{i}_min"),
            F.max(column).alias(f"n{i}_max"),
            F.percentile_approx(column, list(QUANTILES), PERCENTILE_ACCURACY).alias(f"n{i}_q"),
        ]
    summary = featured.agg(*aggregates).collect()[0]
    split_counts = {s: int(summary[f"split_{s}"] or 0) for s in SPLITS}
    rows = split_counts["train"]
    stats: dict[str, Any] = {"rows": rows, "numeric": {}, "categorical": {}}
    for i, name in enumerate(numeric):
        count = int(summary[f"n{i}_count"])
        quantiles = summary[f"n{i}_q"] or [None] * len(QUANTILES)
        stats["numeric"][name] = {
            "count": count,
            "nulls": rows - count,
            "mean": _number(summary[f"n{i}_mean"]) if count else None,
            "std": _number(summary[f"n{i}_std"]) if count > 1 else None,
            "min": _number(summary[f"n{i}_min"]),
            "max": _number(summary[f"n{i}_max"]),
            "quantiles": {
                quantile_key(q): _number(v) for q, v in zip(QUANTILES, quantiles, strict=True)
            },
        }
    train = featured.where(in_train)
    for name in categorical:
        stats["categorical"][name] = {"count": 0, "nulls": rows, "distinct": 0, "frequencies": {}}
    if categorical:
        pairs = F.explode(
            F.array(
                *[
                    F.struct(F.lit(c).alias("column"), F.col(c).cast("string").alias("value"))
                    for c in categorical
                ]
            )
        )
        counts = (
            train.select(pairs.alias("pair"))
            .select("pair.column", "pair.value")
            .where(F.col("value").isNotNull())
            .groupBy("column", "value")
            .count()
        )
        by_column = Window.partitionBy("column")
        ranked = (
            counts.withColumn("_total", F.sum("count").over(by_column))
            .withColumn("_distinct", F.count(F.lit(1)).over(by_column))
            .withColumn(
                "_rank",
                F.row_number().over(by_column.orderBy(F.col("count").desc(), F.col("value").asc())),
            )
            .where(F.col("_rank") <= TOP_CATEGORIES)
        )
        for row in ranked.orderBy("column", "_rank").collect():
            s = stats["categorical"][row["column"]]
            s["count"] = int(row["_total"])
            s["nulls"] = rows - int(row["_total"])
            s["distinct"] = int(row["_distinct"])
            s["frequencies"][row["value"]] = int(row["count"])
    return stats, split_counts


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


# ------------------------------------------------------------------------------ the job
def window_document(args: JobArgs, rows_by_run: dict[str, int] | None) -> dict[str, Any]:
    """The window as the manifest and the ledger record it: which runs, how many rows each."""
    partitions = args.window_runs or (f"run_id={args.run_id}",)
    counts = rows_by_run or {}
    return {
        "days": args.window_days,
        "runs": [
            {
                "run_id": _run_of(p),
                "ingest_date": p.split("ingest_date=", 1)[1].split("/", 1)[0]
                if "ingest_date=" in p
                else None,
                "rows": counts.get(_run_of(p), 0),
            }
            for p in partitions
        ],
    }


def _manifest_head(args: JobArgs, contract: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "run_id": args.run_id,
        "dataset": args.dataset,
        "status": status,
        "contract_version": str(contract.get("version")),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_outputs(prepared: SparkPrepared, args: JobArgs, contract: dict[str, Any]) -> dict:
    """Curated parquet per split, the artifacts, then the manifest last."""
    out = args.curated_path
    prepared.curated.write.mode("overwrite").partitionBy(SPLIT_COLUMN).parquet(out)
    write_json(out + "artifacts/preprocessing.json", prepared.artifact)
    write_json(out + "artifacts/profile.json", prepared.profile)
    write_json(out + "artifacts/contract.json", contract)
    manifest = {
        **_manifest_head(args, contract, "prepared"),
        "counts": prepared.counts,
        "fingerprint": prepared.fingerprint,
        "window": window_document(args, prepared.rows_by_run),
        "fractions": dict(zip(SPLITS, args.shares, strict=True)),
        "splits": {s: f"{SPLIT_COLUMN}={s}/" for s in SPLITS},
        "artifacts": {
            "preprocessing": "artifacts/preprocessing.json",
            "profile": "artifacts/profile.json",
            "contract": "artifacts/contract.json",
        },
        "columns": prepared.columns,
        "feature_names": prepared.artifact["feature_names"],
        "categorical_features": prepared.artifact["categorical_features"],
        "target": prepared.artifact["target"],
        "task": prepared.artifact["task"],
    }
    write_json(out + "_manifest.json", manifest)
    return manifest


def write_skipped(
    window: WindowRows, window_print: str, args: JobArgs, contract: dict[str, Any]
) -> dict[str, Any]:
    """Only the manifest: the window's data is what the champion learnt from already."""
    champion = f" (run {args.champion_run_id})" if args.champion_run_id else ""
    manifest = {
        **_manifest_head(args, contract, "skipped"),
        "reason": f"window unchanged since the champion{champion} (fingerprint {window_print})",
        "counts": {**window.counts, "rows_unique": window.rows_unique},
        "fingerprint": window_print,
        "window": window_document(args, window.rows_by_run),
    }
    write_json(args.curated_path + "_manifest.json", manifest)
    return manifest


def log(message: str, **fields: Any) -> None:
    """One JSON line on stderr (the job's CloudWatch log on Glue)."""
    print(json.dumps({"message": message, **fields}, default=str), file=sys.stderr, flush=True)


def run(spark: SparkSession, args: JobArgs) -> dict[str, Any]:
    """Prepare one run's window end to end (or skip it); returns the manifest."""
    started = time.perf_counter()
    contract = load_contract(args.contract_uri)
    if contract["name"] != args.dataset:
        raise PreparationFailed(
            f"contract {args.contract_uri} is for {contract['name']}, not {args.dataset}"
        )
    validated = read_validated(spark, args.validated_path, args.run_id, args.window_runs)
    window = window_rows(validated, contract, args.run_id, args.shares)
    window_print = fingerprint(window.featured, contract)
    if window_print is not None and window_print == args.champion_fingerprint:
        manifest = write_skipped(window, window_print, args, contract)
        log("window unchanged: skipped", run_id=args.run_id, fingerprint=window_print)
        return manifest
    prepared = prepare_spark(validated, contract, args.run_id, args.shares, window)
    prepared.fingerprint = window_print
    log("statistics fitted", run_id=args.run_id, seconds=round(time.perf_counter() - started, 2))
    manifest = write_outputs(prepared, args, contract)
    log(
        "curated run written",
        run_id=args.run_id,
        counts=manifest["counts"],
        seconds=round(time.perf_counter() - started, 2),
    )
    return manifest


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    spark = spark_session()
    manifest = run(spark, args)
    print(json.dumps({"prepared": args.run_id, "counts": manifest["counts"]}), flush=True)


if __name__ == "__main__":
    main()
