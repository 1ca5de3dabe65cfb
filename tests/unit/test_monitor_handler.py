"""The monitor function in moto: each validated run against the served champion.

The champion is registered as evaluate leaves it (model package metadata naming its run,
curated prefix, metric and approval test score; profile and splits in the curated zone), the
run's rows are where validation writes them, and the endpoint's model is day 1's true price
function of the demo site's calendar (a model as good as the noise allows on day 1).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest

from demosite.scenario import NewModel, Scenario, SiteDay
from mlops import ledger
from mlops.ml.pipeline import prepare
from tests.scenario_rows import QUIET, contract, zones
from tests.unit.test_scrape_handler import emitted_metrics

GROUP = "mlops-used-cars-dev"
ENDPOINT = "mlops-used-cars-dev"
CHAMPION_RUN = "20261126T083000Z-0c0c0c0c"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"


@pytest.fixture
def cloud(aws: None, monkeypatch: pytest.MonkeyPatch, declared_table: Any) -> Iterator[Any]:
    declared_table("RunLedgerTable", "ledger")
    s3 = boto3.client("s3")
    for bucket in ("validated", "quarantine", "curated"):
        s3.create_bucket(Bucket=bucket)
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    env = {
        "LEDGER_TABLE": "ledger",
        "STAGE": "dev",
        "DATASET": "used_cars",
        "VALIDATED_BUCKET": "validated",
        "QUARANTINE_BUCKET": "quarantine",
        "CURATED_BUCKET": "curated",
        "FRESH_QUALITY_THRESHOLD": "1.25",
        "DRIFT_ALARM_FEATURES": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield monkeypatch


def run_event(event: Any) -> dict[str, Any]:
    sample = copy.deepcopy(event("run_validated"))
    sample["detail"]["validated_path"] = "s3://validated/used_cars/"
    return sample


def crown(day: SiteDay) -> float:
    """Prepare ``day`` as the champion's run, register it Approved; its approval test RMSE."""
    import awswrangler as wr

    prepared = prepare(zones(day)[0], contract(), run_id=CHAMPION_RUN)
    prefix = f"s3://curated/dataset=used_cars/run_id={CHAMPION_RUN}/"
    for split in ("train", "validation", "test"):
        wr.s3.to_parquet(prepared.splits[split], f"{prefix}split={split}/part-0.parquet")
    boto3.client("s3").put_object(
        Bucket="curated",
        Key=f"dataset=used_cars/run_id={CHAMPION_RUN}/artifacts/profile.json",
        Body=json.dumps(prepared.profile).encode(),
    )
    test = prepared.splits["test"]
    truth = {car["listing_id"]: day.true_price(car) for car in day.catalogue.listings}
    predicted = test["listing_id"].map(truth)
    approval = float(np.sqrt(np.mean((predicted - test["price"]) ** 2)))
    boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://artifacts/model.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={
            "run_id": CHAMPION_RUN,
            "dataset": "used_cars",
            "curated_prefix": prefix,
            "metric": "rmse",
            "candidate": str(approval),
        },
    )
    return approval


def land(event: dict[str, Any], day: SiteDay) -> None:
    """The day's rows where validation writes the event's run (validated and quarantined)."""
    import awswrangler as wr

    detail = event["detail"]
    rows, quarantined = zones(day)
    wr.s3.to_parquet(
        rows,
        f"s3://validated/used_cars/ingest_date={detail['ingest_date']}/"
        f"run_id={detail['run_id']}/src-0.parquet",
    )
    if len(quarantined):
        wr.s3.to_parquet(
            quarantined, f"s3://quarantine/rows/used_cars/run_id={detail['run_id']}/src-0.parquet"
        )


def serve(monkeypatch: pytest.MonkeyPatch, model_day: SiteDay, data_day: SiteDay) -> list[int]:
    """An InService endpoint whose model predicts ``model_day``'s true price of each listing
    of ``data_day`` (as if it had learnt that day's price function exactly); the batch sizes."""
    from mlops.monitoring import monitor

    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model(
        ModelName="m",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
        PrimaryContainer={"Image": IMAGE},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "m",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="c")
    batches: list[int] = []
    known = {car["listing_id"]: model_day.true_price(car) for car in data_day.catalogue.listings}

    def invoke(endpoint: str, body: bytes) -> dict[str, Any]:
        assert endpoint == ENDPOINT
        frame = pd.DataFrame(json.loads(body))
        assert "price" not in frame.columns  # the label is never sent to the model
        batches.append(len(frame))
        return {
            "predictions": [known[listing] for listing in frame["listing_id"]],
            "model": {"run_id": CHAMPION_RUN, "dataset": "used_cars"},
        }

    monkeypatch.setattr(monitor, "_invoke", invoke)
    return batches


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from functions.monitor.app import lambda_handler

    return lambda_handler(event, context)


def monitor_stage(run_id: str) -> dict[str, Any]:
    return next(s for s in ledger.stages(run_id) if s["stage"] == "monitor")


def test_the_first_run_without_a_champion_is_skipped_with_its_reason(
    cloud: Any, event: Any, lambda_context: Any, capsys: Any
) -> None:
    # Given a validated run and no Approved model version yet
    sample = run_event(event)
    land(sample, Scenario(seed=7, plan=QUIET).day(1))

    # When the monitor hears Run Validated
    out = handle(sample, lambda_context)

    # Then it skips without raising, and the ledger says why
    assert out["outcome"] == "skipped"
    stage = monitor_stage(sample["detail"]["run_id"])
    assert stage["status"] == "SKIPPED"
    assert "no champion yet" in stage["reason"]
    assert emitted_metrics(capsys.readouterr().out).get("MonitorSkipped") == 1


def test_a_stable_run_records_no_drift_and_the_champions_quality(
    cloud: Any, event: Any, lambda_context: Any, capsys: Any
) -> None:
    # Given a champion trained on day 1 and serving, and day 2 (nothing changed but listings)
    scenario = Scenario(seed=7, plan=QUIET)
    approval = crown(scenario.day(1))
    batches = serve(cloud, scenario.day(1), scenario.day(2))
    sample = run_event(event)
    land(sample, scenario.day(2))

    # When the monitor judges the run
    out = handle(sample, lambda_context)

    # Then nothing drifted, the fresh RMSE is about the approval one, all in the ledger
    assert out["outcome"] == "recorded"
    stage = monitor_stage(sample["detail"]["run_id"])
    assert stage["status"] == "SUCCEEDED"
    assert stage["drift"]["drifted_features"] == [] and not stage["drift"]["target_drift"]
    assert stage["drift_alarm"] is False
    assert stage["drift"]["features"]["price"]["status"] == "stable"
    assert {"psi", "p_value", "q_value"} <= set(stage["drift"]["features"]["mileage"])
    quality = stage["quality"]
    assert quality["status"] == "ok" and quality["metric"] == "rmse"
    assert quality["approval"] == pytest.approx(approval, rel=1e-4)
    assert 0.75 < quality["ratio"] < 1.25
    assert stage["model_version"] == 1 and stage["champion_run_id"] == CHAMPION_RUN
    # only rows the champion neither trained nor early-stopped on were scored, in batches
    assert quality["rows"] == stage["counts"]["fresh_rows"] < stage["counts"]["rows"]
    assert sum(batches) == quality["rows"] and max(batches) <= 500
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["DriftedColumns"] == 0 and metrics["TargetDrift"] == 0
    assert metrics["FreshMetricRatio"] == pytest.approx(quality["ratio"], rel=1e-3)


def test_a_price_shift_flags_target_drift_degrades_quality_and_emits_both(
    cloud: Any, event: Any, lambda_context: Any, capsys: Any
) -> None:
    # Given a champion of day 1, and a day 2 on which the market index rose 15%
    scenario = Scenario(seed=7, plan=replace(QUIET, inflation_from=2, inflation_per_day=0.15))
    crown(scenario.day(1))
    serve(cloud, scenario.day(1), scenario.day(2))
    sample = run_event(event)
    land(sample, scenario.day(2))

    # When the monitor judges the run
    handle(sample, lambda_context)

    # Then the target drifted, the fresh RMSE is past 1.25 x the approval one, and the
    # metrics the two alarms watch say so
    stage = monitor_stage(sample["detail"]["run_id"])
    assert stage["drift"]["target_drift"] is True
    assert stage["drift_alarm"] is True
    assert stage["quality"]["status"] == "degraded"
    assert stage["quality"]["ratio"] > 1.25
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["TargetDrift"] == 1 and metrics["DriftedColumns"] >= 1
    assert metrics["FreshMetricRatio"] > 1.25


def test_a_model_outside_the_contract_is_reported_with_its_count(
    cloud: Any, event: Any, lambda_context: Any, capsys: Any
) -> None:
    # Given a champion of day 6 and day 8, whose new listings include the Ford Puma that
    # validation quarantined (allowed:model)
    scenario = Scenario(seed=7)
    crown(scenario.day(6))
    serve(cloud, scenario.day(6), scenario.day(8))
    sample = run_event(event)
    land(sample, scenario.day(8))
    pumas = len(zones(scenario.day(8))[1])

    # When the monitor judges the run
    handle(sample, lambda_context)

    # Then the Puma is in the ledger with its count, as a contract-evolution signal
    stage = monitor_stage(sample["detail"]["run_id"])
    assert stage["new_categories"]["outside_contract"] == {"model": {NewModel().model: pumas}}
    assert stage["counts"]["new_category_values"] >= pumas > 0
    assert emitted_metrics(capsys.readouterr().out)["NewCategoryValues"] >= pumas


def test_a_redelivered_event_is_judged_once(
    cloud: Any, event: Any, lambda_context: Any, capsys: Any
) -> None:
    # Given a run already monitored
    scenario = Scenario(seed=7, plan=QUIET)
    crown(scenario.day(1))
    batches = serve(cloud, scenario.day(1), scenario.day(2))
    sample = run_event(event)
    land(sample, scenario.day(2))
    handle(sample, lambda_context)
    first = monitor_stage(sample["detail"]["run_id"])
    scored = sum(batches)
    capsys.readouterr()

    # When the same event arrives again
    out = handle(sample, lambda_context)

    # Then it is a duplicate: nothing scored again, the ledger as it was
    assert out["outcome"] == "duplicate"
    assert sum(batches) == scored
    assert monitor_stage(sample["detail"]["run_id"]) == first
    assert emitted_metrics(capsys.readouterr().out).get("MonitorDuplicate") == 1


def test_without_an_endpoint_quality_is_skipped_with_its_reason_and_drift_still_recorded(
    cloud: Any, event: Any, lambda_context: Any, capsys: Any
) -> None:
    # Given a champion approved but no endpoint (taken out of service, or not yet created)
    scenario = Scenario(seed=7, plan=QUIET)
    crown(scenario.day(1))
    sample = run_event(event)
    land(sample, scenario.day(2))

    # When the monitor judges the run
    out = handle(sample, lambda_context)

    # Then quality is skipped with the reason, drift is recorded, no ratio is emitted
    stage = monitor_stage(sample["detail"]["run_id"])
    assert out["outcome"] == "recorded"
    assert stage["quality"]["status"] == "skipped"
    assert f"no endpoint {ENDPOINT}" in stage["quality"]["reason"]
    assert stage["drift"]["features"]["price"]["status"] == "stable"
    assert "FreshMetricRatio" not in emitted_metrics(capsys.readouterr().out)


def test_a_failed_attempt_is_recorded_and_its_retry_judges_the_run(
    cloud: Any, event: Any, lambda_context: Any
) -> None:
    # Given a champion whose profile is not (yet) readable
    scenario = Scenario(seed=7, plan=QUIET)
    crown(scenario.day(1))
    key = f"dataset=used_cars/run_id={CHAMPION_RUN}/artifacts/profile.json"
    profile = boto3.client("s3").get_object(Bucket="curated", Key=key)["Body"].read()
    boto3.client("s3").delete_object(Bucket="curated", Key=key)
    sample = run_event(event)
    land(sample, scenario.day(2))

    # When the first attempt fails, then the profile is back and the event is retried
    with pytest.raises(Exception, match="NoSuchKey"):
        handle(sample, lambda_context)
    failed = monitor_stage(sample["detail"]["run_id"])
    boto3.client("s3").put_object(Bucket="curated", Key=key, Body=profile)
    out = handle(sample, lambda_context)

    # Then the failure was recorded with its reason, and the retry took the claim over
    assert failed["status"] == "FAILED" and "NoSuchKey" in failed["reason"]
    assert out["outcome"] == "recorded"
    assert monitor_stage(sample["detail"]["run_id"])["status"] == "SUCCEEDED"
