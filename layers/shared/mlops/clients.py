"""Lazily created, cached boto3 clients.

Created on first use rather than at import so that moto (tests) or the local cloud's
``AWS_ENDPOINT_URL`` is in place before any client exists.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_DEFAULT = Config(retries={"mode": "standard", "max_attempts": 5})
# The web function must answer (503) well inside API Gateway's 30 s limit, so the runtime
# client fails fast instead of retrying a cold or missing endpoint for half a minute.
_PER_SERVICE = {
    "sagemaker-runtime": Config(
        retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=20
    ),
    # Inference capture (mlops.web.capture) runs inside a prediction request: one attempt,
    # half a second to connect and to read, so a slow or unreachable Firehose costs the
    # response at most about a second and never a retry loop. A lost capture is counted.
    "firehose": Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=0.5,
        read_timeout=0.5,
    ),
}


# boto3 sessions are not thread-safe; clients made from them are.
_LOCK = threading.Lock()


def _environment_key(service: str) -> tuple[str | None, ...]:
    """What decides where a client points and as whom: region, the global and the service
    endpoint, and the access key (one process runs many functions' roles in the local cloud)."""
    specific = f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}"
    return (
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        os.environ.get("AWS_ENDPOINT_URL"),
        os.environ.get(specific),
        os.environ.get("AWS_ACCESS_KEY_ID"),
    )


@cache
def _session(
    region: str | None, endpoint: str | None, access_key: str | None
) -> boto3.session.Session:
    return boto3.session.Session(region_name=region)


@cache
def _client(service: str, key: tuple[str | None, ...]) -> Any:
    return _session(key[0], key[1], key[3]).client(
        service, config=_PER_SERVICE.get(service, _DEFAULT)
    )


@cache
def _resource(service: str, key: tuple[str | None, ...]) -> Any:
    return _session(key[0], key[1], key[3]).resource(service, config=_DEFAULT)


def client(service: str) -> Any:
    """A cached client for ``service``, re-created when its region or endpoint changes."""
    with _LOCK:
        return _client(service, _environment_key(service))


def resource(service: str) -> Any:
    """A cached boto3 resource (used for DynamoDB tables)."""
    with _LOCK:
        return _resource(service, _environment_key(service))


def reset() -> None:
    """Forget cached clients (tests call this between moto contexts)."""
    with _LOCK:
        _client.cache_clear()
        _resource.cache_clear()
        _session.cache_clear()
