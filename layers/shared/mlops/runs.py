"""Run identifiers: minted once at ingestion, then carried through keys, job names and tags."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime, timezone

_RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")
_RUN_IN_KEY = re.compile(r"(?:^|/)run_id=([^/]+)/")


def new_run_id(now: datetime | None = None, *, event_id: str | None = None) -> str:
    """A sortable, unique run id such as ``20261127T083000Z-1a2b3c4d``.

    Given the triggering event's id, the same event always mints the same run: Lambda's
    retries of one scheduled event continue one run instead of starting others.
    """
    now = now or datetime.now(timezone.utc)
    seed = hashlib.sha256(event_id.encode()).hexdigest() if event_id else uuid.uuid4().hex
    suffix = seed[:8]
    return f"{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{suffix}"


def run_id_for_object(key: str, version: str) -> str:
    """The run id an object belongs to: the one in its key, else one derived from key and version.

    Deriving it (rather than minting) keeps a redelivered upload in the same run.
    """
    match = _RUN_IN_KEY.search(key)
    if match:
        return match.group(1)
    digest = hashlib.sha256(f"{key}\0{version}".encode()).hexdigest()[:8]
    return f"upload-{digest}"


def is_minted(run_id: str) -> bool:
    return bool(_RUN_ID.match(run_id))
