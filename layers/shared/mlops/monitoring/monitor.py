"""The monitor stage: each validated run's drift against the champion, and the champion's
quality on the run's fresh labelled rows (ledger stage ``monitor``).

"Run Validated" (the event start_preparation hears) reaches the monitor function too, so a
run is judged against the model serving while it arrived, before any model trained on it
could be approved. The champion is the version the serving rule chooses
(``evaluation.registry.champion``, pin included); its model package metadata names its run,
curated prefix, decision metric and approval test score (``candidate``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel

from mlops import lake, ledger, naming
from mlops.clients import client
from mlops.contract import load_contract
from mlops.ledger import Status
from mlops.monitoring import drift as drift_stats
from mlops.monitoring import quality as quality_stats
from mlops.observability import logger
from mlops.preparation import RunValidated
from mlops.settings import Settings, get_settings

STAGE = "monitor"
# InvokeEndpoint takes at most 6 MB (4 MB on a serverless endpoint); 500 used-car rows are
# about 100 KB, and a refused batch loses no more than 500 rows of the fresh sample.
BATCH_ROWS = 500


class MonitorOutcome(BaseModel):
    """What the stage did, for the handler's metrics and the caller."""

    run_id: str
    dataset: str
    outcome: str  # "recorded" | "skipped" | "duplicate"
    reason: str | None = None
    model_version: int | None = None
    drifted_features: list[str] = []
    target_drift: bool = False
    drift_alarm: bool = False
    new_category_values: int = 0
    quality_status: str | None = None
    fresh_metric_ratio: float | None = None
    fresh_rows: int = 0


@dataclass(frozen=True)
class Champion:
    version: int
    arn: str
    run_id: str
    curated_prefix: str
    metric: str
    approval_metric: float | None


def monitor_run(detail: RunValidated) -> MonitorOutcome:
    """Judge one validated run once; a FAILED attempt may be retried, a finished one not."""
    run_id, dataset = detail.run_id, detail.dataset
    if not ledger.claim(run_id, STAGE, retry_failed=True):
        logger.info("monitor already claimed: duplicate event")
        return MonitorOutcome(run_id=run_id, dataset=dataset, outcome="duplicate")
    try:
        return _monitor(detail, get_settings())
    except Exception as error:
        ledger.finish(run_id, STAGE, Status.FAILED, reason=f"{type(error).__name__}: {error}")
        raise


def _monitor(detail: RunValidated, settings: Settings) -> MonitorOutcome:
    run_id, dataset = detail.run_id, detail.dataset
    champion = find_champion(dataset, settings)
    if champion is None:
        reason = "no champion yet: no Approved model version to compare this run with"
        ledger.finish(run_id, STAGE, Status.SKIPPED, reason=reason)
        return MonitorOutcome(run_id=run_id, dataset=dataset, outcome="skipped", reason=reason)
    contract = load_contract(dataset).model_dump(mode="json")
    rows = read_run_rows(detail, settings)
    profile = read_json(f"{champion.curated_prefix}artifacts/profile.json")
    training = read_parquet(f"{champion.curated_prefix}split=train/")
    validation_keys = read_parquet(
        f"{champion.curated_prefix}split=validation/", columns=list(contract.get("keys") or [])
    )
    report = drift_stats.compare(
        profile,
        drift_stats.featured_rows(rows, contract),
        target=contract["target"],
        training=drift_stats.training_rows(training, contract),
    )
    quarantined = read_parquet(
        f"{lake.quarantine_rows_path(settings.require('quarantine_bucket'), dataset)}"
        f"run_id={run_id}/"
    )
    new_categories = {
        "outside_contract": drift_stats.out_of_contract_categories(quarantined, contract),
        "unseen_by_champion": report.unseen_categories,
    }
    keys = list(contract.get("keys") or [])
    # Rows the champion trained or early-stopped on are not fresh: only the rest measure it.
    seen = quality_stats.key_tuples(training, keys) | quality_stats.key_tuples(
        validation_keys, keys
    )
    fresh = quality_stats.fresh_rows(rows, keys, seen)
    quality = score_champion(fresh, contract, champion, settings)
    drifted_columns = len(report.drifted_features) + int(report.target_drift)
    alarm = drifted_columns >= settings.drift_alarm_features
    values = sum(
        n for part in new_categories.values() for col in part.values() for n in col.values()
    )
    drift_doc = _finite(report.to_dict())
    ledger.finish(
        run_id,
        STAGE,
        Status.SUCCEEDED,
        counts={
            "rows": len(rows),
            "fresh_rows": quality.rows,
            "drifted_features": len(report.drifted_features),
            "new_category_values": values,
        },
        model_version=champion.version,
        model_package_arn=champion.arn,
        champion_run_id=champion.run_id,
        drift=drift_doc,
        drift_alarm=alarm,
        new_categories=new_categories,
        quality=_finite(quality.to_dict()),
    )
    logger.info(
        "run monitored",
        extra={
            "drifted_features": report.drifted_features,
            "target_drift": report.target_drift,
            "quality": quality.status,
            "ratio": quality.ratio,
        },
    )
    return MonitorOutcome(
        run_id=run_id,
        dataset=dataset,
        outcome="recorded",
        model_version=champion.version,
        drifted_features=report.drifted_features,
        target_drift=report.target_drift,
        drift_alarm=alarm,
        new_category_values=values,
        quality_status=quality.status,
        fresh_metric_ratio=quality.ratio,
        fresh_rows=quality.rows,
    )


# --- the champion and its data ----------------------------------------------------------------


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (DynamoDB numbers cannot hold them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def find_champion(dataset: str, settings: Settings) -> Champion | None:
    """The version the serving rule puts in production, with what monitoring needs of it."""
    from mlops.evaluation import registry

    group = settings.model_package_group or naming.model_package_group(dataset, settings.stage)
    package = registry.champion(group)
    if package is None:
        return None
    props = package.get("CustomerMetadataProperties") or {}
    run_id = props.get("run_id") or ""
    prefix = props.get("curated_prefix") or ""
    if not prefix.startswith("s3://"):
        bucket = settings.require("curated_bucket")
        prefix = f"s3://{bucket}/{lake.curated_run_prefix(dataset, run_id)}"
    return Champion(
        version=int(package["ModelPackageVersion"]),
        arn=str(package["ModelPackageArn"]),
        run_id=run_id,
        curated_prefix=prefix if prefix.endswith("/") else prefix + "/",
        metric=props.get("metric") or "rmse",
        approval_metric=float(props["candidate"]) if props.get("candidate") else None,
    )


def read_json(uri: str) -> dict[str, Any]:
    parsed = urlparse(uri)
    body = client("s3").get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]
    return dict(json.loads(body.read()))


def read_parquet(path: str, columns: list[str] | None = None) -> Any:
    """Every parquet file under ``path`` (an empty frame when there is none)."""
    import awswrangler as wr
    import pandas as pd

    try:
        return wr.s3.read_parquet(path=path, columns=columns or None, ignore_empty=True)
    except wr.exceptions.NoFilesFound:
        return pd.DataFrame(columns=columns or [])


def read_run_rows(detail: RunValidated, settings: Settings) -> Any:
    """The run's validated rows: its partition of the validated dataset."""
    root = detail.validated_path.rstrip("/")
    if detail.ingest_date:
        return read_parquet(f"{root}/ingest_date={detail.ingest_date}/run_id={detail.run_id}/")
    import awswrangler as wr

    # Without the ingest date the partition is found by listing the dataset (rare: the
    # validate stage always sends it).
    return wr.s3.read_parquet(
        path=f"{root}/",
        dataset=True,
        partition_filter=lambda partition: partition.get("run_id") == detail.run_id,
    )


# --- scoring the served champion --------------------------------------------------------------


def score_champion(
    fresh: Any, contract: dict[str, Any], champion: Champion, settings: Settings
) -> quality_stats.QualityResult:
    """The champion's metric on ``fresh`` rows, through the endpoint that serves it."""
    from botocore.exceptions import BotoCoreError, ClientError

    from mlops.ml.cleaning import clean

    quality_settings = quality_stats.QualitySettings(threshold=settings.fresh_quality_threshold)
    endpoint = settings.endpoint_name or naming.endpoint_name(contract["name"], settings.stage)
    metric = champion.metric
    if champion.approval_metric is None:
        reason = f"model package v{champion.version} records no approval {metric}"
        return quality_stats.skipped(metric, reason, quality_settings)
    sagemaker = client("sagemaker")
    try:
        status = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
    except ClientError as error:
        from mlops.serving import missing

        if not missing(error):
            raise
        return quality_stats.skipped(metric, f"no endpoint {endpoint}", quality_settings)
    if status != "InService":
        return quality_stats.skipped(metric, f"endpoint {endpoint} is {status}", quality_settings)
    labelled = clean(fresh, contract, training=True)
    target = contract["target"]
    features = [c for c in contract["columns"] if c != target and c in labelled.columns]
    y_true: list[Any] = []
    y_pred: list[Any] = []
    refused = 0
    served_runs: set[str] = set()
    for start in range(0, len(labelled), BATCH_ROWS):
        batch = labelled.iloc[start : start + BATCH_ROWS]
        try:
            answer = _invoke(endpoint, _records(batch[features]))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ModelError":  # the model refused rows (its older contract): skip them
                refused += len(batch)
                continue
            return quality_stats.skipped(
                metric, f"endpoint {endpoint} could not answer ({code})", quality_settings
            )
        except BotoCoreError as error:
            return quality_stats.skipped(
                metric, f"endpoint {endpoint} could not be reached ({error})", quality_settings
            )
        served_runs.add(str((answer.get("model") or {}).get("run_id") or ""))
        y_true += batch[target].tolist()
        y_pred += list(answer["predictions"])
    if served_runs - {champion.run_id, ""}:
        return quality_stats.skipped(
            metric,
            f"endpoint {endpoint} serves run(s) {sorted(served_runs)}, not the champion "
            f"v{champion.version} (run {champion.run_id}): an update in flight?",
            quality_settings,
        )
    result = quality_stats.judge(metric, y_true, y_pred, champion.approval_metric, quality_settings)
    if result.ratio is not None and not math.isfinite(result.ratio):
        result.ratio = None
    if refused:
        result.reason = f"{refused} fresh rows refused by the model's contract"
    return result


def _records(frame: Any) -> bytes:
    """JSON records the model reads (dates as ISO text, missing values as null)."""
    text = frame.to_json(orient="records", date_format="iso")
    return text.encode()


def _invoke(endpoint: str, body: bytes) -> dict[str, Any]:
    response = client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint,
        ContentType="application/json",
        Accept="application/json",
        Body=body,
    )
    return dict(json.loads(response["Body"].read()))
