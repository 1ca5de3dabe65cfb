"""Every end-to-end scenario ends with the lake and the ledger agreeing.

Before any local cloud of a test stops, every run its ledger saw validated is reconciled
(``tests.e2e.reconcile``): raw rows = validated + quarantined, and the ledger's counts equal
the rows in the zones. A scenario that takes the lake apart on purpose (a refused grant
midway) says so with ``@pytest.mark.unreconciled("why")``. The fixtures are wired in
tests/conftest.py (a second conftest module would shadow the shared one's helpers).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from tests.e2e.reconcile import assert_lake_matches_ledger


def validated_runs(cloud: LocalCloud) -> list[str]:
    """Run ids with a validate item in the cloud's ledger."""
    dynamodb = cloud.client("dynamodb")
    runs: set[str] = set()
    paginator = dynamodb.get_paginator("scan")
    for page in paginator.paginate(
        TableName=cloud.resources["RunLedgerTable"],
        FilterExpression="stage = :v",
        ExpressionAttributeValues={":v": {"S": "validate"}},
        ConsistentRead=True,
    ):
        runs |= {item["run_id"]["S"] for item in page["Items"]}
    return sorted(runs)


def _reconcile_before_stopping(stop: Any, wanted: dict[str, bool]) -> Any:
    def stop_after_reconciling(self: LocalCloud) -> None:
        problems: list[str] = []
        provisioned = self._server is not None and "RunLedgerTable" in self.resources
        if wanted["on"] and provisioned and not getattr(self, "_reconciled", False):
            self._reconciled = True  # type: ignore[attr-defined]
            try:
                self.wait_quiescent(timeout=120)
                for run_id in validated_runs(self):
                    try:
                        assert_lake_matches_ledger(self, run_id)
                    except AssertionError as mismatch:
                        problems.append(f"run {run_id}: {mismatch}")
            finally:
                stop(self)
        else:
            stop(self)
        if problems:
            pytest.fail("the lake and the ledger disagree:\n" + "\n".join(problems))

    return stop_after_reconciling


def reconcile_when_clouds_stop() -> Iterator[dict[str, bool]]:
    """Patch ``LocalCloud.stop`` for the session; the flag turns the check off for a test."""
    wanted = {"on": True}
    original = LocalCloud.stop
    LocalCloud.stop = _reconcile_before_stopping(original, wanted)  # type: ignore[method-assign]
    try:
        yield wanted
    finally:
        LocalCloud.stop = original  # type: ignore[method-assign]
