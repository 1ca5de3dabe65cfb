"""The Glue job's training window on local Spark: which partitions, which copy, which fingerprint.

Validated partitions are laid out as the validated zone does (``ingest_date=…/run_id=…``); the
job is run with the window arguments start_preparation passes. Spark is slow on a shared
2-core box: one session per module, small runs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops.contract import bundled_contract

ROOT = Path(__file__).resolve().parents[2]
DAY1, DAY2 = "20261126T080000Z-0000aaaa", "20261127T080000Z-0000bbbb"


def listings(n: int, *, fetched_at: str, price_shift: float = 0.0) -> pd.DataFrame:
    """``n`` clean validated listings with fixed values (a site that did not change)."""
    i = pd.RangeIndex(n)
    return pd.DataFrame(
        {
            "listing_id": [f"L{k:05d}" for k in i],
            "make": ["toyota", "ford", "bmw", "kia"] * (n // 4) + ["toyota"] * (n % 4),
            "model": None,
            "year": 2000 + (i % 25),
            "mileage": 1_000 * (i % 200),
            "fuel": "petrol",
            "transmission": "manual",
            "engine_size": 1.0 + (i % 20) / 10,
            "body": "sedan",
            "posted_date": "2026-10-01",
            "price": 5_000.0 + 37 * i + price_shift,
            "source_url": [f"http://127.0.0.1/listing/{k}" for k in i],
            "fetched_at": fetched_at,
        }
    )


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from glue.prepare import spark_session

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYSPARK_PYTHON", sys.executable)
        env.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "layers" / "shared")]))
        session = spark_session()
        yield session
        session.stop()


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return bundled_contract("used_cars").model_dump(mode="json")


def put_partition(tmp: Path, day: str, run_id: str, rows: pd.DataFrame) -> str:
    partition = f"ingest_date={day}/run_id={run_id}"
    path = tmp / "validated" / "used_cars" / partition
    path.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(path / "part-0.parquet")
    return partition


def job_args(
    tmp: Path,
    contract: dict[str, Any],
    run_id: str,
    window: list[str],
    champion: str | None = None,
) -> list[str]:
    (tmp / "contract.json").write_text(json.dumps(contract))
    args = [
        "--run_id", run_id,
        "--dataset", "used_cars",
        "--validated_path", str(tmp / "validated" / "used_cars") + "/",
        "--curated_path", str(tmp / "curated" / f"run_id={run_id}"),
        "--contract_uri", str(tmp / "contract.json"),
        "--window_days", "7",
        "--window_runs", ",".join(window),
    ]  # fmt: skip
    return args + (["--champion_fingerprint", champion] if champion else [])


def curated_rows(manifest_dir: Path) -> pd.DataFrame:
    return pd.concat(
        pd.read_parquet(manifest_dir / f"split={s}") for s in ("train", "validation", "test")
    )


@pytest.fixture(scope="module")
def two_days(spark, contract, tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """Day 1: 120 listings. Day 2: 100 of them again, 20 repriced, fetched earlier in the day
    than day 1's copies (so only the run order can make day 2's copy the newest), and 20 sold."""
    from glue.prepare import parse_args, run

    tmp = tmp_path_factory.mktemp("window")
    day1 = listings(120, fetched_at="2026-11-26T23:00:00Z")
    day2 = listings(100, fetched_at="2026-11-26T01:00:00Z")
    day2.loc[:19, "price"] += 1_000
    # a partition outside the window, which must not be read
    put_partition(tmp, "2026-11-01", "20261101T080000Z-0000zzzz", listings(50, fetched_at="x"))
    window = [
        put_partition(tmp, "2026-11-26", DAY1, day1),
        put_partition(tmp, "2026-11-27", DAY2, day2),
    ]
    manifest = run(spark, parse_args(job_args(tmp, contract, DAY2, window)))
    return tmp / "curated" / f"run_id={DAY2}", manifest


def test_the_job_reads_only_the_window_and_counts_rows_per_run(two_days):
    # given day 1 (120 rows) and day 2 (100 rows) in the window, a November 1 run outside it
    _, manifest = two_days

    # when day 2 is prepared on its window, then rows per run are those of the two runs only
    runs = {r["run_id"]: r["rows"] for r in manifest["window"]["runs"]}
    assert runs == {DAY1: 120, DAY2: 100}
    assert manifest["counts"]["rows_in"] == 220


def test_the_latest_copy_of_each_key_wins_across_runs_and_sold_listings_stay(two_days):
    # given 20 listings repriced on day 2 and 20 listings absent on day 2 (sold)
    out, manifest = two_days

    # when the window is prepared
    rows = curated_rows(out).set_index("listing_id")

    # then each listing appears once, with day 2's price where day 2 saw it
    assert len(rows) == 120 and rows.index.is_unique
    assert rows.loc["L00000", "price"] == pytest.approx(5_000.0 + 1_000)
    assert rows.loc["L00050", "price"] == pytest.approx(5_000.0 + 37 * 50)
    # and the sold listings keep their last price until they age out of the window
    assert rows.loc["L00110", "price"] == pytest.approx(5_000.0 + 37 * 110)
    counts = manifest["counts"]
    assert counts["duplicates_dropped"] == 100
    assert counts["rows_in"] == counts["rows_dropped"] + counts["duplicates_dropped"] + sum(
        counts[s] for s in ("train", "validation", "test")
    )


def test_the_fingerprint_ignores_lineage_and_changes_with_a_price(spark, contract, tmp_path):
    from glue.prepare import fingerprint, read_validated, window_rows

    root = str(tmp_path / "validated" / "used_cars")

    # given the same listings fetched on two days, and a copy with one price changed
    same = listings(60, fetched_at="2026-11-26T08:00:00Z")
    refetched = listings(60, fetched_at="2026-11-27T08:00:00Z")
    repriced = refetched.copy()
    repriced.loc[7, "price"] += 1
    prints = []
    for i, rows in enumerate((same, refetched, repriced)):
        part = put_partition(tmp_path, "2026-11-27", f"r{i}", rows)
        validated = read_validated(spark, root, f"r{i}", [part])

        # when each is fingerprinted
        kept = window_rows(validated, contract, f"r{i}", (0.7, 0.15, 0.15)).featured
        prints.append(fingerprint(kept, contract))

    # then the re-fetch has the same fingerprint and the repriced copy another
    assert prints[0] == prints[1]
    assert prints[2] != prints[0]


def test_an_unchanged_window_is_skipped_with_its_reason_and_nothing_curated(
    spark, contract, tmp_path, two_days
):
    from glue.prepare import parse_args, run

    # given the champion trained on day 2's window (its fingerprint), and a day 3 run that saw
    # exactly day 2's listings again (a new fetch time, nothing else changed)
    _, champion = two_days
    day1 = listings(120, fetched_at="2026-11-26T23:00:00Z")
    day2 = listings(100, fetched_at="2026-11-26T01:00:00Z")
    day2.loc[:19, "price"] += 1_000
    day3 = day2.assign(fetched_at="2026-11-28T01:00:00Z")
    window = [
        put_partition(tmp_path, "2026-11-26", DAY1, day1),
        put_partition(tmp_path, "2026-11-27", DAY2, day2),
        put_partition(tmp_path, "2026-11-28", "20261128T080000Z-0000cccc", day3),
    ]
    day3_run = "20261128T080000Z-0000cccc"
    args = job_args(tmp_path, contract, day3_run, window, champion["fingerprint"])

    # when day 3 is prepared
    manifest = run(spark, parse_args(args))

    # then only a skipped manifest is written, saying why, with the window's counts
    out = tmp_path / "curated" / "run_id=20261128T080000Z-0000cccc"
    assert manifest["status"] == "skipped"
    assert manifest["reason"] == (
        f"window unchanged since the champion (fingerprint {champion['fingerprint']})"
    )
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json"]
    assert manifest["counts"]["rows_in"] == 320
    assert manifest["counts"]["rows_unique"] == 120


def test_the_demo_calendars_unchanged_day_keeps_the_windows_fingerprint(spark, contract, tmp_path):
    from demosite.scenario import Scenario
    from glue.prepare import fingerprint, read_validated, window_rows

    # given the demo site's days 1-6 (day 5: "the same listings and prices as day 4"; day 6:
    # the index rises 2%), each scraped on its own day
    scenario = Scenario(listings=120)
    partitions = []
    for n in range(1, 7):
        day = scenario.day(n)
        rows = pd.DataFrame(day.catalogue.listings).assign(
            source_url="http://127.0.0.1/listing", fetched_at=f"{day.date}T06:00:00Z"
        )
        partitions.append(put_partition(tmp_path, day.date.isoformat(), f"day{n}", rows))
    root = str(tmp_path / "validated" / "used_cars")

    def window_print(last: int) -> str | None:
        window = partitions[:last]
        validated = read_validated(spark, root, f"day{last}", window)
        kept = window_rows(validated, contract, f"day{last}", (0.7, 0.15, 0.15)).featured
        return fingerprint(kept, contract)

    # when the windows ending on days 4, 5 and 6 are fingerprinted
    day4, day5, day6 = window_print(4), window_print(5), window_print(6)

    # then day 5's window is day 4's (a re-scrape of an unchanged site), day 6's is not
    assert day5 == day4
    assert day6 != day4
