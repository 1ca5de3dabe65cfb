"""How `mlops local run` judges and summarises a run from its ledger items."""

from __future__ import annotations

from typing import Any

from localcloud.ledger_view import StageItem
from localcloud.pipeline import RunOutcome, render, summarise


def stage(name: str, status: str = "SUCCEEDED", **extra: Any) -> StageItem:
    return StageItem(
        run_id="r1",
        stage=name,
        status=status,
        started_at="2026-11-27T08:00:00.000+00:00",
        ended_at="2026-11-27T08:00:02.500+00:00",
        counts=extra.pop("counts", {}),
        reason=extra.pop("reason", None),
        detail=extra,
    )


SCRAPED = stage("scrape", counts={"records": 10})
VALIDATED = stage("validate", counts={"rows_in": 10, "rows_valid": 8, "rows_quarantined": 2})
PREPARED = stage("prepare", counts={"train": 6, "validation": 1, "test": 1})
TRAINED = stage("train")


def outcome(*stages: StageItem, finished: str = "quiescent") -> RunOutcome:
    return RunOutcome("r1", list(stages), finished, 12.0)


def test_a_run_pending_manual_approval_succeeds_and_says_how_to_approve() -> None:
    evaluated = stage(
        "evaluate", "PENDING", decision="PendingManualApproval", model_package_version=3
    )
    run = outcome(SCRAPED, VALIDATED, PREPARED, TRAINED, evaluated)

    summary = summarise(run)

    assert run.exit_code == 0
    assert summary["next"] == "mlops approve 3"


def test_a_failed_stage_fails_the_run_naming_the_stage_and_reason() -> None:
    run = outcome(SCRAPED, VALIDATED, stage("prepare", "FAILED", reason="no valid rows in run r1"))

    summary = summarise(run)

    assert run.exit_code != 0
    assert summary["failure"] == {"stage": "prepare", "reason": "no valid rows in run r1"}


def test_an_approved_model_that_is_never_deployed_fails_the_run() -> None:
    evaluated = stage("evaluate", decision="Approved", model_package_version=1)
    run = outcome(SCRAPED, VALIDATED, PREPARED, TRAINED, evaluated)

    assert run.exit_code != 0
    assert summarise(run)["failure"]["stage"] == "deploy"


def test_a_rejected_model_ends_the_run_successfully() -> None:
    evaluated = stage("evaluate", decision="Rejected", reason="worse than the champion")
    assert outcome(SCRAPED, VALIDATED, PREPARED, TRAINED, evaluated).exit_code == 0


def test_a_timeout_fails_the_run() -> None:
    run = outcome(SCRAPED, finished="timeout")
    assert run.exit_code != 0
    assert summarise(run)["failure"] == {"stage": None, "reason": "timed out after 12s"}


def test_counts_reconcile_when_scraped_records_are_all_valid_or_quarantined() -> None:
    summary = summarise(outcome(SCRAPED, VALIDATED))
    assert summary["reconciliation"]["reconciles"] is True


def test_a_lost_record_is_reported_as_not_reconciling() -> None:
    lossy = stage("validate", counts={"rows_in": 10, "rows_valid": 7, "rows_quarantined": 2})
    summary = summarise(outcome(SCRAPED, lossy))
    assert summary["reconciliation"]["reconciles"] is False
    assert "DOES NOT RECONCILE" in render(summary)


def test_the_summary_lists_stages_in_pipeline_order_with_durations() -> None:
    summary = summarise(outcome(TRAINED, SCRAPED, VALIDATED, PREPARED))
    assert [s["stage"] for s in summary["stages"]] == ["scrape", "validate", "prepare", "train"]
    assert summary["stages"][0]["seconds"] == 2.5
