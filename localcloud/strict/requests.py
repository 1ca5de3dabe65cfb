"""AWS's server-side checks of request parameters and payload sizes, which moto skips.

AWS validates every request against the constraints of its service model (``pattern``,
``enum``, ``min``/``max`` lengths, sizes and ranges) before it does anything else, and
answers a violation with HTTP 400 and a message such as::

    1 validation error detected: Value 'x(' at 'trainingJobName' failed to satisfy
    constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}

botocore's client-side validator checks only types, required members and ``min``; moto checks
almost nothing. ``check_request`` reproduces AWS's answer from the same model botocore ships.

The message format follows AWS's JSON/query services (the "Coral" framework): member paths
are lowerCamel (``resourceConfig.instanceType``); a list element is ``tags.1.member.key``
(1-based) and a map value ``requestItems.<key>.member``; a constraint on the scalar members
of a list or on a map's keys or values is reported once, at the collection, listing every
constraint of the member shape (``Member must satisfy constraint: [...]``, ``Map keys must
satisfy constraint: [...]``, ``Map value must satisfy constraint: [...]``), as in AWS's own
answers (e.g. EventBridge PutTargets ``targets.1.member.inputTransformer.inputPathsMap``).
"""

from __future__ import annotations

import functools
import os
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import regex
from botocore.exceptions import ClientError
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

KIB = 1024
MIB = 1024 * KIB

# "Invoke - AWS Lambda" (API reference): "For synchronous invocations, the maximum payload
# size is 6 MB. For asynchronous invocations, the maximum payload size is 1 MB." Lambda's
# own refusal names the exact byte count ("Request must be smaller than 6291456 bytes for the
# InvokeFunction operation"). The asynchronous limit was 256 KB until AWS raised it to 1 MB
# (botocore's bundled Invoke documentation states 1 MB).
LAMBDA_SYNC_PAYLOAD_LIMIT = 6 * MIB
LAMBDA_ASYNC_PAYLOAD_LIMIT = 1 * MIB
# "Lambda quotas": the synchronous response payload has the same 6 MB limit as the request.
LAMBDA_RESPONSE_PAYLOAD_LIMIT = 6 * MIB

# "Calculating Amazon EventBridge PutEvents event entry size" defines how entries are measured;
# the PutEvents API reference (as bundled with botocore) states "the total entry size must be
# less than 1MB" (it was 256 KB before AWS raised it).
EVENTBRIDGE_PUT_EVENTS_LIMIT = 1 * MIB

# "InvokeEndpoint - Amazon SageMaker Runtime": Body "Length Constraints: Maximum length of
# 6291456" (real-time endpoints). "Invoke a serverless endpoint - Amazon SageMaker AI": "The
# maximum request and response payload size for serverless invocations is 4 MB."
SAGEMAKER_REALTIME_PAYLOAD_LIMIT = 6 * MIB
SAGEMAKER_SERVERLESS_PAYLOAD_LIMIT = 4 * MIB

# "Naming Amazon S3 objects": a key's UTF-8 encoding is at most 1,024 bytes long.
# "Uploading objects" (Amazon S3 User Guide): a single PUT uploads at most 5 GB.
S3_KEY_MAX_BYTES = 1024
S3_SINGLE_PUT_LIMIT = 5 * 1024 * MIB

# AWS lists at most ten violations in one answer (as DynamoDB's emulators reproduce it).
_MAX_REPORTED = 10
# A pathological value must not hang the local cloud on one regular expression.
_MATCH_TIMEOUT_SECONDS = 2.0

# The error code each service answers a constraint violation with, where it is not the
# protocol's default (JSON and REST-JSON: ValidationException; query: ValidationError).
_VALIDATION_CODES = {
    # AWS Glue API reference, "Common exception structures": InvalidInputException, "The input
    # provided was not valid."; Glue has no separate framework validation error.
    "glue": "InvalidInputException",
    # CloudWatch Logs answers constraint violations with InvalidParameterException
    # ("2 validation errors detected: Value '' at 'logGroupNamePrefix' failed to satisfy ...").
    "logs": "InvalidParameterException",
    # "InvokeEndpoint - Amazon SageMaker Runtime", Errors: ValidationError, "Inspect your
    # request and try again." (HTTP 400); the only validation error the runtime models.
    "sagemaker-runtime": "ValidationError",
}
_QUERY_PROTOCOLS = {"query", "ec2"}


# ---------------------------------------------------------------------------------------------
# Java regular expressions
# ---------------------------------------------------------------------------------------------

# Java's "." and "$" know more line terminators than Python's (java.util.regex.Pattern,
# "Line terminators"); "$" also matches before a final terminator.
_JAVA_DOT = r"[^\n\r\u0085\u2028\u2029]"
_JAVA_END = r"(?:(?=(?:\r\n|[\n\r\u0085\u2028\u2029])?\Z))"
_JAVA_LINEBREAK = r"(?:\r\n|[\n\x0b\f\r\u0085\u2028\u2029])"
# Java's predefined classes are US-ASCII unless UNICODE_CHARACTER_CLASS is set; Python's and
# the regex module's are Unicode, so each is spelled out.
_JAVA_SHORTHANDS = {
    "d": "0-9",
    "w": "a-zA-Z_0-9",
    "s": r" \t\n\x0b\f\r",
    "h": r" \t\xa0\u1680\u180e\u2000-\u200a\u202f\u205f\u3000",
    "v": r"\n\x0b\f\r\x85\u2028\u2029",
}
_JAVA_WORD = "[a-zA-Z_0-9]"
_JAVA_BOUNDARY = f"(?:(?<={_JAVA_WORD})(?!{_JAVA_WORD})|(?<!{_JAVA_WORD})(?={_JAVA_WORD}))"
# Java's POSIX character classes (\p{Alnum}, \p{Print}…) are US-ASCII only.
_JAVA_POSIX = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": r"\x00-\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": r"\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e",
    "Graph": r"\x21-\x7e",
    "Print": r"\x20-\x7e",
    "Blank": r" \t",
    "Cntrl": r"\x00-\x1f\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": r" \t\n\x0b\f\r",
}
_JAVA_PROPERTIES = {
    "javaLowerCase": r"\p{Lowercase}",
    "javaUpperCase": r"\p{Uppercase}",
    "javaAlphabetic": r"\p{Alphabetic}",
    "javaLetter": r"\p{L}",
    "javaDigit": r"\p{Nd}",
    "javaLetterOrDigit": r"\p{L}\p{Nd}",
    "javaWhitespace": r"\p{White_Space}",
    "javaSpaceChar": r"\p{Z}",
    "javaMirrored": r"\p{Bidi_Mirrored}",
}
_SIMPLE_ESCAPES = {"t": 0x09, "n": 0x0A, "r": 0x0D, "f": 0x0C, "a": 0x07, "e": 0x1B}
_HEX = "0123456789abcdefABCDEF"


class JavaPatternError(ValueError):
    """A Java regular expression this translator cannot express for the regex module."""


@dataclass(frozen=True)
class _Escape:
    """One parsed escape: a code point, a set of characters, or raw regex text."""

    codepoint: int | None = None
    body: str | None = None
    negated: bool = False
    raw: str | None = None
    literal: str | None = None


def _lit(codepoint: int) -> str:
    char = chr(codepoint)
    if char.isascii() and (char.isalnum() or char == "_"):
        return char
    return f"\\U{codepoint:08x}"


class _JavaTranslator:
    """Translate one Java (java.util.regex) pattern into the regex module's V1 syntax."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        # With (?s) Java's "." matches everything, as Python's does under DOTALL.
        self.dotall = regex.search(r"\(\?[a-zA-Z]*s", pattern) is not None

    def translate(self) -> str:
        out: list[str] = []
        while self.i < len(self.p):
            c = self.p[self.i]
            if c == "\\":
                out.append(self._outside(self._escape(in_class=False)))
            elif c == "[":
                self.i += 1
                out.append(self._class())
            elif c == "." and not self.dotall:
                self.i += 1
                out.append(_JAVA_DOT)
            elif c == "$":
                self.i += 1
                out.append(_JAVA_END)
            else:
                self.i += 1
                out.append(c)
        return "".join(out)

    @staticmethod
    def _outside(esc: _Escape) -> str:
        if esc.raw is not None:
            return esc.raw
        if esc.literal is not None:
            return "".join(_lit(ord(ch)) for ch in esc.literal)
        if esc.codepoint is not None:
            return _lit(esc.codepoint)
        return f"[{'^' if esc.negated else ''}{esc.body}]"

    def _class(self) -> str:
        negated = self.p.startswith("^", self.i)
        if negated:
            self.i += 1
        items: list[str] = []
        first = True
        while True:
            if self.i >= len(self.p):
                raise JavaPatternError("unclosed character class")
            c = self.p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "[":
                self.i += 1
                items.append(self._class())
                continue
            if self.p.startswith("&&", self.i):
                self.i += 2
                items.append("&&")
                continue
            low = self._class_atom()
            if isinstance(low, str):
                items.append(low)
                continue
            # A range needs a single character on both sides of "-" (Java's rule too).
            if (
                self.p.startswith("-", self.i)
                and self.i + 1 < len(self.p)
                and self.p[self.i + 1] not in "[]"
            ):
                self.i += 1
                high = self._class_atom()
                if isinstance(high, str):
                    raise JavaPatternError("a character range ends in a character class")
                items.append(f"{_lit(low)}-{_lit(high)}")
            else:
                items.append(_lit(low))
        return f"[{'^' if negated else ''}{''.join(items)}]"

    def _class_atom(self) -> int | str:
        """One class member: a code point (may start a range) or ready-made set text."""
        c = self.p[self.i]
        if c != "\\":
            self.i += 1
            return ord(c)
        esc = self._escape(in_class=True)
        if esc.codepoint is not None:
            return esc.codepoint
        if esc.literal is not None:
            return "".join(_lit(ord(ch)) for ch in esc.literal)
        if esc.body is None:
            raise JavaPatternError("an escape that is not a character inside a class")
        return f"[^{esc.body}]" if esc.negated else esc.body

    def _escape(self, *, in_class: bool) -> _Escape:
        p = self.p
        if self.i + 1 >= len(p):
            raise JavaPatternError("a pattern ends in a backslash")
        c = p[self.i + 1]
        self.i += 2
        if c in _SIMPLE_ESCAPES:
            return _Escape(codepoint=_SIMPLE_ESCAPES[c])
        if c == "u":
            return _Escape(codepoint=self._utf16())
        if c == "x":
            return _Escape(codepoint=self._hex_escape())
        if c == "0":
            return _Escape(codepoint=self._octal())
        if c == "c":
            if self.i >= len(p):
                raise JavaPatternError("\\c without a character")
            self.i += 1
            return _Escape(codepoint=ord(p[self.i - 1]) ^ 0x40)
        if c == "N":
            return _Escape(codepoint=self._named())
        if c == "Q":
            end = p.find("\\E", self.i)
            text = p[self.i :] if end < 0 else p[self.i : end]
            self.i = len(p) if end < 0 else end + 2
            return _Escape(literal=text)
        if c.lower() in _JAVA_SHORTHANDS:
            return _Escape(body=_JAVA_SHORTHANDS[c.lower()], negated=c.isupper())
        if c in "pP":
            body, negated = self._property()
            return _Escape(body=body, negated=negated != (c == "P"))
        if not in_class:
            raw = self._anchor_or_reference(c)
            if raw is not None:
                return _Escape(raw=raw)
        if c.isascii() and c.isalnum():
            # Java refuses unknown letter escapes; the regex module would read them as letters.
            raise JavaPatternError(f"unsupported escape \\{c}")
        return _Escape(codepoint=ord(c))

    def _anchor_or_reference(self, c: str) -> str | None:
        p = self.p
        if c == "b":
            if p.startswith("{", self.i):
                raise JavaPatternError("\\b{g} grapheme boundaries are not supported")
            return _JAVA_BOUNDARY
        if c == "B":
            return f"(?!{_JAVA_BOUNDARY})"
        if c in "AG":
            return f"\\{c}"
        if c == "z":
            return r"\Z"
        if c == "Z":
            return _JAVA_END
        if c == "R":
            return _JAVA_LINEBREAK
        if c == "X":
            return r"\X"
        if c.isdigit():
            digits = c
            while self.i < len(p) and p[self.i].isdigit():
                digits += p[self.i]
                self.i += 1
            return f"(?:\\g<{digits}>)"
        if c == "k":
            end = p.find(">", self.i)
            if not p.startswith("<", self.i) or end < 0:
                raise JavaPatternError("malformed \\k<name>")
            name = p[self.i + 1 : end]
            self.i = end + 1
            return f"(?P={name})"
        return None

    def _utf16(self) -> int:
        unit = self._hex_digits(4)
        # Java joins an escaped surrogate pair into one supplementary code point.
        if 0xD800 <= unit <= 0xDBFF and self.p.startswith("\\u", self.i):
            saved = self.i
            self.i += 2
            low = self._hex_digits(4)
            if 0xDC00 <= low <= 0xDFFF:
                return 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            self.i = saved
        return unit

    def _hex_escape(self) -> int:
        if self.p.startswith("{", self.i):
            end = self.p.find("}", self.i)
            if end < 0:
                raise JavaPatternError("unclosed \\x{")
            text = self.p[self.i + 1 : end]
            self.i = end + 1
            try:
                return int(text, 16)
            except ValueError as error:
                raise JavaPatternError(f"bad \\x{{{text}}}") from error
        return self._hex_digits(2)

    def _hex_digits(self, count: int) -> int:
        text = self.p[self.i : self.i + count]
        if len(text) != count or any(ch not in _HEX for ch in text):
            raise JavaPatternError("a hexadecimal escape needs more digits")
        self.i += count
        return int(text, 16)

    def _octal(self) -> int:
        # Java: \0n, \0nn, \0mnn (m <= 3).
        digits = ""
        limit = 3 if self.i < len(self.p) and self.p[self.i] in "0123" else 2
        while len(digits) < limit and self.i < len(self.p) and self.p[self.i] in "01234567":
            digits += self.p[self.i]
            self.i += 1
        if not digits:
            raise JavaPatternError("\\0 without octal digits")
        return int(digits, 8)

    def _named(self) -> int:
        end = self.p.find("}", self.i)
        if not self.p.startswith("{", self.i) or end < 0:
            raise JavaPatternError("malformed \\N{name}")
        name = self.p[self.i + 1 : end]
        self.i = end + 1
        try:
            return ord(unicodedata.lookup(name))
        except KeyError as error:
            raise JavaPatternError(f"unknown character name {name!r}") from error

    def _property(self) -> tuple[str, bool]:
        p = self.p
        if p.startswith("{", self.i):
            end = p.find("}", self.i)
            if end < 0:
                raise JavaPatternError("unclosed \\p{")
            name = p[self.i + 1 : end]
            self.i = end + 1
        else:
            # \pL: a one-letter category.
            name = p[self.i : self.i + 1]
            self.i += 1
        negated = name.startswith("^")
        name = name.removeprefix("^")
        return _property_body(name), negated


def _property_body(name: str) -> str:
    """The class body (usable inside a set) of Java's ``\\p{name}``."""
    if name in _JAVA_POSIX:
        return _JAVA_POSIX[name]
    if name in _JAVA_PROPERTIES:
        return _JAVA_PROPERTIES[name]
    if name.startswith("java"):
        raise JavaPatternError(f"unsupported property \\p{{{name}}}")
    if name.startswith("In"):
        return f"\\p{{Block={name[2:]}}}"
    if name.startswith("Is"):
        name = name[2:]
        # \p{IsPunct} and friends are the POSIX classes again, but Unicode in Java only under
        # UNICODE_CHARACTER_CLASS; without it they stay ASCII.
        if name in _JAVA_POSIX:
            return _JAVA_POSIX[name]
    if "=" in name:
        key, _, value = name.partition("=")
        key = {"sc": "Script", "script": "Script", "blk": "Block", "block": "Block"}.get(
            key, "General_Category" if key in ("gc", "general_category") else key
        )
        return f"\\p{{{key}={value}}}"
    return f"\\p{{{name}}}"


def java_to_python(pattern: str) -> str:
    """The regex-module (V1) spelling of a Java regular expression from a service model."""
    return _JavaTranslator(pattern).translate()


_SKIPPED: dict[str, str] = {}


@functools.cache
def compile_pattern(pattern: str) -> regex.Pattern[str] | None:
    """The compiled model pattern, or None (recorded in ``skipped_patterns``) if impossible."""
    try:
        return regex.compile(java_to_python(pattern), flags=regex.V1)
    except (JavaPatternError, regex.error) as error:
        _SKIPPED[pattern] = str(error)
        return None


def skipped_patterns() -> dict[str, str]:
    """Each model pattern that could not be compiled (so was not enforced), with the reason."""
    return dict(_SKIPPED)


def model_patterns(service_model: ServiceModel) -> set[str]:
    """Every ``pattern`` constraint in a service model, input or output."""
    resolver = service_model._shape_resolver  # the raw shape map has no public accessor
    return {
        str(body["pattern"])
        for body in resolver._shape_map.values()
        if isinstance(body, Mapping) and "pattern" in body
    }


# ---------------------------------------------------------------------------------------------
# The request walk
# ---------------------------------------------------------------------------------------------

_NUMBER_TYPES = {"integer", "long", "float", "double"}
# botocore's ParamValidator reasons for a length or value under the model's ``min``.
_MIN_REASONS = {"invalid length", "invalid range"}


@dataclass(frozen=True)
class Violation:
    """One constraint violation, phrased as AWS phrases it."""

    path: str
    value: str | None
    constraint: str

    def text(self) -> str:
        """AWS's sentence for this violation."""
        shown = "" if self.value is None else f" '{self.value}'"
        return f"Value{shown} at '{self.path}' failed to satisfy constraint: {self.constraint}"


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_number(value: Any, type_name: str) -> bool:
    if isinstance(value, bool):
        return False
    if type_name in ("integer", "long"):
        return isinstance(value, int)
    return isinstance(value, int | float | Decimal)


def _blob_size(value: Any) -> int | None:
    """Bytes in a blob parameter (bytes, str or a seekable file), None when unknowable."""
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    try:
        return os.fstat(value.fileno()).st_size - value.tell()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        here = value.tell()
        # Some file-likes (s3transfer's ReadFileChunk) return None from seek: ask tell().
        value.seek(0, os.SEEK_END)
        end = value.tell()
        value.seek(here)
        return int(end - here)
    except (AttributeError, OSError, ValueError, TypeError):
        return None


def _bound(shape: Shape, bound: Any) -> str:
    # Java prints a Double bound as "1.0" and an Integer as "1".
    if shape.type_name in ("float", "double"):
        return str(float(bound))
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _render(value: Any, shape: Shape | None) -> str | None:
    """How AWS quotes a value (Java's toString); None where AWS leaves it out."""
    if shape is not None and shape.metadata.get("sensitive"):
        return None
    if shape is not None and shape.type_name == "blob":
        return None
    return _java_string(value, shape)


def _java_string(value: Any, shape: Shape | None) -> str:
    if shape is not None and shape.metadata.get("sensitive"):
        return "*** Sensitive Data Redacted ***"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(value)
    if isinstance(value, list | tuple):
        member = getattr(shape, "member", None)
        return "[" + ", ".join(_java_string(v, member) for v in value) + "]"
    if isinstance(value, Mapping):
        members = getattr(shape, "members", None)
        value_shape = getattr(shape, "value", None)
        parts = []
        for key, item in value.items():
            item_shape = members.get(key) if isinstance(members, Mapping) else value_shape
            parts.append(f"{key}={_java_string(item, item_shape)}")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, bytes | bytearray | memoryview):
        size = len(value)
        return f"java.nio.HeapByteBuffer[pos=0 lim={size} cap={size}]"
    return str(value)


def constraints(shape: Shape) -> list[str]:
    """Every constraint of a shape as AWS lists them inside "[...]" (max, min, pattern, enum)."""
    meta = shape.metadata
    unit = "value" if shape.type_name in _NUMBER_TYPES else "length"
    listed = []
    if "max" in meta:
        listed.append(f"Member must have {unit} less than or equal to {_bound(shape, meta['max'])}")
    if "min" in meta:
        listed.append(
            f"Member must have {unit} greater than or equal to {_bound(shape, meta['min'])}"
        )
    if "pattern" in meta:
        listed.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
    if getattr(shape, "enum", None):
        listed.append(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
    return listed


def _has_constraints(shape: Shape) -> bool:
    return bool(constraints(shape))


class _Walker:
    """Walks one input shape with its parameters and yields AWS's violations."""

    def failures(self, shape: Shape, value: Any) -> list[str]:
        """The constraints ``value`` breaks, in AWS's order (pattern, enum, min, max)."""
        meta = shape.metadata
        kind = shape.type_name
        if kind == "string":
            if not isinstance(value, str):
                return []
            size: float | None = len(value)
        elif kind in ("list", "map"):
            if kind == "list" and not isinstance(value, list | tuple):
                return []
            if kind == "map" and not isinstance(value, Mapping):
                return []
            size = len(value)
        elif kind == "blob":
            size = _blob_size(value)
        elif kind in _NUMBER_TYPES:
            if not _is_number(value, kind):
                return []
            size = value
        else:
            return []
        failed: list[str] = []
        if kind == "string":
            pattern = meta.get("pattern")
            compiled = compile_pattern(pattern) if pattern is not None else None
            if compiled is not None and not _fullmatch(compiled, value):
                failed.append(f"Member must satisfy regular expression pattern: {pattern}")
            enum = getattr(shape, "enum", None)
            if enum and value not in enum:
                failed.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
        if size is None:
            return failed
        unit = "value" if kind in _NUMBER_TYPES else "length"
        if "min" in meta and size < meta["min"]:
            failed.append(
                f"Member must have {unit} greater than or equal to {_bound(shape, meta['min'])}"
            )
        if "max" in meta and size > meta["max"]:
            failed.append(
                f"Member must have {unit} less than or equal to {_bound(shape, meta['max'])}"
            )
        return failed

    def member(self, shape: Shape, value: Any, path: str) -> Iterator[Violation]:
        """Violations of one member's own constraints, then of everything inside it."""
        if value is None:
            return
        for failure in self.failures(shape, value):
            yield Violation(path, _render(value, shape), failure)
        yield from self.contents(shape, value, path)

    def contents(self, shape: Shape, value: Any, path: str) -> Iterator[Violation]:
        """Violations inside a structure, list or map (not of its own constraints)."""
        kind = shape.type_name
        if kind == "structure":
            if shape.metadata.get("document") or not isinstance(value, Mapping):
                return
            for name, member_shape in shape.members.items():
                if name in value:
                    yield from self.member(
                        member_shape, value[name], _join(path, _lower_first(name))
                    )
        elif kind == "list" and isinstance(value, list | tuple):
            member = shape.member
            if _has_constraints(member) and any(self.failures(member, v) for v in value):
                listed = ", ".join(constraints(member))
                yield Violation(
                    path,
                    _render(value, shape),
                    f"Member must satisfy constraint: [{listed}]",
                )
            for index, item in enumerate(value, start=1):
                if item is not None:
                    yield from self.contents(member, item, f"{path}.{index}.member")
        elif kind == "map" and isinstance(value, Mapping):
            key_shape, value_shape = shape.key, shape.value
            if any(self.failures(key_shape, k) for k in value):
                listed = ", ".join(constraints(key_shape))
                yield Violation(
                    path, _render(value, shape), f"Map keys must satisfy constraint: [{listed}]"
                )
            if any(self.failures(value_shape, v) for v in value.values() if v is not None):
                listed = ", ".join(constraints(value_shape))
                yield Violation(
                    path, _render(value, shape), f"Map value must satisfy constraint: [{listed}]"
                )
            for key, item in value.items():
                if item is not None:
                    yield from self.contents(value_shape, item, f"{path}.{key}.member")


def _fullmatch(compiled: regex.Pattern[str], value: str) -> bool:
    try:
        return compiled.fullmatch(value, timeout=_MATCH_TIMEOUT_SECONDS) is not None
    except TimeoutError:
        # Undecidable in reasonable time: let it through rather than refuse a valid request.
        return True


def violations(operation_model: OperationModel, params: Mapping[str, Any]) -> list[Violation]:
    """Every constraint violation of a request, in AWS's order."""
    shape = operation_model.input_shape
    if shape is None or not isinstance(params, Mapping):
        return []
    return list(_Walker().contents(shape, params, ""))


def _client_refuses(operation_model: OperationModel, params: Mapping[str, Any]) -> bool:
    # botocore refuses a value under its ``min`` before sending anything (ParamValidationError),
    # so AWS never sees that request and its checks must not answer first. Only ``min`` counts:
    # type and required-member findings on these not-yet-transformed parameters can be false
    # (boto3's DynamoDB resource serializes Python values, S3's CopySource dict becomes a string
    # later), and the walk skips values of the wrong type anyway.
    shape = operation_model.input_shape
    if shape is None:
        return False
    report = ParamValidator().validate(params, shape)
    # ValidationErrors keeps (reason, name, details) tuples; it has no public accessor.
    return any(reason in _MIN_REASONS for reason, _name, _details in report._errors)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def validation_code(service_model: ServiceModel) -> str:
    """The error code a service answers a constraint violation with."""
    name = service_model.service_name
    if name in _VALIDATION_CODES:
        return _VALIDATION_CODES[name]
    # Query services (and JSON services that stay compatible with their query past, like
    # CloudWatch) answer ValidationError, as STS's "1 validation error detected" does.
    if (
        service_model.protocol in _QUERY_PROTOCOLS
        or service_model.metadata.get("awsQueryCompatible") is not None
    ):
        return "ValidationError"
    return "ValidationException"


def _error(
    code: str,
    message: str,
    operation: str,
    *,
    status: int = 400,
    exceptions: Any = None,
    extra: Mapping[str, str] | None = None,
) -> ClientError:
    request_id = str(uuid.uuid4())
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message, **(extra or {})},
        "ResponseMetadata": {
            "RequestId": request_id,
            "HTTPStatusCode": status,
            "HTTPHeaders": {"x-amzn-requestid": request_id},
            "RetryAttempts": 0,
        },
    }
    # A client's modelled exception class (client.exceptions.InvalidInputException…) lets
    # handlers catch it by class exactly as they would on AWS.
    error_class: Callable[..., ClientError] = ClientError
    if exceptions is not None:
        error_class = exceptions.from_code(code)
    return error_class(response, operation)


def _raise_validation(
    operation_model: OperationModel, found: list[Violation], exceptions: Any
) -> None:
    shown = found[:_MAX_REPORTED]
    count = len(shown)
    message = f"{count} validation error{'s' if count != 1 else ''} detected: " + "; ".join(
        v.text() for v in shown
    )
    code = validation_code(operation_model.service_model)
    raise _error(code, message, operation_model.name, exceptions=exceptions)


def check_request(
    operation_model: OperationModel,
    params: dict[str, Any],
    *,
    client_validates: bool = True,
    exceptions: Any = None,
) -> None:
    """Raise the ClientError AWS answers when ``params`` break the operation's constraints.

    ``client_validates``: the client's botocore parameter validation is on (its default), so a
    request botocore will refuse is left to it. ``exceptions``: the client's
    ``client.exceptions``, to raise its modelled exception classes.
    """
    if client_validates and _client_refuses(operation_model, params):
        return
    service = operation_model.service_model.service_name
    if service == "s3":
        _check_s3(operation_model, params, exceptions)
        return
    if service == "sqs":
        _check_sqs(operation_model, params, exceptions)
        return
    found = violations(operation_model, params)
    if found:
        _raise_validation(operation_model, found, exceptions)


def _check_s3(operation_model: OperationModel, params: dict[str, Any], exceptions: Any) -> None:
    # S3 is not a "1 validation error detected" service: it names one bad argument.
    # "Error responses - Amazon S3": InvalidArgument ("Invalid Argument", 400) and
    # InvalidStorageClass ("The storage class you specified is not valid", 400).
    shape = operation_model.input_shape
    if shape is None:
        return
    walker = _Walker()
    for name, member in shape.members.items():
        value = params.get(name)
        if value is None:
            continue
        failed = walker.failures(member, value)
        if not failed:
            continue
        if name == "StorageClass":
            raise _error(
                "InvalidStorageClass",
                "The storage class you specified is not valid",
                operation_model.name,
                exceptions=exceptions,
                extra={"StorageClassRequested": str(value)},
            )
        wire = member.serialization.get("name", name)
        raise _error(
            "InvalidArgument",
            f"Invalid Argument: {wire}: {failed[0]}",
            operation_model.name,
            exceptions=exceptions,
            extra={"ArgumentName": wire, "ArgumentValue": _java_string(value, member)},
        )


def _check_sqs(operation_model: OperationModel, params: dict[str, Any], exceptions: Any) -> None:
    # SQS models no patterns or lengths; its enums are attribute names, which SQS refuses as
    # InvalidAttributeName ("Unknown Attribute <name>.").
    found = violations(operation_model, params)
    if found:
        bad = _unknown_sqs_attribute(operation_model, params)
        message = f"Unknown Attribute {bad}." if bad else found[0].text()
        raise _error("InvalidAttributeName", message, operation_model.name, exceptions=exceptions)


def _unknown_sqs_attribute(operation_model: OperationModel, params: Mapping[str, Any]) -> str:
    shape = operation_model.input_shape
    for name, member in shape.members.items() if shape is not None else ():
        value = params.get(name)
        candidates: list[Any] = []
        enum_shape: Shape | None = None
        if member.type_name == "list" and isinstance(value, list | tuple):
            candidates, enum_shape = list(value), member.member
        elif member.type_name == "map" and isinstance(value, Mapping):
            candidates, enum_shape = list(value), member.key
        enum = getattr(enum_shape, "enum", None)
        for candidate in candidates:
            if enum and candidate not in enum:
                return str(candidate)
    return ""


# ---------------------------------------------------------------------------------------------
# Payload limits
# ---------------------------------------------------------------------------------------------


def put_events_entry_size(entry: Mapping[str, Any]) -> int:
    """One PutEvents entry's size as "Calculating Amazon EventBridge PutEvents event entry
    size" defines it: Time counts 14 bytes; Source, DetailType, Detail and each Resources
    entry count their UTF-8 bytes."""
    size = 14 if entry.get("Time") is not None else 0
    for field in ("Source", "DetailType", "Detail"):
        text = entry.get(field)
        if isinstance(text, str):
            size += len(text.encode("utf-8"))
    for resource in entry.get("Resources") or ():
        if isinstance(resource, str):
            size += len(resource.encode("utf-8"))
    return size


def check_lambda_payload(payload: bytes, *, asynchronous: bool, exceptions: Any = None) -> None:
    """Raise Lambda's RequestEntityTooLargeException (HTTP 413) for an oversized Invoke payload."""
    _check_lambda_size(len(payload), asynchronous=asynchronous, exceptions=exceptions)


def _check_lambda_size(size: int, *, asynchronous: bool, exceptions: Any) -> None:
    # Lambda answers with the code RequestEntityTooLargeException and HTTP 413 (botocore's
    # model names the shape RequestTooLargeException, but the wire code is the former), with
    # these messages, e.g. "264496 byte payload is too large for the Event invocation type
    # (limit 262144 bytes)" and "Request must be smaller than 6291456 bytes for the
    # InvokeFunction operation".
    if asynchronous and size > LAMBDA_ASYNC_PAYLOAD_LIMIT:
        message = (
            f"{size} byte payload is too large for the Event invocation type "
            f"(limit {LAMBDA_ASYNC_PAYLOAD_LIMIT} bytes)"
        )
    elif not asynchronous and size > LAMBDA_SYNC_PAYLOAD_LIMIT:
        message = (
            f"Request must be smaller than {LAMBDA_SYNC_PAYLOAD_LIMIT} bytes for the "
            "InvokeFunction operation"
        )
    else:
        return
    raise _error(
        "RequestEntityTooLargeException", message, "Invoke", status=413, exceptions=exceptions
    )


def check_invoke_endpoint_payload(body: bytes, *, serverless: bool, exceptions: Any = None) -> None:
    """Raise SageMaker Runtime's ValidationError for a body over the endpoint's limit."""
    size = len(body)
    if serverless and size > SAGEMAKER_SERVERLESS_PAYLOAD_LIMIT:
        # A serverless endpoint answers "ValidationError: Request <id> has oversize body."
        request_id = str(uuid.uuid4())
        raise _error(
            "ValidationError",
            f"Request {request_id} has oversize body.",
            "InvokeEndpoint",
            exceptions=exceptions,
        )
    if size > SAGEMAKER_REALTIME_PAYLOAD_LIMIT:
        raise _error(
            "ValidationError",
            "1 validation error detected: Value at 'body' failed to satisfy constraint: "
            f"Member must have length less than or equal to {SAGEMAKER_REALTIME_PAYLOAD_LIMIT}",
            "InvokeEndpoint",
            exceptions=exceptions,
        )


def check_payload_limits(
    service: str, operation: str, params: dict[str, Any], *, exceptions: Any = None
) -> None:
    """Raise the ClientError AWS answers when a request exceeds a documented size limit."""
    if service == "events" and operation == "PutEvents":
        entries = params.get("Entries") or []
        total = sum(put_events_entry_size(e) for e in entries if isinstance(e, Mapping))
        # The limit is on the request's entries together ("the total entry size"); AWS
        # refuses the whole request: "Total size of the entries in the request is over the
        # limit." (ValidationException).
        if total > EVENTBRIDGE_PUT_EVENTS_LIMIT:
            raise _error(
                "ValidationException",
                "Total size of the entries in the request is over the limit.",
                operation,
                exceptions=exceptions,
            )
    elif service == "lambda" and operation == "Invoke":
        size = _blob_size(params.get("Payload", b""))
        if size is not None:
            asynchronous = params.get("InvocationType") == "Event"
            _check_lambda_size(size, asynchronous=asynchronous, exceptions=exceptions)
    elif service == "sagemaker-runtime" and operation in (
        "InvokeEndpoint",
        "InvokeEndpointWithResponseStream",
    ):
        size = _blob_size(params.get("Body", b""))
        if size is not None and size > SAGEMAKER_REALTIME_PAYLOAD_LIMIT:
            raise _error(
                "ValidationError",
                "1 validation error detected: Value at 'body' failed to satisfy constraint: "
                f"Member must have length less than or equal to {SAGEMAKER_REALTIME_PAYLOAD_LIMIT}",
                operation,
                exceptions=exceptions,
            )
    elif service == "s3":
        _check_s3_limits(operation, params, exceptions)


def _check_s3_limits(operation: str, params: Mapping[str, Any], exceptions: Any) -> None:
    key = params.get("Key")
    if isinstance(key, str) and len(key.encode("utf-8")) > S3_KEY_MAX_BYTES:
        # "Error responses - Amazon S3": KeyTooLongError, "Your key is too long.", 400.
        raise _error("KeyTooLongError", "Your key is too long", operation, exceptions=exceptions)
    if operation == "PutObject":
        size = _blob_size(params.get("Body", b""))
        if size is not None and size > S3_SINGLE_PUT_LIMIT:
            # "Error responses - Amazon S3": EntityTooLarge, 400.
            raise _error(
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed object size.",
                operation,
                exceptions=exceptions,
                extra={
                    "ProposedSize": str(size),
                    "MaxSizeAllowed": str(S3_SINGLE_PUT_LIMIT),
                },
            )


__all__ = [
    "EVENTBRIDGE_PUT_EVENTS_LIMIT",
    "LAMBDA_ASYNC_PAYLOAD_LIMIT",
    "LAMBDA_RESPONSE_PAYLOAD_LIMIT",
    "LAMBDA_SYNC_PAYLOAD_LIMIT",
    "S3_KEY_MAX_BYTES",
    "S3_SINGLE_PUT_LIMIT",
    "SAGEMAKER_REALTIME_PAYLOAD_LIMIT",
    "SAGEMAKER_SERVERLESS_PAYLOAD_LIMIT",
    "JavaPatternError",
    "Violation",
    "check_invoke_endpoint_payload",
    "check_lambda_payload",
    "check_payload_limits",
    "check_request",
    "compile_pattern",
    "constraints",
    "java_to_python",
    "model_patterns",
    "put_events_entry_size",
    "skipped_patterns",
    "validation_code",
    "violations",
]
