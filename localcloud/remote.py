"""Driving a running `mlops local up` from another process, through AWS APIs only."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3

from localcloud.cloud import DUMMY_CREDENTIALS, queues_idle, scheduled_event

STATE_DIR = Path(".localcloud")
STATE_FILE = STATE_DIR / "state.json"


def state_path(project_root: Path) -> Path:
    return project_root / STATE_FILE


def write_state(project_root: Path, state: dict[str, Any]) -> Path:
    path = state_path(project_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)
    return path


def remove_state(project_root: Path) -> None:
    path = state_path(project_root)
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    # Only the process that wrote it removes it.
    if state.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def live_state(project_root: Path) -> dict[str, Any] | None:
    """The state of a running `up`, or None when there is none (a stale file is ignored)."""
    try:
        state = json.loads(state_path(project_root).read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None
    parts = urlsplit(state.get("endpoint_url", ""))
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=1):
            return state
    except OSError:
        return None


class RemoteCloud:
    """The parts of LocalCloud a CLI command needs, backed by the running cloud's AWS APIs."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.endpoint_url: str = state["endpoint_url"]
        self.region: str = state.get("region", "us-east-1")
        self.account_id: str = state.get("account_id", "123456789012")
        self.resources: dict[str, str] = state["resources"]
        self.parameters: dict[str, str] = state.get("parameters", {})
        self.http_api_url: str | None = state.get("http_api_url")
        self._rules: dict[str, dict[str, Any]] = state.get("rules", {})
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.session.Session(
                aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
                region_name=self.region,
            ).client(service, endpoint_url=self.endpoint_url)
        return self._clients[service]

    def fire_schedule(self, function: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
        for rule in self._rules.values():
            if rule["function"] == function and rule.get("schedule"):
                event = scheduled_event(rule["arn"], self.account_id, self.region, detail)
                self.client("sqs").send_message(
                    QueueUrl=rule["queue_url"], MessageBody=json.dumps(event)
                )
                return event
        raise KeyError(f"{function} has no schedule in the running cloud")

    def is_quiescent(self) -> bool:
        """No event queued or being handled (a handler deletes its message when done)."""
        urls = [rule["queue_url"] for rule in self._rules.values()]
        return queues_idle(self.client("sqs"), urls)
