"""EventBridge event-pattern matching, done locally so routing never depends on how much of the
pattern language moto implements (the template uses ``prefix`` and ``wildcard``)."""

from __future__ import annotations

import ipaddress
import re
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


class PatternError(ValueError):
    """The pattern uses an operator this matcher does not know."""


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
    return _match_object(pattern, event)


def _match_object(pattern: dict[str, Any], node: Any) -> bool:
    for key, expected in pattern.items():
        if key == "$or":
            if not any(_match_object(option, node) for option in expected):
                return False
            continue
        value = node.get(key, _MISSING) if isinstance(node, dict) else _MISSING
        if isinstance(expected, dict):
            if not isinstance(value, dict) or not _match_object(expected, value):
                return False
        elif isinstance(expected, list):
            if not _match_values(expected, value):
                return False
        else:
            raise PatternError(f"pattern field {key!r} must be a list or an object")
    return True


def _match_values(filters: list[Any], value: Any) -> bool:
    # An array in the event matches when any of its elements matches.
    values = value if isinstance(value, list) else [value]
    return any(_match_filter(f, v) for f in filters for v in values) or (
        value is _MISSING and any(_match_filter(f, _MISSING) for f in filters)
    )


def _match_filter(flt: Any, value: Any) -> bool:
    if not isinstance(flt, dict):
        return value is not _MISSING and value == flt
    ((name, arg),) = flt.items()
    if name == "exists":
        return (value is not _MISSING) == bool(arg)
    if value is _MISSING:
        return False
    if name == "prefix":
        return _affix(arg, value, str.startswith)
    if name == "suffix":
        return _affix(arg, value, str.endswith)
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(arg).lower()
    if name == "wildcard":
        return isinstance(value, str) and _wildcard(arg, value)
    if name == "anything-but":
        if isinstance(arg, list):
            return value not in arg
        if isinstance(arg, dict):
            return not _match_filter(arg, value)
        return value != arg
    if name == "numeric":
        return _numeric(arg, value)
    if name == "cidr":
        try:
            return ipaddress.ip_address(value) in ipaddress.ip_network(arg)
        except ValueError:
            return False
    raise PatternError(f"unsupported operator {name!r}")


def _affix(arg: Any, value: Any, test: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(arg, dict) and "equals-ignore-case" in arg:
        return bool(test(value.lower(), str(arg["equals-ignore-case"]).lower()))
    return bool(test(value, str(arg)))


def _wildcard(pattern: str, value: str) -> bool:
    # EventBridge wildcards: only "*" is special ("\*" is a literal star); "*" spans "/".
    parts = re.split(r"(?<!\\)\*", pattern)
    regex = ".*".join(re.escape(p.replace("\\*", "*")) for p in parts)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _numeric(arg: list[Any], value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    checks = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        "=": lambda a, b: a == b,
        ">=": lambda a, b: a >= b,
        ">": lambda a, b: a > b,
    }
    pairs = zip(arg[::2], arg[1::2], strict=False)
    return all(checks[op](value, bound) for op, bound in pairs)


__all__ = ["PatternError", "matches", "operators"]
