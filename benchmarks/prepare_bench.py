"""Preparation wall time: the Glue job (glue/prepare.py) on local Spark at growing row counts.

Generates validated-zone rows in the used_cars shape (messy labels, missing values, unusable
targets, re-fetched listings), runs the job exactly as the local cloud's Glue executor does
(a subprocess with local[2] Spark), and prints seconds, rows/s and how time grows against
rows, relative to the smallest size as the baseline. ``--pandas`` also times the pandas
reference (mlops.ml.pipeline.prepare) on the same rows.

    .venv/bin/python benchmarks/prepare_bench.py --rows 10000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.contract import bundled_contract

ROOT = Path(__file__).resolve().parent.parent

RUN = "20261127T080000Z-bench000"
MAKES = ["toyota", "Ford", "VW", "BMW ", "Mercedes Benz", "kia", "honda", "audi", "nissan"]


def used_car_rows(n: int, seed: int = 11) -> pd.DataFrame:
    """n validated rows; about 3 % re-fetched duplicates and 2 % without a price."""
    rng = np.random.default_rng(seed)
    electric = rng.random(n) < 0.2
    distinct = max(int(n * 0.97), 1)
    price = rng.uniform(1_000, 80_000, n)
    return pd.DataFrame(
        {
            "listing_id": [f"L{i % distinct:06d}" for i in range(n)]
            if n <= 999_999
            else [f"L{i % distinct:07d}" for i in range(n)],
            "make": rng.choice(MAKES, n),
            "model": rng.choice(["corolla", "focus", "golf", "x3", "civic", None], n),
            "year": rng.integers(1995, 2027, n),
            "mileage": rng.integers(0, 300_000, n),
            "fuel": np.where(electric, "electric", rng.choice(["petrol", "Diesel", "hybrid"], n)),
            "transmission": rng.choice(["manual", "Auto"], n),
            "engine_size": np.where(electric, np.nan, rng.uniform(1.0, 4.0, n).round(1)),
            "body": rng.choice(["sedan", "SUV", "estate", "hatchback"], n),
            "posted_date": pd.Timestamp("2026-10-01"),
            "price": np.where(rng.random(n) < 0.02, np.nan, price),
            "source_url": "http://127.0.0.1/listing",
            "fetched_at": [f"2026-11-27T08:{i // 60 % 60:02d}:{i % 60:02d}Z" for i in range(n)],
            "ingest_time": pd.Timestamp("2026-11-27 08:30:00"),
        }
    )


def run_job(rows: pd.DataFrame, work: Path) -> tuple[float, dict]:
    partition = work / "validated" / "used_cars" / "ingest_date=2026-11-27" / f"run_id={RUN}"
    partition.mkdir(parents=True)
    rows.to_parquet(partition / "part-0.snappy.parquet")
    contract = work / "contract.json"
    contract.write_text(json.dumps(bundled_contract("used_cars").model_dump(mode="json")))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "layers" / "shared")
    env["PYSPARK_PYTHON"] = sys.executable
    command = [
        sys.executable, str(ROOT / "glue" / "prepare.py"),
        "--JOB_NAME", "mlops-prepare-bench",
        "--run_id", RUN,
        "--dataset", "used_cars",
        "--validated_path", str(work / "validated" / "used_cars"),
        "--curated_path", str(work / "curated"),
        "--contract_uri", str(contract),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the job failed:\n{done.stderr[-3000:]}")
    manifest = json.loads((work / "curated" / "_manifest.json").read_text())
    return seconds, manifest["counts"]


def run_pandas(rows: pd.DataFrame) -> float:
    from mlops.ml.pipeline import prepare

    contract = bundled_contract("used_cars").model_dump(mode="json")
    started = time.perf_counter()
    prepare(rows, contract, run_id=RUN)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--pandas", action="store_true", help="also time the pandas reference")
    options = parser.parse_args()

    print(f"load average at the start: {os.getloadavg()}", flush=True)
    results = []
    for n in options.rows:
        rows = used_car_rows(n)
        with tempfile.TemporaryDirectory(prefix="prepare-bench-") as tmp:
            seconds, counts = run_job(rows, Path(tmp))
        pandas_seconds = run_pandas(rows) if options.pandas else None
        results.append((n, seconds, pandas_seconds))
        extra = f"  pandas reference {pandas_seconds:7.1f} s" if pandas_seconds else ""
        print(
            f"{n:>9,} rows  glue job {seconds:7.1f} s  {n / seconds:>10,.0f} rows/s{extra}  "
            f"counts {counts}",
            flush=True,
        )

    base_rows, base_seconds, _ = results[0]
    print(f"\nbaseline: {base_rows:,} rows in {base_seconds:.1f} s (includes Spark start-up)")
    for n, seconds, _ in results[1:]:
        row_ratio, time_ratio = n / base_rows, seconds / base_seconds
        verdict = "sub-linear" if time_ratio < 0.8 * row_ratio else "~linear or worse"
        print(
            f"{n:,} rows: {row_ratio:,.0f}x the rows took {time_ratio:.1f}x the time "
            f"({verdict}; time ratio / row ratio = {time_ratio / row_ratio:.3f})"
        )
        # Fixed costs (JVM, Python workers, job scheduling) hide the per-row cost at small sizes.
        marginal = (n - base_rows) / max(seconds - base_seconds, 1e-9)
        print(f"  marginal throughput beyond the baseline: {marginal:,.0f} rows/s")
    print(f"load average at the end (shared {os.cpu_count()}-core box): {os.getloadavg()}")


if __name__ == "__main__":
    main()
