"""A big used_cars upload, written to disk in chunks: the data behind the big-upload benchmark
(benchmarks/big_upload_bench.py) and its end-to-end test (tests/e2e/test_big_upload.py).

Rows are shaped like the demo site's listings as a user would upload them (the columns of
``demosite.catalogue.COLUMNS``): the same makes and models, the seller's messy make spellings,
blank optional fields, and a price drawn from the site's own price function
(``demosite.catalogue.prices``) plus its noise, so
the target is learnable and ``DEFAULT_NOISE_SIGMA`` is the best RMSE a model can reach. A small
share of rows is invalid the way the site's defects are (year 2099, negative mileage, price $1)
and some rows repeat an earlier row's key (validation keeps the first copy and quarantines the
others), so the run has something to quarantine and still reconciles.

The scraper's lineage columns (``source_url``, ``fetched_at``) are left out: they would double
a row's size and push 2.16 million rows past validation's decode cap, and a user's CSV upload
need not carry them.

Generation is vectorised with numpy and streamed: each chunk of ``CHUNK_ROWS`` rows is drawn
from its own generator (seeded from ``(seed, chunk)``), written and dropped, so memory stays at
one chunk whatever the row count, and the same seed and row count give the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from demosite.catalogue import (
    COLUMNS,
    DEFAULT_NOISE_SIGMA,
    ELECTRIC_ONLY,
    ELECTRIC_OPTION,
    HYBRID_MODELS,
    MAKE_SPELLINGS,
    MIN_PRICE,
    MODELS,
    OTHER_BODIES,
    REFERENCE_DATE,
    REFERENCE_YEAR,
    prices,
)
from mlops.contract import BUNDLED, Contract

CHUNK_ROWS = 200_000
# The bundled contract's listing_id pattern (^L[0-9]{6}$) admits one million keys.
SIX_DIGIT_KEYS = 1_000_000
# Shares of rows with a site defect (invalid) and repeating an earlier key (quarantined copy).
DEFECT_SHARE = 0.012
DUPLICATE_SHARE = 0.005
BLANK_SHARE = 0.06
OPTIONAL = ("mileage", "transmission", "engine_size", "body", "posted_date")

# The catalogue as arrays: one entry per (make, model), in a fixed order.
_PAIRS = [(make, model) for make in sorted(MODELS) for model in sorted(MODELS[make])]
_MAKE = np.array([make for make, _ in _PAIRS], dtype=object)
_MODEL = np.array([model for _, model in _PAIRS], dtype=object)
_BASE = np.array([MODELS[m][n][0] for m, n in _PAIRS])
_USUAL_BODY = np.array([MODELS[m][n][1] for m, n in _PAIRS], dtype=object)
_USUAL_ENGINE = np.array([MODELS[m][n][2] for m, n in _PAIRS])
_ELECTRIC_ONLY = np.isin(_MODEL, sorted(ELECTRIC_ONLY))
_ELECTRIC_OPTION = np.isin(_MODEL, sorted(ELECTRIC_OPTION))
_HYBRID = np.isin(_MODEL, sorted(HYBRID_MODELS))
_ENGINE_STEPS = np.array([-0.4, -0.2, 0.0, 0.0, 0.2, 0.5])


@dataclass(frozen=True)
class Upload:
    """What was written: where, how many rows and bytes, and how many rows are bad by design."""

    path: Path
    rows: int
    bytes: int
    defects: int  # rows with an out-of-range value
    duplicates: int  # rows repeating an earlier row's key


def key_digits(rows: int) -> int:
    """Digits of the listing ids: the site's six while they suffice, seven beyond."""
    return 6 if rows <= SIX_DIGIT_KEYS else 7


def contract_yaml(rows: int) -> str:
    """The bundled used_cars contract, with the key pattern widened only if ``rows`` needs it.

    Up to a million rows the upload goes through the bundled contract unchanged. Beyond, six
    digits cannot tell the rows apart: every row past the millionth would be a duplicate key,
    over half the object would be invalid and the contract's ``max_invalid_share`` would reject
    it whole, so the big upload uses the same contract with seven-digit ids allowed.
    """
    text = (BUNDLED / "used_cars.yaml").read_text(encoding="utf-8")
    if key_digits(rows) == 6:
        return text
    widened, count = re.subn(r'pattern: "\^L\[0-9\]\{6\}\$"', 'pattern: "^L[0-9]{6,7}$"', text)
    if count != 1:
        raise RuntimeError("the bundled contract's listing_id pattern has changed")
    Contract.from_yaml(widened)  # still a valid contract
    return widened


def chunk(start: int, rows: int, seed: int, digits: int) -> tuple[pd.DataFrame, int, int]:
    """Rows ``start`` to ``start + rows``: the frame, its defect count and its duplicate count."""
    rng = np.random.default_rng([seed, start])
    pair = rng.integers(0, len(_PAIRS), rows)
    age = np.minimum(rng.gamma(2.2, 3.2, rows).astype(int), REFERENCE_YEAR - 1995)
    year = REFERENCE_YEAR - age
    mileage = np.minimum(
        np.maximum(age, 0.3) * 10_500 * rng.lognormal(0.0, 0.35, rows), 400_000
    ).astype(np.int64)
    roll = rng.random(rows)
    fuel = np.where(roll > 0.7, "diesel", "petrol").astype(object)
    fuel[_HYBRID[pair] & (year >= 2005) & (roll < 0.35)] = "hybrid"
    fuel[_ELECTRIC_OPTION[pair] & (year >= 2014) & (roll < 0.15)] = "electric"
    fuel[_ELECTRIC_ONLY[pair]] = "electric"
    electric = fuel == "electric"
    automatic = electric | (rng.random(rows) < 0.35 + 0.02 * (year - 1995))
    engine = np.round(
        np.clip(
            np.maximum(_USUAL_ENGINE[pair], 1.0) + _ENGINE_STEPS[rng.integers(0, 6, rows)],
            0.8,
            6.5,
        ),
        1,
    )
    engine[electric] = np.nan
    body = _USUAL_BODY[pair].copy()
    other = rng.random(rows) >= 0.8
    body[other] = pd.Series(body[other]).map(lambda b: OTHER_BODIES.get(b, b)).to_numpy()
    canonical = pd.DataFrame(
        {
            "make": _MAKE[pair],
            "model": _MODEL[pair],
            "year": year,
            "mileage": mileage,
            "fuel": fuel,
            "transmission": np.where(automatic, "automatic", "manual"),
            "engine_size": engine,
            "body": body,
        }
    )
    true_price = prices(canonical)
    price = np.maximum(np.round(true_price + rng.normal(0.0, DEFAULT_NOISE_SIGMA, rows)), MIN_PRICE)
    posted = np.datetime64(REFERENCE_DATE) - rng.integers(0, 120, rows)

    make = _MAKE[pair].copy()
    messy = rng.random(rows) >= 0.7
    make[messy] = [
        MAKE_SPELLINGS[m][1 + int(u * (len(MAKE_SPELLINGS[m]) - 1))]
        for m, u in zip(make[messy], rng.random(int(messy.sum())), strict=True)
    ]
    make[~messy] = [MAKE_SPELLINGS[m][0] for m in make[~messy]]
    frame = pd.DataFrame(
        {
            "listing_id": [f"L{i:0{digits}d}" for i in range(start, start + rows)],
            "make": make,
            "model": _MODEL[pair],
            "year": year,
            "mileage": pd.array(mileage, dtype="Int64"),
            "fuel": fuel,
            "transmission": np.where(automatic, "automatic", "manual"),
            "engine_size": engine,
            "body": body,
            "posted_date": posted.astype(str),
            "price": pd.array(price.astype(np.int64), dtype="Int64"),
        },
        columns=list(COLUMNS),
    )
    # A seller leaves one optional field blank now and then (engine_size is blank for EVs too).
    blank = np.flatnonzero(rng.random(rows) < BLANK_SHARE)
    field = rng.integers(0, len(OPTIONAL), len(blank))
    for i, name in enumerate(OPTIONAL):
        frame.loc[blank[field == i], name] = None
    # The site's defects, out of the contract's ranges: each such row is quarantined.
    defect = np.flatnonzero(rng.random(rows) < DEFECT_SHARE)
    kind = rng.integers(0, 3, len(defect))
    frame.loc[defect[kind == 0], "year"] = 2099
    frame.loc[defect[kind == 1], "mileage"] = -1000
    frame.loc[defect[kind == 2], "price"] = 1
    # Repeats of the previous row's key (a listing seen twice): the later copy is quarantined.
    # Never on a defect row or right after one, so each bad row is bad for one reason only.
    candidates = rng.random(rows) < DUPLICATE_SHARE
    candidates[0] = False
    bad = np.zeros(rows, dtype=bool)
    bad[defect] = True
    repeat = np.flatnonzero(candidates & ~bad & ~np.roll(bad, 1) & ~np.roll(candidates, 1))
    frame.loc[repeat, "listing_id"] = frame["listing_id"].to_numpy()[repeat - 1]
    return frame, len(defect), len(repeat)


def write_csv(path: Path, rows: int, seed: int = 7) -> Upload:
    """Write ``rows`` listings to ``path`` as CSV, one chunk at a time (see the module doc)."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    digits = key_digits(rows)
    defects = duplicates = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        for start in range(0, rows, CHUNK_ROWS):
            frame, bad, repeated = chunk(start, min(CHUNK_ROWS, rows - start), seed, digits)
            frame.to_csv(out, header=start == 0, index=False, lineterminator="\n")
            defects, duplicates = defects + bad, duplicates + repeated
    return Upload(path, rows, path.stat().st_size, defects, duplicates)
