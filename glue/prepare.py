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
--curated_path --contract_uri [--train_fraction --validation_fraction]``. Glue's own extra
arguments (``--JOB_NAME``, ``--job-bookmark-option``…) are tolerated. Paths are ``s3://`` on
Glue and local directories when the local cloud stages the data (no s3a connector offline).
"""

from __future__ import annotations

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

from mlops.ml.cleaning import (
    USABLE,
    UnusableData,
    cleaned_kinds,
    dedup_order,
    mark_usable,
    order_column,
    passthrough_columns,
)
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


@dataclass
class SparkPrepared:
    """The curated rows (with their split column), artifacts and manifest counts."""

    curated: DataFrame
    artifact: dict[str, Any]
    profile: dict[str, Any]
    counts: dict[str, int]
    columns: list[str]


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
    return JobArgs(
        run_id=values["run_id"],
        dataset=values["dataset"],
        validated_path=values["validated_path"],
        curated_path=values["curated_path"].rstrip("/") + "/",
        contract_uri=values["contract_uri"],
        shares=shares,
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


def read_validated(spark: SparkSession, path: str, run_id: str) -> DataFrame:
    """The run's rows: ``path`` is the run's partition, or the dataset root holding it."""
    root = path.rstrip("/")
    if f"run_id={run_id}" in root:
        partitions = _glob(spark, root)
    else:
        partitions = _glob(spark, f"{root}/run_id={run_id}") + _glob(
            spark, f"{root}/*/run_id={run_id}"
        )
    files = [f for p in partitions for f in _glob(spark, f"{p.rstrip('/')}/*.parquet")]
    if not files:
        raise PreparationFailed(f"run {run_id} has no validated rows under {path}")
    # basePath keeps the partition directories' columns discoverable (they are dropped below).
    df = spark.read.option("basePath", root).parquet(*files)
    for partition_column in ("run_id", "ingest_date", "dataset"):
        if partition_column in df.columns:
            df = df.drop(partition_column)
    return df


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
def prepare_spark(
    validated: DataFrame, contract: dict[str, Any], run_id: str, shares: Sequence[float]
) -> SparkPrepared:
    """Every preparation step on Spark; mirrors ``mlops.ml.pipeline.prepare`` step for step."""
    specs = contract["columns"]
    lineage = passthrough_columns(pd.DataFrame(columns=validated.columns), contract)
    selected = [
        (F.col(c).cast("string") if specs[c]["type"] == "datetime" else F.col(c)).alias(c)
        for c in specs
        if c in validated.columns
    ] + [F.col(c).cast("string").alias(c) for c in lineage]
    rows = validated.select(*selected)

    clean_kinds = cleaned_kinds(contract, lineage)
    derived = feature_set(contract["name"])
    feature_kinds = dict(clean_kinds)
    feature_kinds.update({n: "float" for n in derived.numeric})
    feature_kinds.update({n: "string" for n in derived.categorical})
    feature_kinds[SPLIT_COLUMN] = "string"
    marked_kinds = {**feature_kinds, USABLE: "bool"}

    # One pass over the data for every row-level step: clean, mark usable, features, split.
    def row_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            marked = mark_usable(batch, contract)
            usable = marked.pop(USABLE)
            featured = featurise(marked, contract, shares)
            featured[USABLE] = usable
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

    featured = deduplicate(marked.where(F.col(USABLE)).drop(USABLE), contract).cache()
    stats, split_counts = spark_statistics(featured, contract)
    marked.unpersist()
    rows_unique = sum(split_counts.values())
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
        counts={
            "rows_in": rows_in,
            "rows_dropped": rows_in - rows_clean,
            "duplicates_dropped": rows_clean - rows_unique,
            **split_counts,
        },
        columns=columns,
    )


def deduplicate(cleaned: DataFrame, contract: dict[str, Any]) -> DataFrame:
    """One row per key: latest ``fetched_at`` first (nulls last), ties by column values."""
    keys = list(contract.get("keys") or [])
    if not keys:
        return cleaned
    latest = order_column(pd.DataFrame(columns=cleaned.columns))
    order = [F.col(latest).desc_nulls_last()] if latest else []
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
def write_outputs(prepared: SparkPrepared, args: JobArgs, contract: dict[str, Any]) -> dict:
    """Curated parquet per split, the artifacts, then the manifest last."""
    out = args.curated_path
    prepared.curated.write.mode("overwrite").partitionBy(SPLIT_COLUMN).parquet(out)
    write_json(out + "artifacts/preprocessing.json", prepared.artifact)
    write_json(out + "artifacts/profile.json", prepared.profile)
    write_json(out + "artifacts/contract.json", contract)
    manifest = {
        "run_id": args.run_id,
        "dataset": args.dataset,
        "contract_version": str(contract.get("version")),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "counts": prepared.counts,
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


def log(message: str, **fields: Any) -> None:
    """One JSON line on stderr (the job's CloudWatch log on Glue)."""
    print(json.dumps({"message": message, **fields}, default=str), file=sys.stderr, flush=True)


def run(spark: SparkSession, args: JobArgs) -> dict[str, Any]:
    """Prepare one run end to end; returns the manifest."""
    started = time.perf_counter()
    contract = load_contract(args.contract_uri)
    if contract["name"] != args.dataset:
        raise PreparationFailed(
            f"contract {args.contract_uri} is for {contract['name']}, not {args.dataset}"
        )
    validated = read_validated(spark, args.validated_path, args.run_id)
    prepared = prepare_spark(validated, contract, args.run_id, args.shares)
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
