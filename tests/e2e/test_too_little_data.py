"""Too little data fails clearly (issue 10 item 9): a five-row upload fails at preparation
with the reason, on the strict local cloud with local Spark, and nothing is trained."""

from __future__ import annotations

import pytest

from localcloud.cloud import LocalCloud
from tests.e2e.reconcile import ledger_items
from tests.e2e.uploads import as_csv, car, upload

pytestmark = pytest.mark.e2e


def test_too_little_data_fails_at_preparation_with_the_reason_and_nothing_is_trained() -> None:
    executors = ["localcloud.executors.glue:GlueExecutor"]
    with LocalCloud(executors=executors, http_api=False) as prepared:
        run_id, _ = upload(prepared, "used_cars/five.csv", as_csv([car(i) for i in range(1, 6)]))
        stages = ledger_items(prepared, run_id)

    assert stages["prepare"]["status"] == "FAILED"
    assert "train" in stages["prepare"]["reason"] and "20" in stages["prepare"]["reason"]
    assert "train" not in stages
