"""The demo site's calendar: seeded days in which listings, prices and the layout change."""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

import lxml.html
import pandas as pd
import pytest
import requests

import demosite
from demosite.catalogue import MIN_PRICE, PRICE_FEATURES, Catalogue, price_function
from demosite.pages import REDESIGN, STANDARD, detail_page
from demosite.scenario import DEFAULT_PLAN, STABLE_PLAN, Plan, Scenario, SiteDay
from mlops.contract import bundled_contract, normalise_label
from mlops.scraping import load_spec
from mlops.scraping.extract import ItemError, extract_item, parse_html

LISTINGS = 1000
SEED = 7


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    played = Scenario(seed=SEED, listings=LISTINGS)
    played.day(DEFAULT_PLAN.days)
    return played


def prices(day: SiteDay) -> dict[str, float]:
    return {listing["listing_id"]: listing["price"] for listing in day.catalogue.listings}


def features(listing: dict[str, Any]) -> dict[str, Any]:
    return {name: listing[name] for name in PRICE_FEATURES}


def extract(day: SiteDay, listing_id: str) -> dict[str, Any]:
    """What the demo spec extracts from the day's detail page of ``listing_id``."""
    html = detail_page(day.catalogue, listing_id, day.layout)
    assert html is not None
    url = f"http://127.0.0.1/listing/{listing_id}"
    record, _ = extract_item(parse_html(html.encode(), url), load_spec("builtin:demo_cars"))
    return record


# ------------------------------------------------------------------ determinism and day 1
def test_the_same_seed_plays_the_same_days_and_another_seed_different_ones() -> None:
    # Given two scenarios with one seed and a third with another
    first, again, other = Scenario(3, 200), Scenario(3, 200), Scenario(4, 200)

    # When each plays to the last day
    last = DEFAULT_PLAN.days

    # Then the first two agree on every day, listings, pages and truth, and the third does not
    for number in range(1, last + 1):
        one, two = first.day(number), again.day(number)
        assert one.catalogue == two.catalogue
        assert one.changes == two.changes
    assert other.day(last).catalogue.listings != first.day(last).catalogue.listings


def test_day_one_is_the_single_day_site_as_it_was() -> None:
    # Given the catalogue the site served before it had a calendar
    before = Catalogue.generate(listings=300, seed=11)

    # When a scenario with the same seed starts
    day = Scenario(seed=11, listings=300).day(1)

    # Then its first day is that catalogue, in the usual layout, at market index 1
    assert day.catalogue == before
    assert day.layout == STANDARD
    assert day.index == 1.0


def test_serve_still_serves_day_one_by_default() -> None:
    # Given a site served as the existing tests and the local cloud serve it
    with demosite.serve(listings=30, seed=2) as site:
        # When nobody moves its calendar
        served = site.catalogue

    # Then it serves the single-day catalogue of that seed
    assert site.day is not None and site.day.number == 1
    assert served == Catalogue.generate(listings=30, seed=2)


# ------------------------------------------------------------------ listings come and go
def test_the_unchanged_day_has_exactly_the_listings_and_prices_of_the_day_before(
    scenario: Scenario,
) -> None:
    # Given the plan's unchanged day
    (unchanged,) = DEFAULT_PLAN.unchanged_days

    # When it is compared with the day before
    today, yesterday = scenario.day(unchanged), scenario.day(unchanged - 1)

    # Then listings, published values, page strings, true prices and layout are all the same
    assert today.catalogue == yesterday.catalogue
    assert today.layout == yesterday.layout
    assert today.sold == () and today.added == ()
    assert today.changes[0].startswith("no change")


def test_sold_listings_vanish_and_new_ones_appear_with_new_ids(scenario: Scenario) -> None:
    # Given two consecutive ordinary days
    yesterday, today = scenario.day(2), scenario.day(3)
    before, after = set(yesterday.catalogue.ids()), set(today.catalogue.ids())

    # When their listings are compared
    gone, new = before - after, after - before

    # Then the sold ones are gone, the new ones were never listed, and about 5% changed
    assert gone == set(today.sold) and new == set(today.added)
    assert round(DEFAULT_PLAN.sold_share * len(before)) == len(gone)
    assert all(int(i[1:]) > yesterday.last_number for i in new)
    posted = {x["listing_id"]: x["posted_date"] for x in today.catalogue.listings}
    assert all(posted[i] == today.date.isoformat() for i in new)


def test_ids_the_contract_accepts_and_never_reused_across_the_days(scenario: Scenario) -> None:
    # Given the contract's listing id pattern
    pattern = bundled_contract("used_cars").columns["listing_id"].pattern

    # When every day's ids are collected
    added = [i for n in range(2, DEFAULT_PLAN.days + 1) for i in scenario.day(n).added]
    every = {i for n in range(1, DEFAULT_PLAN.days + 1) for i in scenario.day(n).catalogue.ids()}

    # Then ids match the pattern and a new listing never takes an old listing's id
    assert len(added) == len(set(added))
    assert not set(added) & set(scenario.day(1).catalogue.ids())
    assert all(pd.Series(sorted(every)).str.fullmatch(pattern))


def test_an_unsold_listing_keeps_its_id_and_details_and_only_its_price_moves(
    scenario: Scenario,
) -> None:
    # Given a listing on sale on the first and the last day
    first, last = scenario.day(1), scenario.day(DEFAULT_PLAN.days)
    # (off the $500 floor, where a price cannot move)
    kept = next(
        x["listing_id"]
        for x in first.catalogue.listings
        if x["listing_id"] in last.catalogue.published and x["price"] > MIN_PRICE
    )

    # When its two days are compared
    then = next(x for x in first.catalogue.listings if x["listing_id"] == kept)
    now = next(x for x in last.catalogue.listings if x["listing_id"] == kept)

    # Then everything but the price is the same, and the price moved with the market
    assert {k: v for k, v in then.items() if k != "price"} == {
        k: v for k, v in now.items() if k != "price"
    }
    assert now["price"] != then["price"]
    assert last.catalogue.noise[kept] == first.catalogue.noise[kept]


# ------------------------------------------------------------------ the market
def test_the_index_is_stable_then_rises_by_the_inflation_rate_each_day() -> None:
    # Given the default plan
    plan = DEFAULT_PLAN
    assert plan.inflation_from is not None

    # When its index is read day by day
    index = {day: plan.index(day) for day in range(1, plan.days + 1)}

    # Then it is 1 before inflation and compounds 2% a day from the first inflation day
    assert all(index[day] == 1.0 for day in range(1, plan.inflation_from))
    for day in range(plan.inflation_from, plan.days + 1):
        assert index[day] / index[day - 1] == pytest.approx(1.0 + plan.inflation_per_day)


def test_the_true_price_function_changes_each_day_as_the_index_says(scenario: Scenario) -> None:
    # Given one petrol car, described by its features
    car = {
        "make": "toyota",
        "model": "corolla",
        "year": 2019,
        "mileage": 60_000,
        "fuel": "petrol",
        "transmission": "manual",
        "engine_size": 1.6,
        "body": "sedan",
    }
    base = price_function(**car)

    # When each day prices it
    true = {n: scenario.day(n).true_price(car) for n in range(1, DEFAULT_PLAN.days + 1)}

    # Then each day's price is the base price times that day's index
    for number, price in true.items():
        assert price == pytest.approx(base * DEFAULT_PLAN.index(number), abs=0.01)
    assert true[DEFAULT_PLAN.days] > true[1]


def test_the_shock_cuts_only_electric_cars_by_a_fifth(scenario: Scenario) -> None:
    # Given the listings on sale both the day before the shock and the shock day
    shock = DEFAULT_PLAN.shock_day
    assert shock is not None
    before, after = scenario.day(shock - 1), scenario.day(shock)
    both = [x for x in before.catalogue.listings if x["listing_id"] in after.catalogue.true_price]

    # When their true prices on the two days are compared
    ratio = {
        x["listing_id"]: after.catalogue.true_price[x["listing_id"]]
        / before.catalogue.true_price[x["listing_id"]]
        for x in both
    }

    # Then electric cars fall to 0.8 of the inflated price and every other car just inflates
    inflation = 1.0 + DEFAULT_PLAN.inflation_per_day
    electric = [x["listing_id"] for x in both if x["fuel"] == "electric"]
    others = [x["listing_id"] for x in both if x["fuel"] != "electric"]
    assert electric and others
    assert all(ratio[i] == pytest.approx(0.8 * inflation, rel=1e-5) for i in electric)
    assert all(ratio[i] == pytest.approx(inflation, rel=1e-5) for i in others)


def test_published_prices_follow_the_days_true_price_of_each_listing(scenario: Scenario) -> None:
    # Given a day after inflation and the shock
    day = scenario.day(12)

    # When each listing's true price is recomputed from its features
    recomputed = {x["listing_id"]: day.true_price(x) for x in day.catalogue.listings}

    # Then it is the truth the day keeps, and the asking price is truth plus the kept noise
    assert recomputed == pytest.approx(day.catalogue.true_price, abs=0.01)
    for listing in day.catalogue.listings:
        truth = day.catalogue.true_price[listing["listing_id"]]
        noise = day.catalogue.noise[listing["listing_id"]]
        assert listing["price"] == max(round(truth + noise), MIN_PRICE)


def test_published_prices_scatter_around_the_true_price_with_the_stated_sigma() -> None:
    # Given every listing new after day 1 in a full-size scenario (fresh noise on each)
    played = Scenario(seed=SEED, listings=3000)
    rows = [
        (listing["price"], day.true_price(listing))
        for number in range(2, DEFAULT_PLAN.days + 1)
        for day in [played.day(number)]
        for listing in day.catalogue.listings
        if listing["listing_id"] in set(day.added)
    ]

    # When their residuals around the day's true price are measured (off the $500 floor)
    residuals = [price - truth for price, truth in rows if price > MIN_PRICE]

    # Then they are centred on zero with the stated noise sigma
    assert len(residuals) > 1500
    assert abs(statistics.fmean(residuals)) < 0.1 * played.noise_sigma
    assert statistics.pstdev(residuals) == pytest.approx(played.noise_sigma, rel=0.06)


def test_vectorised_true_prices_agree_with_the_per_listing_true_price(scenario: Scenario) -> None:
    # Given a day with the shock, the new model and electric cars, as a frame
    day = scenario.day(10)
    frame = pd.DataFrame(day.catalogue.listings)

    # When the frame is priced at once
    vectorised = day.true_prices(frame)

    # Then every row gets the per-listing true price
    expected = [day.true_price(listing) for listing in day.catalogue.listings]
    assert vectorised.tolist() == pytest.approx(expected, abs=0.011)


def test_vectorised_true_prices_are_nan_for_rows_that_cannot_be_priced(
    scenario: Scenario,
) -> None:
    # Given rows with an unknown model and a missing mileage
    day = scenario.day(3)
    good = features(day.catalogue.listings[0])
    frame = pd.DataFrame([good, {**good, "model": "unknown"}, {**good, "mileage": None}])

    # When the frame is priced
    priced = day.true_prices(frame)

    # Then the good row is priced and the others are NaN
    assert priced[0] == pytest.approx(day.true_price(good), abs=0.01)
    assert priced[1:].isna().all()


# ------------------------------------------------------------------ the new model
def test_a_new_model_the_contract_does_not_know_appears_on_its_day(scenario: Scenario) -> None:
    # Given the plan's new model and the models the used_cars contract allows
    new, first = DEFAULT_PLAN.new_model, DEFAULT_PLAN.new_model_from
    assert first is not None
    allowed = {normalise_label(v) for v in bundled_contract("used_cars").columns["model"].allowed}

    # When the days before and from its first day are searched for it
    def listed(number: int) -> list[str]:
        return [
            x["listing_id"]
            for x in scenario.day(number).catalogue.listings
            if x["model"] == new.model
        ]

    # Then it is absent before, among that day's new listings after, and unknown to the contract
    assert not any(listed(n) for n in range(1, first))
    assert listed(first) and set(listed(first)) <= set(scenario.day(first).added)
    assert normalise_label(new.model) not in allowed
    puma = scenario.day(first).catalogue.published[listed(first)[0]]
    assert puma["year"] >= new.first_year


# ------------------------------------------------------------------ the layout change
def test_on_the_layout_day_the_demo_spec_finds_no_price(scenario: Scenario) -> None:
    # Given the redesigned day and a listing on sale that day
    (redesign,) = DEFAULT_PLAN.layout_days
    day = scenario.day(redesign)
    listing_id = day.catalogue.ids()[0]

    # When the project's extraction reads its detail page with the demo spec
    with pytest.raises(ItemError) as refused:
        extract(day, listing_id)

    # Then the price is what is missing: the page still shows it, elsewhere
    assert day.layout == REDESIGN
    assert "price" in str(refused.value)
    html = detail_page(day.catalogue, listing_id, day.layout) or ""
    assert day.catalogue.display[listing_id]["price"] in html


def test_the_day_after_the_layout_change_the_spec_reads_prices_again(scenario: Scenario) -> None:
    # Given the day after the redesign and a listing on sale that day
    (redesign,) = DEFAULT_PLAN.layout_days
    day = scenario.day(redesign + 1)
    listing_id = day.catalogue.ids()[0]

    # When the demo spec reads its detail page
    record = extract(day, listing_id)

    # Then the usual layout is back and the price is the one published that day
    assert day.layout == STANDARD
    assert record["price"] == day.catalogue.published[listing_id]["price"]


# ------------------------------------------------------------------ plans and descriptions
def test_every_day_says_what_changed(scenario: Scenario) -> None:
    # Given the days on which something happens
    plan = DEFAULT_PLAN

    # When their descriptions are read
    said = {n: scenario.day(n).describe() for n in range(1, plan.days + 1)}

    # Then each names its event
    assert "first day" in said[1]
    assert "no change" in said[5]
    assert "+2.0%" in said[6]
    assert "new model" in said[7] and "puma" in said[7]
    assert "shock" in said[9] and "electric" in said[9]
    assert "layout redesign" in said[11]
    assert "layout back" in said[12]


def test_the_stable_plan_keeps_prices_and_layout_while_listings_change() -> None:
    # Given a scenario on the stable plan
    stable = Scenario(seed=SEED, listings=200, plan=STABLE_PLAN)

    # When its first and last days are compared
    first, last = stable.day(1), stable.day(STABLE_PLAN.days)
    kept = set(first.catalogue.ids()) & set(last.catalogue.ids())

    # Then listings changed, but kept listings keep their prices and the layout never changes
    assert kept and kept != set(first.catalogue.ids())
    assert all(prices(last)[i] == prices(first)[i] for i in kept)
    assert {stable.day(n).layout for n in range(1, STABLE_PLAN.days + 1)} == {STANDARD}


def test_a_plan_whose_unchanged_day_would_change_is_refused() -> None:
    # Given a plan whose "unchanged" day falls during inflation
    # When it is built
    # Then it is refused, naming the day
    with pytest.raises(ValueError, match="day 7 cannot be unchanged"):
        dataclasses.replace(DEFAULT_PLAN, unchanged_days=frozenset({7}))


def test_days_outside_the_plan_are_refused(scenario: Scenario) -> None:
    # Given a 14-day scenario
    # When day 0 or day 15 is asked for
    # Then neither exists
    for number in (0, DEFAULT_PLAN.days + 1):
        with pytest.raises(ValueError, match="day must be between"):
            scenario.day(number)


def test_a_new_model_already_listed_from_day_one_is_refused() -> None:
    # Given a "new" model the site lists from day 1
    known = dataclasses.replace(DEFAULT_PLAN.new_model, make="toyota", model="corolla")

    # When a plan names it
    # Then the plan is refused
    with pytest.raises(ValueError, match="already listed"):
        Plan(new_model=known)


# ------------------------------------------------------------------ the running server
def test_a_running_site_moves_to_another_day_without_restarting() -> None:
    # Given a site serving day 1
    with demosite.serve(listings=40, seed=SEED) as site:
        url = site.url
        first = site.catalogue.ids()

        # When it is moved to day 2 while running
        day = site.set_day(2)
        sold = requests.get(f"{url}listing/{day.sold[0]}", timeout=5)
        new = requests.get(f"{url}listing/{day.added[0]}", timeout=5)
        index = lxml.html.fromstring(requests.get(site.start_url, timeout=5).content)

    # Then the same address serves day 2: sold listings are gone and new ones are listed
    assert site.url == url and site.day is day
    assert day.sold[0] in first
    assert sold.status_code == 404
    assert new.status_code == 200
    assert f"/listing/{day.added[0]}" in [a.get("href") for a in index.cssselect("a.listing-link")]


def test_a_running_site_renders_the_changed_layout_on_the_layout_day() -> None:
    # Given a running site moved to the redesign day
    (redesign,) = DEFAULT_PLAN.layout_days
    spec = load_spec("builtin:demo_cars")
    with demosite.serve(listings=40, seed=SEED) as site:
        day = site.set_day(redesign)
        url = f"{site.url}listing/{day.catalogue.ids()[0]}"

        # When a detail page is fetched and read with the demo spec
        page = requests.get(url, timeout=5)

        # Then the spec finds no price on it
        with pytest.raises(ItemError, match="price"):
            extract_item(parse_html(page.content, url), spec)
        assert site.layout == REDESIGN


def test_the_admin_day_path_moves_the_calendar_from_this_machine() -> None:
    # Given a site on 127.0.0.1
    with demosite.serve(listings=40, seed=SEED) as site:
        # When day 6 is posted to the admin path, and a bad day after it
        moved = requests.post(f"{site.url}admin/day?day=6", timeout=5)
        bad = requests.post(f"{site.url}admin/day?day=99", timeout=5)
        current = requests.get(f"{site.url}admin/day", timeout=5).json()

    # Then the site serves day 6, says so, and refuses a day outside the plan
    assert moved.status_code == 200 and moved.json()["day"] == 6
    assert bad.status_code == 400
    assert current["day"] == 6 and current["index"] == pytest.approx(DEFAULT_PLAN.index(6))
    assert site.day is not None and site.day.number == 6


def test_a_site_serving_a_fixed_catalogue_has_no_calendar() -> None:
    # Given a site serving a catalogue rather than a scenario
    with demosite.DemoSite(Catalogue.generate(listings=5, seed=1)) as site:
        # When its calendar is moved, in-process or over HTTP
        answer = requests.post(f"{site.url}admin/day?day=2", timeout=5)
        with pytest.raises(RuntimeError, match="fixed catalogue"):
            site.set_day(2)

    # Then neither works and the site has no day
    assert answer.status_code == 404
    assert site.day is None
