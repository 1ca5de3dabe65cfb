"""mlops.costs: a run's cost from its ledger items, a month's projection, the price table.

Every expected figure is worked out by hand in the test from the price table's list prices:
Lambda x86 $0.0000166667 per GB-second, Glue $0.44 per DPU-hour (60-second minimum),
ml.m5.large $0.115 an hour (training and hosting), serverless 2,048 MB $0.00004 a second,
data processed $0.016 per GB, assumed spot saving 70%.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops import costs

RUN = "20261203T120000Z-1a2b3c4d"


def settings(**changes: Any) -> costs.PipelineSettings:
    """The template's defaults: 512 MB functions, validate 3,008 MB, 2 x G.1X, ml.m5.large spot."""
    small = costs.FunctionSettings(memory_mb=512, timeout_seconds=60)
    functions = {name: small for name in costs.FUNCTIONS.values()}
    functions["ValidateFunction"] = costs.FunctionSettings(memory_mb=3008, timeout_seconds=300)
    base: dict[str, Any] = {
        "functions": functions,
        "scrape_schedule": costs.Schedule(expression="rate(1 day)", enabled=True),
        "other_schedules": {
            "StartPreparationFunction": costs.Schedule(expression="rate(5 minutes)", enabled=True)
        },
        "alarms": 8,
        "kms_keys": 2,
    }
    return costs.PipelineSettings(**(base | changes))


def item(stage: str, seconds: float, **fields: Any) -> dict[str, Any]:
    """A ledger item of ``stage`` that ran ``seconds``, as ``StageItem.as_dict`` gives it."""
    end = f"2026-12-03T12:{int(seconds) // 60:02d}:{seconds % 60:06.3f}+00:00"
    return {
        "stage": stage,
        "status": fields.pop("status", "SUCCEEDED"),
        "started_at": "2026-12-03T12:00:00.000+00:00",
        "ended_at": end,
        "counts": fields.pop("counts", {}),
        "detail": fields,
    }


def line(stage: costs.StageCost, unit: str) -> costs.CostLine:
    return next(entry for entry in stage.lines if entry.unit == unit)


def stage_of(run: costs.RunCost, name: str) -> costs.StageCost:
    return next(stage for stage in run.stages if stage.stage == name)


# ---------------------------------------------------------------------- stages of a run
def test_the_scrape_function_is_billed_for_the_scrape_items_wall_time() -> None:
    # Given a crawl of 40 s in one invocation of the 512 MB scrape function
    run = costs.run_cost(RUN, [item("scrape", 40, counts={"parts": 1})], settings())

    # then it bills 0.5 GB x 40 s = 20 GB-s x $0.0000166667 = $0.000333334, measured
    compute = line(stage_of(run, "scrape"), "GB-second")
    assert compute.quantity == pytest.approx(20)
    assert compute.usd == pytest.approx(0.000333334)
    assert compute.basis == "measured"


def test_a_glue_run_shorter_than_a_minute_is_billed_a_minute() -> None:
    # Given a preparation whose job run executed 30 s on 2 G.1X workers (2 DPU)
    prepare = item("prepare", 45, glue_execution_seconds=30)

    # when it is priced
    run = costs.run_cost(RUN, [prepare], settings())

    # then Glue's minimum applies: 2 DPU x 60 s = 1/30 DPU-hour x $0.44 = $0.0146667
    glue = line(stage_of(run, "prepare"), "DPU-hour")
    assert glue.quantity == pytest.approx(2 / 60)
    assert glue.usd == pytest.approx(0.0146667, rel=1e-5)
    assert "60-second minimum" in glue.note


def test_a_glue_run_longer_than_a_minute_is_billed_by_the_second() -> None:
    # Given a job run that executed 150 s on 2 DPU
    run = costs.run_cost(RUN, [item("prepare", 160, glue_execution_seconds=150)], settings())

    # then it bills 2 x 150 / 3600 DPU-hours x $0.44 = $0.0366667
    assert line(stage_of(run, "prepare"), "DPU-hour").usd == pytest.approx(0.0366667, rel=1e-5)


def test_the_glue_workers_the_job_run_recorded_are_priced_over_the_templates() -> None:
    # Given a job run recorded on 4 G.2X workers (8 DPU) for 90 s
    prepare = item(
        "prepare", 100, glue_execution_seconds=90, glue_worker_type="G.2X", glue_workers=4
    )

    # then it bills 8 DPU x 90 / 3600 = 0.2 DPU-hour x $0.44 = $0.088
    run = costs.run_cost(RUN, [prepare], settings())
    assert line(stage_of(run, "prepare"), "DPU-hour").usd == pytest.approx(0.088)


def test_without_an_execution_time_the_prepare_items_wall_time_is_billed_and_said_so() -> None:
    # Given a prepare item of 120 s with no job run time recorded (a ledger before this field)
    run = costs.run_cost(RUN, [item("prepare", 120)], settings())

    # then the 120 s are billed (2 x 120 / 3600 x $0.44 = $0.0293333), as an estimate
    glue = line(stage_of(run, "prepare"), "DPU-hour")
    assert glue.usd == pytest.approx(0.0293333, rel=1e-5)
    assert glue.basis == "estimated"


def test_a_queued_preparation_bills_no_glue() -> None:
    # Given a run still waiting for a Glue run slot
    run = costs.run_cost(RUN, [item("prepare", 0, status="QUEUED")], settings())

    # then no DPU-hour is counted
    assert not [e for e in stage_of(run, "prepare").lines if e.unit == "DPU-hour"]


def test_the_assumed_spot_saving_applies_when_the_jobs_billable_time_shows_none() -> None:
    # Given a spot job of 600 s whose billable time is its whole training time (local cloud)
    train = item("train", 620, counts={"seconds": 600}, billable_seconds=600, spot=True)

    # then it bills 600 s x (1 - 0.70) = 180 s of ml.m5.large: 180 / 3600 x $0.115 = $0.00575
    training = line(stage_of(costs.run_cost(RUN, [train], settings()), "train"), "instance-hour")
    assert training.usd == pytest.approx(0.00575)
    assert training.basis == "estimated"
    assert "70%" in training.note


def test_sagemakers_billable_time_is_used_as_is_when_it_shows_the_spot_saving() -> None:
    # Given a spot job on AWS: 600 s of training, 150 s billable (SageMaker's 75% saving)
    train = item("train", 620, counts={"seconds": 600}, billable_seconds=150, spot=True)

    # then it bills the 150 s, no further discount: 150 / 3600 x $0.115 = $0.00479167
    training = line(stage_of(costs.run_cost(RUN, [train], settings()), "train"), "instance-hour")
    assert training.usd == pytest.approx(0.00479167, rel=1e-5)
    assert training.basis == "measured"


def test_an_on_demand_job_is_billed_its_whole_billable_time() -> None:
    # Given a job that did not use spot: 600 s billable
    train = item("train", 620, counts={"seconds": 600}, billable_seconds=600, spot=False)

    # then it bills 600 / 3600 x $0.115 = $0.0191667
    training = line(stage_of(costs.run_cost(RUN, [train], settings()), "train"), "instance-hour")
    assert training.usd == pytest.approx(0.0191667, rel=1e-5)


def test_an_instance_type_missing_from_the_price_table_is_refused_by_name() -> None:
    # Given a job on an instance type the table does not price
    train = item("train", 60, counts={"seconds": 50}, instance_type="ml.p5.48xlarge")

    # then the cost is refused, naming the missing price
    with pytest.raises(costs.UnknownPrice, match=r"ml\.p5\.48xlarge"):
        costs.run_cost(RUN, [train], settings())


def test_the_deploy_items_wall_time_is_not_billed_to_lambda() -> None:
    # Given a deploy item spanning 5 minutes of endpoint creation
    run = costs.run_cost(RUN, [item("deploy", 300)], settings())

    # then Lambda bills the assumed 2 invocations x 1 s at 0.5 GB = 1 GB-s, not 300 s
    compute = line(stage_of(run, "deploy"), "GB-second")
    assert compute.quantity == pytest.approx(1.0)
    assert compute.basis == "assumed"


def test_ledger_items_read_with_the_ledger_module_are_understood() -> None:
    # Given an item as mlops.ledger.stages returns it: start's fields under detail,
    # finish's at the top, numbers as the ledger stores them
    raw = {
        "run_id": RUN,
        "stage": "prepare",
        "status": "SUCCEEDED",
        "started_at": "2026-12-03T12:00:00.000+00:00",
        "ended_at": "2026-12-03T12:02:00.000+00:00",
        "detail": {"glue_job_run_id": "jr_1"},
        "glue_execution_seconds": 90,
    }

    # then the job run's execution time is found: 2 x 90 / 3600 x $0.44 = $0.022
    run = costs.run_cost(RUN, [raw], settings())
    assert line(stage_of(run, "prepare"), "DPU-hour").usd == pytest.approx(0.022)


def test_a_known_run_costs_the_sum_of_its_priced_stages() -> None:
    # Given a whole demo run
    items = [
        item("scrape", 40, counts={"parts": 1, "records": 3000}, invocations=1),
        item("validate", 10, counts={"objects": 1, "rows_in": 3000}),
        item("prepare", 45, glue_execution_seconds=30),
        item("train", 70, counts={"seconds": 60}, billable_seconds=60, spot=True),
        item("evaluate", 4, decision="Approved"),
        item("deploy", 200),
    ]

    # when it is priced
    run = costs.run_cost(RUN, items, settings())

    # then every stage is priced once, plus the storage of its 3,000 rows, and Glue's
    # minimum ($0.0146667) is most of the run's cost
    assert [s.stage for s in run.stages] == [*costs.STAGES, "storage"]
    assert run.usd == pytest.approx(sum(s.usd for s in run.stages))
    assert 0.0146667 < run.usd < 0.02


# ---------------------------------------------------------------------- a month
def test_a_daily_schedule_runs_thirty_point_four_times_a_month() -> None:
    # AWS's month is 730 hours: 730 / 24 = 30.4167 days; every 5 minutes: 730 x 12 = 8,760
    assert costs.runs_per_month("rate(1 day)") == pytest.approx(30.4167, rel=1e-5)
    assert costs.runs_per_month("rate(5 minutes)") == pytest.approx(8760)


def test_a_cron_schedule_on_weekdays_runs_five_sevenths_of_the_days() -> None:
    # 30.4167 days x 5 / 7 = 21.7262 firings of 06:00 on weekdays
    assert costs.runs_per_month("cron(0 6 ? * MON-FRI *)") == pytest.approx(21.7262, rel=1e-4)


def test_a_month_multiplies_a_run_by_the_schedules_rate() -> None:
    # Given a run of $0.0146667 (a minimum Glue run alone)
    run = costs.run_cost(RUN, [item("prepare", 45, glue_execution_seconds=30)], settings())

    # when a month is projected at rate(1 day)
    month = costs.month_projection(run, settings())

    # then the runs cost 30.4167 x the run
    runs = sum(entry.usd for entry in month.pipeline)
    assert runs == pytest.approx(30.41667 * run.usd, rel=1e-5)


def test_the_serverless_endpoint_bills_seconds_of_inference_and_data() -> None:
    # Given 1,000 requests a day of 0.1 s, 2 KB in and 1 KB out, on 2,048 MB
    month = costs.month_projection(None, settings())

    # then 30,416.7 requests x 0.1 s x $0.00004 = $0.121667 of compute
    # and 30,416.7 x 3 KB = 0.0870228 GB x $0.016 = $0.00139236 of data
    compute, data = month.serverless_endpoint
    assert compute.usd == pytest.approx(0.121667, rel=1e-5)
    assert data.usd == pytest.approx(0.00139236, rel=1e-4)


def test_the_instance_endpoint_bills_autoscalings_floor_every_hour() -> None:
    # Given two ml.m5.large instances, the autoscaling floor
    month = costs.month_projection(None, settings())

    # then 2 x 730 hours x $0.115 = $167.90, whatever the traffic
    hours = month.instance_endpoint[0]
    assert hours.quantity == pytest.approx(1460)
    assert hours.usd == pytest.approx(167.90)


def test_the_month_shows_the_two_endpoints_apart() -> None:
    # Given one month
    month = costs.month_projection(None, settings())

    # then the totals differ by exactly the endpoints' difference
    serverless = sum(e.usd for e in month.serverless_endpoint)
    instance = sum(e.usd for e in month.instance_endpoint)
    assert month.with_instance_usd - month.with_serverless_usd == pytest.approx(
        instance - serverless
    )


def test_more_requests_cost_the_serverless_endpoint_in_proportion() -> None:
    # Given ten times the requests
    few = costs.month_projection(None, settings())
    many = costs.month_projection(
        None, settings(), assumptions=costs.Assumptions(requests_per_day=10_000)
    )

    # then its compute costs ten times as much, and the instance hours nothing more
    assert many.serverless_endpoint[0].usd == pytest.approx(10 * few.serverless_endpoint[0].usd)
    assert many.instance_endpoint[0].usd == few.instance_endpoint[0].usd


def test_fixed_costs_count_the_templates_alarms_and_keys() -> None:
    # Given 8 alarms and 2 customer managed keys
    month = costs.month_projection(None, settings())

    # then 8 x $0.10 = $0.80 and 2 x $1 = $2 a month
    by_item = {entry.item: entry.usd for entry in month.fixed}
    assert by_item["CloudWatch alarms"] == pytest.approx(0.80)
    assert by_item["KMS customer managed keys"] == pytest.approx(2.0)


def test_a_disabled_schedule_is_projected_as_if_it_fired_and_said_so() -> None:
    # Given dev, whose scrape schedule is off
    off = costs.Schedule(expression="rate(1 day)", enabled=False)
    month = costs.month_projection(None, settings(scrape_schedule=off, stage="dev"))

    # then the month still counts its rate, with a note
    assert month.runs_per_month == pytest.approx(30.4167, rel=1e-5)
    assert any("disabled" in note for note in month.notes)


def test_the_closing_note_compares_both_endpoints_with_the_seeds_estimate() -> None:
    month = costs.month_projection(None, settings())

    note = costs.seed_comparison(month)

    assert costs.SEED_ESTIMATE in note
    assert costs.money(month.with_serverless_usd) in note
    assert costs.money(month.with_instance_usd) in note


# ---------------------------------------------------------------------- the price table
def test_the_price_table_is_dated_and_for_one_region() -> None:
    table = costs.load_prices()

    assert table.as_of.isoformat() == "2026-12-03"
    assert table.region == "us-east-1"


def test_every_price_has_a_source_and_is_either_confirmed_or_assumed_with_a_reason() -> None:
    for key, entry in costs.load_prices().prices.items():
        assert entry.source.startswith("https://"), key
        assert (entry.confirmed_by is None) != (entry.assumed is None), key
        assert entry.confirmed_by or len(entry.assumed or "") > 20, key


def test_a_price_neither_confirmed_nor_assumed_is_refused() -> None:
    # Given a table whose one price says nothing of where it was checked
    entry = {"price": 1, "unit": "thing", "source": "https://aws.amazon.com/x/pricing/"}
    text = json.dumps(
        {
            "as_of": "2026-12-03",
            "region": "us-east-1",
            "currency": "USD",
            "basis": "test",
            "prices": {"x.thing": entry},
        }
    )

    # then loading it fails
    with pytest.raises(ValueError, match="confirmed_by"):
        costs.load_prices(text)


def test_every_price_the_costs_read_is_in_the_table() -> None:
    # Given a run of every stage and a month of both endpoints (raises UnknownPrice otherwise)
    items = [
        item("scrape", 40, counts={"parts": 2}, invocations=2),
        item("validate", 10, counts={"objects": 2}, delegated={"big.csv": {"job_run_id": "jr"}}),
        item("prepare", 45, glue_execution_seconds=30),
        item("train", 70, counts={"seconds": 60}),
        item("evaluate", 4, decision="PendingManualApproval"),
        item("deploy", 200),
    ]
    run = costs.run_cost(RUN, items, settings())

    assert costs.month_projection(run, settings()).with_instance_usd > 0
