"""Apply a site spec's selectors to fetched HTML."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import lxml.html
from lxml import etree

from mlops.scraping.parsers import ParseError, Value, parse_value
from mlops.scraping.spec import Selector, SiteSpec


class PageError(ValueError):
    """A page that cannot be parsed as HTML."""


class ItemError(ValueError):
    """A detail page whose required fields are missing or unparseable (``fields`` names them)."""

    def __init__(self, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields


def parse_html(content: bytes, url: str) -> Any:
    """The lxml document of a page; ``PageError`` for an empty or unparseable body."""
    try:
        return lxml.html.document_fromstring(content, base_url=url)
    except (etree.ParserError, ValueError) as error:
        raise PageError(f"{url}: not parseable as HTML ({error})") from error


def _matches(document: Any, selector: Selector) -> list[Any]:
    if selector.css is not None:
        return document.cssselect(selector.css)
    result = document.xpath(selector.xpath)
    return result if isinstance(result, list) else [result]


def _text(match: Any, attribute: str | None) -> str | None:
    if not hasattr(match, "text_content"):  # an XPath selecting text(), @attr or a number
        return str(match)
    if attribute is not None:
        return match.get(attribute)
    return match.text_content()


def select_first(document: Any, selector: Selector) -> str | None:
    """Text (or attribute) of the first match, None when nothing matches."""
    matches = _matches(document, selector)
    return _text(matches[0], selector.attribute) if matches else None


def select_links(document: Any, selector: Selector, base_url: str) -> list[str]:
    """Absolute URLs of every match, in page order."""
    links = []
    for match in _matches(document, selector):
        href = _text(match, selector.attribute or "href")
        if href:
            links.append(urljoin(base_url, href.strip()))
    return links


def extract_item(document: Any, spec: SiteSpec) -> tuple[dict[str, Value], list[str]]:
    """One record from a detail page, and the optional fields that failed to parse (set to None).

    Raises ``ItemError`` when a required field is absent or unparseable.
    """
    record: dict[str, Value] = {}
    field_errors: list[str] = []
    for name, field in spec.fields.items():
        try:
            record[name] = parse_value(select_first(document, field), field)
        except ParseError as error:
            if name in spec.required:
                raise ItemError(f"required field {name}: {error}", (name,)) from error
            field_errors.append(f"{name}: {error}")
            record[name] = None
    absent = [name for name in spec.required if record.get(name) is None]
    if absent:
        raise ItemError(f"required fields missing: {', '.join(absent)}", tuple(absent))
    return record, field_errors
