"""The validate function on moto: zones, reports, bad objects, idempotency, run completion."""

from __future__ import annotations

import copy
import gzip
import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import awswrangler as wr
import boto3
import pandas as pd
import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from botocore.exceptions import ClientError

from functions.validate import app
from mlops import clients, lake, ledger
from tests.unit.test_validation_checks import car

RAW = "mlops-used-cars-dev-rawbucket-1q2w3e4r5t6y"  # the bucket in events/s3_object_created.json
VALIDATED = "mlops-validated-dev"
QUARANTINE = "mlops-quarantine-dev"
ARTIFACTS = "mlops-artifacts-dev"
LEDGER = "mlops-ledger-dev"
IDEMPOTENCY = "mlops-idempotency-dev"
DATABASE = "mlops_dev"
RUN = "20261127T083000Z-1a2b3c4d"
RUN_PREFIX = lake.run_prefix("used_cars", "2026-11-27", RUN)


def jsonl_gz(records: list[dict[str, Any]]) -> bytes:
    return gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())


def cars(first: int, count: int, **changes: Any) -> list[dict[str, Any]]:
    return [car(i, **changes) for i in range(first, first + count)]


class Lake:
    """The template's validate resources in moto, plus ways to feed and observe the function."""

    def __init__(self, context: Any, event: Any) -> None:
        self.context = context
        self.template = event("s3_object_created.json")
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.queue_url = ""

    def provision(self, declared_table: Any) -> None:
        for bucket in (RAW, VALIDATED, QUARANTINE, ARTIFACTS):
            self.s3.create_bucket(Bucket=bucket)
        self.s3.put_bucket_versioning(Bucket=RAW, VersioningConfiguration={"Status": "Enabled"})
        declared_table("RunLedgerTable", LEDGER)
        declared_table("IdempotencyTable", IDEMPOTENCY)
        boto3.client("glue").create_database(DatabaseInput={"Name": DATABASE})
        # Capture "Run Validated" the way a consumer would see it: rule → SQS.
        self.queue_url = self.sqs.create_queue(QueueName="run-validated")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        events = boto3.client("events")
        events.put_rule(
            Name="run-validated",
            EventPattern=json.dumps(
                {"source": ["mlops.pipeline"], "detail-type": ["Run Validated"]}
            ),
        )
        events.put_targets(
            Rule="run-validated", Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}]
        )

    def upload(self, key: str, body: bytes, *, sent_key: str | None = None) -> dict[str, Any]:
        """Put an object in the raw zone; return the "Object Created" event S3 would send.

        EventBridge carries the key as is (``sent_key`` overrides it, e.g. form-encoded).
        """
        put = self.s3.put_object(Bucket=RAW, Key=key, Body=body)
        event = copy.deepcopy(self.template)
        obj = event["detail"]["object"]
        obj.update(
            key=key if sent_key is None else sent_key,
            size=len(body),
            etag=put["ETag"].strip('"'),
        )
        obj["version-id"] = put["VersionId"]
        return event

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        return app.lambda_handler(event, self.context)

    def run_validated(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            if not batch.get("Messages"):
                return messages
            for message in batch["Messages"]:
                messages.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def validated_rows(self, dataset: str = "used_cars") -> pd.DataFrame:
        path = lake.validated_path(VALIDATED, dataset)
        if not wr.s3.list_objects(path):
            return pd.DataFrame()
        return wr.s3.read_parquet(path, dataset=True)

    def quarantined_rows(self, dataset: str = "used_cars") -> pd.DataFrame:
        path = lake.quarantine_rows_path(QUARANTINE, dataset)
        if not wr.s3.list_objects(path):
            return pd.DataFrame()
        return wr.s3.read_parquet(path, dataset=True)

    def report(self, result: dict[str, Any]) -> dict[str, Any]:
        body = self.s3.get_object(Bucket=QUARANTINE, Key=result["report_key"])["Body"]
        return json.loads(body.read())

    def ledger_item(self, run_id: str, stage: str = "validate") -> dict[str, Any]:
        return next((s for s in ledger.stages(run_id) if s["stage"] == stage), {})


@pytest.fixture
def lake_env(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
    event: Any,
    declared_table: Any,
) -> Iterator[Lake]:
    for name, value in {
        "RAW_BUCKET": RAW,
        "VALIDATED_BUCKET": VALIDATED,
        "QUARANTINE_BUCKET": QUARANTINE,
        "ARTIFACTS_BUCKET": ARTIFACTS,
        "LEDGER_TABLE": LEDGER,
        "IDEMPOTENCY_TABLE": IDEMPOTENCY,
        "GLUE_DATABASE": DATABASE,
        "POWERTOOLS_SERVICE_NAME": "validate",
    }.items():
        monkeypatch.setenv(name, value)
    lake_ = Lake(lambda_context, event)
    lake_.provision(declared_table)
    yield lake_


def metrics_emitted(out: str) -> list[str]:
    """Names of the CloudWatch metrics in the EMF lines a handler printed."""
    names: list[str] = []
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
                names.extend(metric["Name"] for metric in directive["Metrics"])
    return names


def manifest(parts: list[str], run_id: str = RUN) -> bytes:
    return json.dumps(
        {
            "run_id": run_id,
            "dataset": "used_cars",
            "ingest_date": "2026-11-27",
            "complete": True,
            "parts": [{"key": key, "records": 3} for key in parts],
            "records": 3 * len(parts),
        }
    ).encode()


# ---------------------------------------------------------------- the sample event


def test_the_sample_event_validates_its_part_into_the_run_partition(lake_env: Lake) -> None:
    sample = lake_env.template
    key = RUN_PREFIX + "part-00000.jsonl.gz"
    put = lake_env.s3.put_object(Bucket=RAW, Key=key, Body=jsonl_gz(cars(1, 4)))
    sample["detail"]["object"]["version-id"] = put["VersionId"]

    result = lake_env.invoke(sample)

    assert (result["outcome"], result["run_id"], result["key"]) == ("validated", RUN, key)
    rows = lake_env.validated_rows()
    assert len(rows) == 4
    assert set(rows["run_id"]) == {RUN}
    assert set(rows["ingest_date"]) == {"2026-11-27"}
    assert set(rows["source_object"]) == {f"s3://{RAW}/{key}"}


# ---------------------------------------------------------------- rows and reports


def test_a_clean_upload_lands_typed_in_the_validated_zone_and_glue_table(lake_env: Lake) -> None:
    event = lake_env.upload("used_cars/clean.jsonl.gz", jsonl_gz(cars(1, 5)))

    result = lake_env.invoke(event)

    assert result["outcome"] == "validated"
    assert (result["rows_in"], result["rows_valid"], result["rows_quarantined"]) == (5, 5, 0)
    rows = lake_env.validated_rows()
    assert sorted(rows["listing_id"]) == [f"L{i:06d}" for i in range(1, 6)]
    columns = wr.catalog.get_table_types(database=DATABASE, table="used_cars")
    assert columns["year"] == "bigint"
    assert columns["price"] == "double"
    assert columns["posted_date"] == "timestamp"
    assert lake_env.quarantined_rows().empty


def test_bad_rows_go_to_quarantine_with_the_rules_they_broke(lake_env: Lake) -> None:
    records = [*cars(1, 6), car(7, year=2099), car(8, fuel="steam"), car(3)]
    event = lake_env.upload("used_cars/mixed.jsonl.gz", jsonl_gz(records))

    result = lake_env.invoke(event)

    quarantined = lake_env.quarantined_rows().set_index("listing_id")
    assert quarantined["failed_rules"].to_dict() == {
        "L000007": "range:year",
        "L000008": "allowed:fuel",
        "L000003": "duplicate_key",
    }
    assert len(lake_env.validated_rows()) == 6
    report = lake_env.report(result)
    assert report["rows_in"] == report["rows_valid"] + report["rows_quarantined"] == 9
    assert report["rule_failures"] == {"range:year": 1, "allowed:fuel": 1, "duplicate_key": 1}
    assert report["contract"] == {"name": "used_cars", "version": "1.0.0"}


def test_an_object_over_the_invalid_share_is_rejected_and_quarantined_whole(
    lake_env: Lake,
) -> None:
    records = [*cars(1, 2), *cars(10, 3, price=1.0)]
    event = lake_env.upload("used_cars/mostly-bad.jsonl.gz", jsonl_gz(records))

    result = lake_env.invoke(event)

    assert result["outcome"] == "rejected"
    assert result["metric"] == "ObjectsRejected"
    assert lake_env.validated_rows().empty
    assert len(lake_env.quarantined_rows()) == 5
    report = lake_env.report(result)
    assert report["status"] == "rejected"
    assert "max_invalid_share" in report["reason"]
    progress = lake_env.ledger_item(result["run_id"])
    assert progress["failed_objects"] == {"used_cars/mostly-bad.jsonl.gz"}


def test_a_user_csv_upload_is_a_run_of_its_own_with_formatted_numbers_normalised(
    lake_env: Lake,
) -> None:
    csv = (
        "listing_id,make,model,year,mileage,fuel,transmission,engine_size,body,posted_date,price\n"
        'L000001,VW,Golf,2018,"41,200",Petrol,Manual,1.4,Hatchback,2026-10-01,"$14,900"\n'
        "L000002,Mercedes,C-Class,2019,30000,Diesel,Automatic,2.0,Sedan,2026-10-02,28000\n"
        "L000003,Kia,Ceed,2020,,Petrol,,1.4, ,,17500\n"
    )
    event = lake_env.upload("used_cars/cars.csv", csv.encode())

    result = lake_env.invoke(event)

    assert result["run_id"].startswith("upload-")
    assert (result["outcome"], result["rows_valid"], result["run_emitted"]) == (
        "validated",
        3,
        True,
    )
    rows = lake_env.validated_rows().set_index("listing_id")
    assert rows.loc["L000001", "make"] == "volkswagen"
    assert rows.loc["L000001", "price"] == 14900.0
    assert rows.loc["L000001", "mileage"] == 41200
    assert rows.loc["L000003", ["mileage", "transmission", "body", "posted_date"]].isna().all()
    [emitted] = lake_env.run_validated()
    assert emitted["detail"]["run_id"] == result["run_id"]
    assert emitted["detail"]["rows_valid"] == 3


def test_a_user_parquet_upload_is_validated(lake_env: Lake) -> None:
    buffer = io.BytesIO()
    pd.DataFrame(cars(1, 4)).to_parquet(buffer)

    result = lake_env.invoke(lake_env.upload("used_cars/cars.parquet", buffer.getvalue()))

    assert (result["outcome"], result["rows_valid"]) == ("validated", 4)
    assert len(lake_env.validated_rows()) == 4


# ---------------------------------------------------------------- object keys in events

ODD_KEY = "used_cars/a+b c.csv"
ODD_CSV = (
    b"listing_id,make,model,year,mileage,fuel,transmission,engine_size,body,posted_date,price\n"
    b"L000001,VW,Golf,2018,41200,Petrol,Manual,1.4,Hatchback,2026-10-01,14900\n"
    b"L000002,Kia,Ceed,2020,30000,Diesel,Automatic,1.6,Hatchback,2026-10-02,17500\n"
)


def test_an_upload_named_with_a_plus_and_a_space_is_validated_and_counted_under_its_name(
    lake_env: Lake,
) -> None:
    # given an upload named "a+b c.csv", announced as S3 sends it to EventBridge (key as is)
    event = lake_env.upload(ODD_KEY, ODD_CSV)
    assert event["detail"]["object"]["key"] == ODD_KEY
    # when the validate function handles the event
    result = lake_env.invoke(event)
    # then its rows are validated under its own key, and the run counts them under that key
    assert (result["outcome"], result["key"], result["rows_valid"]) == ("validated", ODD_KEY, 2)
    rows = lake_env.validated_rows()
    assert sorted(rows["listing_id"]) == ["L000001", "L000002"]
    assert set(rows["source_object"]) == {f"s3://{RAW}/{ODD_KEY}"}
    progress = lake_env.ledger_item(result["run_id"])
    assert progress["part_counts"][ODD_KEY]["rows_valid"] == 2
    assert lake_env.report(result)["rows_valid"] == 2


def test_a_form_encoded_key_is_read_as_the_object_it_encodes(lake_env: Lake) -> None:
    # given the same upload announced with the key form-encoded, as classic S3 notifications do
    event = lake_env.upload(ODD_KEY, ODD_CSV, sent_key="used_cars/a%2Bb+c.csv")
    # when the validate function handles the event
    result = lake_env.invoke(event)
    # then the key is decoded to the object's name, not kept nor mangled
    assert (result["outcome"], result["key"], result["rows_valid"]) == ("validated", ODD_KEY, 2)
    assert set(lake_env.validated_rows()["source_object"]) == {f"s3://{RAW}/{ODD_KEY}"}


def test_the_event_version_decides_between_two_objects_a_key_may_name(lake_env: Lake) -> None:
    # given "a+b.csv" and "a b.csv" both in the raw zone
    lake_env.upload("used_cars/a+b.csv", ODD_CSV)
    spaced = lake_env.upload("used_cars/a b.csv", ODD_CSV)
    # when "a b.csv" is announced form-encoded, which reads literally as "a+b.csv"
    spaced["detail"]["object"]["key"] = "used_cars/a+b.csv"
    result = lake_env.invoke(spaced)
    # then the event's version id picks the object it was sent for
    assert result["key"] == "used_cars/a b.csv"


def test_a_key_without_plus_or_percent_has_one_reading() -> None:
    from mlops.validation.objects import key_candidates

    assert key_candidates("dataset=used_cars/x y.csv") == ["dataset=used_cars/x y.csv"]
    assert key_candidates("used_cars/a+b%2B.csv") == ["used_cars/a+b%2B.csv", "used_cars/a b+.csv"]


# ---------------------------------------------------------------- unreadable objects

GOOD = jsonl_gz(cars(1, 3))


@pytest.mark.parametrize(
    ("key", "body", "reason"),
    [
        ("used_cars/plain.jsonl.gz", b'{"listing_id": "L000001"}\n', "not a complete gzip"),
        ("used_cars/cut.jsonl.gz", GOOD[: len(GOOD) // 2], "not a complete gzip"),
        ("used_cars/empty.jsonl.gz", b"", "empty object"),
        ("used_cars/blank.jsonl.gz", gzip.compress(b"\n"), "empty object"),
        ("used_cars/table.parquet", b"listing_id,make\nL1,vw\n", "not parquet"),
        ("used_cars/other.csv", b"colour,wheels\nred,4\n", "none of the contract's columns"),
        ("boats/sail.csv", b"listing_id\nL000001\n", "no contract for dataset boats"),
    ],
)
def test_an_unreadable_object_is_quarantined_whole_with_a_report_and_not_retried(
    lake_env: Lake, key: str, body: bytes, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    event = lake_env.upload(key, body)

    result = lake_env.invoke(event)

    assert result["outcome"] == "unreadable"
    assert "UnreadableObjects" in metrics_emitted(capsys.readouterr().out)
    assert reason in result["reason"]
    dataset = key.split("/")[0]
    copy_key = lake.quarantine_object_key(dataset, result["run_id"], key)
    kept = lake_env.s3.get_object(Bucket=QUARANTINE, Key=copy_key)["Body"].read()
    assert kept == body
    assert lake_env.report(result)["status"] == "unreadable"
    progress = lake_env.ledger_item(result["run_id"])
    assert progress["failed_objects"] == {key}


def test_an_object_deleted_before_validation_is_recorded_missing_not_retried(
    lake_env: Lake,
) -> None:
    event = lake_env.upload("used_cars/gone.csv", b"listing_id\nL000001\n")
    version = event["detail"]["object"]["version-id"]
    lake_env.s3.delete_object(Bucket=RAW, Key="used_cars/gone.csv", VersionId=version)

    result = lake_env.invoke(event)

    assert (result["outcome"], result["metric"]) == ("missing", "MissingObjects")
    assert lake_env.ledger_item(result["run_id"])["failed_objects"] == {"used_cars/gone.csv"}


def test_a_transient_aws_error_raises_so_the_event_is_retried(
    lake_env: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = lake_env.upload("used_cars/retry.jsonl.gz", GOOD)
    s3 = boto3.client("s3")
    real_get = s3.get_object
    throttled = ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"}}, "GetObject")

    def slow_down(**kwargs: Any) -> Any:
        raise throttled

    monkeypatch.setattr(s3, "get_object", slow_down)
    monkeypatch.setattr(
        "mlops.validation.objects.client",
        lambda service: s3 if service == "s3" else clients.client(service),
    )
    with pytest.raises(ClientError, match="SlowDown"):
        lake_env.invoke(event)

    monkeypatch.setattr(s3, "get_object", real_get)
    assert lake_env.invoke(event)["outcome"] == "validated"


# ---------------------------------------------------------------- at-least-once delivery


def test_a_duplicate_delivery_is_processed_once(
    lake_env: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    event = lake_env.upload("used_cars/twice.jsonl.gz", GOOD)

    first = lake_env.invoke(event)
    capsys.readouterr()
    second = lake_env.invoke(copy.deepcopy(event))

    assert (first["replayed"], second["replayed"]) == (False, True)
    assert metrics_emitted(capsys.readouterr().out) == ["DuplicateDeliveries"]
    assert len(lake_env.validated_rows()) == 3
    assert len(lake_env.run_validated()) == 1


@pytest.fixture
def atomic_items(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies each item write atomically; moto's in-process backend does not across
    threads (a concurrent ADD can be lost), so serialise its item operations as DynamoDB would."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "get_item", "query"):
        original = getattr(DynamoDBBackend, name)

        def locked(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(*args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.mark.usefixtures("atomic_items")
def test_concurrent_deliveries_of_one_object_are_processed_once(lake_env: Lake) -> None:
    event = lake_env.upload("used_cars/race.jsonl.gz", GOOD)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def deliver() -> None:
        start.wait()
        try:
            result = lake_env.invoke(copy.deepcopy(event))
            outcomes.append("replayed" if result["replayed"] else "processed")
        except IdempotencyAlreadyInProgressError:
            outcomes.append("in progress")  # Lambda fails it; EventBridge retries later

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("processed") == 1
    assert len(lake_env.validated_rows()) == 3
    assert len(lake_env.run_validated()) == 1


def test_a_changed_reupload_of_the_same_key_is_processed_again(lake_env: Lake) -> None:
    first = lake_env.invoke(lake_env.upload("used_cars/cars.jsonl.gz", jsonl_gz(cars(1, 2))))
    second = lake_env.invoke(lake_env.upload("used_cars/cars.jsonl.gz", jsonl_gz(cars(1, 3))))

    assert second["replayed"] is False
    assert second["run_id"] != first["run_id"]
    assert second["rows_valid"] == 3
    assert [e["detail"]["run_id"] for e in lake_env.run_validated()] == [
        first["run_id"],
        second["run_id"],
    ]


def test_an_event_without_version_or_etag_is_keyed_on_the_objects_current_etag(
    lake_env: Lake,
) -> None:
    def bare(event: dict[str, Any]) -> dict[str, Any]:
        event["detail"]["object"].pop("version-id")
        event["detail"]["object"].pop("etag")
        return event

    first = lake_env.invoke(bare(lake_env.upload("used_cars/bare.csv", b"listing_id\nL000001\n")))
    second = lake_env.invoke(bare(lake_env.upload("used_cars/bare.csv", b"listing_id\nL000002\n")))

    assert first["version"] != second["version"]
    assert second["replayed"] is False


def test_a_changed_reupload_of_a_run_part_replaces_its_rows(lake_env: Lake) -> None:
    key = RUN_PREFIX + "part-00000.jsonl.gz"
    lake_env.invoke(lake_env.upload(key, jsonl_gz(cars(1, 2))))

    lake_env.invoke(lake_env.upload(key, jsonl_gz(cars(1, 3))))

    assert sorted(lake_env.validated_rows()["listing_id"]) == ["L000001", "L000002", "L000003"]


# ---------------------------------------------------------------- run completion


def parts(count: int) -> list[str]:
    return [lake.raw_part_key("used_cars", "2026-11-27", RUN, i) for i in range(count)]


def test_a_run_is_validated_once_its_last_part_arrives_after_the_manifest(lake_env: Lake) -> None:
    keys = parts(3)
    bodies = [jsonl_gz(cars(1, 3)), jsonl_gz(cars(4, 3)), jsonl_gz([*cars(7, 2), car(9, year=1)])]
    events = [lake_env.upload(k, b) for k, b in zip(keys, bodies, strict=True)]
    manifest_event = lake_env.upload(
        lake.raw_manifest_key("used_cars", "2026-11-27", RUN), manifest(keys)
    )

    lake_env.invoke(events[0])
    lake_env.invoke(manifest_event)
    lake_env.invoke(events[1])
    assert lake_env.run_validated() == []
    last = lake_env.invoke(events[2])

    assert last["run_emitted"] is True
    [emitted] = lake_env.run_validated()
    assert emitted["source"] == "mlops.pipeline"
    assert emitted["detail-type"] == "Run Validated"
    detail = emitted["detail"]
    assert detail["run_id"] == RUN
    assert (detail["rows_valid"], detail["rows_quarantined"], detail["objects"]) == (8, 1, 3)
    assert detail["contract_version"] == "1.0.0"
    assert detail["validated_path"] == lake.validated_path(VALIDATED, "used_cars")
    item = lake_env.ledger_item(RUN)
    assert item["status"] == "SUCCEEDED"
    assert item["counts"] | {"objects": 3} == item["counts"]
    assert (item["counts"]["rows_in"], item["counts"]["rows_valid"]) == (9, 8)


def test_a_run_is_validated_when_the_manifest_arrives_after_every_part(lake_env: Lake) -> None:
    keys = parts(2)
    for i, key in enumerate(keys):
        lake_env.invoke(lake_env.upload(key, jsonl_gz(cars(1 + 3 * i, 3))))
    assert lake_env.run_validated() == []
    assert lake_env.ledger_item(RUN)["status"] == "STARTED"

    result = lake_env.invoke(
        lake_env.upload(lake.raw_manifest_key("used_cars", "2026-11-27", RUN), manifest(keys))
    )

    assert (result["outcome"], result["run_emitted"]) == ("manifest", True)
    assert len(lake_env.run_validated()) == 1


@pytest.mark.usefixtures("atomic_items")
def test_parts_finishing_concurrently_emit_exactly_one_run_validated(lake_env: Lake) -> None:
    keys = parts(4)
    events = [lake_env.upload(k, jsonl_gz(cars(1 + 3 * i, 3))) for i, k in enumerate(keys)]
    events.append(
        lake_env.upload(lake.raw_manifest_key("used_cars", "2026-11-27", RUN), manifest(keys))
    )
    errors: list[BaseException] = []

    def deliver(event: dict[str, Any]) -> None:
        start.wait()
        try:
            lake_env.invoke(event)
        except BaseException as exc:  # surfaced below, threads would swallow it
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(e,)) for e in events * 2]
    start = threading.Barrier(len(threads))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(isinstance(e, IdempotencyAlreadyInProgressError) for e in errors), errors
    for event in events:  # EventBridge's retry of any delivery that found one in progress
        lake_env.invoke(event)
    [emitted] = lake_env.run_validated()
    assert emitted["detail"]["rows_valid"] == 12
    assert len(lake_env.validated_rows()) == 12


def test_a_failed_emit_is_retried_by_the_redelivery_and_emitted_once(
    lake_env: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = lake_env.upload("used_cars/emit.jsonl.gz", GOOD)
    events = boto3.client("events")
    real_put = events.put_events
    refused = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
    monkeypatch.setattr(events, "put_events", lambda **entries: refused)
    monkeypatch.setattr(
        "mlops.validation.completion.client",
        lambda service: events if service == "events" else clients.client(service),
    )
    with pytest.raises(RuntimeError, match="not accepted"):
        lake_env.invoke(event)
    assert lake_env.run_validated() == []

    monkeypatch.setattr(events, "put_events", real_put)
    result = lake_env.invoke(event)

    assert result["run_emitted"] is True
    assert len(lake_env.run_validated()) == 1
    assert len(lake_env.validated_rows()) == 3


def test_a_run_with_no_valid_rows_still_completes(lake_env: Lake) -> None:
    result = lake_env.invoke(lake_env.upload("used_cars/junk.csv", b"colour\nred\n"))

    assert result["run_complete"] is True
    [emitted] = lake_env.run_validated()
    assert (emitted["detail"]["rows_valid"], emitted["detail"]["objects"]) == (0, 1)
    item = lake_env.ledger_item(result["run_id"])
    assert item["status"] == "SUCCEEDED"
    assert item["reason"] == "1 object(s) rejected or unreadable"


def test_a_broken_manifest_is_recorded_without_raising(lake_env: Lake) -> None:
    key = lake.raw_manifest_key("used_cars", "2026-11-27", RUN)

    result = lake_env.invoke(lake_env.upload(key, b"{not json"))

    assert (result["outcome"], result["metric"]) == ("bad_manifest", "UnreadableObjects")
    assert lake_env.ledger_item(RUN)["failed_objects"] == {key}
    assert lake_env.run_validated() == []


# ---------------------------------------------------------------- every object leaves a trace

HEADER = "listing_id,make,model,year,mileage,fuel,transmission,engine_size,body,posted_date,price\n"
CSV_ROWS = (
    "L000001,Toyota,Corolla,2015,60000,Petrol,Manual,1.6,Sedan,2026-10-01,9500\n"
    "L000002,Ford,Focus,2016,50000,Diesel,Automatic,1.5,Hatchback,2026-10-02,10500\n"
)


def parquet(records: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame(records).to_parquet(buffer)
    return buffer.getvalue()


def test_the_validate_rule_routes_every_object_created_in_the_raw_bucket() -> None:
    from samtranslator.yaml_helper import yaml_parse

    from localcloud.patterns import matches
    from tests.conftest import ROOT

    # given the validate function's rule as template.yaml declares it, on this raw bucket
    function = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]["ValidateFunction"]
    pattern = copy.deepcopy(function["Properties"]["Events"]["RawObjectCreated"]["Properties"])
    pattern = pattern["Pattern"]
    pattern["detail"]["bucket"]["name"] = [RAW]
    keys = ["used_cars/CARS.CSV", "used_cars/a.csv.gz", "used_cars/a.jsonl", "used_cars/a.txt"]
    keys += [lake.raw_manifest_key("used_cars", "2026-11-27", RUN), "used_cars/"]
    # when S3 announces objects of any name there
    events = [
        {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": RAW}, "object": {"key": key}},
        }
        for key in keys
    ]
    # then every one reaches the function, and nothing from another bucket does
    assert [matches(pattern, e) for e in events] == [True] * len(keys)
    elsewhere = copy.deepcopy(events[0])
    elsewhere["detail"]["bucket"]["name"] = "another-bucket"
    assert not matches(pattern, elsewhere)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("CARS.CSV", (HEADER + CSV_ROWS).encode()),
        ("cars.csv.gz", gzip.compress((HEADER + CSV_ROWS).encode())),
        ("cars.jsonl", "".join(json.dumps(r) + "\n" for r in cars(1, 2)).encode()),
        ("cars.JSONL.GZ", jsonl_gz(cars(1, 2))),
        ("cars.PARQUET", parquet(cars(1, 2))),
    ],
)
def test_an_upload_in_any_supported_format_and_case_is_validated(
    lake_env: Lake, name: str, body: bytes
) -> None:
    # given an upload whose extension is supported, in any case
    event = lake_env.upload(f"used_cars/{name}", body)
    # when the validate function handles it
    result = lake_env.invoke(event)
    # then its rows are validated
    assert (result["outcome"], result["rows_valid"]) == ("validated", 2)
    assert len(lake_env.validated_rows()) == 2


@pytest.mark.parametrize("name", ["cars.xlsx", "notes.txt", "cars.csv.bak", "_SUCCESS"])
def test_an_object_of_an_unsupported_format_is_rejected_with_a_reason_not_ignored(
    lake_env: Lake, name: str
) -> None:
    # given an object validation does not read
    key = f"used_cars/{name}"
    event = lake_env.upload(key, b"PK\x03\x04 not a table")
    # when the validate function handles it
    result = lake_env.invoke(event)
    # then the run records it as failed with the reason, and quarantine holds a report and a copy
    assert result["outcome"] == "unreadable"
    assert "unsupported format" in result["reason"]
    item = lake_env.ledger_item(result["run_id"])
    assert item["failed_objects"] == {key}
    assert "unsupported format" in item["part_counts"][key]["reason"]
    report = lake_env.report(result)
    assert (report["status"], report["reason"]) == ("unreadable", result["reason"])
    copy_key = lake.quarantine_object_key("used_cars", result["run_id"], key)
    assert lake_env.s3.get_object(Bucket=QUARANTINE, Key=copy_key)["Body"].read().startswith(b"PK")


def test_a_parquet_upload_with_an_unknown_nested_column_is_validated(lake_env: Lake) -> None:
    # given a parquet upload with a list column the contract does not know, and a bad row
    records = [car(i, options=["sunroof", "tow bar"]) for i in range(1, 5)]
    records.append(car(5, year=2099, options=[]))
    # when the validate function handles it
    result = lake_env.invoke(lake_env.upload("used_cars/options.parquet", parquet(records)))
    # then its rows are validated, the bad one quarantined, the column reported
    assert (result["outcome"], result["rows_valid"], result["rows_quarantined"]) == (
        "validated",
        4,
        1,
    )
    assert lake_env.report(result)["unexpected_columns"] == ["options"]
    assert lake_env.quarantined_rows()["options"].tolist() == ["[]"]


def test_a_nested_value_in_a_contract_column_is_a_failed_row_not_a_crash(lake_env: Lake) -> None:
    # given a parquet upload whose make is a struct, not a category
    records = [car(i, make={"name": "toyota"}) for i in range(1, 4)]
    # when the validate function handles it
    result = lake_env.invoke(lake_env.upload("used_cars/struct.parquet", parquet(records)))
    # then the rows fail the contract, are quarantined under the run, and the run completes
    assert (result["outcome"], result["rows_quarantined"]) == ("rejected", 3)
    assert lake_env.report(result)["rule_failures"]["allowed:make"] == 3
    assert result["run_id"].startswith("upload-")
    assert result["run_complete"] is True


# ------------------------------------------------------- missing values as people write them


def test_a_csv_exported_from_r_with_na_cells_is_validated_with_nulls(lake_env: Lake) -> None:
    # given a CSV as R's write.csv writes it: quoted text, NA for missing values
    csv = (
        '"listing_id","make","model","year","mileage","fuel","transmission","engine_size",'
        '"body","posted_date","price"\n'
        '"L000001","Toyota","Corolla",2015,NA,"Petrol",NA,1.6,"Sedan",NA,9500\n'
        '"L000002","Kia","Ceed",2020,30000,"Electric","Automatic",NA,"Hatchback",'
        '"2026-10-02",17500\n'
    )
    # when the validate function handles it
    result = lake_env.invoke(lake_env.upload("used_cars/from_r.csv", csv.encode()))
    # then both rows are valid, the NA cells null, and the report counts the markers
    assert (result["outcome"], result["rows_valid"], result["rows_quarantined"]) == (
        "validated",
        2,
        0,
    )
    rows = lake_env.validated_rows().set_index("listing_id")
    assert rows.loc["L000001", ["mileage", "transmission", "posted_date"]].isna().all()
    assert pd.isna(rows.loc["L000002", "engine_size"])
    assert lake_env.report(result)["missing_markers"] == {
        "mileage": 1,
        "transmission": 1,
        "engine_size": 1,
        "posted_date": 1,
    }


def test_json_string_markers_are_nulls_too(lake_env: Lake) -> None:
    records = [*cars(1, 2), car(3, mileage="N/A", body="NULL")]

    result = lake_env.invoke(lake_env.upload("used_cars/markers.jsonl.gz", jsonl_gz(records)))

    assert (result["rows_valid"], result["rows_quarantined"]) == (3, 0)
    assert lake_env.report(result)["missing_markers"] == {"mileage": 1, "body": 1}


# ---------------------------------------------------------------- one bad line does not sink a file


def test_a_ragged_csv_line_is_quarantined_with_its_line_number_and_the_rest_validated(
    lake_env: Lake,
) -> None:
    # given a CSV whose third line lost a field and fifth line has one too many
    csv = (
        HEADER
        + CSV_ROWS
        + "L000003,Kia,Ceed,2020,Petrol,Manual,1.4,Hatchback,2026-10-03,17500\n"
        + "L000004,Kia,Ceed,2020,1000,Petrol,Manual,1.4,Hatchback,2026-10-03,17500\n"
        + "L000005,Kia,Ceed,2020,1000,Petrol,Manual,1.4,Hatchback,2026-10-03,17500,x\n"
    )
    # when the validate function handles it
    result = lake_env.invoke(lake_env.upload("used_cars/ragged.csv", csv.encode()))
    # then the good rows are validated and each bad line is one quarantined row, with a reason
    assert result["outcome"] == "validated"
    assert (result["rows_in"], result["rows_valid"], result["rows_quarantined"]) == (5, 3, 2)
    assert sorted(lake_env.validated_rows()["listing_id"]) == ["L000001", "L000002", "L000004"]
    lines = lake_env.quarantined_rows().sort_values("line_number")
    assert lines["failed_rules"].tolist() == ["bad_line", "bad_line"]
    assert lines["line_number"].tolist() == [4, 6]
    assert lines["line_reason"].tolist() == ["10 fields, expected 11", "12 fields, expected 11"]
    assert lines["line_text"].iloc[0].startswith("L000003,Kia")
    report = lake_env.report(result)
    assert report["bad_lines"] == [
        {"line": 4, "reason": "10 fields, expected 11"},
        {"line": 6, "reason": "12 fields, expected 11"},
    ]
    assert report["rows_in"] == report["rows_valid"] + report["rows_quarantined"]


def test_a_malformed_json_line_is_quarantined_and_the_rest_validated(lake_env: Lake) -> None:
    # given a scraper part whose second line was cut off
    lines = [json.dumps(r) for r in cars(1, 3)]
    lines[1] = lines[1][:20]
    body = gzip.compress(("\n".join(lines) + "\n").encode())
    key = RUN_PREFIX + "part-00000.jsonl.gz"
    # when the validate function handles it
    result = lake_env.invoke(lake_env.upload(key, body))
    # then the other lines are validated and the run counts the bad line as quarantined
    assert (result["rows_in"], result["rows_valid"], result["rows_quarantined"]) == (3, 2, 1)
    [line] = lake_env.quarantined_rows().to_dict("records")
    assert (line["failed_rules"], line["line_number"]) == ("bad_line", 2)
    assert line["line_reason"].startswith("not JSON")
    counts = lake_env.ledger_item(RUN)["part_counts"][key]
    assert (counts["rows_in"], counts["rows_valid"], counts["rows_quarantined"]) == (3, 2, 1)


def test_data_the_checks_cannot_handle_is_rejected_with_the_error_not_dead_lettered(
    lake_env: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given checks that fail on some data they did not foresee
    def unforeseen(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("unhashable type: 'dict'")

    monkeypatch.setattr("mlops.validation.checks.check_frame", unforeseen)
    event = lake_env.upload("used_cars/odd.jsonl.gz", GOOD)
    # when the validate function handles the object
    result = lake_env.invoke(event)
    # then it is recorded unreadable with the error as its reason, not raised
    assert result["outcome"] == "unreadable"
    assert result["reason"] == "could not be validated: TypeError: unhashable type: 'dict'"
    assert lake_env.ledger_item(result["run_id"])["failed_objects"] == {"used_cars/odd.jsonl.gz"}
