"""EventBridge event-pattern matching, done locally so routing never depends on how much of the
pattern language moto implements (the template uses ``prefix`` and ``wildcard``).

The rules follow AWS's documentation ("Amazon EventBridge event patterns", "Content filtering
in Amazon EventBridge event patterns", "Matching events on null values and empty strings")
and, where the documentation is silent, Event Ruler, the open-source engine EventBridge runs:

* pattern values are always arrays; a field matches when any array entry matches;
* an event array matches when any of its elements matches ("intersection is non-empty"),
  arrays of arrays are flattened, and a sub-pattern under an array of objects must match
  within one element (Event Ruler's array consistency);
* matching is exact and case-sensitive; ``equals-ignore-case`` (alone or inside ``prefix``,
  ``suffix`` and ``anything-but``) is the only case-insensitive comparison; a wildcard is
  case-sensitive too;
* strings and numbers never equal each other; numbers compare by their JSON representation
  (300 and 300.0 differ), ``null`` matches only ``null`` and ``""`` only ``""``;
* ``prefix``, ``suffix``, ``equals-ignore-case``, ``wildcard`` and ``cidr`` only match
  strings, ``numeric`` only JSON numbers;
* ``exists`` only sees leaf values: a field holding an object, an empty array or nothing does
  not exist; a field holding ``null`` does;
* ``anything-but`` needs the field to be present and matches every value its operand does not;
* a pattern AWS would refuse (InvalidEventPatternException) raises ``PatternError``.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Iterator
from typing import Any

_MISSING = object()
_SUPPORTED = {
    "prefix",
    "suffix",
    "wildcard",
    "anything-but",
    "numeric",
    "exists",
    "equals-ignore-case",
    "cidr",
}
# anything-but takes a value, a list of values, or one of these with a string or strings.
_ANYTHING_BUT_OPERATORS = {"prefix", "suffix", "equals-ignore-case", "wildcard"}
_LOWER_BOUNDS = {">", ">="}
_UPPER_BOUNDS = {"<", "<="}
_COMPARISONS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}


class PatternError(ValueError):
    """The pattern uses an operator this matcher does not know, or one AWS would refuse."""


def operators(pattern: Any) -> set[str]:
    """Every named operator (``prefix``, ``wildcard``…) used anywhere in ``pattern``."""
    found: set[str] = set()
    if isinstance(pattern, dict):
        for key, value in pattern.items():
            if key != "$or":
                found |= operators(value)
            else:
                for option in value:
                    found |= operators(option)
    elif isinstance(pattern, list):
        for item in pattern:
            if isinstance(item, dict):
                found |= set(item)
                found |= operators(list(item.values()))
    return found


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether ``event`` matches the EventBridge ``pattern``."""
    unknown = operators(pattern) - _SUPPORTED
    if unknown:
        raise PatternError(f"unsupported event pattern operator(s): {sorted(unknown)}")
    validate(pattern)
    return _match_object(pattern, event)


# --------------------------------------------------------------------------------- validation


def validate(pattern: Any) -> None:
    """Raise PatternError where EventBridge refuses the pattern (InvalidEventPatternException)."""
    if not isinstance(pattern, dict):
        raise PatternError("an event pattern must be a JSON object")
    _validate_object(pattern)


def _validate_object(pattern: dict[str, Any]) -> None:
    for key, expected in pattern.items():
        if key == "$or":
            # Event Ruler: "$or" takes an array of at least two objects.
            if (
                not isinstance(expected, list)
                or len(expected) < 2
                or not all(isinstance(option, dict) for option in expected)
            ):
                raise PatternError('"$or" must be an array of at least two objects')
            for option in expected:
                _validate_object(option)
        elif isinstance(expected, dict):
            _validate_object(expected)
        elif isinstance(expected, list):
            if not expected:
                raise PatternError(f"pattern field {key!r}: empty arrays are not allowed")
            for item in expected:
                _validate_value(key, item)
        else:
            # "Values in rules are always provided as arrays."
            raise PatternError(f"pattern field {key!r} must be a list or an object")


def _validate_value(key: str, item: Any) -> None:
    if isinstance(item, dict):
        _validate_filter(key, item)
    elif item is not None and not isinstance(item, str | int | float):
        raise PatternError(
            f"pattern field {key!r}: match value must be a string, number, true, false or null"
        )


def _only_operator(key: str, flt: dict[str, Any]) -> tuple[str, Any]:
    if len(flt) != 1:
        raise PatternError(f"pattern field {key!r}: only one key allowed in a match expression")
    ((name, arg),) = flt.items()
    return name, arg


def _validate_filter(key: str, flt: dict[str, Any]) -> None:
    name, arg = _only_operator(key, flt)
    if name in ("prefix", "suffix"):
        if isinstance(arg, dict):
            inner, value = _only_operator(key, arg)
            if inner != "equals-ignore-case" or not isinstance(value, str):
                raise PatternError(f"{name} takes a string or an equals-ignore-case string")
        elif not isinstance(arg, str):
            raise PatternError(f"{name} match pattern must be a string")
    elif name == "equals-ignore-case":
        if not isinstance(arg, str):
            raise PatternError("equals-ignore-case match pattern must be a string")
    elif name == "wildcard":
        if not isinstance(arg, str):
            raise PatternError("wildcard match pattern must be a string")
        _wildcard_regex(arg)
    elif name == "exists":
        if not isinstance(arg, bool):
            raise PatternError("exists match pattern must be either true or false")
    elif name == "cidr":
        if not isinstance(arg, str):
            raise PatternError("cidr match pattern must be a string")
        try:
            ipaddress.ip_network(arg, strict=False)
        except ValueError as error:
            raise PatternError(f"nonstandard IP address: {arg}") from error
    elif name == "numeric":
        _validate_numeric(arg)
    elif name == "anything-but":
        _validate_anything_but(key, arg)
    else:
        raise PatternError(f"unsupported event pattern operator(s): [{name!r}]")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate_numeric(arg: Any) -> None:
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise PatternError("numeric takes an array of one or two comparisons")
    ops, bounds = arg[::2], arg[1::2]
    if any(op not in _COMPARISONS for op in ops) or not all(_is_number(b) for b in bounds):
        raise PatternError(f"invalid numeric expression: {arg}")
    if len(ops) == 2 and (
        ops[0] not in _LOWER_BOUNDS or ops[1] not in _UPPER_BOUNDS or bounds[0] >= bounds[1]
    ):
        # A range is a lower bound followed by a greater upper bound.
        raise PatternError(f"invalid numeric range: {arg}")


def _validate_anything_but(key: str, arg: Any) -> None:
    if isinstance(arg, dict):
        inner, value = _only_operator(key, arg)
        if inner not in _ANYTHING_BUT_OPERATORS:
            raise PatternError(f"unsupported anything-but pattern: {inner}")
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            raise PatternError(f"anything-but {inner} takes a string or a list of strings")
        if inner == "wildcard":
            for v in values:
                _wildcard_regex(v)
        return
    values = arg if isinstance(arg, list) else [arg]
    all_strings = all(isinstance(v, str) for v in values)
    all_numbers = all(_is_number(v) for v in values)
    # "lists, which have to contain entirely strings or entirely numerics"
    if not values or not (all_strings or all_numbers):
        raise PatternError("anything-but takes a string, a number, or a list of either")


# --------------------------------------------------------------------------------- matching


def _flatten(value: Any) -> Iterator[Any]:
    # Event Ruler "crushes out" arrays, at any depth.
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def _match_object(pattern: dict[str, Any], node: Any) -> bool:
    # Only leaf paths matter: a missing or scalar node is an object without fields, so a
    # sub-pattern of only {"exists": false} still matches it.
    fields = node if isinstance(node, dict) else {}
    for key, expected in pattern.items():
        if key == "$or":
            if not any(_match_object(option, fields) for option in expected):
                return False
            continue
        value = fields.get(key, _MISSING)
        if isinstance(expected, dict):
            if not _match_nested(expected, value):
                return False
        elif not _match_leaf(expected, value):
            return False
    return True


def _match_nested(pattern: dict[str, Any], value: Any) -> bool:
    objects = [] if value is _MISSING else [v for v in _flatten(value) if isinstance(v, dict)]
    if not objects:
        return _match_object(pattern, {})
    # Array consistency: every field of the sub-pattern within one element.
    return any(_match_object(pattern, obj) for obj in objects)


def _match_leaf(filters: list[Any], value: Any) -> bool:
    leaves = [] if value is _MISSING else [v for v in _flatten(value) if not isinstance(v, dict)]
    for flt in filters:
        if isinstance(flt, dict) and "exists" in flt:
            if bool(leaves) == flt["exists"]:
                return True
        elif any(_match_filter(flt, leaf) for leaf in leaves):
            return True
    return False


def _json_number(value: int | float) -> str:
    return json.dumps(value)


def _equal(expected: Any, value: Any) -> bool:
    """Exact matching: same JSON type and same JSON text."""
    if expected is None or value is None:
        return expected is None and value is None
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(expected, bool) and isinstance(value, bool) and expected == value
    if isinstance(expected, str) or isinstance(value, str):
        return isinstance(expected, str) and isinstance(value, str) and expected == value
    if _is_number(expected) and _is_number(value):
        # "For numbers, EventBridge uses string representation": 300 and 300.0 differ.
        return _json_number(expected) == _json_number(value)
    return False


def _match_filter(flt: Any, value: Any) -> bool:
    if not isinstance(flt, dict):
        return _equal(flt, value)
    ((name, arg),) = flt.items()
    if name == "prefix":
        return _affix(arg, value, str.startswith)
    if name == "suffix":
        return _affix(arg, value, str.endswith)
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == arg.lower()
    if name == "wildcard":
        return isinstance(value, str) and _wildcard_regex(arg).fullmatch(value) is not None
    if name == "anything-but":
        return not _anything_but_operand_matches(arg, value)
    if name == "numeric":
        return _numeric(arg, value)
    if name == "cidr":
        if not isinstance(value, str):
            return False
        try:
            return ipaddress.ip_address(value) in ipaddress.ip_network(arg, strict=False)
        except ValueError:
            return False
    raise PatternError(f"unsupported operator {name!r}")


def _anything_but_operand_matches(arg: Any, value: Any) -> bool:
    if isinstance(arg, dict):
        ((name, operand),) = arg.items()
        operands = operand if isinstance(operand, list) else [operand]
        return any(_match_filter({name: o}, value) for o in operands)
    values = arg if isinstance(arg, list) else [arg]
    return any(_equal(v, value) for v in values)


def _affix(arg: Any, value: Any, test: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(arg, dict):
        return bool(test(value.lower(), str(arg["equals-ignore-case"]).lower()))
    return bool(test(value, arg))


@functools.cache
def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of an EventBridge wildcard: "*" spans anything (including "/");
    "\\*" is a literal star and "\\\\" a literal backslash; "**" and other escapes are errors."""
    parts: list[str] = []
    i = 0
    previous_star = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            following = pattern[i + 1 : i + 2]
            if following not in ("*", "\\"):
                raise PatternError(f"wildcard {pattern!r}: a backslash may only escape * or \\")
            parts.append(re.escape(following))
            previous_star = False
            i += 2
            continue
        if char == "*":
            if previous_star:
                raise PatternError(f"wildcard {pattern!r}: consecutive wildcards are not allowed")
            parts.append(".*")
            previous_star = True
        else:
            parts.append(re.escape(char))
            previous_star = False
        i += 1
    # No IGNORECASE: wildcard matching is case-sensitive.
    return re.compile("".join(parts), flags=re.DOTALL)


def _numeric(arg: list[Any], value: Any) -> bool:
    if not _is_number(value):
        return False
    pairs = zip(arg[::2], arg[1::2], strict=False)
    return all(_COMPARISONS[op](value, bound) for op, bound in pairs)


__all__ = ["PatternError", "matches", "operators", "validate"]
