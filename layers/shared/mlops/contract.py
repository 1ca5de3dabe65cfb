"""Dataset contracts: one declarative YAML file per dataset drives every stage.

Validation checks raw rows against it, preparation reads the features, target, keys and
imputation from it, training reads the task, the web form reads each feature's type, range
and allowed values, and evaluation reads the acceptance thresholds. A new dataset is a new
contract file, not new code.

Lookup order (``load_contract``): a user's ``s3://<ARTIFACTS_BUCKET>/contracts/<dataset>.yaml``
overrides the bundled ``mlops/contracts/<dataset>.yaml``.

Runs on Python 3.10+ (the model artifact carries the contract as JSON; Glue reads it too).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

BUNDLED = Path(__file__).resolve().parent / "contracts"
_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")

ColumnType = Literal["int", "float", "string", "category", "bool", "datetime"]
Task = Literal["regression", "classification"]
Imputation = Literal["median", "mean", "most_frequent", "constant", "none"]
NUMERIC_TYPES = ("int", "float")
# How R, spreadsheets and databases write "no value" in a CSV cell or a JSON string. Matched
# exactly (case counts) after trimming whitespace; a blank cell is always a null.
DEFAULT_MISSING_VALUES = ("NA", "N/A", "#N/A", "NULL", "null", "NaN", "None")
# Longest text value a row may carry in any column (characters): a longer one is a row failure,
# so a megabyte "name" or "source_url" never reaches the validated and curated zones.
DEFAULT_MAX_FIELD_CHARS = 10_000


def _unquoted_null(values: Any) -> Any:
    if isinstance(values, list) and any(v is None for v in values):
        # YAML reads a bare NULL, null or ~ as "no value", not as the text.
        raise ValueError('quote NULL and null in YAML (an unquoted one reads as no value): "NULL"')
    return values


def _markers(values: list[str]) -> list[str]:
    """Missing-value markers as they are compared: trimmed, blanks dropped (always null)."""
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))


# A contract's or a column's missing-value markers, checked and normalised the same way.
MissingMarkers = Annotated[list[str], BeforeValidator(_unquoted_null), AfterValidator(_markers)]


class ContractError(ValueError):
    """A contract file that is missing or does not describe a valid contract."""


class ContractNotFound(ContractError):
    """No contract exists for a dataset, neither the user's in S3 nor a bundled one."""


class _Strict(BaseModel):
    # A misspelt key in a contract must fail loudly, not be ignored silently.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    """One column of a dataset.

    - ``type``: int | float | string | category | bool | datetime.
    - ``required``: the column must be in every object and every row must have a value.
      Optional columns may be absent (filled with nulls) or null.
    - ``min`` / ``max``: inclusive allowed range (numbers; ISO strings for datetime).
    - ``allowed``: allowed values, compared after normalising case and whitespace
      (categories are stored in their canonical lower-case form).
    - ``aliases``: known misspellings mapped to a canonical allowed value (``VW → volkswagen``).
    - ``pattern``: a regex the whole value must match (strings).
    - ``max_null_share``: tolerated share of nulls over an object; exceeding it is reported.
    - ``missing_values``: the text values that mean "no value" in this column, replacing the
      dataset's list (``[]``: none but the blank cell). Set it on a category whose legitimate
      values include a marker, e.g. a ``trim`` column where "None" is a real trim level.
    - ``max_chars``: longest value (characters of its text), replacing the dataset's
      ``max_field_chars`` for this column; a longer value fails the row (``too_long``).
    - ``feature``: whether models use the column as an input.
    - ``impute``: how preparation fills nulls of a feature: median | mean | most_frequent |
      constant (with ``fill_value``) | none.
    - ``description``: shown in the web form and the API schema.
    """

    type: ColumnType
    required: bool = True
    min: int | float | str | None = None
    max: int | float | str | None = None
    allowed: list[str | int | float | bool] | None = None
    aliases: dict[str, str] = Field(default_factory=dict)
    pattern: str | None = None
    max_null_share: float = Field(default=0.0, ge=0.0, le=1.0)
    missing_values: MissingMarkers | None = None
    max_chars: int | None = Field(default=None, ge=1)
    feature: bool = True
    impute: Imputation = "none"
    fill_value: str | int | float | bool | None = None
    description: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.type in NUMERIC_TYPES:
            for bound in ("min", "max"):
                if isinstance(getattr(self, bound), str):
                    raise ValueError(f"{bound} of a {self.type} column must be a number")
        lo, hi = self.min, self.max
        both = lo is not None and hi is not None
        if both and isinstance(lo, str) == isinstance(hi, str) and lo > hi:  # type: ignore[operator]
            raise ValueError(f"min {lo} is greater than max {hi}")
        if self.aliases and not self.allowed:
            raise ValueError("aliases need a list of allowed values to map onto")
        if self.allowed:
            canonical = {normalise_label(v) for v in self.allowed}
            unknown = sorted(
                v for v in self.aliases.values() if normalise_label(v) not in canonical
            )
            if unknown:
                raise ValueError(f"aliases map onto values that are not allowed: {unknown}")
        if self.impute == "constant" and self.fill_value is None:
            raise ValueError("impute: constant needs a fill_value")
        if self.impute in ("median", "mean") and self.type not in NUMERIC_TYPES:
            raise ValueError(f"impute: {self.impute} needs a numeric column, not {self.type}")
        return self


class Bounds(_Strict):
    """Absolute acceptance bounds of one metric (either or both)."""

    min: float | None = None
    max: float | None = None


class Contract(_Strict):
    """The contract of one dataset.

    Fields: ``name``, ``version``, ``description``, ``task`` (regression | classification),
    ``target`` (a column), ``keys`` (columns identifying a record, for de-duplication),
    ``columns`` (name → ``ColumnSpec``, in order), ``lineage_columns`` (kept with the data
    but neither validated nor features, e.g. source_url, fetched_at), ``min_rows`` and
    ``max_invalid_share`` (an object with fewer rows, or a larger share of invalid rows, is
    rejected whole), ``acceptance`` (metric name → ``Bounds``, absolute thresholds a model
    must meet), ``missing_values`` (the text values read as "no value" in CSV cells and JSON
    strings; default ``DEFAULT_MISSING_VALUES``; a column's own list replaces it),
    ``max_field_chars`` (longest text value of any column, lineage columns included; default
    ``DEFAULT_MAX_FIELD_CHARS``; a column's ``max_chars`` replaces it there). Derived:
    ``features``, ``numeric_features``, ``categorical_features``.
    """

    name: str
    version: str
    description: str = ""
    task: Task
    target: str
    keys: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    lineage_columns: list[str] = Field(default_factory=list)
    min_rows: int = Field(default=1, ge=0)
    max_invalid_share: float = Field(default=0.5, ge=0.0, le=1.0)
    # Fewest usable rows per split (train/validation/test) before preparation refuses the run;
    # a split left out keeps its default from mlops.ml.splitting.MIN_ROWS_PER_SPLIT.
    min_rows_per_split: dict[Literal["train", "validation", "test"], int] = Field(
        default_factory=dict
    )
    acceptance: dict[str, Bounds] = Field(default_factory=dict)
    missing_values: MissingMarkers = Field(default_factory=lambda: list(DEFAULT_MISSING_VALUES))
    max_field_chars: int = Field(default=DEFAULT_MAX_FIELD_CHARS, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError("use letters, digits, '_' and '-' only")
        return name

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, version: Any) -> Any:
        # YAML reads `version: 1.0` as a float; a version is a label.
        return str(version) if isinstance(version, int | float) else version

    @model_validator(mode="after")
    def _references(self) -> Contract:
        if self.target not in self.columns:
            raise ValueError(f"target {self.target!r} is not one of the columns")
        if self.columns[self.target].feature:
            raise ValueError(f"target {self.target!r} must not also be a feature (feature: false)")
        missing = [k for k in self.keys if k not in self.columns]
        if missing:
            raise ValueError(f"keys {missing} are not columns")
        clash = [c for c in self.lineage_columns if c in self.columns]
        if clash:
            raise ValueError(f"lineage_columns {clash} are also declared as columns")
        if not self.features:
            raise ValueError("no column is a feature")
        return self

    @property
    def features(self) -> list[str]:
        return [name for name, spec in self.columns.items() if spec.feature]

    @property
    def numeric_features(self) -> list[str]:
        return [n for n in self.features if self.columns[n].type in NUMERIC_TYPES]

    @property
    def categorical_features(self) -> list[str]:
        return [n for n in self.features if self.columns[n].type not in NUMERIC_TYPES]

    def missing_values_of(self, column: str) -> frozenset[str]:
        """The markers read as null in ``column``: its own list, else the dataset's."""
        own = self.columns[column].missing_values
        return frozenset(self.missing_values if own is None else own)

    def max_chars_of(self, column: str) -> int:
        """The longest value ``column`` may hold: its own ``max_chars``, else the dataset's."""
        spec = self.columns.get(column)
        own = spec.max_chars if spec is not None else None
        return self.max_field_chars if own is None else own

    @property
    def required_columns(self) -> list[str]:
        return [name for name, spec in self.columns.items() if spec.required]

    @classmethod
    def from_yaml(cls, text: str, source: str = "<contract>") -> Contract:
        """Parse and check a contract; errors name the source file and the offending field."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ContractError(f"contract {source}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ContractError(f"contract {source}: expected a mapping at the top level")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ContractError(f"contract {source}: {_describe(exc)}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> Contract:
        path = Path(path)
        return cls.from_yaml(path.read_text(encoding="utf-8"), source=path.name)


def normalise_label(value: object) -> str:
    """The comparable form of a category label: lower case, single inner spaces, trimmed."""
    return " ".join(str(value).split()).lower()


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def bundled_contract(dataset: str) -> Contract | None:
    """The contract shipped in the package for ``dataset``, if any."""
    if not _NAME.match(dataset):
        return None
    path = BUNDLED / f"{dataset}.yaml"
    return Contract.from_file(path) if path.is_file() else None


def contract_key(dataset: str) -> str:
    """Key of a user's contract in the artifacts bucket (overrides the bundled one)."""
    return f"contracts/{dataset}.yaml"


def load_contract(dataset: str) -> Contract:
    """The contract of ``dataset``: the user's in the artifacts bucket, else the bundled one.

    Raises ``ContractNotFound`` when neither exists and ``ContractError`` for an invalid file.
    A transient S3 error propagates (the caller's retry should see it).
    """
    from mlops.clients import client
    from mlops.settings import get_settings

    bucket = get_settings().artifacts_bucket
    if bucket:
        s3 = client("s3")
        key = contract_key(dataset)
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            pass
        else:
            return Contract.from_yaml(body.decode("utf-8"), source=f"s3://{bucket}/{key}")
    contract = bundled_contract(dataset)
    if contract is None:
        raise ContractNotFound(f"no contract for dataset {dataset}")
    return contract
