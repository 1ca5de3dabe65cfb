"""Turn the bytes of a raw object into a frame, or say clearly why they cannot be read.

pandas and pyarrow are imported when an object is read, so importing this module (to catch
``UnreadableObject``) stays cheap for code paths that never read data.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FORMATS = {".jsonl.gz": "jsonl.gz", ".csv": "csv", ".parquet": "parquet"}


class UnreadableObject(ValueError):
    """An object that is not what its name declares (or holds nothing): retrying cannot help."""


def format_of_key(key: str) -> str | None:
    """The declared format of a raw object from its name, or None for an unsupported one."""
    lowered = key.lower()
    return next((fmt for suffix, fmt in FORMATS.items() if lowered.endswith(suffix)), None)


def read_frame(body: bytes, key: str) -> pd.DataFrame:
    """Parse ``body`` in the format ``key`` declares; raise ``UnreadableObject`` if it is not."""
    fmt = format_of_key(key)
    if fmt is None:
        raise UnreadableObject(f"unsupported format (expected one of {sorted(FORMATS)})")
    if not body:
        raise UnreadableObject("empty object")
    reader = {"jsonl.gz": _jsonl_gz, "csv": _csv, "parquet": _parquet}[fmt]
    frame = reader(body)
    if frame.empty:
        raise UnreadableObject("empty object: no records")
    return frame


def _jsonl_gz(body: bytes) -> pd.DataFrame:
    import pandas as pd

    # pandas 2 (AWS's managed pandas layer) still turns "*_at" columns into dates unless told;
    # pandas 3 stops guessing with dtype=False and deprecates the extra switch.
    major = int(pd.__version__.split(".")[0])
    no_guessing = {"dtype": False} | ({"convert_dates": False} if major < 3 else {})

    try:
        text = gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        # BadGzipFile is an OSError; a cut-off stream raises EOFError.
        raise UnreadableObject(f"not a complete gzip stream: {exc}") from None
    if not text.strip():
        raise UnreadableObject("empty object: no records")
    try:
        # Strings stay strings (no date or number guessing): the contract decides types.
        frame = pd.read_json(io.BytesIO(text), lines=True, **no_guessing)
    except ValueError as exc:
        raise UnreadableObject(f"not JSON lines: {exc}") from None
    return frame


def _csv(body: bytes) -> pd.DataFrame:
    import pandas as pd

    try:
        # Every cell as text: formatted numbers ("12,500") are normalised by the checks.
        return pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise UnreadableObject("empty object: no header") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UnreadableObject(f"not CSV: {exc}") from None


def _parquet(body: bytes) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    try:
        return pd.read_parquet(io.BytesIO(body))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableObject(f"not parquet: {exc}") from None
