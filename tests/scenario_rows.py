"""Rows of the demo site's calendar as the pipeline's zones hold them, for monitoring tests.

A day's catalogue (``demosite.scenario``) becomes what validation would write: the validated
rows (published values with the day's asking price, in the dataset's columns) and the
quarantined ones (a model the contract does not allow, as ``allowed:model``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pandas as pd

from demosite.scenario import Plan, Scenario, SiteDay
from mlops.contract import bundled_contract
from mlops.ml.cleaning import normalise_label

# Every event of the default calendar switched off; a test switches on the one it needs.
QUIET = Plan(
    unchanged_days=frozenset(),
    inflation_from=None,
    shock_day=None,
    new_model_from=None,
    layout_days=frozenset(),
)


@cache
def contract() -> dict[str, Any]:
    return bundled_contract("used_cars").model_dump(mode="json")


def published(day: SiteDay) -> pd.DataFrame:
    """Every listing of ``day`` as a scraper reads it: published values, the day's price."""
    catalogue = day.catalogue
    rows = [
        catalogue.published[listing["listing_id"]] | {"price": listing["price"]}
        for listing in catalogue.listings
    ]
    return pd.DataFrame(rows)


def zones(day: SiteDay) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(validated, quarantined) rows of ``day``: a model outside the contract is quarantined."""
    rows = published(day)
    allowed = {normalise_label(v) for v in contract()["columns"]["model"]["allowed"]}
    ok = rows["model"].map(lambda v: v is None or normalise_label(v) in allowed)
    quarantined = rows.loc[~ok].astype(str).assign(failed_rules="allowed:model")
    return rows.loc[ok].reset_index(drop=True), quarantined.reset_index(drop=True)


def validated(seed: int, day: int = 1, *, plan: Plan = QUIET, listings: int = 3000) -> pd.DataFrame:
    return zones(Scenario(seed=seed, listings=listings, plan=plan).day(day))[0]


def champion_baseline(rows: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """What a champion trained on ``rows`` leaves for monitoring: its profile and the training
    rows as the monitor rebuilds them from the curated train split."""
    from mlops.ml.pipeline import prepare
    from mlops.monitoring.drift import training_rows

    prepared = prepare(rows, contract(), run_id="champion")
    return prepared.profile, training_rows(prepared.splits["train"], contract())
