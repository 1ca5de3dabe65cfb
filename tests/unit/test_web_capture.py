"""Inference capture (mlops.web.capture): records, sampling, batches within Firehose's limits,
failures that never cost a prediction, and the reader the skew check uses. moto plays Firehose
and S3; the web function is called with the sample HTTP API events (tests/unit/test_web_api.py's
fake SageMaker runtime answers)."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest

from mlops.clients import client
from mlops.contract import load_contract
from mlops.web import capture
from mlops.web.endpoint import ServedModel
from tests.unit.test_web_api import FakeRuntime, deploy_model, post, sample_row

STREAM = "mlops-capture-dev"
BUCKET = "mlops-capture-dev-bucket"
SERVED = ServedModel(
    endpoint="mlops-used-cars-dev",
    endpoint_status="InService",
    endpoint_config="mlops-used-cars-dev-v3",
    version="3",
    model_package_arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-used-cars-dev/3",
    run_id="20261127T080000Z-0a1b2c3d",
)


def features() -> list[str]:
    return load_contract("used_cars").features


def records_for(request_id: str | None, rows: int, percent: float) -> list[capture.CaptureRecord]:
    names = features()
    return capture.build_records(
        rows=[{name: index for name in names} for index in range(rows)],
        predictions=[float(index) for index in range(rows)],
        probabilities=None,
        features=names,
        served=SERVED,
        dataset="used_cars",
        request_id=request_id,
        percent=percent,
    )


@pytest.fixture
def stream(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A DirectPut stream into a bucket, as the template declares it, named in the settings."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    boto3.client("firehose").create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "RoleARN": "arn:aws:iam::123456789012:role/capture",
            "Prefix": "dataset=used_cars/",
        },
    )
    monkeypatch.setenv("CAPTURE_STREAM_NAME", STREAM)
    monkeypatch.setenv("CAPTURE_SAMPLING_PERCENT", "100")
    return STREAM


def delivered() -> list[dict[str, Any]]:
    """Every JSON line moto's Firehose wrote to the bucket (moto writes each batch at once)."""
    s3 = boto3.client("s3")
    lines: list[dict[str, Any]] = []
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        lines += [json.loads(line) for line in body.splitlines() if line.strip()]
    return lines


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRuntime]:
    fake = FakeRuntime()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", fake.url)
    yield fake
    fake.stop()


@pytest.fixture
def web(aws: None, lambda_context: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from mlops.web import endpoint, fields

    endpoint.clear_cache()
    fields.clear_cache()
    from functions.web.app import lambda_handler

    return lambda event: lambda_handler(event, lambda_context)


def emitted_metrics(text: str) -> dict[str, float]:
    """Metric values of the EMF documents Powertools printed."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("{") and "_aws" in line:
            document = json.loads(line)
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = document[definition["Name"]]
                values[definition["Name"]] = sum(value) if isinstance(value, list) else value
    return values


# ------------------------------------------------------------------------------ records


def test_a_capture_record_carries_inputs_prediction_model_version_and_inference_id() -> None:
    # Given one predicted row with a value for every feature and one extra key
    names = features()
    row = dict.fromkeys(names, 1) | {"not_a_feature": "x"}
    moment = datetime(2026, 12, 3, 20, 15, 30, 123000, tzinfo=timezone.utc)

    # When its capture record is built
    [record] = capture.build_records(
        rows=[row],
        predictions=[12345.0],
        probabilities=None,
        features=names,
        served=SERVED,
        dataset="used_cars",
        request_id="req-1",
        percent=100,
        now=moment,
    )

    # Then it names the request's row, the model that answered and exactly the features
    assert record.inference_id == "req-1-0"
    assert record.captured_at == "2026-12-03T20:15:30.123Z"
    assert (record.model_version, record.run_id) == ("3", SERVED.run_id)
    assert record.endpoint_config == "mlops-used-cars-dev-v3"
    assert list(record.inputs) == names
    assert record.prediction == 12345.0
    assert json.loads(capture.encode(record))["inputs"] == dict.fromkeys(names, 1)
    assert capture.encode(record).endswith(b"\n")


def test_rows_of_a_request_without_an_id_still_get_distinct_inference_ids() -> None:
    # Given a batch without a request id, when its records are built, then ids are distinct
    ids = [r.inference_id for r in records_for(None, 3, 100)]

    assert len(set(ids)) == 3


# ----------------------------------------------------------------------------- sampling


def test_sampling_is_decided_by_the_inference_id_at_about_the_configured_rate() -> None:
    # Given 20,000 inference ids, when sampled at 25 %
    ids = [f"request-{n}-0" for n in range(20_000)]
    chosen = [i for i in ids if capture.sampled(i, 25)]

    # Then about a quarter is chosen, and asking again chooses exactly the same ones
    assert 0.24 < len(chosen) / len(ids) < 0.26
    assert chosen == [i for i in ids if capture.sampled(i, 25)]


@pytest.mark.parametrize(("percent", "expected"), [(0, 0), (100, 50)])
def test_zero_percent_captures_nothing_and_a_hundred_captures_every_row(
    percent: float, expected: int
) -> None:
    assert len(records_for("req", 50, percent)) == expected


def test_a_replayed_request_samples_the_same_rows() -> None:
    # Given a request of 100 rows sampled at 50 %, when the same request (id) is replayed
    first = [r.inference_id for r in records_for("abc-123", 100, 50)]
    replay = [r.inference_id for r in records_for("abc-123", 100, 50)]

    # Then the same rows are captured, some but not all of them
    assert first == replay
    assert 0 < len(first) < 100


# ------------------------------------------------------------------------------ batches


def test_batches_never_exceed_500_records() -> None:
    sizes = [len(b) for b in capture.batches([b"{}\n"] * 1_201)]

    assert sizes == [500, 500, 201]


def test_batches_never_exceed_4_mib_of_encoded_records() -> None:
    # Given records of 900 KiB each (under the 1,000 KiB record limit)
    line = b"x" * (900 * 1024)

    # When batched, then no batch's base64-encoded size passes 4 MiB, and none is lost
    made = list(capture.batches([line] * 10))

    assert sum(len(b) for b in made) == 10
    assert all(len(b) * 4 * ((len(line) + 2) // 3) <= capture.MAX_BATCH_BYTES for b in made)


def test_a_record_over_firehoses_record_limit_is_counted_failed_and_not_sent(stream: str) -> None:
    # Given one normal record and one whose inputs make it larger than 1,000 KiB
    [small, large] = records_for("req", 2, 100)
    large.inputs["model"] = "x" * capture.MAX_RECORD_BYTES

    # When sent
    outcome = capture.send(stream, [small, large])

    # Then only the small one reaches the stream, and the large one is counted
    assert (outcome.sent, outcome.failed) == (1, 1)
    assert [r["inference_id"] for r in delivered()] == [small.inference_id]


# ------------------------------------------------------------------ through the web API


def test_a_prediction_through_the_web_api_is_captured_with_its_model_version(
    web: Any, runtime: FakeRuntime, event: Any, stream: str
) -> None:
    # Given a served model and two rows
    deploy_model(version="7", run_id="20261127T080000Z-77777777")
    rows = [sample_row(event) | {"mileage": m} for m in (10_000, 90_000)]

    # When they are predicted through the API
    response = web(post(event, {"instances": rows}))

    # Then the answer is unchanged and both rows are in the stream with the model version
    assert response["statusCode"] == 200
    captured = delivered()
    request_id = event("http_post_predictions.json")["requestContext"]["requestId"]
    assert [c["inference_id"] for c in captured] == [f"{request_id}-0", f"{request_id}-1"]
    assert {c["model_version"] for c in captured} == {"7"}
    assert [c["inputs"]["mileage"] for c in captured] == [10_000, 90_000]
    assert [c["prediction"] for c in captured] == json.loads(response["body"])["predictions"]


def test_without_a_stream_configured_nothing_is_captured_and_predictions_are_served(
    web: Any, runtime: FakeRuntime, event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAPTURE_STREAM_NAME", raising=False)
    deploy_model()

    assert web(event("http_post_predictions.json"))["statusCode"] == 200


def test_firehose_refusing_the_call_does_not_fail_the_prediction_and_is_counted(
    web: Any,
    runtime: FakeRuntime,
    event: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a stream name Firehose does not know (ResourceNotFoundException)
    monkeypatch.setenv("CAPTURE_STREAM_NAME", "no-such-stream")
    deploy_model()

    # When a row is predicted
    response = web(event("http_post_predictions.json"))

    # Then the prediction is served and the lost capture is in the CaptureFailed metric
    assert response["statusCode"] == 200
    assert emitted_metrics(capsys.readouterr().out).get("CaptureFailed") == 1


def test_records_firehose_reports_failed_are_counted_and_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a Firehose that takes the batch but reports one of its two records failed
    calls: list[int] = []

    class PartlyFailing:
        def put_record_batch(self, **kwargs: Any) -> dict[str, Any]:
            calls.append(len(kwargs["Records"]))
            return {
                "FailedPutCount": 1,
                "RequestResponses": [
                    {"RecordId": "1"},
                    {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"},
                ],
            }

    monkeypatch.setattr(capture, "client", lambda service: PartlyFailing())

    # When two records are sent
    outcome = capture.send(STREAM, records_for("req", 2, 100))

    # Then one call was made, one record counted sent and one failed
    assert calls == [2]
    assert (outcome.sent, outcome.failed) == (1, 1)


@pytest.fixture
def silent_firehose(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A Firehose endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_FIREHOSE", f"http://127.0.0.1:{server.getsockname()[1]}")
    yield
    stop.set()
    thread.join(timeout=2)
    for connection in accepted:
        connection.close()
    server.close()


def test_a_firehose_that_never_answers_costs_one_read_timeout_and_no_retry(
    aws: None, silent_firehose: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given capture configured against a Firehose that hangs
    monkeypatch.setenv("CAPTURE_STREAM_NAME", STREAM)
    started = time.monotonic()

    # When a batch is captured
    outcome = capture.capture(
        rows=[dict.fromkeys(features(), 1)],
        predictions=[1.0],
        probabilities=None,
        features=features(),
        served=SERVED,
        request_id="req",
    )

    # Then it gives up after one attempt's read timeout (0.5 s), counted as failed
    elapsed = time.monotonic() - started
    assert outcome.failed == 1 and outcome.sent == 0
    assert elapsed < 1.5


# ------------------------------------------------------------------------------- reader


def test_captured_inputs_reads_a_days_gzip_captures_back_as_feature_columns(aws: None) -> None:
    # Given two gzip objects of captures under one day's prefix, and one under the next day
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    first, second = records_for("req-a", 2, 100)
    [other_day] = records_for("req-b", 1, 100)
    prefix = capture.day_prefix("used_cars", "2026-12-03")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}s-1-a.gz", Body=gzip.compress(capture.encode(first)))
    s3.put_object(
        Bucket=BUCKET, Key=f"{prefix}s-1-b.gz", Body=gzip.compress(capture.encode(second))
    )
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{capture.day_prefix('used_cars', '2026-12-04')}s-1-c.gz",
        Body=gzip.compress(capture.encode(other_day)),
    )

    # When that day is read
    frame = capture.captured_inputs(BUCKET, "used_cars", "2026-12-03")
    with_meta = capture.captured_inputs(BUCKET, "used_cars", "2026-12-03", with_metadata=True)

    # Then it holds that day's two rows, one column per feature, metadata only when asked
    assert list(frame.columns) == features()
    assert len(frame) == 2
    assert sorted(with_meta["inference_id"]) == ["req-a-0", "req-a-1"]
    assert set(with_meta["model_version"]) == {"3"}


def test_a_day_without_captures_is_an_empty_frame(aws: None) -> None:
    client("s3").create_bucket(Bucket=BUCKET)

    assert capture.captured_inputs(BUCKET, "used_cars", "2026-12-03").empty


def test_the_capture_module_does_not_import_pandas_for_the_web_function() -> None:
    # Given a fresh interpreter, when the web app and its capture are imported, then pandas is not
    import subprocess
    import sys

    code = "import sys, mlops.web.api, mlops.web.capture; print('pandas' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
