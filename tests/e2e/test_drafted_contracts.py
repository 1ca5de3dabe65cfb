"""Bring your own dataset in one command: a contract drafted from the data runs the whole
pipeline to a deployed model, for datasets the project never saw, and for the demo data as
well as the hand-written contract does."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from localcloud import cli
from mlops.contract import BUNDLED, Contract

pytestmark = pytest.mark.e2e

STAGES = ["validate", "prepare", "train", "evaluate", "deploy"]


def chain(summary: dict[str, Any]) -> list[str]:
    """The run's stages from validation to deployment (the monitor runs beside them)."""
    return [s["stage"] for s in summary["stages"] if s["stage"] in STAGES]


def _loans(n: int, seed: int) -> list[dict[str, Any]]:
    """Loan applications; whether the borrower defaulted. Blanks and NA as exports write them."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.6, 0.4, n).round(-2)
    debt_ratio = rng.uniform(0.0, 0.8, n).round(3)
    age = rng.integers(19, 75, n)
    employment = rng.choice(["salaried", "self-employed", "contract", "retired"], n)
    logit = -1.0 + 4.0 * debt_ratio - 0.00002 * income - 0.01 * (age - 40)
    logit += 0.7 * (employment == "contract")
    defaulted = rng.uniform(size=n) < 1 / (1 + np.exp(-logit))
    rows = []
    for i in range(n):
        rows.append(
            {
                "application": f"A-{i:06d}",
                "income": "NA" if i % 37 == 0 else f"{income[i]:.0f}",
                "debt_ratio": f"{debt_ratio[i]}",
                "age": str(age[i]),
                "employment": "" if i % 53 == 0 else str(employment[i]).title(),
                "applied_on": f"2026-{1 + i % 11:02d}-{1 + i % 28:02d}",
                "defaulted": "yes" if defaulted[i] else "no",
            }
        )
    return rows


def _energy(n: int, seed: int) -> list[dict[str, Any]]:
    """Buildings' yearly electricity use (kWh) from their size, age, type and climate."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(40, 2000, n).round(0)
    built = rng.integers(1950, 2025, n)
    kind = rng.choice(["house", "flat", "office", "shop"], n)
    degree_days = rng.normal(2500, 400, n).round(0)
    factor = {"house": 1.0, "flat": 0.8, "office": 1.4, "shop": 1.7}
    kwh = area * 60 * np.array([factor[k] for k in kind]) * (1 + (2025 - built) / 150)
    kwh = kwh * degree_days / 2500 + rng.normal(0, 3000, n)
    return [
        {
            "building": i,
            "floor_area": f"{area[i]:.0f}",
            "built": str(built[i]),
            "kind": str(kind[i]),
            "degree_days": f"{degree_days[i]:.0f}",
            "kwh": f"{max(kwh[i], 100.0):.1f}",
        }
        for i in range(n)
    ]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _run(
    arguments: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, dict[str, Any], str]:
    import localcloud.remote as remote

    # Its own cloud even if a developer's `mlops local up` is running.
    monkeypatch.setattr(remote, "live_state", lambda root: None)
    code = cli.main(["local", "run", *arguments, "--json", "--timeout", "600"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    return code, summary, captured.out + captured.err


def test_a_classification_dataset_runs_to_a_deployed_model_on_a_drafted_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given loan applications the project has never seen, and no contract
    data = _write(tmp_path / "loans.csv", _loans(1500, seed=11))

    # when the user runs the pipeline on the file, naming only the column to predict
    code, summary, said = _run(["--data", str(data), "--target", "defaulted"], monkeypatch, capsys)

    # then a contract was drafted next to the data and the run deployed a useful model
    drafted = Contract.from_file(tmp_path / "loans.contract.yaml")
    assert "Drafted a contract for loans.csv" in said
    assert (drafted.task, drafted.keys) == ("classification", ["application"])
    assert code == 0, summary.get("failure")
    assert chain(summary) == STAGES
    assert summary["reconciliation"]["rows_in"] == 1500
    assert summary["model"]["candidate"] > summary["model"]["baseline"], summary["model"]


def test_a_regression_dataset_runs_to_a_deployed_model_on_a_contract_from_contract_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given building energy data and a contract drafted by `mlops contract init`
    data = _write(tmp_path / "energy.csv", _energy(1000, seed=12))
    contract = tmp_path / "energy.yaml"
    assert cli.main(["contract", "init", str(data), "--target", "kwh", "-o", str(contract)]) == 0
    assert Contract.from_file(contract).task == "regression"

    # when the pipeline runs with it as written
    code, summary, _ = _run(["--data", str(data), "--contract", str(contract)], monkeypatch, capsys)

    # then the model is deployed and far better than predicting the mean
    assert code == 0, summary.get("failure")
    assert chain(summary) == STAGES
    assert summary["model"]["metric"] == "rmse"
    assert summary["model"]["candidate"] < 0.5 * summary["model"]["baseline"], summary["model"]


def test_the_drafted_contract_for_the_demo_data_models_as_well_as_the_bundled_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from demosite.catalogue import Catalogue

    # given the demo site's listings as a scraper lands them, defects and all
    listings = list(Catalogue.generate(3000).published.values())
    data = _write(tmp_path / "used_cars.csv", listings)

    # when the pipeline runs once with the bundled contract and once with a drafted one
    bundled_code, bundled, _ = _run(
        ["--data", str(data), "--contract", str(BUNDLED / "used_cars.yaml")], monkeypatch, capsys
    )
    drafted_code, drafted, said = _run(
        ["--data", str(data), "--target", "price"], monkeypatch, capsys
    )

    # then both deploy, and the drafted contract's model is within 5% of the bundled RMSE
    assert (bundled_code, drafted_code) == (0, 0), (bundled.get("failure"), drafted.get("failure"))
    assert "look like errors" in said  # the defects were found and named
    rmse = bundled["model"]["candidate"], drafted["model"]["candidate"]
    assert drafted["model"]["metric"] == bundled["model"]["metric"] == "rmse"
    assert rmse[1] <= 1.05 * rmse[0], rmse
