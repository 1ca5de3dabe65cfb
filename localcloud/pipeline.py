"""One pipeline run on the local cloud: start it (demo crawl or a user's upload), follow the run
ledger as it progresses, decide when it is over, and summarise it."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib import request

from localcloud.ledger_view import LedgerView, StageItem

STAGE_ORDER = ("scrape", "validate", "prepare", "train", "evaluate", "deploy")
SAMPLE_EVENT = Path(__file__).resolve().parent.parent / "events" / "http_post_predictions.json"


class Target(Protocol):
    """A cloud a run can be driven on: the in-process LocalCloud or a running `mlops local up`."""

    resources: dict[str, str]
    http_api_url: str | None

    def client(self, service: str) -> Any: ...

    def fire_schedule(self, function: str, detail: dict[str, Any] | None = None) -> Any: ...

    def is_quiescent(self) -> bool: ...


@dataclass
class RunOutcome:
    run_id: str | None
    stages: list[StageItem]
    finished: str  # "quiescent" | "failed" | "timeout"
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[StageItem]:
        return [s for s in self.stages if s.status == "FAILED"]

    @property
    def stuck(self) -> list[StageItem]:
        return [s for s in self.stages if s.status == "STARTED"]

    @property
    def missing(self) -> tuple[str, str] | None:
        """A stage that succeeded while the stage it should trigger never recorded anything."""
        by_stage = {s.stage: s for s in self.stages}
        for stage, successor in itertools.pairwise(STAGE_ORDER):
            item = by_stage.get(stage)
            if item is None or item.status != "SUCCEEDED" or successor in by_stage:
                continue
            if stage == "evaluate" and item.detail.get("decision") != "Approved":
                continue
            return stage, successor
        return None

    @property
    def ok(self) -> bool:
        return (
            self.finished == "quiescent"
            and bool(self.stages)
            and not self.failed
            and not self.stuck
            and self.missing is None
            and self.run_id not in (None, "unknown")
        )

    @property
    def exit_code(self) -> int:
        if self.ok:
            return 0
        return 2 if self.finished == "timeout" else 1


def start_demo_run(target: Target, site_url: str) -> None:
    """Fire the scraper's schedule with the demo site as its start page."""
    target.fire_schedule("ScrapeFunction", {"start_url": f"{site_url}listings?page=1"})


def upload_dataset(target: Target, data: Path, contract: Path) -> tuple[str, str]:
    """Upload a contract and a data file as a user would with the aws CLI; returns the
    dataset name and the run id the upload becomes."""
    from mlops.contract import Contract
    from mlops.runs import run_id_for_object

    dataset = Contract.from_file(contract).name
    s3 = target.client("s3")
    s3.put_object(
        Bucket=target.resources["ArtifactsBucket"],
        Key=f"contracts/{dataset}.yaml",
        Body=contract.read_bytes(),
    )
    key = f"{dataset}/{data.name}"
    put = s3.put_object(Bucket=target.resources["RawBucket"], Key=key, Body=data.read_bytes())
    return dataset, run_id_for_object(key, put.get("VersionId") or "null")


def follow(
    target: Target,
    view: LedgerView,
    *,
    since: set[tuple[str, str]],
    run_id: str | None,
    timeout: float,
    echo: Callable[[str], None],
    poll: float = 0.5,
    calm_cycles: int = 4,
) -> RunOutcome:
    """Print each stage transition of the run until it is quiescent, fails, or times out."""
    started = time.monotonic()
    seen: dict[tuple[str, str], str] = {}
    calm = 0
    finished = "timeout"
    while time.monotonic() - started < timeout:
        items = [i for i in view.items() if (i.run_id, i.stage) not in since or i.ended_at]
        if run_id is None:
            run_id = _discover_run(items, since)
        mine = [i for i in items if i.run_id == run_id or (i.run_id == "unknown" and i.is_dlq)]
        for item in sorted(mine, key=lambda i: i.started_at or ""):
            key = (item.run_id, item.stage)
            marker = f"{item.status}:{json.dumps(item.counts, sort_keys=True, default=str)}"
            if seen.get(key) != marker and (key not in since or item.is_dlq):
                seen[key] = marker
                echo(item.line())
        # A remote cloud cannot show its in-flight work: an open stage stands in for it.
        quiet = target.is_quiescent() and (
            getattr(target, "sees_inflight_work", False)
            or not any(i.status == "STARTED" for i in mine)
        )
        calm = calm + 1 if quiet else 0
        if calm >= calm_cycles:
            finished = "quiescent"
            break
        time.sleep(poll)
    stages = [i for i in view.items() if i.run_id == run_id] if run_id else []
    stages += [i for i in view.items() if i.run_id == "unknown" and i.is_dlq and _new(i, since)]
    return RunOutcome(run_id, stages, finished, time.monotonic() - started)


def _new(item: StageItem, since: set[tuple[str, str]]) -> bool:
    return (item.run_id, item.stage) not in since


def _discover_run(items: list[StageItem], since: set[tuple[str, str]]) -> str | None:
    fresh = [i for i in items if _new(i, since) and i.run_id != "unknown"]
    fresh.sort(key=lambda i: i.started_at or "")
    return fresh[0].run_id if fresh else None


def summarise(
    outcome: RunOutcome,
    *,
    noise_sigma: float | None = None,
    prediction: dict[str, Any] | None = None,
    web_page: str | None = None,
) -> dict[str, Any]:
    """The run as one JSON-able object: per-stage status, duration and counts, plus the
    reconciliation, splits, model and sample prediction when those stages ran."""
    by_stage = {s.stage: s for s in outcome.stages}
    summary: dict[str, Any] = {
        "run_id": outcome.run_id,
        "ok": outcome.ok,
        "finished": outcome.finished,
        "seconds": round(outcome.seconds, 1),
        "stages": [s.as_dict() for s in _ordered(outcome.stages)],
    }
    scrape, validate = by_stage.get("scrape"), by_stage.get("validate")
    if validate:
        valid = int(validate.counts.get("rows_valid", 0))
        quarantined = int(validate.counts.get("rows_quarantined", 0))
        rows_in = int(validate.counts.get("rows_in", valid + quarantined))
        reconciliation: dict[str, Any] = {
            "rows_in": rows_in,
            "rows_valid": valid,
            "rows_quarantined": quarantined,
        }
        if scrape and "records" in scrape.counts:
            reconciliation["records_scraped"] = int(scrape.counts["records"])
        reconciliation["reconciles"] = rows_in == valid + quarantined and (
            "records_scraped" not in reconciliation or reconciliation["records_scraped"] == rows_in
        )
        summary["reconciliation"] = reconciliation
    prepare = by_stage.get("prepare")
    if prepare:
        summary["splits"] = {
            k: prepare.counts[k] for k in ("train", "validation", "test") if k in prepare.counts
        }
    evaluate = by_stage.get("evaluate")
    if evaluate:
        model = {
            k: evaluate.detail.get(k)
            for k in ("decision", "model_package_version", "metric", "candidate", "baseline")
        }
        model["champion"] = evaluate.detail.get("champion")
        summary["model"] = model
        if evaluate.detail.get("decision") == "PendingManualApproval":
            summary["next"] = f"mlops approve {evaluate.detail.get('model_package_version')}"
    deploy = by_stage.get("deploy")
    if deploy:
        summary["endpoint"] = {
            k: deploy.detail.get(k)
            for k in ("endpoint_name", "model_package_version", "endpoint_config_name")
        }
    if noise_sigma is not None:
        summary["noise_floor"] = noise_sigma
    if prediction is not None:
        summary["sample_prediction"] = prediction
    if web_page is not None:
        summary["web_page"] = web_page
    if not outcome.ok:
        summary["failure"] = _failure(outcome)
    return summary


def _ordered(stages: list[StageItem]) -> list[StageItem]:
    def rank(item: StageItem) -> tuple[int, str]:
        order = STAGE_ORDER.index(item.stage) if item.stage in STAGE_ORDER else len(STAGE_ORDER)
        return order, item.started_at or ""

    return sorted(stages, key=rank)


def _failure(outcome: RunOutcome) -> dict[str, Any]:
    if outcome.failed:
        first = _ordered(outcome.failed)[0]
        return {"stage": first.stage, "reason": first.short_reason or "no reason recorded"}
    if outcome.stuck:
        first = _ordered(outcome.stuck)[0]
        return {"stage": first.stage, "reason": f"still {first.status} when the run went quiet"}
    if outcome.finished == "timeout":
        return {"stage": None, "reason": f"timed out after {outcome.seconds:.0f}s"}
    if outcome.missing:
        done, successor = outcome.missing
        return {
            "stage": successor,
            "reason": f"{done} succeeded but {successor} never recorded anything for this run",
        }
    return {"stage": None, "reason": "no stage recorded anything for this run"}


def sample_prediction(target: Target) -> dict[str, Any] | None:
    """POST the sample request of events/http_post_predictions.json to the web app, if served."""
    if not target.http_api_url or not SAMPLE_EVENT.exists():
        return None
    body = json.loads(SAMPLE_EVENT.read_text())["body"]
    http = request.Request(
        f"{target.http_api_url.rstrip('/')}/predictions",
        data=body.encode() if isinstance(body, str) else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with request.urlopen(http, timeout=30) as response:
            return {
                "status": response.status,
                "request": json.loads(body),
                **_json(response.read()),
            }
    except Exception as exc:  # an HTTPError carries the API's own error body
        payload = getattr(exc, "read", lambda: b"")()
        return {"status": getattr(exc, "code", None), "error": str(exc), **_json(payload)}


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"body": raw.decode(errors="replace")[:500]}
    return {"response": value}


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_number(v)}" for k, v in value.items()) + "}"
    return str(value)


def render(summary: dict[str, Any]) -> str:
    """The summary as readable text."""
    lines = [f"Run {summary['run_id']}: {'OK' if summary['ok'] else 'FAILED'}"]
    lines.append(f"  finished: {summary['finished']} after {summary['seconds']}s")
    for stage in summary["stages"]:
        counts = " ".join(f"{k}={v}" for k, v in (stage.get("counts") or {}).items())
        seconds = f"{stage['seconds']:.1f}s" if stage.get("seconds") is not None else "-"
        reason = f"  ({stage['reason'].strip().splitlines()[0]})" if stage.get("reason") else ""
        lines.append(f"  {stage['stage']:<28} {stage['status']:<10} {seconds:>7}  {counts}{reason}")
    rec = summary.get("reconciliation")
    if rec:
        scraped = f"scraped {rec['records_scraped']} = " if "records_scraped" in rec else ""
        verdict = "reconciles" if rec["reconciles"] else "DOES NOT RECONCILE"
        lines.append(
            f"  rows: {scraped}in {rec['rows_in']} = valid {rec['rows_valid']}"
            f" + quarantined {rec['rows_quarantined']} ({verdict})"
        )
    if summary.get("splits"):
        lines.append("  splits: " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    model = summary.get("model")
    if model:
        lines.append(
            f"  model: version {model.get('model_package_version')} {model.get('decision')}"
            f" ({model.get('metric')}: candidate {_number(model.get('candidate'))},"
            f" baseline {_number(model.get('baseline'))},"
            f" champion {_number(model.get('champion'))})"
        )
    if (summary.get("cost") or {}).get("line"):
        lines.append(summary["cost"]["line"])
    if summary.get("endpoint"):
        endpoint = summary["endpoint"]
        lines.append(
            f"  endpoint: {endpoint.get('endpoint_name')} serving version"
            f" {endpoint.get('model_package_version')}"
        )
    if "noise_floor" in summary:
        line = f"  demo data noise floor (best reachable RMSE): {summary['noise_floor']}"
        candidate = (model or {}).get("candidate")
        if (model or {}).get("metric") == "rmse" and isinstance(candidate, int | float):
            line += f"; the candidate is at {candidate / summary['noise_floor']:.2f}x the floor"
        lines.append(line)
    sample = summary.get("sample_prediction")
    if sample:
        predictions = (sample.get("response") or {}).get("predictions") or []
        answer = _number(predictions[0]) if predictions else json.dumps(sample)[:300]
        lines.append(
            f"  sample prediction (POST /predictions, HTTP {sample.get('status')}):"
            f" {json.dumps(sample.get('request'))} -> {answer}"
        )
    if summary.get("web_page"):
        note = f" ({summary['web_page_note']})" if summary.get("web_page_note") else ""
        lines.append(f"  web page: {summary['web_page']}{note}")
    if summary.get("next"):
        lines.append(f"  awaiting approval: {summary['next']}")
    if summary.get("failure"):
        failure = summary["failure"]
        lines.append(f"  failed stage: {failure['stage']}: {failure['reason']}")
    return "\n".join(lines)
