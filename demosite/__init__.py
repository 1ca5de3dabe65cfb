"""The demo used-car listings website: the embedded default data source (dev only)."""

from __future__ import annotations

from demosite.catalogue import Catalogue, price_function
from demosite.server import DemoSite, serve

__all__ = ["Catalogue", "DemoSite", "price_function", "serve"]
