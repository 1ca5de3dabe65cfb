"""What the strict local cloud costs: the same work with LOCALCLOUD_STRICT=1 (IAM evaluation,
request constraints, timeouts, payload limits) and LOCALCLOUD_STRICT=0 (moto as it is), the two
sides taking turns so machine load falls on both alike.

    .venv/bin/python benchmarks/strictness_bench.py [--rounds 2] [--e2e]

Prints each side's wall times, medians and the ratio strict / lenient. ``--e2e`` also times
the end-to-end suite (``pytest tests/e2e -m "not browser"``, without the tests of strictness
itself) once per side: minutes each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MLOPS = ROOT / ".venv" / "bin" / "mlops"


def _timed(command: list[str], strict: bool) -> float:
    env = os.environ | {"LOCALCLOUD_STRICT": "1" if strict else "0", "CI": "true"}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise SystemExit(f"{' '.join(command)} failed (strict={strict}):\n{tail}")
    return elapsed


def _compare(label: str, command: list[str], rounds: int) -> None:
    times: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(rounds):
        # Alternate which side goes first so warm caches favour neither.
        for strict in (True, False) if round_ % 2 == 0 else (False, True):
            times[strict].append(_timed(command, strict))
            print(f"  {label} round {round_ + 1} strict={strict}: {times[strict][-1]:.1f} s")
    strict_median = statistics.median(times[True])
    lenient_median = statistics.median(times[False])
    print(
        f"{label}: strict {strict_median:.1f} s, lenient {lenient_median:.1f} s "
        f"(median of {rounds}); ratio {strict_median / lenient_median:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--e2e", action="store_true", help="also time the e2e suite per side")
    args = parser.parse_args()
    _compare("make demo (mlops local run)", [str(MLOPS), "local", "run", "--json"], args.rounds)
    if args.e2e:
        # Tests of strictness itself cannot run without it: both sides leave them out.
        pytest = [sys.executable, "-m", "pytest", "tests/e2e", "-q", "-m", "not browser", "-x"]
        pytest += ["--ignore", "tests/e2e/test_aws_refusals.py", "-k", "not every_grant"]
        _compare("e2e suite", [*pytest, "-p", "no:cacheprovider"], 1)


if __name__ == "__main__":
    main()
