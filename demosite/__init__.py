"""The demo used-car listings website: the embedded default data source (dev only)."""

from __future__ import annotations

from demosite.catalogue import Catalogue, price_function
from demosite.scenario import DEFAULT_PLAN, STABLE_PLAN, NewModel, Plan, Scenario, SiteDay
from demosite.server import DemoSite, serve

__all__ = [
    "DEFAULT_PLAN",
    "STABLE_PLAN",
    "Catalogue",
    "DemoSite",
    "NewModel",
    "Plan",
    "Scenario",
    "SiteDay",
    "price_function",
    "serve",
]
