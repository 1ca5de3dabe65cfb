"""Re-uploads on moto: within an open run an object's latest version replaces what earlier
versions left; into a complete run nothing is accepted, and what the run holds stays."""

# The moto lake fixture is shared with test_validate_function: imported, then named by tests.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest

from mlops import lake
from tests.unit.test_validate_function import (  # noqa: F401
    QUARANTINE,
    RUN,
    RUN_PREFIX,
    VALIDATED,
    Lake,
    cars,
    jsonl_gz,
    lake_env,
    manifest,
)

KEY = RUN_PREFIX + "part-00000.jsonl.gz"


def keys_in(lake_: Lake, bucket: str, prefix: str = "") -> list[str]:
    listed = lake_.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def complete_run(lake_: Lake, records: list[dict[str, Any]]) -> None:
    lake_.invoke(lake_.upload(KEY, jsonl_gz(records)))
    manifest_key = lake.raw_manifest_key("used_cars", "2026-11-27", RUN)
    assert lake_.invoke(lake_.upload(manifest_key, manifest([KEY])))["run_emitted"]


def test_a_readable_version_after_an_unreadable_one_clears_the_failure(lake_env: Lake) -> None:
    # given a part first uploaded cut off (unreadable: copied whole to quarantine)
    lake_env.invoke(lake_env.upload(KEY, jsonl_gz(cars(1, 3))[:20]))
    copy = lake.quarantine_object_key("used_cars", RUN, KEY)
    assert copy in keys_in(lake_env, QUARANTINE, "objects/")

    # when a whole version replaces it
    lake_env.invoke(lake_env.upload(KEY, jsonl_gz(cars(1, 3))))

    # then the run no longer lists it as failed, and its stale copy is gone
    item = lake_env.ledger_item(RUN)
    assert KEY not in item.get("failed_objects", set())
    assert item["part_counts"][KEY]["outcome"] == "validated"
    assert copy not in keys_in(lake_env, QUARANTINE, "objects/")


def test_an_unreadable_version_after_a_readable_one_takes_its_rows_away(lake_env: Lake) -> None:
    # given a part validated with three valid rows and one quarantined
    lake_env.invoke(lake_env.upload(KEY, jsonl_gz([*cars(1, 3), *cars(4, 1, year=1800)])))
    assert len(lake_env.validated_rows()) == 3

    # when a cut-off version replaces it
    lake_env.invoke(lake_env.upload(KEY, jsonl_gz(cars(1, 3))[:20]))

    # then no row of the earlier version stays, as the ledger's zero rows say
    assert lake_env.validated_rows().empty
    assert lake_env.quarantined_rows().empty
    part = lake_env.ledger_item(RUN)["part_counts"][KEY]
    assert (part["outcome"], part["rows_valid"], part["rows_quarantined"]) == ("unreadable", 0, 0)


def test_a_version_uploaded_on_another_day_replaces_the_rows_in_the_runs_partition(
    lake_env: Lake,
) -> None:
    # given a user's run prefix without a date, its part first uploaded on 27 November
    key = "used_cars/run_id=my-run/cars.jsonl.gz"
    lake_env.invoke(lake_env.upload(key, jsonl_gz(cars(1, 3))))

    # when a changed version arrives on 28 November
    event = lake_env.upload(key, jsonl_gz(cars(1, 2)))
    event["time"] = "2026-11-28T09:00:00Z"
    lake_env.invoke(event)

    # then the run keeps one partition, holding the second version alone
    rows = lake_env.validated_rows()
    assert sorted(rows["listing_id"]) == ["L000001", "L000002"]
    assert set(rows["ingest_date"].astype(str)) == {"2026-11-27"}


def test_an_object_arriving_into_a_complete_run_is_refused_with_a_reason(
    lake_env: Lake,
) -> None:
    # given a run completed from one part of three rows
    complete_run(lake_env, cars(1, 3))
    assert len(lake_env.run_validated()) == 1
    validated = keys_in(lake_env, VALIDATED)
    before = lake_env.ledger_item(RUN)

    # when the part is uploaded again with other rows
    result = lake_env.invoke(lake_env.upload(KEY, jsonl_gz(cars(10, 5))))

    # then it is refused: the reason in the result, the ledger and a report of its own;
    # the run's rows, counts and report are those it was completed with
    assert result["outcome"] == "refused"
    assert "upload into a new run prefix" in result["reason"]
    item = lake_env.ledger_item(RUN)
    assert item["refused"][KEY]["reason"] == result["reason"]
    assert item["part_counts"] == before["part_counts"]
    assert item["counts"] == before["counts"]
    assert lake_env.report(result)["status"] == "refused"
    assert result["report_key"] != lake.validation_report_key("used_cars", RUN, KEY)
    assert keys_in(lake_env, VALIDATED) == validated
    assert sorted(lake_env.validated_rows()["listing_id"]) == ["L000001", "L000002", "L000003"]
    assert lake_env.run_validated() == [], "a refused object emits nothing"


@pytest.mark.parametrize("late", ["part-00001.jsonl.gz", "_manifest.json"])
def test_a_new_part_or_manifest_for_a_complete_run_is_refused(lake_env: Lake, late: str) -> None:
    complete_run(lake_env, cars(1, 3))
    lake_env.run_validated()
    body = manifest([KEY, RUN_PREFIX + "part-00001.jsonl.gz"]) if late.startswith("_") else b"x"

    result = lake_env.invoke(lake_env.upload(RUN_PREFIX + late, body))

    assert result["outcome"] == "refused"
    item = lake_env.ledger_item(RUN)
    assert item["expected"] == [KEY]
    assert list(item["part_counts"]) == [KEY]


def test_an_object_the_manifest_did_not_name_is_counted_with_the_run_it_joined(
    lake_env: Lake,
) -> None:
    # given a part the manifest will not list, validated into the run before it completes
    extra = RUN_PREFIX + "extra.jsonl.gz"
    lake_env.invoke(lake_env.upload(extra, jsonl_gz(cars(10, 2))))

    # when the listed part and the manifest complete the run
    complete_run(lake_env, cars(1, 3))

    # then its rows, which sit in the run's partition, are in the run's counts too
    [emitted] = lake_env.run_validated()
    assert (emitted["detail"]["rows_valid"], emitted["detail"]["objects"]) == (5, 2)
    assert lake_env.ledger_item(RUN)["counts"]["rows_valid"] == len(lake_env.validated_rows())
