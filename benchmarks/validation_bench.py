"""Validation throughput and memory: our vectorized checks against the same checks in pandera.

Generates used_cars frames shaped like the scraper's JSON lines (messy make spellings, some
invalid rows), validates them in memory with ``mlops.validation.checks.check_frame`` and with
a pandera schema expressing the same rules, and prints rows/s for both and their ratio. Peak
memory of ``check_frame`` is measured in a fresh subprocess per size by sampling RSS, against
the frame's own in-memory size (``memory_usage(deep=True)``).

Targets: at least 10x pandera's throughput; peak memory under 3x the frame.

    .venv/bin/python benchmarks/validation_bench.py [--sizes 100000 1000000]

Each throughput is the best of the same number of runs on either side (``--repeats``), the
two sides taking turns, so other work on a shared machine skews it less and alike, and
neither side gets more tries at a lucky run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops.contract import Contract, bundled_contract
from mlops.validation.checks import check_frame

ROOT = Path(__file__).resolve().parent.parent

MAKES = {
    "toyota": ["Toyota", "TOYOTA", "toyota"],
    "ford": ["Ford", "FORD"],
    "volkswagen": ["Volkswagen", "VW", "V.W.", "Volkswagen "],
    "bmw": ["BMW", "Bmw"],
    "mercedes-benz": ["Mercedes-Benz", "Mercedes", "Mercedes Benz", "Merc"],
    "kia": ["Kia", "KIA"],
}
MODELS = ["corolla", "golf", "focus", "3 series", "c-class", "ceed", "Yaris", "Polo"]
INVALID_SHARE = 0.02


def generate(rows: int, seed: int = 7) -> pd.DataFrame:
    """A raw used_cars frame as read from the scraper's JSON lines, with ~2% invalid rows."""
    rng = np.random.default_rng(seed)
    spellings = np.array([s for names in MAKES.values() for s in names], dtype=object)
    frame = pd.DataFrame(
        {
            "listing_id": pd.array([f"L{i:06d}" for i in range(rows)], dtype="str"),
            "make": pd.array(spellings[rng.integers(0, len(spellings), rows)], dtype="str"),
            "model": pd.array(np.array(MODELS, dtype=object)[rng.integers(0, 8, rows)], "str"),
            "year": rng.integers(1995, 2027, rows),
            "mileage": rng.integers(0, 250_000, rows).astype("float64"),
            "fuel": pd.array(
                np.array(["petrol", "diesel", "hybrid", "electric"], dtype=object)[
                    rng.integers(0, 4, rows)
                ],
                dtype="str",
            ),
            "transmission": pd.array(
                np.array(["manual", "automatic"], dtype=object)[rng.integers(0, 2, rows)], "str"
            ),
            "engine_size": np.round(rng.uniform(1.0, 3.0, rows), 1),
            "body": pd.array(
                np.array(["sedan", "hatchback", "suv", "wagon"], dtype=object)[
                    rng.integers(0, 4, rows)
                ],
                dtype="str",
            ),
            "posted_date": pd.array(
                (np.datetime64("2026-08-01") + rng.integers(0, 118, rows)).astype(str), "str"
            ),
            "price": np.round(rng.uniform(1500, 60000, rows), 0),
            "source_url": pd.array([f"http://127.0.0.1/l/{i}" for i in range(rows)], "str"),
            "fetched_at": pd.array(["2026-11-27T08:30:00Z"] * rows, dtype="str"),
        }
    )
    frame.loc[rng.random(rows) < 0.01, "mileage"] = np.nan
    bad = np.flatnonzero(rng.random(rows) < INVALID_SHARE)
    kinds = rng.integers(0, 5, len(bad))
    frame.loc[bad[kinds == 0], "year"] = 2099
    frame.loc[bad[kinds == 1], "price"] = 1.0
    frame.loc[bad[kinds == 2], "fuel"] = "steam"
    frame.loc[bad[kinds == 3], "mileage"] = -5000.0
    dupes = bad[kinds == 4]
    frame.loc[dupes, "listing_id"] = frame.loc[np.maximum(dupes - 1, 0), "listing_id"].to_numpy()
    return frame


def pandera_validate(frame: pd.DataFrame, contract: Contract) -> tuple[int, int]:
    """The same rules as a pandera schema (normalisation as parsers); returns (valid, invalid).

    Like ``check_frame`` it ends with the frame split into valid and invalid rows: that is
    the job either way.
    """
    import pandera.pandas as pa

    columns: dict[str, Any] = {}
    for name, spec in contract.columns.items():
        checks: list[Any] = []
        parsers: list[Any] = []
        if spec.type in ("int", "float"):
            parsers.append(pa.Parser(lambda s: pd.to_numeric(s, errors="coerce")))
            if spec.type == "int":
                checks.append(pa.Check(lambda s: s.isna() | (s % 1 == 0), name="integral"))
            if spec.min is not None and spec.max is not None:
                checks.append(pa.Check.in_range(spec.min, spec.max))
            dtype: Any = None  # the parser has coerced; type failures surface as nulls
        elif spec.type == "datetime":
            parsers.append(
                pa.Parser(lambda s: pd.to_datetime(s, errors="coerce", format="ISO8601"))
            )
            checks.append(pa.Check.in_range(pd.Timestamp(spec.min), pd.Timestamp(spec.max)))
            dtype = "datetime64[ns]"
        else:
            aliases = {a.lower(): c for a, c in spec.aliases.items()}

            def normalise(
                s: pd.Series, aliases: dict[str, str] = aliases, label: bool = spec.type != "string"
            ) -> pd.Series:
                # What check_frame does: free text is trimmed only; labels also get one
                # inner space, lower case and their aliases.
                s = s.str.strip()
                if not label:
                    return s
                s = s.str.replace(r"\s+", " ", regex=True).str.lower()
                return s.replace(aliases) if aliases else s

            parsers.append(pa.Parser(normalise))
            if spec.allowed:
                checks.append(pa.Check.isin([str(v) for v in spec.allowed]))
            if spec.pattern:
                checks.append(pa.Check.str_matches(spec.pattern))
            dtype = str
        columns[name] = pa.Column(
            dtype,
            checks=checks,
            parsers=parsers,
            nullable=not spec.required,
            unique=name in contract.keys,
            required=spec.required,
        )
    schema = pa.DataFrameSchema(columns, strict=False)
    bad = np.zeros(len(frame), dtype=bool)
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        bad[errors.failure_cases["index"].dropna().unique().astype(np.int64)] = True
    valid, invalid = frame.loc[~bad], frame.loc[bad]
    return len(valid), len(invalid)


class Timing:
    """Best wall and best CPU seconds of one side's runs, and its last result.

    CPU time (all threads of this process) is the steadier figure on a shared machine: wall
    time also counts the time other processes held the cores.
    """

    def __init__(self) -> None:
        self.wall, self.cpu = float("inf"), float("inf")
        self.result: Any = None

    def run(self, fn: Any, *args: Any) -> None:
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        self.result = fn(*args)
        self.wall = min(self.wall, time.perf_counter() - start)
        self.cpu = min(self.cpu, time.process_time() - start_cpu)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_memory(rows: int) -> dict[str, float]:
    """Peak RSS growth while ``check_frame`` runs, sampled every 2 ms (run in a fresh process)."""
    contract = bundled_contract("used_cars")
    frame = generate(rows)
    frame_bytes = int(frame.memory_usage(deep=True).sum())
    gc.collect()
    baseline = _rss()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    result = check_frame(frame, contract)
    done.set()
    sampler.join()
    peak = max(peak, _rss())
    return {
        "frame_mb": frame_bytes / 2**20,
        "peak_extra_mb": (peak - baseline) / 2**20,
        "ratio": (peak - baseline) / frame_bytes,
        "rows_valid": result.rows_valid,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--repeats",
        type=int,
        help="runs per side and size, the best counting (default: 3, more below 1M rows)",
    )
    parser.add_argument("--memory", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        print(json.dumps(measure_memory(args.memory)))
        return

    contract = bundled_contract("used_cars")
    assert contract is not None
    print(
        f"{'rows':>9} {'ours rows/s':>13} {'pandera rows/s':>15} {'speed-up':>9} "
        f"{'(wall)':>7} {'invalid ours/pandera':>21} {'frame MB':>9} {'peak extra MB':>14} "
        f"{'peak/frame':>11}"
    )
    for rows in args.sizes:
        frame = generate(rows)
        # Warm caches and lazy imports on both sides.
        check_frame(frame.head(1000), contract)
        pandera_validate(frame.head(1000), contract)
        # The same number of runs on either side, taking turns so that a neighbour's burst
        # of work on a shared machine falls on both alike; short runs are the likeliest to
        # catch one, so there are more of them below 1M rows.
        ours, theirs = Timing(), Timing()
        for _ in range(args.repeats or max(3, 1_000_000 // rows)):
            ours.run(check_frame, frame, contract)
            theirs.run(pandera_validate, frame, contract)
        ours_wall, ours_s, result = ours.wall, ours.cpu, ours.result
        theirs_wall, theirs_s, (_, theirs_invalid) = theirs.wall, theirs.cpu, theirs.result
        memory = json.loads(
            subprocess.run(
                [sys.executable, __file__, "--memory", str(rows)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        print(
            f"{rows:>9,} {rows / ours_s:>13,.0f} {rows / theirs_s:>15,.0f} "
            f"{theirs_s / ours_s:>8.1f}x {theirs_wall / ours_wall:>6.1f}x "
            f"{result.rows_quarantined:>10,}/{theirs_invalid:<10,} "
            f"{memory['frame_mb']:>9.1f} {memory['peak_extra_mb']:>14.1f} {memory['ratio']:>10.2f}x"
        )
    print("rows/s and speed-up from CPU seconds (best of runs); (wall) is the wall-clock speed-up")
    print("targets: speed-up >= 10x, peak/frame < 3x")
    print("pandera flags every copy of a repeated key (ours keeps the first), so it counts more")


if __name__ == "__main__":
    main()
