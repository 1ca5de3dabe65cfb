"""A user's own dataset (a CSV and a contract, no code) runs the whole pipeline on the local
cloud, for a classification task and for a regression task unrelated to the demo data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from localcloud import cli

pytestmark = pytest.mark.e2e

CHURN_CONTRACT = """
name: churn
version: "0.1.0"
description: Customers of a subscription service; predict who cancels.
task: classification
target: churned
keys: [customer_id]
columns:
  customer_id: {type: string, feature: false}
  tenure_months: {type: int, min: 0, max: 120, impute: median}
  monthly_fee: {type: float, min: 0, max: 500, impute: median}
  support_calls: {type: int, min: 0, max: 50, impute: median}
  plan: {type: category, allowed: [basic, plus, premium], impute: most_frequent}
  churned: {type: category, allowed: ["yes", "no"], feature: false}
"""

HOUSES_CONTRACT = """
name: houses
version: "0.1.0"
description: Houses sold; predict the sale price.
task: regression
target: price
keys: [house_id]
columns:
  house_id: {type: string, feature: false}
  area_m2: {type: float, min: 10, max: 1000, impute: median}
  rooms: {type: int, min: 1, max: 20, impute: median}
  district: {type: category, allowed: [north, south, east, west], impute: most_frequent}
  price: {type: float, min: 1000, max: 5000000, feature: false}
"""


def _churn_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    fee = rng.uniform(10, 120, n).round(2)
    calls = rng.poisson(2, n)
    plan = rng.choice(["basic", "plus", "premium"], n)
    logit = 1.5 - 0.08 * tenure + 0.02 * fee + 0.5 * calls - 0.8 * (plan == "premium")
    churned = rng.uniform(size=n) < 1 / (1 + np.exp(-logit))
    return [
        {
            "customer_id": f"C{i:05d}",
            "tenure_months": int(tenure[i]),
            "monthly_fee": float(fee[i]),
            "support_calls": int(calls[i]),
            "plan": str(plan[i]),
            "churned": "yes" if churned[i] else "no",
        }
        for i in range(n)
    ]


def _house_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    area = rng.uniform(30, 250, n).round(1)
    rooms = np.clip((area / 30).astype(int) + rng.integers(0, 2, n), 1, 20)
    district = rng.choice(["north", "south", "east", "west"], n)
    premium = {"north": 1.3, "south": 1.0, "east": 0.9, "west": 1.1}
    price = area * 3000 * np.array([premium[d] for d in district]) + rooms * 5000
    price = price + rng.normal(0, 20000, n)
    return [
        {
            "house_id": f"H{i:05d}",
            "area_m2": float(area[i]),
            "rooms": int(rooms[i]),
            "district": str(district[i]),
            "price": round(float(price[i]), 2),
        }
        for i in range(n)
    ]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns = list(rows[0])
    lines = [",".join(columns)] + [",".join(str(row[c]) for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    contract: str,
    rows: list[dict[str, Any]],
) -> tuple[int, dict[str, Any]]:
    import localcloud.remote as remote

    # Its own cloud even if a developer's `mlops local up` is running.
    monkeypatch.setattr(remote, "live_state", lambda root: None)
    contract_file = tmp_path / "contract.yaml"
    contract_file.write_text(contract)
    data = _write_csv(tmp_path / "data.csv", rows)
    arguments = ["local", "run", "--data", str(data), "--contract", str(contract_file)]
    code = cli.main([*arguments, "--json", "--timeout", "600"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return code, summary


def test_a_classification_dataset_trains_deploys_and_beats_the_majority_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a churn CSV and its contract, with no code written for them
    rows = _churn_rows(1200, seed=3)

    # when the user runs the pipeline on them
    code, summary = _run(tmp_path, monkeypatch, capsys, CHURN_CONTRACT, rows)

    # then every stage succeeds and the model beats the majority-class baseline
    assert code == 0, summary.get("failure")
    assert summary["reconciliation"]["rows_in"] == len(rows)
    # (the monitor runs beside this chain, from validation on)
    assert [s["stage"] for s in summary["stages"] if s["stage"] != "monitor"] == [
        "validate",
        "prepare",
        "train",
        "evaluate",
        "deploy",
    ]
    model = summary["model"]
    assert model["decision"] == "Approved"
    assert model["candidate"] > model["baseline"], model


def test_a_regression_dataset_unlike_the_demo_trains_and_beats_the_mean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _house_rows(800, seed=4)

    code, summary = _run(tmp_path, monkeypatch, capsys, HOUSES_CONTRACT, rows)

    assert code == 0, summary.get("failure")
    assert summary["model"]["metric"] == "rmse"
    assert summary["model"]["candidate"] < 0.5 * summary["model"]["baseline"], summary["model"]
    assert summary["endpoint"]["endpoint_name"] == "mlops-houses-dev"


def test_a_broken_contract_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = tmp_path / "contract.yaml"
    contract.write_text(CHURN_CONTRACT.replace("type: int", "type: integer", 1))
    data = _write_csv(tmp_path / "data.csv", _churn_rows(10, seed=1))

    code = cli.main(["local", "run", "--data", str(data), "--contract", str(contract)])

    assert code == 2
    assert "columns.tenure_months.type" in capsys.readouterr().out
