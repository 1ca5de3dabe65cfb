"""`mlops cost`, the template's settings as it reads them, and the run summary's cost line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localcloud import cli, cost_report
from localcloud.cloud import PROJECT_ROOT
from localcloud.ledger_view import StageItem
from localcloud.pipeline import render
from mlops.costs import money

RUN = "20261203T120000Z-1a2b3c4d"


def stages() -> list[dict[str, Any]]:
    """A demo run's ledger items as `mlops local run --json` prints them."""

    def stage(
        name: str, start: str, end: str, counts: dict[str, Any], **detail: Any
    ) -> dict[str, Any]:
        return {
            "stage": name,
            "status": "SUCCEEDED",
            "started_at": f"2026-12-03T12:{start}+00:00",
            "ended_at": f"2026-12-03T12:{end}+00:00",
            "counts": counts,
            "detail": detail,
        }

    return [
        stage("scrape", "00:00.000", "00:40.000", {"records": 3000, "parts": 1}, invocations=1),
        stage("validate", "00:41.000", "00:51.000", {"objects": 1, "rows_in": 3000}),
        stage("prepare", "00:52.000", "01:30.000", {"train": 2000}, glue_execution_seconds=30),
        stage("train", "01:31.000", "02:31.000", {"seconds": 50}, billable_seconds=50, spot=True),
        stage("evaluate", "02:32.000", "02:36.000", {}, decision="Approved"),
        stage("deploy", "02:37.000", "05:00.000", {}),
    ]


@pytest.fixture
def saved_run(tmp_path: Path) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"run_id": RUN, "ok": True, "stages": stages()}))
    return path


def test_cost_json_prints_one_object_with_each_run_and_the_month(
    saved_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a saved run; when `mlops cost --json` prices it
    code = cli.main(["cost", "--summary", str(saved_run), "--json"])

    # then stdout is one JSON object: the runs with their stages, and the month with each
    # endpoint apart, the price table's date and the comparison with the seed
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    [run] = data["runs"]
    assert run["run_id"] == RUN and run["usd"] > 0
    assert [s["stage"] for s in run["stages"]][:2] == ["scrape", "validate"]
    month = data["month"]
    assert month["serverless_endpoint"]["usd"] > 0 and month["instance_endpoint"]["usd"] > 0
    assert month["total_with_instance_endpoint_usd"] > month["total_with_serverless_endpoint_usd"]
    assert data["prices"]["as_of"] == "2026-12-03"
    assert "a few thousand dollars" in data["comparison"]
    assert data["assumptions"]["requests_per_day"]["why"]


def test_cost_text_prints_a_line_per_run_then_the_month_with_both_endpoints(
    saved_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a saved run; when `mlops cost` prints it
    cli.main(["cost", "--summary", str(saved_run)])

    # then the run's line carries its total and stages, and both endpoints have a line
    out = capsys.readouterr().out
    run_line = next(line for line in out.splitlines() if line.strip().startswith(RUN))
    assert "scrape $" in run_line and "prepare $" in run_line
    assert "endpoint, serverless" in out and "endpoint, instances (2 x ml.m5.large)" in out
    assert "few thousand" in out


def test_requests_per_day_changes_the_serverless_endpoints_month(
    saved_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the same run priced at 1,000 and at 100,000 requests a day
    cli.main(["cost", "--summary", str(saved_run), "--json"])
    few = json.loads(capsys.readouterr().out)["month"]["serverless_endpoint"]["usd"]
    cli.main(["cost", "--summary", str(saved_run), "--json", "--requests-per-day", "100000"])
    many = json.loads(capsys.readouterr().out)["month"]["serverless_endpoint"]["usd"]

    # then the serverless endpoint costs a hundred times as much
    assert many == pytest.approx(100 * few)


def test_cost_of_an_unknown_run_is_refused(saved_run: Path) -> None:
    assert cli.main(["cost", "--summary", str(saved_run), "--run", "nope"]) == 2


def test_cost_without_a_running_cloud_or_a_saved_run_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no local cloud running
    monkeypatch.setattr("localcloud.remote.live_state", lambda root: None)

    # then `mlops cost` exits 3 and names the saved-run alternative
    assert cli.main(["cost"]) == 3
    assert "--summary" in capsys.readouterr().out


def test_the_templates_settings_are_what_the_costs_price() -> None:
    # Given the template as dev deploys it
    settings = cost_report.load_settings(PROJECT_ROOT, config_env="dev")

    # then memory, workers, schedules and counted resources come from it
    assert settings.functions["ValidateFunction"].memory_mb == 3008
    assert settings.functions["ScrapeFunction"].timeout_seconds == 900
    assert (settings.preparation_job.worker_type, settings.preparation_job.workers) == ("G.1X", 2)
    assert settings.scrape_schedule.expression == "rate(1 day)"
    assert not settings.scrape_schedule.enabled
    assert settings.other_schedules["StartPreparationFunction"].expression == "rate(5 minutes)"
    assert settings.training_spot and settings.training_instance_type == "ml.m5.large"
    assert settings.alarms >= 8 and settings.kms_keys >= 2
    assert not settings.instance_endpoint


def test_prod_deploys_the_instance_endpoint_and_fires_its_schedule() -> None:
    settings = cost_report.load_settings(PROJECT_ROOT, config_env="prod")

    assert settings.instance_endpoint
    assert settings.scrape_schedule.enabled


def test_the_run_summary_shows_the_runs_cost() -> None:
    # Given a run's stages as the summary holds them
    settings = cost_report.load_settings(PROJECT_ROOT)
    line, cost = cost_report.run_cost_line(RUN, stages(), settings)
    summary = {
        "run_id": RUN,
        "ok": True,
        "finished": "quiescent",
        "seconds": 300.0,
        "stages": stages(),
        "cost": cost | {"line": line},
    }

    # when it is rendered, then its cost line is there with the total and the stages
    text = render(summary)
    assert "cost on AWS (estimated" in text
    assert money(cost["usd"]) in text and "prepare $" in text


def test_status_shows_the_runs_cost_under_its_timeline() -> None:
    # Given a ledger view holding one stage of a run
    class View:
        def run(self, run_id: str) -> list[StageItem]:
            return [StageItem(run_id=RUN, stage="scrape", status="SUCCEEDED")] if run_id else []

        def queued(self) -> list[Any]:
            return []

    # when its status is printed with a cost line, then the line follows the timeline
    text = cli.status_text(View(), RUN, cost_line="  cost on AWS (estimated): $0.0168")
    assert text.splitlines()[2] == "  cost on AWS (estimated): $0.0168"
