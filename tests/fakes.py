"""Test doubles shared by several test modules."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent


class RecordingCloud:
    """The services a local-cloud executor uses, over moto's in-process mock; records the
    events it emits (through JSON, as PutEvents would carry them)."""

    region = "us-east-1"
    account_id = "123456789012"
    endpoint_url = ""

    def __init__(self, workdir: Path, resources: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.project_root = ROOT
        self.parameters: dict[str, str] = {"Stage": "dev"}
        self.resources: dict[str, str] = dict(resources or {})
        self.events: list[dict[str, Any]] = []
        self.threads: list[threading.Thread] = []

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region)

    def role_client(self, role_arn: str, service: str, session: str) -> Any:
        """Roles are not checked here: the strict local cloud's own tests do that."""
        return self.client(service)

    def emit(self, source: str, detail_type: str, detail: dict, resources: Any = None) -> None:
        self.events.append(
            {"source": source, "detail-type": detail_type, "resources": resources,
             "detail": json.loads(json.dumps(detail, default=str))}
        )  # fmt: skip

    def submit(self, fn: Callable[..., Any], *args: Any, name: str) -> threading.Thread:
        thread = threading.Thread(target=fn, args=args, name=name)
        self.threads.append(thread)
        thread.start()
        return thread

    def subprocess_env(self, role_arn: str | None = None, session: str = "") -> dict[str, str]:
        return dict(os.environ)

    def wait(self, timeout: float = 300) -> None:
        for thread in self.threads:
            thread.join(timeout=timeout)

    def set_service_endpoint(self, env_var: str, url: str) -> None:  # pragma: no cover
        raise NotImplementedError

    def invoke(self, function: str, event: dict[str, Any]) -> Any:  # pragma: no cover
        raise NotImplementedError
