"""Lazily created, cached boto3 clients.

Created on first use rather than at import so that moto (tests) or the local cloud's
``AWS_ENDPOINT_URL`` is in place before any client exists.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@cache
def _client(service: str, region: str | None, endpoint: str | None) -> Any:
    return boto3.session.Session().client(service, region_name=region, config=_CONFIG)


def client(service: str) -> Any:
    """A cached client for ``service``; keyed by region and endpoint so env changes are seen."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return _client(service, region, os.environ.get("AWS_ENDPOINT_URL"))


def resource(service: str) -> Any:
    """A boto3 resource (used for DynamoDB tables)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return _resource(service, region, os.environ.get("AWS_ENDPOINT_URL"))


@cache
def _resource(service: str, region: str | None, endpoint: str | None) -> Any:
    return boto3.session.Session().resource(service, region_name=region, config=_CONFIG)


def reset() -> None:
    """Forget cached clients (tests call this between moto contexts)."""
    _client.cache_clear()
    _resource.cache_clear()
