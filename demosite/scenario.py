"""The demo site's calendar: a seeded scenario of days in which the market and the site change.

Day 1 is exactly ``Catalogue.generate(listings, seed, noise_sigma)``, the single-day site. Each
later day some listings sell (they vanish) and new ones appear (new ids, posted that day, listed
first), and every listing is re-priced: its true price is ``price_function`` of its features times
the day's factor for its fuel (``Plan.factor``), and its asking price is that true price plus the
Gaussian noise it was drawn with on its first day. So the noise floor stays ``noise_sigma`` on
every day, and ``SiteDay.true_price`` / ``true_prices`` say what the day's true price function is.

The default plan (``DEFAULT_PLAN``, 14 days):

- days 1-4: stable market (index 1.0), listings sell and appear;
- day 5: nothing changes (the same listings and prices as day 4);
- from day 6: inflation, the index rises 2% a day (1.02 ** (day - 5));
- from day 7: a new model, the Ford Puma, is among the new listings (the used_cars contract does
  not allow the model "puma", so its rows are invalid until the contract learns it);
- from day 9: a shock, every electric car's true price is 0.8 times what the index alone gives
  (electric cars lose a fifth of their value; petrol, diesel and hybrid follow the index);
- day 11: the site is redesigned for a day, the detail page's price leaves ``p.price`` (the demo
  spec's price selector) for ``div.price-box span.amount``; day 12 the usual layout is back.

Everything is drawn from the seed: the same (seed, listings, noise_sigma, plan) gives the same days.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from demosite.catalogue import (
    BODY_PREMIUM,
    DEFAULT_NOISE_SIGMA,
    FUEL_PREMIUM,
    MODELS,
    PRICE_FEATURES,
    REFERENCE_DATE,
    Catalogue,
    ModelTable,
    draw_listing,
    features_of,
    noisy_price,
    price_function,
    price_text,
    prices,
    publish,
)
from demosite.pages import REDESIGN, STANDARD

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class NewModel:
    """A model the site starts listing mid-scenario; its price follows ``price_function``."""

    make: str = "ford"
    model: str = "puma"
    price_new: float = 24000.0
    body: str = "suv"
    engine: float = 1.0
    # Launched recently: no listed car is older than this model year.
    first_year: int = 2020


@dataclass(frozen=True)
class Plan:
    """What happens on which day; ``None`` or an empty set switches an event off."""

    days: int = 14
    # Share of the day's listings that sell, and new listings as a share of day 1's count.
    sold_share: float = 0.05
    new_share: float = 0.05
    unchanged_days: frozenset[int] = frozenset({5})
    inflation_from: int | None = 6
    inflation_per_day: float = 0.02
    shock_day: int | None = 9
    shock_fuel: str = "electric"
    shock_factor: float = 0.8
    new_model_from: int | None = 7
    new_model: NewModel = NewModel()
    # Share of each day's new listings that are the new model, once it is on sale.
    new_model_share: float = 0.2
    layout_days: frozenset[int] = frozenset({11})

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"a scenario needs at least 1 day, got {self.days}")
        for name in ("sold_share", "new_share", "new_model_share"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.shock_factor <= 0 or self.inflation_per_day <= -1:
            raise ValueError("shock_factor and 1 + inflation_per_day must be positive")
        if self.shock_fuel not in FUEL_PREMIUM:
            raise ValueError(f"shock_fuel must be one of {sorted(FUEL_PREMIUM)}")
        if self.new_model.model in MODELS.get(self.new_model.make, {}):
            raise ValueError(f"{self.new_model.model!r} is already listed from day 1")
        # An unchanged day must really equal the day before: nothing may start, move or end on it.
        for day in self.unchanged_days:
            events = {self.shock_day, self.new_model_from} | {
                d + shift for d in self.layout_days for shift in (0, 1)
            }
            if day < 2 or day in events or self.index(day) != self.index(day - 1):
                raise ValueError(f"day {day} cannot be unchanged: something happens on it")
        if self.new_model.body not in BODY_PREMIUM:
            raise ValueError(f"unknown body {self.new_model.body!r} for the new model")

    def index(self, day: int) -> float:
        """The market index of ``day``: 1.0 until inflation starts, then compounding daily."""
        if self.inflation_from is None or day < self.inflation_from:
            return 1.0
        return (1.0 + self.inflation_per_day) ** (day - self.inflation_from + 1)

    def factor(self, day: int, fuel: str) -> float:
        """What ``price_function`` is multiplied by on ``day`` for a car of ``fuel``."""
        shocked = self.shock_day is not None and day >= self.shock_day and fuel == self.shock_fuel
        return self.index(day) * (self.shock_factor if shocked else 1.0)

    def layout(self, day: int) -> str:
        return REDESIGN if day in self.layout_days else STANDARD

    def models(self) -> dict[str, dict[str, tuple[float, str, float]]]:
        """Every model the scenario can list (day 1's and the new one)."""
        table = {make: dict(models) for make, models in MODELS.items()}
        new = self.new_model
        table.setdefault(new.make, {})[new.model] = (new.price_new, new.body, new.engine)
        return table


DEFAULT_PLAN = Plan()
# The single-day site, day after day: listings still sell and appear, nothing else happens.
STABLE_PLAN = Plan(
    unchanged_days=frozenset(),
    inflation_from=None,
    shock_day=None,
    new_model_from=None,
    layout_days=frozenset(),
)


@dataclass(frozen=True)
class SiteDay:
    """One day of the site: its catalogue (ground truth included), layout and what changed."""

    number: int
    date: date
    catalogue: Catalogue
    layout: str
    plan: Plan
    models: ModelTable
    sold: tuple[str, ...]
    added: tuple[str, ...]
    changes: tuple[str, ...]
    # The highest listing number issued so far (sold ones included), for the next day's ids.
    last_number: int = field(repr=False)

    @property
    def noise_sigma(self) -> float:
        """The standard deviation of asking prices around the true price: the best RMSE."""
        return self.catalogue.noise_sigma

    @property
    def index(self) -> float:
        return self.plan.index(self.number)

    def price_factor(self, fuel: str) -> float:
        return self.plan.factor(self.number, fuel)

    def true_price(self, listing: Mapping[str, Any]) -> float:
        """The day's noiseless price of a car given by clean (canonical) feature values."""
        base = price_function(**features_of(listing), models=self.models)
        return round(base * self.price_factor(listing["fuel"]), 2)

    def true_prices(self, frame: pd.DataFrame) -> pd.Series:
        """``true_price`` of every row of ``frame`` (columns ``PRICE_FEATURES``, canonical values).

        Rows that cannot be priced (a missing feature other than the engine size, an unknown
        make, model, fuel or body) get NaN instead of raising, so scraped rows can be passed as
        they are. Equal to ``true_price`` to the cent.
        """
        import numpy as np
        import pandas as pd

        noiseless = prices(frame, self.models)
        factors = (
            frame["fuel"]
            .map({fuel: self.price_factor(fuel) for fuel in FUEL_PREMIUM})
            .to_numpy(float)
        )
        return pd.Series(np.round(noiseless * factors, 2), index=frame.index, name="true_price")

    def describe(self) -> str:
        return f"day {self.number} ({self.date.isoformat()}): " + "; ".join(self.changes)


class Scenario:
    """The days of one seeded demo site; ``day(n)`` plays the calendar up to day ``n`` once."""

    def __init__(
        self,
        seed: int = 7,
        listings: int = 3000,
        noise_sigma: float = DEFAULT_NOISE_SIGMA,
        plan: Plan = DEFAULT_PLAN,
    ) -> None:
        self.seed = seed
        self.listings = listings
        self.noise_sigma = noise_sigma
        self.plan = plan
        self.models = plan.models()
        catalogue = Catalogue.generate(listings=listings, seed=seed, noise_sigma=noise_sigma)
        # price_function of each listing's features: the day's factor re-prices it from here.
        self._base = {
            listing["listing_id"]: price_function(**features_of(listing))
            for listing in catalogue.listings
        }
        self._days = [
            SiteDay(
                number=1,
                date=REFERENCE_DATE,
                catalogue=catalogue,
                layout=plan.layout(1),
                plan=plan,
                models=self.models,
                sold=(),
                added=(),
                changes=(f"first day: {listings} listings, market index 1.0000",),
                last_number=listings,
            )
        ]

    @property
    def days(self) -> int:
        return self.plan.days

    def day(self, number: int) -> SiteDay:
        """Day ``number`` (1 to ``plan.days``)."""
        if not 1 <= number <= self.plan.days:
            raise ValueError(f"day must be between 1 and {self.plan.days}, got {number}")
        while len(self._days) < number:
            self._days.append(self._next(self._days[-1]))
        return self._days[number - 1]

    def _next(self, previous: SiteDay) -> SiteDay:
        number = previous.number + 1
        today = REFERENCE_DATE + timedelta(days=number - 1)
        common = {"number": number, "date": today, "plan": self.plan, "models": self.models}
        if number in self.plan.unchanged_days:
            return SiteDay(
                **common,
                catalogue=_copy(previous.catalogue),
                layout=previous.layout,
                sold=(),
                added=(),
                changes=(f"no change: the same listings and prices as day {number - 1}",),
                last_number=previous.last_number,
            )
        # Its own stream per day, so a day's draws never depend on how many earlier days drew.
        rng = random.Random(f"demosite-scenario:{self.seed}:{self.listings}:{number}")
        before = previous.catalogue
        ids = before.ids()
        sold_count = min(_at_least_one(self.plan.sold_share, len(ids)), len(ids))
        sold = set(rng.sample(ids, sold_count))
        catalogue = Catalogue(seed=self.seed, noise_sigma=self.noise_sigma, listings=[])
        added = self._add_new(catalogue, rng, number, today, previous.last_number)
        for listing in before.listings:
            if listing["listing_id"] not in sold:
                self._reprice(catalogue, before, listing, number)
        return SiteDay(
            **common,
            catalogue=catalogue,
            layout=self.plan.layout(number),
            sold=tuple(i for i in ids if i in sold),
            added=tuple(added),
            changes=self._changes(previous, number, len(sold), catalogue, added),
            last_number=previous.last_number + len(added),
        )

    def _add_new(
        self, catalogue: Catalogue, rng: random.Random, number: int, today: date, last: int
    ) -> list[str]:
        plan = self.plan
        on_sale = plan.new_model_from is not None and number >= plan.new_model_from
        added = []
        for offset in range(1, _at_least_one(plan.new_share, self.listings) + 1):
            listing_id = f"L{last + offset:06d}"
            if on_sale and rng.random() < plan.new_model_share:
                new = plan.new_model
                clean = draw_listing(
                    rng,
                    listing_id,
                    pick=(new.make, new.model),
                    models=self.models,
                    first_year=new.first_year,
                    posted=today,
                )
            else:
                clean = draw_listing(rng, listing_id, posted=today)
            self._base[listing_id] = price_function(**features_of(clean), models=self.models)
            true_price = round(self._base[listing_id] * plan.factor(number, clean["fuel"]), 2)
            noise = rng.gauss(0.0, self.noise_sigma)
            clean["price"] = noisy_price(true_price, noise)
            catalogue.add(clean, true_price, noise, *publish(rng, clean))
            added.append(listing_id)
        return added

    def _reprice(
        self, catalogue: Catalogue, before: Catalogue, listing: dict[str, Any], number: int
    ) -> None:
        listing_id = listing["listing_id"]
        noise = before.noise[listing_id]
        true_price = round(self._base[listing_id] * self.plan.factor(number, listing["fuel"]), 2)
        clean = dict(listing, price=noisy_price(true_price, noise))
        published = dict(before.published[listing_id])
        shown = dict(before.display[listing_id])
        # A listing whose page shows a wrong price (the $1 defect) keeps showing it.
        if published["price"] == listing["price"]:
            published["price"] = clean["price"]
            shown["price"] = price_text(clean["price"])
        catalogue.add(clean, true_price, noise, published, shown)

    def _changes(
        self,
        previous: SiteDay,
        number: int,
        sold: int,
        catalogue: Catalogue,
        added: list[str],
    ) -> tuple[str, ...]:
        plan = self.plan
        changes = [f"{sold} listings sold"]
        if added:
            changes.append(f"{len(added)} new listings ({added[0]}-{added[-1]})")
        index, yesterday = plan.index(number), plan.index(number - 1)
        if index == yesterday:
            changes.append(f"market index stable at {index:.4f}")
        else:
            changes.append(f"market index {index:.4f} ({(index / yesterday - 1) * 100:+.1f}%)")
        if number == plan.shock_day:
            changes.append(
                f"shock: {plan.shock_fuel} cars now worth {plan.shock_factor:g} times the index"
                f" ({(plan.shock_factor - 1) * 100:+.0f}% value)"
            )
        new = plan.new_model
        new_count = sum(catalogue.published[i]["model"] == new.model for i in added)
        if number == plan.new_model_from:
            changes.append(
                f"new model on sale: {new.make} {new.model}, unknown to the used_cars contract"
                f" ({new_count} listed)"
            )
        elif new_count:
            changes.append(f"{new_count} new {new.make} {new.model} listings")
        layout = plan.layout(number)
        if layout != previous.layout:
            changes.append(
                "layout back to standard"
                if layout == STANDARD
                else "layout redesign: the detail price is div.price-box span.amount, not p.price"
            )
        return tuple(changes)


def _at_least_one(share: float, of: int) -> int:
    # A tiny test site still changes every day instead of rounding its churn away.
    return max(1, math.floor(share * of + 0.5)) if share > 0 else 0


def _copy(catalogue: Catalogue) -> Catalogue:
    return Catalogue(
        seed=catalogue.seed,
        noise_sigma=catalogue.noise_sigma,
        listings=[dict(listing) for listing in catalogue.listings],
        published={i: dict(values) for i, values in catalogue.published.items()},
        display={i: dict(values) for i, values in catalogue.display.items()},
        true_price=dict(catalogue.true_price),
        noise=dict(catalogue.noise),
    )


__all__ = [
    "DEFAULT_PLAN",
    "PRICE_FEATURES",
    "STABLE_PLAN",
    "NewModel",
    "Plan",
    "Scenario",
    "SiteDay",
]
