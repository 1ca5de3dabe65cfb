"""Turn the text shown on a page ("$12,500", "45,000 mi", "1.6 L", "27 Nov 2026") into values."""

from __future__ import annotations

import re
from datetime import datetime

from mlops.scraping.spec import FieldSpec

_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")
_QUANTITY = re.compile(r"^\s*(?P<number>[-+]?[\d,]*\.?\d+)\s*(?P<unit>[^\d\s].*?)?\s*$")
_CURRENCY_MARKS = re.compile(r"(?i)^\s*(?:usd|us\$|\$)?\s*")

Value = str | int | float | None


class ParseError(ValueError):
    """Text that does not fit its field's parser."""


def _number(text: str) -> float:
    match = _NUMBER.fullmatch(text.strip())
    if not match:
        raise ParseError(f"not a number: {text!r}")
    return float(match.group(0).replace(",", ""))


def _integer(number: float, text: str) -> int:
    if number != int(number):
        raise ParseError(f"not a whole number: {text!r}")
    return int(number)


def parse_value(text: str | None, spec: FieldSpec) -> Value:
    """The typed value of ``text`` under ``spec``; None for a missing or blank value."""
    if text is None or not text.strip():
        return None
    text = " ".join(text.split())
    if spec.parser == "text":
        return text.lower() if spec.lowercase else text
    if spec.parser == "int":
        return _integer(_number(text), text)
    if spec.parser == "float":
        return _number(text)
    if spec.parser == "currency":
        amount = _CURRENCY_MARKS.sub("", text, count=1)
        return _number(amount.removesuffix("USD").strip())
    if spec.parser == "quantity":
        return _quantity(text, spec)
    return _date(text, spec.formats)


def _quantity(text: str, spec: FieldSpec) -> int | float:
    match = _QUANTITY.match(text)
    if not match:
        raise ParseError(f"not a quantity: {text!r}")
    unit = (match.group("unit") or "").strip()
    factor = spec.units.get(unit, spec.units.get(unit.lower()))
    if factor is None:
        raise ParseError(f"unknown unit {unit!r} in {text!r} (known: {', '.join(spec.units)})")
    value = _number(match.group("number")) * factor
    return round(value) if spec.cast == "int" else round(value, 6)


def _date(text: str, formats: list[str]) -> str:
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise ParseError(f"date {text!r} matches none of {formats}")
