"""Data drift (mlops.monitoring.drift): stable days raise nothing, real changes are flagged.

The days come from the demo site's seeded calendar (demosite.scenario), turned into the rows
validation writes and the baseline a champion trained on them leaves (profile + train split).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from demosite.scenario import NewModel, Scenario
from mlops.monitoring.drift import (
    DRIFTED,
    INSUFFICIENT,
    DriftSettings,
    benjamini_hochberg,
    chi2_sf,
    compare,
    featured_rows,
    out_of_contract_categories,
    psi,
)
from tests.scenario_rows import QUIET, champion_baseline, contract, validated, zones

TARGET = "price"


def drift_of(train_rows: pd.DataFrame, new_rows: pd.DataFrame, **kwargs):
    profile, training = champion_baseline(train_rows)
    return compare(
        profile, featured_rows(new_rows, contract()), target=TARGET, training=training, **kwargs
    )


def test_chi_square_tail_and_bh_q_values_match_their_textbook_values() -> None:
    # Given the 5% critical value of chi-square(1) and BH's worked shape
    # When the tail probability and the q-values are computed
    # Then they match scipy's chi2.sf and the step-up formula min_j>=i p_(j) m / j
    assert chi2_sf(3.841458820694124, 1) == pytest.approx(0.05, rel=1e-9)
    assert chi2_sf(18.307038053275146, 10) == pytest.approx(0.05, rel=1e-9)
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5, 0.2]) == pytest.approx(
        [0.05, 0.2 / 3, 0.2 / 3, 0.5, 0.25]
    )


def test_psi_is_zero_for_equal_shares_and_follows_its_formula_otherwise() -> None:
    # Given equal and shifted bin counts
    # When PSI is computed
    # Then equal shares give 0 and (0.5, 0.5) vs (0.6, 0.4) gives sum((n-b) ln(n/b))
    assert psi([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0)
    expected = 0.1 * __import__("math").log(1.2) + (-0.1) * __import__("math").log(0.8)
    assert psi([50, 50], [60, 40]) == pytest.approx(expected)


@pytest.mark.parametrize("seeds", [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10)])
def test_a_stable_day_from_the_same_market_flags_nothing(seeds: tuple[int, int]) -> None:
    # Given a champion trained on one seeded site and a day drawn independently from the same
    # market (another seed, nothing in the calendar happening)
    report = drift_of(validated(seeds[0]), validated(seeds[1]))

    # Then no feature, no target and no segment is flagged, though every test was run
    assert report.drifted_features == []
    assert not report.target_drift
    assert all(t.status != INSUFFICIENT for t in report.tests if t.role != "segment")
    assert all(t.q_value is not None for t in report.tests if t.status != INSUFFICIENT)


def test_the_calendars_stable_days_flag_nothing_against_day_one() -> None:
    # Given a champion trained on day 1 of the default calendar
    scenario = Scenario(seed=7)
    day_one = zones(scenario.day(1))[0]
    profile, training = champion_baseline(day_one)

    # When days 2 to 5 (listings selling and appearing, prices unchanged) are compared
    for number in (2, 3, 4, 5):
        new = featured_rows(zones(scenario.day(number))[0], contract())
        report = compare(profile, new, target=TARGET, training=training)

        # Then none of them raises anything
        assert report.drifted_features == [], number
        assert not report.target_drift, number


def test_the_profile_alone_as_baseline_flags_nothing_on_a_stable_day() -> None:
    # Given only the champion's profile (no training rows: the quantile-level baseline)
    profile, _ = champion_baseline(validated(11))

    # When an independent stable day is compared
    report = compare(profile, featured_rows(validated(12), contract()), target=TARGET)

    # Then nothing is flagged
    assert report.drifted_features == []
    assert not report.target_drift


def test_a_market_index_up_fifteen_percent_flags_the_target() -> None:
    # Given a calendar whose index jumps 15% on day 2 (every listing repriced)
    plan = replace(QUIET, inflation_from=2, inflation_per_day=0.15)
    scenario = Scenario(seed=7, plan=plan)

    # When day 2 is compared with a champion trained on day 1
    report = drift_of(zones(scenario.day(1))[0], zones(scenario.day(2))[0])

    # Then the target drifted (a PSI between the target's floor and the usual 0.1: a 15% level
    # move on a wide price range), and no input feature did
    assert report.target_drift
    target = next(t for t in report.tests if t.role == "target")
    assert target.status == DRIFTED
    assert target.psi is not None and 0.05 <= target.psi < 0.25
    assert report.drifted_features == []


def test_electric_cars_down_a_fifth_flag_the_target_within_the_electric_segment() -> None:
    # Given a large site (enough electric cars for a segment: about 4% of listings) whose
    # electric cars lose a fifth of their value on day 2, nothing else changing
    plan = replace(QUIET, shock_day=2)
    scenario = Scenario(seed=7, listings=10_000, plan=plan)

    # When day 2 is compared with a champion trained on day 1
    report = drift_of(zones(scenario.day(1))[0], zones(scenario.day(2))[0])

    # Then the target drifted within fuel=electric, and no input feature moved
    assert "fuel=electric" in report.drifted_segments
    assert report.target_drift
    assert report.drifted_features == []


def test_a_shifted_feature_is_flagged_and_the_stable_ones_are_not() -> None:
    # Given a new day whose cars have 50% more mileage, everything else as the champion saw it
    new = validated(2)
    new["mileage"] = (new["mileage"] * 1.5).clip(upper=400_000)

    # When it is compared
    report = drift_of(validated(1), new)

    # Then mileage is flagged with at least a moderate PSI, and the categorical inputs are not
    mileage = next(t for t in report.tests if t.feature == "mileage")
    assert mileage.status == DRIFTED
    assert mileage.psi is not None and mileage.psi >= 0.1
    assert mileage.severity in ("moderate", "major")
    assert not {"make", "model", "fuel", "transmission", "body"} & set(report.drifted_features)


def test_a_model_the_contract_does_not_allow_is_reported_with_its_count() -> None:
    # Given day 8 of the default calendar: new listings include the Ford Puma since day 7,
    # which validation quarantines as allowed:model
    scenario = Scenario(seed=7)
    _, quarantined = zones(scenario.day(8))

    # When the quarantined rows are read for new categories
    found = out_of_contract_categories(quarantined, contract())

    # Then the Puma is reported under model with the number of its listings
    assert found == {"model": {NewModel().model: len(quarantined)}}
    assert len(quarantined) > 0


def test_an_allowed_category_the_champion_never_saw_is_reported_with_its_count() -> None:
    # Given a champion trained without any Kia Stinger, and a day that lists some
    train = validated(1)
    train = train[train["model"].str.lower() != "stinger"]
    new = validated(2)
    stingers = int((new["model"].str.lower() == "stinger").sum())

    # When the day is compared
    report = drift_of(train, new)

    # Then the Stinger is an unseen category of model, with its count
    assert report.unseen_categories["model"] == {"stinger": stingers}
    assert stingers > 0


def test_a_small_day_is_insufficient_data_not_drift() -> None:
    # Given a day of 150 listings whose prices doubled (below the 200-row minimum)
    new = validated(2).head(150).copy()
    new["price"] = new["price"] * 2

    # When it is compared
    report = drift_of(validated(1), new)

    # Then every test is insufficient and nothing is flagged
    assert {t.status for t in report.tests} == {INSUFFICIENT}
    assert not report.target_drift
    assert report.drifted_features == []


def test_the_report_keeps_the_settings_and_only_drifted_segments_for_the_ledger() -> None:
    # Given a stable comparison with a stricter alpha
    report = drift_of(validated(1), validated(2), settings=DriftSettings(alpha=0.01))

    # When it is turned into the ledger's shape
    doc = report.to_dict()

    # Then it carries every feature and the target, the settings, and no stable segment
    assert doc["settings"]["alpha"] == 0.01
    assert TARGET in doc["features"] and "mileage" in doc["features"]
    assert doc["segments"] == {}
    assert doc["segments_tested"] > 0
    assert doc["features"]["mileage"]["status"] == "stable"
