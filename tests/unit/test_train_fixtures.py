"""Builders of small curated runs (splits + preprocessing artifact) for the training tests.

Shaped like the preparation stage's output: key column, target, and already transformed
feature columns (scaled numbers, categorical codes), plus ``preprocessing.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SPLITS = {"train": 0.7, "validation": 0.15, "test": 0.15}


def regression_frame(rows: int, seed: int = 0, noise: float = 1.0) -> pd.DataFrame:
    """y = 3·x1 - 2·x2 + effect(category) + N(0, noise²)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    category = rng.integers(0, 4, size=rows)
    effect = np.array([0.0, 2.0, -1.0, 4.0])[category]
    y = 3 * x1 - 2 * x2 + effect + rng.normal(scale=noise, size=rows)
    return pd.DataFrame(
        {
            "listing_id": [f"L{i:06d}" for i in range(rows)],
            "price": y,
            "x1": x1,
            "x2": x2,
            "category": category,
        }
    )


def classification_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Label "expensive" with probability sigmoid(2·x1 + category effect)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    category = rng.integers(0, 3, size=rows)
    logit = 2 * x1 + np.array([-1.5, 0.0, 1.5])[category] - 0.5
    label = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "expensive", "cheap")
    return pd.DataFrame(
        {
            "listing_id": [f"L{i:06d}" for i in range(rows)],
            "segment": label,
            "x1": x1,
            "x2": x2,
            "category": category,
        }
    )


def artifact_for(task: str, frame: pd.DataFrame) -> dict[str, Any]:
    target = "price" if task == "regression" else "segment"
    artifact: dict[str, Any] = {
        "dataset": "used_cars",
        "contract_version": "1",
        "task": task,
        "target": target,
        "key_columns": ["listing_id"],
        "feature_names": ["x1", "x2", "category"],
        "categorical_features": ["category"],
    }
    if task == "classification":
        artifact["classes"] = sorted(frame[target].unique().tolist())
    return artifact


def write_run(root: Path, frame: pd.DataFrame, artifact: dict[str, Any]) -> dict[str, Path]:
    """Write channel directories (train/validation/test parquet, preprocessing) under ``root``."""
    channels: dict[str, Path] = {}
    start = 0
    for split, share in SPLITS.items():
        end = len(frame) if split == "test" else start + int(len(frame) * share)
        path = root / split
        path.mkdir(parents=True, exist_ok=True)
        frame.iloc[start:end].to_parquet(path / "part-00000.parquet", index=False)
        channels[split] = path
        start = end
    prep = root / "preprocessing"
    prep.mkdir(parents=True, exist_ok=True)
    (prep / "preprocessing.json").write_text(json.dumps(artifact))
    channels["preprocessing"] = prep
    return channels


def train_argv(channels: dict[str, Path], model_dir: Path, output_dir: Path) -> list[str]:
    return [
        "--model-dir", str(model_dir),
        "--train", str(channels["train"]),
        "--validation", str(channels["validation"]),
        "--test", str(channels["test"]),
        "--preprocessing", str(channels["preprocessing"]),
        "--output-data-dir", str(output_dir / "data"),
        "--output-dir", str(output_dir),
        "--run_id", "20261127T083000Z-1a2b3c4d",
        "--dataset", "used_cars",
        "--contract_version", "1",
        "--max_iter", "200",
    ]  # fmt: skip


MAKES = {
    "toyota": {"yaris": 18000, "corolla": 23000, "rav4": 31000},
    "ford": {"fiesta": 17000, "focus": 22000},
    "bmw": {"3 series": 40000, "x5": 60000},
}


def used_cars_raw(rows: int, seed: int = 0, noise: float = 1000.0) -> pd.DataFrame:
    """Raw used_cars records (the contract's columns plus lineage) with a known price rule."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(rows):
        make = list(MAKES)[rng.integers(0, len(MAKES))]
        model = list(MAKES[make])[rng.integers(0, len(MAKES[make]))]
        year = int(rng.integers(2000, 2026))
        mileage = int(rng.integers(0, 150_000))
        fuel = ["petrol", "diesel", "hybrid"][rng.integers(0, 3)]
        price = MAKES[make][model] * 0.92 ** (2026 - year) - 0.04 * mileage
        records.append(
            {
                "listing_id": f"L{i:06d}",
                "make": make,
                "model": model,
                "year": year,
                "mileage": mileage,
                "fuel": fuel,
                "transmission": ["manual", "automatic"][rng.integers(0, 2)],
                "engine_size": 1.6,
                "body": "sedan",
                "posted_date": "2026-11-01",
                "price": float(max(price + rng.normal(0, noise), 600.0)),
                "source_url": f"http://127.0.0.1/listing/{i}",
                "fetched_at": "2026-11-27T08:00:00Z",
            }
        )
    return pd.DataFrame.from_records(records)


def segment_contract() -> dict[str, Any]:
    """used_cars as a classification dataset: is a listing "premium" or "budget"?"""
    from mlops.contract import bundled_contract

    contract = bundled_contract("used_cars").model_dump(mode="json")
    segment = contract["columns"]["fuel"] | {
        "allowed": ["budget", "premium"],
        "aliases": {},
        "feature": False,
        "impute": None,
        "description": "Price segment.",
    }
    contract["columns"]["segment"] = segment
    contract["columns"]["price"]["required"] = False
    return contract | {"task": "classification", "target": "segment", "acceptance": {}}


def with_segment(raw: pd.DataFrame) -> pd.DataFrame:
    """Premium: a BMW, or any car from 2018 on."""
    premium = (raw["make"] == "bmw") | (raw["year"] >= 2018)
    return raw.assign(segment=np.where(premium, "premium", "budget"))


def used_cars_run(
    root: Path, raw: pd.DataFrame, run_id: str = "r1", contract: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Channels prepared from ``raw`` by the preparation stage's own pandas pipeline."""
    from mlops.contract import bundled_contract
    from mlops.ml.pipeline import prepare

    contract = contract or bundled_contract("used_cars").model_dump(mode="json")
    prepared = prepare(raw, contract, run_id=run_id)
    channels: dict[str, Path] = {}
    for split, frame in prepared.splits.items():
        path = root / split
        path.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path / "part-00000.parquet", index=False)
        channels[split] = path
    prep = root / "preprocessing"
    prep.mkdir(parents=True, exist_ok=True)
    (prep / "preprocessing.json").write_text(json.dumps(prepared.artifact))
    channels["preprocessing"] = prep
    return channels
