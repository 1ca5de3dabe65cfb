"""Landing a crawl in the raw zone: bounded gzip JSONL parts, then the run manifest last.

Parts are sealed in memory while the crawl runs and uploaded only once it has finished, so a
crawl that dies midway lands nothing; the manifest goes last, so a run without one is partial.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from typing import Any

from mlops import lake
from mlops.clients import client

PART_MAX_RECORDS = 1000
PART_MAX_BYTES = 8 * 1024 * 1024


@dataclass
class Part:
    """A sealed part: its bytes, or where a checkpoint keeps them (``source_key``)."""

    records: int
    body: bytes = b""
    source_key: str | None = None
    size: int = 0

    @property
    def bytes(self) -> int:
        return self.size or len(self.body)


@dataclass
class PartBuffer:
    """Accumulates JSON lines and seals a gzip part at ``max_records`` or ``max_bytes`` (raw)."""

    max_records: int = PART_MAX_RECORDS
    max_bytes: int = PART_MAX_BYTES
    parts: list[Part] = field(default_factory=list)
    _lines: list[bytes] = field(default_factory=list)
    _size: int = 0

    def add(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        if self._lines and self._size + len(line) > self.max_bytes:
            self.seal()
        self._lines.append(line)
        self._size += len(line)
        if len(self._lines) >= self.max_records:
            self.seal()

    def seal(self) -> None:
        if self._lines:
            # mtime=0 keeps a part's bytes a function of its records alone.
            body = gzip.compress(b"".join(self._lines), mtime=0)
            self.parts.append(Part(records=len(self._lines), body=body))
            self._lines, self._size = [], 0

    def unsealed(self) -> list[str]:
        """The JSON lines not yet in a part (a checkpoint keeps them)."""
        return [line.decode() for line in self._lines]

    def restore(self, lines: list[str]) -> None:
        for line in lines:
            encoded = line.encode()
            self._lines.append(encoded)
            self._size += len(encoded)

    @property
    def records(self) -> int:
        return sum(part.records for part in self.parts) + len(self._lines)


def land_run(
    bucket: str,
    dataset: str,
    ingest_date: str,
    run_id: str,
    parts: list[Part],
    manifest: dict[str, Any],
    *,
    copy_from: str | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Upload the parts (or copy them from a checkpoint in ``copy_from``), then the manifest
    (with the parts listed); the part entries and the manifest's key."""
    s3 = client("s3")
    entries = []
    for number, part in enumerate(parts):
        key = lake.raw_part_key(dataset, ingest_date, run_id, number)
        if part.source_key:
            # Server-side copy; the checkpoint's part already has the gzip content type.
            s3.copy_object(
                Bucket=bucket, Key=key, CopySource={"Bucket": copy_from, "Key": part.source_key}
            )
        else:
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=part.body,
                # No Content-Encoding: readers must get the gzip bytes the .gz key promises.
                ContentType="application/gzip",
            )
        entries.append({"key": key, "records": part.records, "bytes": part.bytes})
    manifest_key = lake.raw_manifest_key(dataset, ingest_date, run_id)
    body = {**manifest, "parts": entries, "records": sum(p.records for p in parts)}
    s3.put_object(
        Bucket=bucket,
        Key=manifest_key,
        Body=json.dumps(body, indent=2).encode(),
        ContentType="application/json",
    )
    return entries, manifest_key
