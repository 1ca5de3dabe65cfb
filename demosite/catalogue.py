"""The demo site's data: used-car listings drawn from a seed, priced by a known function plus noise.

The price function is smooth and learnable; the Gaussian noise added on top has a known standard
deviation, so ``noise_sigma`` is the best RMSE any model can reach on this data.

Three views of each listing are kept so tests can check every stage against ground truth:
``listings`` (true clean values in the dataset's columns), ``published`` (the typed values a
correct scraper extracts from the page: messy make spellings, defects and gaps included) and
``display`` (the exact strings rendered into the HTML).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

REFERENCE_YEAR = 2026
REFERENCE_DATE = date(2026, 11, 27)
DEFAULT_NOISE_SIGMA = 2000.0
MIN_PRICE = 500.0
KM_PER_MILE = 1.609344

COLUMNS = (
    "listing_id",
    "make",
    "model",
    "year",
    "mileage",
    "fuel",
    "transmission",
    "engine_size",
    "body",
    "posted_date",
    "price",
)
# The inputs of ``price_function``, in its argument order.
PRICE_FEATURES = ("make", "model", "year", "mileage", "fuel", "transmission", "engine_size", "body")
# Fields a seller may leave blank on the site (the price, identity and year are always shown).
OPTIONAL_FIELDS = ("mileage", "transmission", "engine_size", "body", "posted_date")

# model -> (price new in USD, usual body, usual engine litres)
ModelTable = Mapping[str, Mapping[str, tuple[float, str, float]]]
MODELS: dict[str, dict[str, tuple[float, str, float]]] = {
    "toyota": {
        "yaris": (18000, "hatchback", 1.3),
        "corolla": (23000, "sedan", 1.6),
        "rav4": (31000, "suv", 2.0),
        "hilux": (36000, "pickup", 2.8),
    },
    "ford": {
        "fiesta": (17000, "hatchback", 1.2),
        "focus": (22000, "hatchback", 1.6),
        "mondeo": (28000, "wagon", 2.0),
        "ranger": (35000, "pickup", 3.2),
    },
    "volkswagen": {
        "polo": (19000, "hatchback", 1.2),
        "golf": (25000, "hatchback", 1.4),
        "passat": (32000, "wagon", 2.0),
        "tiguan": (34000, "suv", 2.0),
    },
    "bmw": {
        "1 series": (30000, "hatchback", 1.5),
        "3 series": (42000, "sedan", 2.0),
        "5 series": (55000, "sedan", 2.0),
        "x5": (65000, "suv", 3.0),
    },
    "honda": {
        "jazz": (18000, "hatchback", 1.3),
        "civic": (24000, "hatchback", 1.5),
        "accord": (29000, "sedan", 2.0),
        "cr-v": (32000, "suv", 2.0),
    },
    "audi": {
        "a3": (32000, "hatchback", 1.4),
        "a4": (40000, "sedan", 2.0),
        "a6": (52000, "wagon", 2.0),
        "q5": (48000, "suv", 2.0),
    },
    "mercedes-benz": {
        "a-class": (33000, "hatchback", 1.3),
        "c-class": (44000, "sedan", 2.0),
        "e-class": (56000, "sedan", 2.0),
        "gle": (62000, "suv", 3.0),
    },
    "nissan": {
        "micra": (16000, "hatchback", 1.0),
        "qashqai": (27000, "suv", 1.3),
        "leaf": (30000, "hatchback", 0.0),
        "navara": (34000, "pickup", 2.3),
    },
    "hyundai": {
        "i20": (17000, "hatchback", 1.2),
        "i30": (21000, "hatchback", 1.4),
        "tucson": (29000, "suv", 1.6),
        "ioniq": (31000, "hatchback", 1.6),
    },
    "kia": {
        "picanto": (14000, "hatchback", 1.0),
        "ceed": (21000, "wagon", 1.4),
        "sportage": (28000, "suv", 1.6),
        "stinger": (42000, "coupe", 3.3),
    },
}
# How sellers type each make (the first is the usual spelling); the contract's aliases map back.
MAKE_SPELLINGS: dict[str, tuple[str, ...]] = {
    "toyota": ("Toyota", "TOYOTA", "toyota"),
    "ford": ("Ford", "FORD", "ford "),
    "volkswagen": ("Volkswagen", "VW", "Volkswagen ", "volkswagen", "V.W."),
    "bmw": ("BMW", "Bmw", "bmw"),
    "honda": ("Honda", "HONDA"),
    "audi": ("Audi", "AUDI", "audi"),
    "mercedes-benz": ("Mercedes-Benz", "Mercedes", "Mercedes Benz", "MERCEDES-BENZ", "Merc"),
    "nissan": ("Nissan", "NISSAN"),
    "hyundai": ("Hyundai", "HYUNDAI", "Hyundai "),
    "kia": ("Kia", "KIA", "kia"),
}
# Models that only come electric, and models offered with a hybrid option.
ELECTRIC_ONLY = {"leaf"}
HYBRID_MODELS = {"yaris", "corolla", "rav4", "jazz", "civic", "cr-v", "ioniq", "tucson", "sportage"}
ELECTRIC_OPTION = {"golf", "ioniq", "a3", "c-class", "i30", "ceed"}

BODY_PREMIUM = {
    "sedan": 0.0,
    "hatchback": -800.0,
    "wagon": 700.0,
    "suv": 2000.0,
    "coupe": 1500.0,
    "pickup": 1500.0,
}
FUEL_PREMIUM = {"petrol": 0.0, "diesel": 900.0, "hybrid": 2200.0, "electric": 3500.0}
OTHER_BODIES = {"sedan": "wagon", "hatchback": "sedan", "wagon": "sedan", "suv": "suv"}


def price_function(
    make: str,
    model: str,
    year: int,
    mileage: int,
    fuel: str,
    transmission: str,
    engine_size: float | None,
    body: str,
    *,
    models: ModelTable = MODELS,
) -> float:
    """The noiseless price of a car in USD (``models`` may add models the site lists later)."""
    base, usual_body, usual_engine = models[make][model]
    age = max(REFERENCE_YEAR - year, 0)
    # Age and mileage depreciate the model's price; a floor of value that never depreciates
    # keeps the age-by-model interaction mild enough to learn from a few thousand rows.
    value = base * (0.3 + 0.7 * math.exp(-0.12 * age)) * math.exp(-mileage / 250_000) - 3000.0
    value += FUEL_PREMIUM[fuel] + BODY_PREMIUM[body] - BODY_PREMIUM[usual_body]
    value += 1200.0 if transmission == "automatic" else 0.0
    if engine_size is not None and usual_engine > 0:
        value += 2500.0 * (engine_size - usual_engine)
    return round(max(1500.0 + value, 1000.0), 2)


def prices(frame: pd.DataFrame, models: ModelTable = MODELS) -> np.ndarray:
    """``price_function`` of every row of ``frame`` at once (NaN where a row cannot be priced:
    a missing feature other than the engine size, an unknown make, model, fuel or body)."""
    import numpy as np
    import pandas as pd

    spec = [
        models.get(make, {}).get(model) if isinstance(make, str) else None
        for make, model in zip(frame["make"], frame["model"], strict=True)
    ]
    base = np.array([s[0] if s else np.nan for s in spec], dtype=float)
    usual_body = pd.Series([s[1] if s else None for s in spec], index=frame.index)
    usual_engine = np.array([s[2] if s else np.nan for s in spec], dtype=float)
    year = pd.to_numeric(frame["year"], errors="coerce").to_numpy(float)
    mileage = pd.to_numeric(frame["mileage"], errors="coerce").to_numpy(float)
    engine = pd.to_numeric(frame["engine_size"], errors="coerce").to_numpy(float)
    automatic = np.where(frame["transmission"].isna(), np.nan, 0.0)
    automatic[(frame["transmission"] == "automatic").to_numpy()] = 1200.0

    age = np.maximum(REFERENCE_YEAR - year, 0)
    value = base * (0.3 + 0.7 * np.exp(-0.12 * age)) * np.exp(-mileage / 250_000) - 3000.0
    value += frame["fuel"].map(FUEL_PREMIUM).to_numpy(float)
    value += frame["body"].map(BODY_PREMIUM).to_numpy(float)
    value -= usual_body.map(BODY_PREMIUM).to_numpy(float)
    value += automatic
    # As in price_function: no engine size (an electric car) means no engine adjustment.
    with_engine = ~np.isnan(engine) & (usual_engine > 0)
    value += np.where(with_engine, 2500.0 * (np.nan_to_num(engine) - usual_engine), 0.0)
    return np.round(np.maximum(1500.0 + value, 1000.0), 2)


@dataclass
class Catalogue:
    """All listings of one demo site, with their ground truth."""

    seed: int
    noise_sigma: float
    listings: list[dict[str, Any]]
    published: dict[str, dict[str, Any]] = field(default_factory=dict)
    display: dict[str, dict[str, str]] = field(default_factory=dict)
    true_price: dict[str, float] = field(default_factory=dict)
    # The Gaussian draw added to each true price: a listing keeps it when the market re-prices
    # it (demosite.calendar), so published prices stay true price plus the same noise.
    noise: dict[str, float] = field(default_factory=dict)

    @classmethod
    def generate(
        cls, listings: int = 3000, seed: int = 7, noise_sigma: float = DEFAULT_NOISE_SIGMA
    ) -> Catalogue:
        """Draw ``listings`` cars deterministically from ``seed``."""
        if listings < 1:
            raise ValueError(f"listings must be at least 1, got {listings}")
        rng = random.Random(seed)
        catalogue = cls(seed=seed, noise_sigma=noise_sigma, listings=[])
        for index in range(1, listings + 1):
            clean, true_price, noise = _draw_car(rng, f"L{index:06d}", noise_sigma)
            catalogue.add(clean, true_price, noise, *publish(rng, clean))
        return catalogue

    def add(
        self,
        clean: dict[str, Any],
        true_price: float,
        noise: float,
        published: dict[str, Any],
        shown: dict[str, str],
    ) -> None:
        """Append one listing with its ground truth, published values and page strings."""
        listing_id = clean["listing_id"]
        self.listings.append(clean)
        self.true_price[listing_id] = true_price
        self.noise[listing_id] = noise
        self.published[listing_id] = published
        self.display[listing_id] = shown

    def ids(self) -> list[str]:
        return [listing["listing_id"] for listing in self.listings]


def features_of(listing: Mapping[str, Any]) -> dict[str, Any]:
    """The ``price_function`` arguments of a listing."""
    return {name: listing[name] for name in PRICE_FEATURES}


def noisy_price(true_price: float, noise: float) -> float:
    """The asking price a seller sets: the true price plus noise, in whole dollars, floored."""
    return float(max(round(true_price + noise), MIN_PRICE))


def _draw_car(
    rng: random.Random, listing_id: str, noise_sigma: float
) -> tuple[dict[str, Any], float, float]:
    """A clean listing, its true price and the noise drawn on top of it."""
    clean = draw_listing(rng, listing_id)
    true_price = price_function(**features_of(clean))
    noise = rng.gauss(0.0, noise_sigma)
    clean["price"] = noisy_price(true_price, noise)
    return clean, true_price, noise


def draw_listing(
    rng: random.Random,
    listing_id: str,
    *,
    pick: tuple[str, str] | None = None,
    models: ModelTable = MODELS,
    first_year: int = 1995,
    posted: date | None = None,
) -> dict[str, Any]:
    """A clean listing without its price: a random car, or a ``pick`` (make, model) of ``models``.

    ``first_year`` caps the age (a model launched recently has no older cars) and ``posted`` fixes
    the posting date. The draws happen in a fixed order, so a seed always gives the same cars.
    """
    if pick is None:
        make = rng.choice(sorted(models))
        model = rng.choice(sorted(models[make]))
    else:
        make, model = pick
    _, usual_body, usual_engine = models[make][model]
    age = min(int(rng.gammavariate(2.2, 3.2)), REFERENCE_YEAR - first_year)
    year = REFERENCE_YEAR - age
    mileage = int(min(max(age, 0.3) * 10_500 * rng.lognormvariate(0, 0.35), 400_000))
    fuel = _draw_fuel(rng, model, year)
    transmission = "automatic" if rng.random() < (0.35 + 0.02 * (year - 1995)) else "manual"
    engine_size: float | None
    if fuel == "electric":
        transmission, engine_size = "automatic", None
    else:
        engine = max(usual_engine, 1.0) + rng.choice((-0.4, -0.2, 0.0, 0.0, 0.2, 0.5))
        engine_size = round(min(max(engine, 0.8), 6.5), 1)
    body = usual_body if rng.random() < 0.8 else OTHER_BODIES.get(usual_body, usual_body)
    if posted is None:
        posted = REFERENCE_DATE - timedelta(days=rng.randrange(0, 120))
    return {
        "listing_id": listing_id,
        "make": make,
        "model": model,
        "year": year,
        "mileage": mileage,
        "fuel": fuel,
        "transmission": transmission,
        "engine_size": engine_size,
        "body": body,
        "posted_date": posted.isoformat(),
        "price": None,
    }


def _draw_fuel(rng: random.Random, model: str, year: int) -> str:
    if model in ELECTRIC_ONLY:
        return "electric"
    roll = rng.random()
    if model in ELECTRIC_OPTION and year >= 2014 and roll < 0.15:
        return "electric"
    if model in HYBRID_MODELS and year >= 2005 and roll < 0.35:
        return "hybrid"
    return "diesel" if roll > 0.7 else "petrol"


def publish(rng: random.Random, clean: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """What the page shows for a listing: typed values a scraper should get, and their strings."""
    published = dict(clean)
    spellings = MAKE_SPELLINGS[clean["make"]]
    published["make"] = spellings[0] if rng.random() < 0.7 else rng.choice(spellings[1:])
    if rng.random() < 0.06:
        published[rng.choice(OPTIONAL_FIELDS)] = None
    defect = rng.random()
    if defect < 0.004:
        published["year"] = 2099
    elif defect < 0.008 and published["mileage"] is not None:
        published["mileage"] = -published["mileage"] - 1000
    elif defect < 0.012:
        published["price"] = 1.0
    in_km = rng.random() < 0.1
    iso_date = rng.random() < 0.2
    shown = {
        "listing_id": clean["listing_id"],
        "make": published["make"],
        "model": clean["model"].title(),
        "year": str(published["year"]),
        "fuel": clean["fuel"].capitalize(),
        "price": price_text(published["price"]),
    }
    if published["mileage"] is not None:
        miles = published["mileage"]
        shown["mileage"] = f"{round(miles * KM_PER_MILE):,} km" if in_km else f"{miles:,} mi"
    if published["transmission"] is not None:
        shown["transmission"] = published["transmission"].capitalize()
    if published["engine_size"] is not None:
        shown["engine_size"] = f"{published['engine_size']:.1f} L"
    if published["body"] is not None:
        shown["body"] = "SUV" if published["body"] == "suv" else published["body"].capitalize()
    if published["posted_date"] is not None:
        posted = date.fromisoformat(published["posted_date"])
        shown["posted_date"] = posted.isoformat() if iso_date else f"{posted:%d %b %Y}"
    # A scraper trims the text it reads, so the trailing spaces some sellers type stay on the page.
    published["make"] = published["make"].strip()
    return published, shown


def price_text(price: float) -> str:
    """How the site shows a price."""
    return f"${price:,.0f}"
