"""`mlops local up` stops cleanly on Ctrl-C (SIGINT) and on SIGTERM, leaving nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from localcloud.cli import PROJECT_ROOT

pytestmark = pytest.mark.e2e

STATE = PROJECT_ROOT / ".localcloud" / "state.json"


def _accepts(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


def _wait_for_state(process: subprocess.Popen[bytes], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"`mlops local up` exited early with {process.returncode}")
        if STATE.exists():
            state = json.loads(STATE.read_text())
            if state.get("pid") == process.pid:
                return state
        time.sleep(0.5)
    raise AssertionError("`mlops local up` never wrote its state file")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_stops_on_a_signal_and_leaves_no_port_or_state_behind(
    signum: signal.Signals, tmp_path: Path
) -> None:
    if STATE.exists():
        pytest.skip("a developer's `mlops local up` is running in this checkout")
    # given a running local cloud, started the way a user does
    process = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "local", "up", "--listings", "20"],
        cwd=PROJECT_ROOT,
        stdout=(tmp_path / "up.log").open("wb"),
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    try:
        state = _wait_for_state(process)
        urls = [
            state["endpoint_url"],
            state["http_api_url"],
            state["demo_site_url"],
            *state["service_endpoints"].values(),
        ]
        assert all(_accepts(url) for url in urls)

        # when the user interrupts it
        process.send_signal(signum)
        code = process.wait(timeout=90)

        # then it exits cleanly, closes its ports and removes its state file
        assert code == 0, (tmp_path / "up.log").read_text()[-2000:]
        assert not STATE.exists()
        assert not any(_accepts(url) for url in urls)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
