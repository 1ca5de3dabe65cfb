"""Amazon Data Firehose delivery to S3 in the local cloud: what moto's firehose leaves out.

moto accepts PutRecord/PutRecordBatch and writes each call's records to S3 at once, but under
``<Prefix>YYYY/MM/DD/HH/`` with the prefix's expressions left as written, uncompressed, and as
moto itself (no role). Firehose (Developer Guide, "Custom prefixes for Amazon S3 objects",
"Configure Amazon S3 object name format"):

- evaluates ``!{timestamp:<Java DateTimeFormatter pattern>}`` at the approximate arrival time of
  the object's oldest record, in UTC, and ``!{firehose:random-string}``; a prefix without any
  expression gets the default ``yyyy/MM/dd/HH/`` appended;
- names the object ``<evaluated prefix><stream>-<version>-<yyyy>-<MM>-<dd>-<HH>-<mm>-<ss>-<uuid>``
  plus the compression's extension (``.gz`` for GZIP), its content compressed;
- writes as the stream's ``RoleARN``: a role without s3:PutObject on the bucket delivers nothing
  (Firehose retries for up to 24 hours, then drops the data; PutRecordBatch still succeeded).

So this executor replaces moto's ``put_s3_records``: the arrival time and key are fixed when the
records arrive, and the object is written off the request thread (as Firehose delivers after
buffering) through a client acting as the stream's role, so the strict cloud checks that role's
grant. Buffering is not reproduced: each PutRecordBatch becomes one object, at once.
"""

from __future__ import annotations

import gzip
import logging
import re
import secrets
import string
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from localcloud.executors.base import MotoPatches

if TYPE_CHECKING:  # pragma: no cover - typing only
    from localcloud.executors.base import CloudServices

log = logging.getLogger(__name__)

_EXPRESSION = re.compile(r"!\{(?P<namespace>[a-zA-Z]+):(?P<value>[^}]*)\}")
# Java DateTimeFormatter letters the capture prefix and common Hive layouts use.
_JAVA_FIELDS = {
    "yyyy": "%Y",
    "yy": "%y",
    "MM": "%m",
    "dd": "%d",
    "HH": "%H",
    "mm": "%M",
    "ss": "%S",
}
_EXTENSIONS = {"GZIP": ".gz", "ZIP": ".zip", "Snappy": ".snappy", "HADOOP_SNAPPY": ".snappy"}


class UnsupportedPrefix(ValueError):
    """A prefix expression this local stand-in does not evaluate (say so rather than guess)."""


def java_date(pattern: str, moment: datetime) -> str:
    """``moment`` formatted by a Java DateTimeFormatter ``pattern`` (letters yyyy, yy, MM, dd,
    HH, mm, ss; text in single quotes is literal, ``''`` a quote; other symbols as written)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            if end == -1:
                raise UnsupportedPrefix(f"unterminated quote in {pattern!r}")
            out.append(pattern[i + 1 : end] or "'")
            i = end + 1
        elif char.isalpha():
            rest = pattern[i:]
            run = len(rest) - len(rest.lstrip(char))
            token = pattern[i : i + run]
            if token not in _JAVA_FIELDS:
                raise UnsupportedPrefix(f"timestamp field {token!r} in {pattern!r}")
            out.append(moment.strftime(_JAVA_FIELDS[token]))
            i += run
        else:
            out.append(char)
            i += 1
    return "".join(out)


def evaluate_prefix(prefix: str, arrived: datetime) -> str:
    """The prefix as Firehose evaluates it for an object whose oldest record ``arrived``."""

    def expression(match: re.Match[str]) -> str:
        namespace, value = match.group("namespace"), match.group("value")
        if namespace == "timestamp":
            return java_date(value, arrived)
        if namespace == "firehose" and value == "random-string":
            alphabet = string.ascii_letters + string.digits
            return "".join(secrets.choice(alphabet) for _ in range(11))
        raise UnsupportedPrefix(f"!{{{namespace}:{value}}} is not evaluated locally")

    if not _EXPRESSION.search(prefix):
        return prefix + arrived.strftime("%Y/%m/%d/%H/")
    return _EXPRESSION.sub(expression, prefix)


def object_key(
    destination: dict[str, Any], stream: str, version: str | int, arrived: datetime
) -> str:
    """The S3 key Firehose gives the object holding records that arrived at ``arrived``."""
    prefix = evaluate_prefix(str(destination.get("Prefix") or ""), arrived)
    extension = _EXTENSIONS.get(str(destination.get("CompressionFormat") or ""), "")
    stamp = arrived.strftime("%Y-%m-%d-%H-%M-%S")
    return f"{prefix}{stream}-{version}-{stamp}-{uuid.uuid4()}{extension}"


def object_body(destination: dict[str, Any], data: bytes) -> bytes:
    compression = str(destination.get("CompressionFormat") or "UNCOMPRESSED")
    if compression == "GZIP":
        return gzip.compress(data)
    if compression != "UNCOMPRESSED":
        raise UnsupportedPrefix(f"compression {compression} is not reproduced locally")
    return data


class FirehoseDelivery:
    """Delivers Firehose records to S3 the way Firehose names, compresses and writes them."""

    def __init__(self) -> None:
        self.cloud: CloudServices | None = None
        self._patches = MotoPatches()
        self.failures: list[str] = []

    def start(self, cloud: CloudServices) -> None:
        from moto.backends import get_backend

        self.cloud = cloud
        backend = get_backend("firehose")[cloud.account_id][cloud.region]
        self._patches.set(backend, "put_s3_records", self._put_s3_records)

    def stop(self) -> None:
        self._patches.restore()

    def _put_s3_records(
        self,
        delivery_stream_name: str,
        version_id: str,
        s3_destination: dict[str, Any],
        records: list[dict[str, bytes]],
    ) -> list[dict[str, str]]:
        assert self.cloud is not None
        arrived = datetime.now(timezone.utc)
        bucket = str(s3_destination["BucketARN"]).split(":")[-1]
        key = object_key(s3_destination, delivery_stream_name, version_id, arrived)
        # Firehose concatenates records as sent: producers delimit them (newlines).
        body = object_body(s3_destination, b"".join(r["Data"] for r in records))
        role = str(s3_destination.get("RoleARN") or "")
        self.cloud.submit(
            self._write, role, bucket, key, body, name=f"firehose-delivery:{delivery_stream_name}"
        )
        return [{"RecordId": uuid.uuid4().hex} for _ in records]

    def _write(self, role: str, bucket: str, key: str, body: bytes) -> None:
        assert self.cloud is not None
        s3 = self.cloud.role_client(role, "s3", session="AWSFirehoseToS3")
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        except Exception as exc:
            # Firehose would retry for up to a day and then drop the data; the producer never
            # hears of it. Locally that is said loudly instead of retried.
            message = f"firehose delivery to s3://{bucket}/{key} as {role} failed: {exc}"
            self.failures.append(message)
            log.error(message)
            raise
