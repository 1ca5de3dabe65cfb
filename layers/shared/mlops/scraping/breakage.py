"""Stopping a crawl whose detail pages no longer match its site spec (a changed layout).

When a site is redesigned, the spec's selectors stop matching and every detail page lacks a
required field: the crawl would fetch the whole site to land nothing, or land the few pages
that still match as if they were the day's data. So a crawl is judged after each detail page
it reads: once ``min_pages`` pages have been read (so a few bad listings at the start do not
stop it), more than ``max_share`` of them lacking a required field stops it for good.

"Read" means fetched and parsed as HTML: a page that could not be fetched or parsed says
nothing about the layout and is counted elsewhere (``pages_failed``). The counts live in the
crawl's ``CrawlStats``, so a crawl continued over several invocations is judged on all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops.scraping.crawl import CrawlStats
from mlops.settings import Settings


@dataclass(frozen=True)
class Breakage:
    """How broken a crawl may get before it stops: the share and the sample it is judged on."""

    max_share: float = 0.5
    min_pages: int = 20

    @classmethod
    def from_settings(cls, settings: Settings) -> Breakage:
        return cls(settings.scrape_max_broken_share, settings.scrape_broken_min_pages)

    def judge(self, stats: CrawlStats) -> str | None:
        """The reason to stop the crawl, or None while it may go on."""
        read = pages_read(stats)
        if read < self.min_pages:
            return None
        share = stats.items_failed / read
        if share <= self.max_share:
            return None
        return (
            f"layout changed? {_percent(share)} of {read} detail pages lack required field(s) "
            f"{_fields(stats)} (threshold {_percent(self.max_share)})"
        )


def pages_read(stats: CrawlStats) -> int:
    """Detail pages the spec was applied to: those that gave a record and those that could not."""
    return stats.records + stats.items_failed


def broken_share(stats: CrawlStats) -> float:
    read = pages_read(stats)
    return stats.items_failed / read if read else 0.0


def _fields(stats: CrawlStats) -> str:
    # The most often missing first: on a redesign that is the field whose selector broke.
    ranked = sorted(stats.missing_required.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(name for name, _ in ranked) or "(unnamed)"


def _percent(share: float) -> str:
    """A whole percentage unless rounding would hide the difference from the threshold."""
    whole = f"{share:.0%}"
    return whole if round(share * 100, 6) == round(share * 100) else f"{share:.1%}"
