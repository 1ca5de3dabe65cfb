"""The input fields of the web form and the prediction API, derived from the dataset contract.

The contract is the single source of a row's shape: the form, the request validation and the
OpenAPI row schema are all generated from the same ``Field`` list, so they cannot disagree.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from mlops.contract import Contract, load_contract, normalise_label

FieldType = Literal["int", "float", "string", "category", "bool", "datetime"]

_CONTRACT_TTL_SECONDS = 60.0
# Text the API reads as a number (JSON numbers are the documented form; forms and CSV-minded
# clients send text). One expression for the code and the OpenAPI pattern, so they agree:
# ASCII digits only (Python's float() also reads "1_000", "nan" or Arabic-Indic digits).
_NUMBER_TEXT = r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*"
_BLANK_TEXT = r"\s*"
_BOOL_TEXT = r"\s*([tT][rR][uU][eE]|[fF][aA][lL][sS][eE])\s*"
_contract_cache: dict[str, tuple[float, Any]] = {}


class Field(BaseModel):
    """One feature a caller supplies: its type, whether it is required, its range or options."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: FieldType
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    description: str | None = None


class FieldError(BaseModel):
    """Why one value of one row was refused (``row`` is the row's index in the request)."""

    row: int | None = None
    field: str | None = None
    message: str


class RowsRejected(ValueError):
    """The request's rows do not satisfy the contract; carries every field error found."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} invalid value(s)")
        self.errors = errors


class FormSpec(BaseModel):
    """What the web layer needs from a contract: the feature fields, the target and the task."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    target: str
    task: str
    fields: tuple[Field, ...]
    # Contract columns that are not features (key, target, lineage): accepted and dropped.
    ignored: frozenset[str] = frozenset()


def spec_from_contract(contract: Contract) -> FormSpec:
    """The form spec of a contract: its feature columns, in contract order."""
    fields: list[Field] = []
    for name, column in contract.columns.items():
        if not column.feature:
            continue
        numeric = column.type in ("int", "float")
        fields.append(
            Field(
                name=name,
                type=column.type,
                required=column.required,
                minimum=column.min if numeric else None,
                maximum=column.max if numeric else None,
                allowed=tuple(str(v) for v in column.allowed or ()),
                aliases=tuple((normalise_label(k), str(v)) for k, v in column.aliases.items()),
                description=column.description or None,
            )
        )
    non_features = {name for name, column in contract.columns.items() if not column.feature}
    return FormSpec(
        dataset=contract.name,
        target=contract.target,
        task=contract.task,
        fields=tuple(fields),
        ignored=frozenset(non_features | set(contract.lineage_columns)),
    )


def load_spec(dataset: str) -> FormSpec:
    """The form spec of ``dataset``'s contract, cached briefly (a contract override in S3 is
    picked up within a minute without reading S3 on every request)."""
    now = time.monotonic()
    cached = _contract_cache.get(dataset)
    if cached and now - cached[0] < _CONTRACT_TTL_SECONDS:
        return cached[1]
    spec = spec_from_contract(load_contract(dataset))
    _contract_cache[dataset] = (now, spec)
    return spec


def clear_cache() -> None:
    """Forget cached contracts (tests, and after a contract override is written)."""
    _contract_cache.clear()


def _number(value: Any, field: Field) -> float | int:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, str):
        if not re.fullmatch(_NUMBER_TEXT, value):
            raise ValueError("must be a number")
        value = float(value.strip())
    if not isinstance(value, int | float):
        raise ValueError("must be a number")
    try:
        as_float = float(value)
    except OverflowError:  # an integer beyond any float (a 401-digit number): no model reads it
        raise ValueError("is too large a number") from None
    if math.isnan(as_float) or math.isinf(as_float):
        raise ValueError("must be a number")
    if field.type == "int":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("must be a whole number")
        value = int(value)
    if field.minimum is not None and value < field.minimum:
        raise ValueError(f"must be at least {field.minimum:g}")
    if field.maximum is not None and value > field.maximum:
        raise ValueError(f"must be at most {field.maximum:g}")
    return value


def _category(value: Any, field: Field) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError("must be one of the listed options")
    text = str(value)
    if not field.allowed:
        return normalise_label(text) if field.type == "category" else text
    if text in field.allowed:
        return text
    folded = normalise_label(text)
    for option in field.allowed:
        if normalise_label(option) == folded:
            return option
    for alias, canonical in field.aliases:
        if alias == folded:
            return canonical
    raise ValueError("must be one of: " + ", ".join(field.allowed))


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(_BOOL_TEXT, value):
        return value.strip().lower() == "true"
    raise ValueError("must be true or false")


def _datetime(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date or date-time string")
    try:
        (datetime if "T" in value or " " in value.strip() else date).fromisoformat(value.strip())
    except ValueError:
        raise ValueError("must be an ISO 8601 date or date-time string") from None
    return value.strip()


def clean_value(value: Any, field: Field) -> Any:
    """``value`` converted to what the model expects for ``field``; raises ValueError why not."""
    if field.type in ("int", "float"):
        return _number(value, field)
    if field.type == "category" or field.allowed:
        return _category(value, field)
    if field.type == "bool":
        return _bool(value)
    if field.type == "datetime":
        return _datetime(value)
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def validate_rows(rows: Iterable[Any], spec: FormSpec) -> list[dict[str, Any]]:
    """The rows reduced to the contract's features with clean values; raises RowsRejected with
    every error of every row, so a caller fixes a request in one round trip.

    Fields outside the contract are refused rather than ignored: a misspelt feature would
    otherwise be silently imputed and the prediction quietly wrong.
    """
    by_name = {field.name: field for field in spec.fields}
    clean: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            errors.append(FieldError(row=index, message="each row must be a JSON object"))
            continue
        for name in row:
            if name not in by_name and name not in spec.ignored:
                errors.append(FieldError(row=index, field=str(name), message="unknown field"))
        out: dict[str, Any] = {}
        for field in spec.fields:
            value = row.get(field.name)
            if _is_blank(value):
                if field.required:
                    errors.append(FieldError(row=index, field=field.name, message="is required"))
                out[field.name] = None
                continue
            try:
                out[field.name] = clean_value(value, field)
            except ValueError as exc:
                errors.append(FieldError(row=index, field=field.name, message=str(exc)))
        clean.append(out)
    if errors:
        raise RowsRejected(errors)
    return clean


def _anchored(expression: str) -> str:
    return f"^{expression}$"


def _ecma_literal(char: str) -> str:
    return f"\\{char}" if char in "\\^$.|?*+()[]{}/" else char


def _label_pattern(labels: Iterable[str]) -> str:
    """A pattern (ECMA 262, as OpenAPI uses) for the text ``_category`` reads as one of
    ``labels``: any case, any spacing around and between words."""

    def word(token: str) -> str:
        return "".join(
            f"[{c.lower()}{c.upper()}]"
            if len(c.lower()) == len(c.upper()) == 1 and c.lower() != c.upper()
            else _ecma_literal(c)
            for c in token
        )

    alternatives = sorted(
        {"\\s+".join(word(t) for t in normalise_label(label).split()) for label in labels}
    )
    return _anchored(f"\\s*({'|'.join(alternatives)})\\s*")


def _value_schema(field: Field) -> dict[str, Any]:
    """What the API accepts for ``field``: the JSON form first (what clients should send),
    then the text forms ``clean_value`` also reads, then blanks and null when optional."""
    branches: list[dict[str, Any]]
    if field.type in ("int", "float"):
        number: dict[str, Any] = {"type": "integer" if field.type == "int" else "number"}
        if field.minimum is not None:
            number["minimum"] = field.minimum
        if field.maximum is not None:
            number["maximum"] = field.maximum
        text = {"type": "string", "pattern": _anchored(_NUMBER_TEXT), "description": "as text"}
        branches = [number, text]
    elif field.allowed:
        labels = [*field.allowed, *(alias for alias, _ in field.aliases)]
        branches = [
            {"type": "string", "enum": list(field.allowed)},
            {
                "type": "string",
                "pattern": _label_pattern(labels),
                "description": "an option or alias in any case and spacing",
            },
        ]
    elif field.type == "bool":
        branches = [
            {"type": "boolean"},
            {"type": "string", "pattern": _anchored(_BOOL_TEXT), "description": "as text"},
        ]
    elif field.type == "datetime":
        # Read by Python's fromisoformat (a date, or a date and time); no OpenAPI format
        # says exactly that, so the description does.
        branches = [{"type": "string", "description": "an ISO 8601 date or date-time"}]
    else:
        branches = [{"type": "string"}]
        if field.required:
            branches[0]["pattern"] = "\\S"  # blank text is a missing value
        if field.type == "category":
            branches.append({"type": "number", "description": "read as its text"})
    if not field.required:
        blank = {"type": "string", "pattern": _anchored(_BLANK_TEXT), "description": "missing"}
        branches += [blank, {"type": "null"}]
    schema: dict[str, Any] = branches[0] if len(branches) == 1 else {"anyOf": branches}
    if field.description:
        schema["description"] = field.description
    return schema


def row_json_schema(spec: FormSpec) -> dict[str, Any]:
    """JSON schema of one row, for the OpenAPI document (generated from the same fields)."""
    properties = {field.name: _value_schema(field) for field in spec.fields}
    for name in sorted(spec.ignored - set(properties)):
        properties[name] = {"description": "a contract column that is not a feature: ignored"}
    ignored = ", ".join(sorted(spec.ignored)) or "none"
    return {
        "type": "object",
        "title": f"{spec.dataset} row",
        "description": (
            "The contract's feature columns. Its other columns are accepted and ignored "
            f"({ignored}); any other field is refused."
        ),
        "properties": properties,
        "required": [f.name for f in spec.fields if f.required],
        "additionalProperties": False,  # an unknown field is a 422
    }
