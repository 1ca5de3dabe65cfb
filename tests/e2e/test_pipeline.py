"""The pipeline on the local cloud: a demo run end to end, a user's upload, a failing handler
retried then dead-lettered, and nothing left running afterwards."""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

import localcloud.cli as cli
import localcloud.cloud as cloud_module
from localcloud.cloud import LocalCloud
from localcloud.ledger_view import LedgerView, StageItem
from localcloud.pipeline import follow, start_demo_run
from localcloud.remote import write_state

pytestmark = pytest.mark.e2e

# The demo site is ours, on 127.0.0.1: no need for the template's politeness delay.
FAST = {"PolitenessDelaySeconds": "0"}
DEMO_LISTINGS = 300


def ledger(cloud: LocalCloud) -> LedgerView:
    return LedgerView(cloud.client("dynamodb"), cloud.resources["RunLedgerTable"])


def wait_for_stage(view: LedgerView, run_id: str, stage: str, timeout: float = 120) -> StageItem:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in view.run(run_id):
            if item.stage == stage and item.status != "STARTED":
                return item
        time.sleep(0.3)
    raise AssertionError(f"{stage} of {run_id} not recorded within {timeout}s")


def user_client(cloud: LocalCloud, service: str) -> Any:
    """A plain boto3 client, as a user would point the aws CLI at the local endpoint."""
    return boto3.client(
        service,
        endpoint_url=cloud.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="user",
        aws_secret_access_key="user",
    )


@pytest.fixture
def light_cloud() -> Iterator[LocalCloud]:
    """Handlers only: managed compute is left to moto (no Spark, no training)."""
    with LocalCloud(parameters=FAST, executors=[], http_api=False) as cloud:
        yield cloud


def test_a_demo_run_goes_through_every_stage_and_its_counts_reconcile() -> None:
    demosite = pytest.importorskip("demosite")
    with LocalCloud(parameters=FAST) as cloud, demosite.serve(listings=DEMO_LISTINGS) as site:
        view = ledger(cloud)
        start_demo_run(cloud, site.url)
        outcome = follow(cloud, view, since=set(), run_id=None, timeout=900, echo=lambda line: None)

    stages = {item.stage: item for item in outcome.stages}
    assert outcome.finished == "quiescent"
    assert not outcome.failed, [(s.stage, s.short_reason) for s in outcome.failed]
    assert outcome.missing is None, f"{outcome.missing[0]} triggered nothing"
    assert outcome.ok
    assert not [s for s in stages if s.startswith("dlq:")]
    scraped = stages["scrape"].counts["records"]
    validated = stages["validate"].counts
    assert scraped == DEMO_LISTINGS
    assert scraped == validated["rows_valid"] + validated["rows_quarantined"]
    if "prepare" in stages:
        prepared = stages["prepare"].counts
        split = prepared["train"] + prepared["validation"] + prepared["test"]
        dropped = prepared.get("duplicates_dropped", 0) + prepared.get("rows_dropped", 0)
        assert split + dropped == validated["rows_valid"]


def test_a_csv_uploaded_by_a_user_starts_a_run(light_cloud: LocalCloud, tmp_path: Path) -> None:
    from demosite.catalogue import COLUMNS, Catalogue

    rows = Catalogue.generate(listings=40, seed=3).listings
    csv = ",".join(COLUMNS) + "\n"
    for row in rows:
        csv += ",".join("" if row[c] is None else str(row[c]) for c in COLUMNS) + "\n"
    s3 = user_client(light_cloud, "s3")

    put = s3.put_object(
        Bucket=light_cloud.resources["RawBucket"], Key="used_cars/my-cars.csv", Body=csv.encode()
    )

    from mlops.runs import run_id_for_object

    run_id = run_id_for_object("used_cars/my-cars.csv", put["VersionId"])
    validate = wait_for_stage(ledger(light_cloud), run_id, "validate")
    assert validate.status == "SUCCEEDED"
    assert validate.counts["rows_valid"] + validate.counts["rows_quarantined"] == len(rows)


def test_a_failing_handler_is_retried_then_dead_lettered_and_shown_by_status(
    light_cloud: LocalCloud,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    attempts: list[str] = []
    real_loader = cloud_module.load_handler

    def failing_validate(spec: Any) -> Any:
        if spec.logical_id != "ValidateFunction":
            return real_loader(spec)

        def handler(event: dict[str, Any], context: Any) -> None:
            attempts.append(event["id"])
            raise ConnectionError("the lake is unreachable")

        return handler

    monkeypatch.setattr(cloud_module, "load_handler", failing_validate)
    run_id = "20261127T000000Z-deadbeef"
    key = f"dataset=used_cars/ingest_date=2026-11-27/run_id={run_id}/part-00000.jsonl.gz"
    body = gzip.compress(json.dumps({"listing_id": "L1"}).encode() + b"\n")
    user_client(light_cloud, "s3").put_object(
        Bucket=light_cloud.resources["RawBucket"], Key=key, Body=body
    )

    dead = wait_for_stage(ledger(light_cloud), run_id, "dlq:ValidateFunction", timeout=60)
    assert light_cloud.wait_quiescent(timeout=30)
    assert len(attempts) == light_cloud.retry_attempts("ValidateFunction")
    assert len(attempts) == 1 + int(
        light_cloud.template.resources["ValidateFunctionEventInvokeConfig"]["Properties"][
            "MaximumRetryAttempts"
        ]
    )
    assert len(set(attempts)) == 1  # the same event each time
    assert dead.status == "FAILED" and "unreachable" in (dead.reason or "")
    sqs = user_client(light_cloud, "sqs")
    dlq_name = light_cloud.functions["ValidateFunction"].dead_letter_arn.rsplit(":", 1)[1]
    dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
    parked = sqs.receive_message(QueueUrl=dlq_url)["Messages"]
    assert json.loads(parked[0]["Body"])["id"] == attempts[0]

    write_state(
        tmp_path,
        {
            "pid": os.getpid(),
            "endpoint_url": light_cloud.endpoint_url,
            "resources": light_cloud.resources,
            "rules": light_cloud.rule_queues(),
        },
    )
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    capsys.readouterr()
    assert cli.main(["status", run_id]) == 0
    shown = capsys.readouterr().out
    assert "dlq:ValidateFunction" in shown and "FAILED" in shown


def test_status_says_when_no_local_cloud_is_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    assert cli.main(["status"]) != 0
    assert "no local cloud running" in capsys.readouterr().out


def _accepts(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


def test_nothing_is_left_running_after_the_cloud_stops() -> None:
    before = set(threading.enumerate())
    cloud = LocalCloud(parameters=FAST)
    cloud.start()
    urls = [cloud.endpoint_url] + ([cloud.http_api_url] if cloud.http_api_url else [])
    assert all(_accepts(url) for url in urls)
    cloud.fire_schedule("ScrapeFunction", {"start_url": "http://127.0.0.1:9/"})

    cloud.stop()

    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == []
    assert not any(_accepts(url) for url in urls)
    assert not cloud.workdir.exists()


def test_mlops_local_run_on_a_user_dataset_prints_a_reconciled_json_summary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import localcloud.remote as remote
    from demosite.catalogue import COLUMNS, Catalogue

    # Its own cloud even if a developer's `mlops local up` is running.
    monkeypatch.setattr(remote, "live_state", lambda root: None)
    contract = tmp_path / "garage.yaml"
    bundled = Path(cli.PROJECT_ROOT) / "layers/shared/mlops/contracts/used_cars.yaml"
    contract.write_text(bundled.read_text().replace("name: used_cars", "name: garage_cars", 1))
    data = tmp_path / "cars.csv"
    rows = Catalogue.generate(listings=150, seed=5).listings
    lines = [",".join(COLUMNS)]
    lines += [",".join("" if r[c] is None else str(r[c]) for c in COLUMNS) for r in rows]
    data.write_text("\n".join(lines) + "\n")

    arguments = ["local", "run", "--data", str(data), "--contract", str(contract)]
    code = cli.main([*arguments, "--json", "--timeout", "600"])

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, summary.get("failure")
    assert summary["ok"] is True
    assert summary["run_id"].startswith("upload-")
    assert summary["reconciliation"]["rows_in"] == len(rows)
    assert summary["reconciliation"]["reconciles"] is True
    assert [s["stage"] for s in summary["stages"]][:2] == ["validate", "prepare"]
