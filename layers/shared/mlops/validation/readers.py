"""Turn the bytes of a raw object into a frame, or say clearly why they cannot be read.

Supported formats, by the key's extension in any case: ``.csv``, ``.csv.gz``, ``.jsonl``,
``.jsonl.gz`` and ``.parquet``. Anything else is an ``UnsupportedFormat`` (rejected whole with
that reason, never ignored).

Hostile input is bounded: a gzip stream is decompressed through a cap on its decompressed
bytes (``MAX_DECOMPRESSED_BYTES``, settings ``max_decompressed_bytes``), in chunks, so a small
gzip that expands to gigabytes is refused once the cap is crossed, without inflating the rest;
a plain object larger than the cap, or a parquet file whose row groups declare more
uncompressed bytes than it, is refused before parsing (``TooLarge``).

One bad line does not sink a file: a CSV line with the wrong number of fields, or a JSON line
that is not a JSON object, comes back as a ``BadLine`` (its line number and why) beside the
frame of the good lines, to be quarantined as one row. Whole-file reads stay the fast path;
the slower line-by-line work happens only when some line is bad.

pandas and pyarrow are imported when an object is read, so importing this module (to catch
``UnreadableObject``) stays cheap for code paths that never read data.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# Longest suffix first: ".csv.gz" before ".gz" would matter if ".gz" alone were listed.
FORMATS = {
    ".jsonl.gz": "jsonl.gz",
    ".csv.gz": "csv.gz",
    ".jsonl": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
}
# A bad line's text is kept in quarantine up to this many characters, for the first this many
# bad lines of an object (every bad line is still counted and quarantined with its reason).
MAX_LINE_TEXT = 2000
KEPT_LINE_TEXTS = 1000
# Default cap on the bytes a raw object decodes to (``Settings.max_decompressed_bytes``): the
# validate function (3 GB) parses that much into a frame several times its size.
MAX_DECOMPRESSED_BYTES = 256 * 1024**2
# Decompressed per step: the most a step can overshoot the cap by.
_GZIP_CHUNK = 1024**2


class UnreadableObject(ValueError):
    """An object that is not what its name declares (or holds nothing): retrying cannot help."""


class UnsupportedFormat(UnreadableObject):
    """An object whose name declares no format validation reads."""


class TooLarge(UnreadableObject):
    """An object that decodes to more bytes than validation reads (a gzip bomb, say)."""


def too_large(what: str, limit: int) -> TooLarge:
    """The refusal of an object over ``limit`` bytes, naming the setting that raises it."""
    return TooLarge(
        f"{what} over the limit of {limit:,} bytes (MAX_DECOMPRESSED_BYTES); "
        "split the data into smaller objects"
    )


@dataclass(frozen=True)
class BadLine:
    """One line of a text object that could not be read as a record.

    ``line`` is 1-based and counts the header. For JSON lines it is the physical line; for
    CSV it is the record's number, the same unless a quoted value before it spans lines.
    """

    line: int
    reason: str
    text: str = ""


@dataclass
class ReadResult:
    frame: pd.DataFrame
    format: str
    bad_lines: list[BadLine] = field(default_factory=list)

    @property
    def text_format(self) -> bool:
        """CSV or JSON lines: cells written by people, where missing-value markers apply."""
        return self.format != "parquet"


def format_of_key(key: str) -> str | None:
    """The declared format of a raw object from its name, or None for an unsupported one."""
    lowered = key.lower()
    return next((fmt for suffix, fmt in FORMATS.items() if lowered.endswith(suffix)), None)


def check_format(key: str) -> str:
    """The format of ``key``, or ``UnsupportedFormat`` saying which formats are read."""
    fmt = format_of_key(key)
    if fmt is None:
        name = key.rsplit("/", 1)[-1]
        raise UnsupportedFormat(
            f"unsupported format: {name!r} (expected one of {', '.join(FORMATS)}, any case)"
        )
    return fmt


def read_frame(body: bytes, key: str) -> pd.DataFrame:
    """Parse ``body`` in the format ``key`` declares; raise ``UnreadableObject`` if it is not.

    Bad lines are left out silently here: callers that account for them use ``read_object``.
    """
    return read_object(body, key).frame


def read_object(body: bytes, key: str, *, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> ReadResult:
    """Parse ``body`` in the format ``key`` declares: the frame of good records and bad lines.

    ``max_bytes`` caps what the object may decode to (``TooLarge`` beyond it).
    """
    fmt = check_format(key)
    if not body:
        raise UnreadableObject("empty object")
    if fmt.endswith(".gz"):
        body = gunzip(body, max_bytes)
        if not body or body.isspace():
            raise UnreadableObject("empty object: no records")
    elif len(body) > max_bytes:
        raise too_large(f"object of {len(body):,} bytes", max_bytes)
    base = fmt.removesuffix(".gz")
    if base == "parquet":
        frame, bad = _parquet(body, max_bytes), []
    elif base == "csv":
        frame, bad = _csv(body)
    else:
        frame, bad = _jsonl(body)
    if len(frame) == 0 and not bad:
        raise UnreadableObject("empty object: no records")
    return ReadResult(frame, fmt, bad)


def gunzip(body: bytes, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """The decompressed ``body`` (every member), or ``TooLarge`` once it passes ``max_bytes``.

    Decompressed a chunk at a time (``gzip.decompress`` would inflate all of it first), so a
    stream that expands past the cap is refused holding at most the cap plus one chunk; an
    accepted one is briefly held twice while its chunks are joined (at most twice the cap).
    """
    # A complete stream ends with its last member's size mod 2**32 (ISIZE). One declaring
    # more than the cap is counted first, keeping nothing, so a plain bomb costs a chunk of
    # memory; a stream declaring less (more members, a size past 4 GiB, a cut or forged
    # trailer) is kept as it is read and refused when it passes the cap.
    declared = int.from_bytes(body[-4:], "little") if len(body) >= 18 else 0
    if declared > max_bytes:
        _inflate(body, max_bytes, keep=None)
    chunks: list[bytes] = []
    _inflate(body, max_bytes, keep=chunks)
    return b"".join(chunks)


def _inflate(body: bytes, max_bytes: int, keep: list[bytes] | None) -> None:
    size = 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
            while chunk := stream.read(_GZIP_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    if keep is not None:
                        keep.clear()
                    raise too_large(f"gzip of {len(body):,} bytes: decompressed size", max_bytes)
                if keep is not None:
                    keep.append(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        # BadGzipFile is an OSError; a cut-off stream raises EOFError.
        raise UnreadableObject(f"not a complete gzip stream: {exc}") from None


def _jsonl(text: bytes) -> tuple[pd.DataFrame, list[BadLine]]:
    if not text or text.isspace():
        raise UnreadableObject("empty object: no records")
    try:
        return _read_json_lines(text), []
    except (ValueError, TypeError):
        # pandas raises TypeError for a line that is JSON but not an object (42, null).
        pass
    # Some line is not a JSON object: find which, line by line (the slow path), and read the rest.
    good: list[bytes] = []
    bad: list[BadLine] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            reason = f"not JSON: {getattr(exc, 'msg', exc)}"
        else:
            if isinstance(record, dict):
                good.append(line)
                continue
            reason = f"not a JSON object but {type(record).__name__}"
        kept = len(bad) < KEPT_LINE_TEXTS
        text = line[: 4 * MAX_LINE_TEXT].decode("utf-8", "replace")[:MAX_LINE_TEXT] if kept else ""
        bad.append(BadLine(number, reason, text))
    if not good:
        first = bad[0] if bad else None
        raise UnreadableObject(
            "not JSON lines: no line is a JSON object"
            + (f" (line {first.line}: {first.reason})" if first else "")
        )
    try:
        return _read_json_lines(b"\n".join(good)), bad
    except (ValueError, TypeError) as exc:
        raise UnreadableObject(f"not JSON lines: {exc}") from None


def _read_json_lines(text: bytes) -> pd.DataFrame:
    import pandas as pd

    # pandas 2 (AWS's managed pandas layer) still turns "*_at" columns into dates unless told;
    # pandas 3 stops guessing with dtype=False and deprecates the extra switch.
    major = int(pd.__version__.split(".")[0])
    no_guessing = {"dtype": False} | ({"convert_dates": False} if major < 3 else {})
    # Strings stay strings (no date or number guessing): the contract decides types.
    return pd.read_json(io.BytesIO(text), lines=True, **no_guessing)


def _header(body: bytes) -> list[str]:
    """The CSV's column names (the first record, which may span lines inside quotes)."""
    try:
        stream = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8-sig", newline="")
        return next(csv.reader(stream), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UnreadableObject(f"not CSV: {exc}") from None


def _csv(body: bytes) -> tuple[pd.DataFrame, list[BadLine]]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = _header(body)
    if not any(name.strip() for name in names):
        raise UnreadableObject("empty object: no header")
    # Repeated names get ".1", ".2" as pandas gives them: every column is kept.
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if not count else f"{name}.{count}")

    def read(threads: bool, bad: list[BadLine]) -> pa.Table:
        def on_bad(row: pacsv.InvalidRow) -> str:
            bad.append(
                BadLine(
                    row.number or 0,
                    f"{row.actual_columns} field{'s' * (row.actual_columns != 1)}, "
                    f"expected {row.expected_columns}",
                    row.text[:MAX_LINE_TEXT] if len(bad) < KEPT_LINE_TEXTS else "",
                )
            )
            return "skip"

        return pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=unique, skip_rows=1, use_threads=threads),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_bad),
            # Every cell as text (formatted numbers like "12,500" are normalised by the
            # checks); an empty cell is a null.
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(unique, pa.string()),
                strings_can_be_null=True,
                null_values=[""],
            ),
        )

    bad: list[BadLine] = []
    try:
        table = read(True, bad)
        if bad and any(line.line == 0 for line in bad):
            # Line numbers are known only to a single-threaded read: only files with bad lines.
            bad = []
            table = read(False, bad)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise UnreadableObject(f"not CSV: {exc}") from None
    bad.sort(key=lambda line: line.line)  # threads may report them out of order
    return table.to_pandas(), bad


def _parquet(body: bytes, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # The footer declares each row group's uncompressed size: a file whose in-file
        # compression expands past the cap is refused before any page is decompressed.
        # (A forged footer understates it; the plain-size cap still bounds the file itself.)
        meta = pq.ParquetFile(pa.BufferReader(body)).metadata
        declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if declared > max_bytes:
            raise too_large(f"parquet row groups of {declared:,} bytes uncompressed", max_bytes)
        table = pq.read_table(pa.BufferReader(body))
    except TooLarge:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableObject(f"not parquet: {exc}") from None
    # Nested columns (lists, structs, maps) have no contract type: each value becomes its JSON
    # text, so it is checked (and quarantined, or dropped as unexpected) like any other value.
    for index, column in enumerate(table.schema):
        if pa.types.is_nested(column.type):
            values = table[index].to_pylist()
            text = pa.array(
                [None if v is None else json.dumps(v, default=str) for v in values],
                type=pa.string(),
            )
            table = table.set_column(index, pa.field(column.name, pa.string()), text)
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise UnreadableObject(f"not parquet: {exc}") from None
