"""Site specs: a declarative description of how to crawl one site into one dataset.

A spec is YAML validated by ``SiteSpec``; ``load_spec`` reads ``builtin:<name>`` (bundled in
``mlops/sitespecs``) or ``s3://bucket/key.yaml``. Every problem is reported as ``SpecError``
before any request is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from lxml import etree
from lxml.cssselect import CSSSelector, SelectorSyntaxError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlops.clients import client

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "sitespecs"
USER_AGENT = (
    "serverless-mlops-scraper/0.1"
    " (an ML data pipeline; set user_agent in the site spec to add a contact)"
)


class SpecError(ValueError):
    """A site spec that cannot be used: unreadable, invalid YAML, or failing validation."""


class Selector(BaseModel):
    """Exactly one of ``css`` or ``xpath``; the text of the first match, or an attribute of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    css: str | None = None
    xpath: str | None = None
    attribute: str | None = None

    @model_validator(mode="after")
    def _one_compilable_selector(self) -> Selector:
        if (self.css is None) == (self.xpath is None):
            raise ValueError("give exactly one of 'css' or 'xpath'")
        try:
            if self.css is not None:
                CSSSelector(self.css)
            else:
                etree.XPath(self.xpath)
        except (SelectorSyntaxError, etree.XPathSyntaxError) as error:
            selector = self.css or self.xpath
            raise ValueError(f"selector {selector!r} does not compile: {error}") from error
        return self


class FieldSpec(Selector):
    """Where a column's value is on a detail page and how its text becomes a typed value."""

    parser: Literal["text", "int", "float", "currency", "quantity", "date"] = "text"
    lowercase: bool = False
    # quantity: unit suffix -> factor to the dataset's unit ("km": 0.621371192 for miles).
    units: dict[str, float] = Field(default_factory=dict)
    cast: Literal["int", "float"] = "float"
    # date: strptime formats tried in order; the value lands as an ISO date.
    formats: list[str] = Field(default_factory=lambda: ["%Y-%m-%d"])

    @model_validator(mode="after")
    def _units_for_quantities(self) -> FieldSpec:
        if self.parser == "quantity" and not self.units:
            raise ValueError("a 'quantity' field needs 'units' (suffix -> factor)")
        return self


class HttpPolicy(BaseModel):
    """How patiently to fetch: per-request timeout and retries with exponential backoff."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_seconds: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    backoff_seconds: float = Field(default=0.2, ge=0)
    backoff_max_seconds: float = Field(default=10.0, ge=0)
    # A server's Retry-After is obeyed up to this long (it is not capped by backoff_max).
    retry_after_max_seconds: float = Field(default=60.0, ge=0)


class SiteSpec(BaseModel):
    """A crawl of index pages (following ``pagination``) and the detail pages they link to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dataset: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    start_url: str
    pagination: Selector
    detail_links: Selector
    fields: dict[str, FieldSpec] = Field(min_length=1)
    required: list[str] = Field(default_factory=list)
    user_agent: str = USER_AGENT
    http: HttpPolicy = Field(default_factory=HttpPolicy)

    @model_validator(mode="after")
    def _required_fields_have_selectors(self) -> SiteSpec:
        missing = [name for name in self.required if name not in self.fields]
        if missing:
            raise ValueError(f"required fields without a selector: {', '.join(missing)}")
        if urlsplit(self.start_url).scheme not in ("http", "https"):
            raise ValueError(f"start_url must be http(s): {self.start_url!r}")
        return self


def parse_spec(text: str, source: str = "<spec>") -> SiteSpec:
    """Validate the YAML text of a spec; ``source`` names it in errors."""
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(f"site spec {source} is not valid YAML: {error}") from error
    if not isinstance(document, dict):
        raise SpecError(f"site spec {source} must be a mapping, got {type(document).__name__}")
    try:
        return SiteSpec.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()
        )
        raise SpecError(f"site spec {source} is invalid: {problems}") from error


def load_spec(uri: str) -> SiteSpec:
    """The spec at ``builtin:<name>`` or ``s3://bucket/key``."""
    if uri.startswith("builtin:"):
        name = uri.removeprefix("builtin:")
        path = BUILTIN_DIR / f"{name}.yaml"
        if not name.replace("_", "").isalnum() or not path.is_file():
            known = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))
            raise SpecError(f"no bundled site spec {name!r} (bundled: {known})")
        return parse_spec(path.read_text(encoding="utf-8"), uri)
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        s3 = client("s3")
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey as error:
            raise SpecError(f"site spec {uri} does not exist") from error
        return parse_spec(body.decode("utf-8"), uri)
    raise SpecError(f"SITE_SPEC_URI must be builtin:<name> or s3://bucket/key, got {uri!r}")
