"""Inference capture: each sampled prediction recorded in the capture zone, through Firehose.

A record per predicted row: an inference id (the request id and the row's index), when it was
served, the dataset, the endpoint, its config and the model version that answered, the row's
inputs as the contract's feature columns, and the prediction. Firehose buffers them and writes
gzip JSON lines to ``s3://<capture bucket>/dataset=<ds>/date=<YYYY-MM-DD>/`` (template.yaml,
CaptureDeliveryStream), which ``captured_inputs`` reads back for the training/serving skew check.

In the request path (``capture``), and it must never cost the answer: Lambda runs nothing after
the handler returns, so the records go in one PutRecordBatch after the predictions are known,
through a client with one attempt and half-second timeouts (``mlops.clients``). Any failure
(Firehose refusing, throttling, timing out, records it reports in ``FailedPutCount``) is logged
and counted in the ``CaptureFailed`` metric, never raised and never retried here.

Sampling is by a hash of the inference id, so replaying a request (same request id) samples the
same rows. This module imports nothing heavy: pandas is imported by ``captured_inputs`` only.
"""

from __future__ import annotations

import gzip
import hashlib
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, Field

from mlops.clients import client
from mlops.observability import logger, metrics
from mlops.settings import get_settings

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

    from mlops.web.endpoint import ServedModel

# Amazon Data Firehose, PutRecordBatch (API Reference): "Each PutRecordBatch request supports up
# to 500 records. Each record in the request can be as large as 1,000 KB (before base64
# encoding), up to a limit of 4 MB for the entire request. These limits cannot be changed."
# The request travels as JSON with each record base64-encoded, so the 4 MiB is counted on the
# encoded size here (the documentation does not say which): a batch under it is under either.
MAX_RECORD_BYTES = 1_000 * 1024
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
# Buckets of the sampling hash: percentages to two decimals (0.01 % steps).
_SAMPLING_BUCKETS = 10_000


class CaptureRecord(BaseModel):
    """One served prediction as it lands in the capture zone (one JSON line)."""

    inference_id: str = Field(description="<request id>-<row index>, unique per predicted row")
    request_id: str | None = None
    row: int = Field(description="the row's index in its request")
    captured_at: str = Field(description="when the prediction was served (UTC, ISO 8601)")
    dataset: str
    endpoint: str
    endpoint_config: str | None = None
    model_version: str | None = None
    model_package_arn: str | None = None
    run_id: str | None = None
    inputs: dict[str, Any] = Field(description="the row's values of the contract's features")
    prediction: Any = None
    probabilities: Any = None


class CaptureOutcome(BaseModel):
    """What one ``capture`` call did (for tests, logs and the benchmark)."""

    rows: int = 0
    sampled: int = 0
    sent: int = 0
    failed: int = 0
    batches: int = 0
    seconds: float = 0.0


def inference_id(request_id: str | None, row: int, fallback: str) -> str:
    """The id of one predicted row: the API Gateway request id and the row's index, so it is
    stable across a replay of the request; ``fallback`` (a uuid) stands in for a missing one."""
    return f"{request_id or fallback}-{row}"


def sampled(identifier: str, percent: float) -> bool:
    """Whether ``identifier`` falls in the first ``percent`` of the hash's range: the same answer
    for the same id every time and in every container, and ``percent`` % of ids on average."""
    if percent >= 100:
        return True
    if percent <= 0:
        return False
    digest = hashlib.sha256(identifier.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % _SAMPLING_BUCKETS
    return bucket < round(percent * _SAMPLING_BUCKETS / 100)


def build_records(
    *,
    rows: Sequence[dict[str, Any]],
    predictions: Sequence[Any],
    probabilities: Sequence[Any] | None,
    features: Sequence[str],
    served: ServedModel,
    dataset: str,
    request_id: str | None,
    percent: float,
    now: datetime | None = None,
) -> list[CaptureRecord]:
    """The capture records of the sampled rows of one prediction batch."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    captured_at = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fallback = "" if request_id else uuid.uuid4().hex
    records = []
    for index, row in enumerate(rows):
        identifier = inference_id(request_id, index, fallback)
        if not sampled(identifier, percent):
            continue
        records.append(
            CaptureRecord(
                inference_id=identifier,
                request_id=request_id,
                row=index,
                captured_at=captured_at,
                dataset=dataset,
                endpoint=served.endpoint,
                endpoint_config=served.endpoint_config,
                model_version=served.version,
                model_package_arn=served.model_package_arn,
                run_id=served.run_id,
                inputs={name: row.get(name) for name in features},
                prediction=predictions[index] if index < len(predictions) else None,
                probabilities=(
                    probabilities[index]
                    if probabilities is not None and index < len(probabilities)
                    else None
                ),
            )
        )
    return records


def encode(record: CaptureRecord) -> bytes:
    """One JSON line: Firehose concatenates records as sent, the newline keeps them apart."""
    return (record.model_dump_json() + "\n").encode("utf-8")


def _encoded_size(data: bytes) -> int:
    return 4 * ((len(data) + 2) // 3)  # base64, as the record travels in the request


def batches(lines: Sequence[bytes]) -> Iterator[list[bytes]]:
    """``lines`` cut into PutRecordBatch requests within Firehose's limits (500 records, 4 MiB);
    each line must already be at most ``MAX_RECORD_BYTES``."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        encoded = _encoded_size(line)
        if batch and (len(batch) == MAX_BATCH_RECORDS or size + encoded > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += encoded
    if batch:
        yield batch


def send(stream: str, records: Sequence[CaptureRecord]) -> CaptureOutcome:
    """Put ``records`` on ``stream``; every failure is logged and counted, none raised."""
    outcome = CaptureOutcome(sampled=len(records))
    lines: list[bytes] = []
    for record in records:
        line = encode(record)
        if len(line) > MAX_RECORD_BYTES:
            # Firehose would refuse the record; its row is not captured, and that is said.
            logger.warning(
                "capture record over Firehose's 1,000 KiB record limit: not captured",
                extra={"inference_id": record.inference_id, "bytes": len(line)},
            )
            outcome.failed += 1
            continue
        lines.append(line)
    for batch in batches(lines):
        outcome.batches += 1
        try:
            response = client("firehose").put_record_batch(
                DeliveryStreamName=stream, Records=[{"Data": line} for line in batch]
            )
        except Exception as exc:  # never fail or slow a prediction for its capture
            logger.warning(
                "inference capture failed",
                extra={"stream": stream, "records": len(batch), "error": repr(exc)},
            )
            outcome.failed += len(batch)
            continue
        failed = int(response.get("FailedPutCount") or 0)
        if failed:
            codes = sorted(
                {
                    str(r.get("ErrorCode"))
                    for r in response.get("RequestResponses", [])
                    if r.get("ErrorCode")
                }
            )
            logger.warning(
                "Firehose refused some capture records (not retried)",
                extra={"stream": stream, "failed": failed, "error_codes": codes},
            )
        outcome.failed += failed
        outcome.sent += len(batch) - failed
    return outcome


def capture(
    *,
    rows: Sequence[dict[str, Any]],
    predictions: Sequence[Any],
    probabilities: Sequence[Any] | None,
    features: Sequence[str],
    served: ServedModel,
    request_id: str | None,
) -> CaptureOutcome:
    """Record one successful prediction batch, sampled, if capture is configured. Never raises."""
    started = time.perf_counter()
    outcome = CaptureOutcome(rows=len(rows))
    try:
        settings = get_settings()
        stream = settings.capture_stream_name
        if not stream:
            return outcome
        records = build_records(
            rows=rows,
            predictions=predictions,
            probabilities=probabilities,
            features=features,
            served=served,
            dataset=settings.dataset,
            request_id=request_id,
            percent=settings.capture_sampling_percent,
        )
        if records:
            outcome = send(stream, records).model_copy(update={"rows": len(rows)})
    except Exception as exc:  # a bug here must not turn a served prediction into a 500
        logger.warning("inference capture failed", extra={"error": repr(exc)})
        outcome.failed = max(outcome.failed, 1)
    outcome.seconds = time.perf_counter() - started
    if outcome.sent:
        metrics.add_metric(name="PredictionsCaptured", unit=MetricUnit.Count, value=outcome.sent)
    if outcome.failed:
        metrics.add_metric(name="CaptureFailed", unit=MetricUnit.Count, value=outcome.failed)
    return outcome


# ----------------------------------------------------------------------- reading captures back


def day_prefix(dataset: str, day: date | str) -> str:
    """Where a day's captures land (the stream's Prefix, evaluated for that UTC day)."""
    text = day.isoformat() if isinstance(day, date) else str(day)
    return f"dataset={dataset}/date={text}/"


def _object_lines(body: bytes) -> list[bytes]:
    if body[:2] == b"\x1f\x8b":  # CompressionFormat GZIP (objects end in .gz)
        body = gzip.decompress(body)
    return [line for line in body.splitlines() if line.strip()]


def captured_records(bucket: str, dataset: str, day: date | str) -> list[CaptureRecord]:
    """Every capture record Firehose delivered for ``dataset`` on UTC ``day`` (by arrival time,
    so a prediction served just before midnight may be in the next day), oldest object first."""
    s3 = client("s3")
    keys: list[tuple[Any, str]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=day_prefix(dataset, day)
    ):
        keys += [(item["LastModified"], item["Key"]) for item in page.get("Contents", [])]
    records = []
    for _, key in sorted(keys):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        records += [CaptureRecord.model_validate_json(line) for line in _object_lines(body)]
    return records


def captured_inputs(
    bucket: str, dataset: str, day: date | str, *, with_metadata: bool = False
) -> pd.DataFrame:
    """A day's served inputs as a frame, one row per captured prediction, one column per
    contract feature (as the web API cleaned it): what the skew check compares with training.

    ``with_metadata`` adds ``inference_id``, ``captured_at``, ``model_version``, ``run_id``,
    ``endpoint`` and ``prediction`` columns. An empty day is an empty frame. Needs pandas (not
    part of the web function; the monitoring side runs with the AWS SDK for pandas layer).
    """
    import pandas as pd

    records = captured_records(bucket, dataset, day)
    frame = pd.DataFrame([record.inputs for record in records])
    if with_metadata and records:
        meta = pd.DataFrame(
            [
                {
                    "inference_id": r.inference_id,
                    "captured_at": r.captured_at,
                    "model_version": r.model_version,
                    "run_id": r.run_id,
                    "endpoint": r.endpoint,
                    "prediction": r.prediction,
                }
                for r in records
            ]
        )
        frame = pd.concat([frame, meta], axis=1)
    return frame


__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_RECORDS",
    "MAX_RECORD_BYTES",
    "CaptureOutcome",
    "CaptureRecord",
    "batches",
    "build_records",
    "capture",
    "captured_inputs",
    "captured_records",
    "day_prefix",
    "encode",
    "inference_id",
    "sampled",
    "send",
]
