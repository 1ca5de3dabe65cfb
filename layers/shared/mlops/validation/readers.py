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
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

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
# Decoded bytes per chunk: what a chunk's frame and its checks are sized by, whatever the
# object's size.
CHUNK_BYTES = 64 * 1024**2
# Read (decompressed) per step: the most a read can overshoot the cap by.
_PIECE = 1024**2
_QUOTE = ord('"')
# Bytes after which a quote opens a quoted CSV value.
_FIELD_START = frozenset(b",\n\r")


# A chunk as a format's reader yields it: its records, its bad lines, whether it is the last.
# Each generator hands a chunk over through a list it pops, so it keeps no reference to what
# the caller checks and writes while it is suspended (a local held across a yield would).
_Chunk = tuple["pd.DataFrame", list["BadLine"], bool]


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
    # No chunk follows (a chunk that turns out last without knowing it says False).
    last: bool = True

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


def read_object(
    body: bytes, key: str, *, max_bytes: int = MAX_DECOMPRESSED_BYTES, piece: bool = False
) -> ReadResult:
    """Parse all of ``body`` in the format ``key`` declares: one frame of its records.

    ``max_bytes`` caps what the object may decode to (``TooLarge`` beyond it). A ``piece`` of
    a larger object where no line is a record is its bad lines, not an unreadable object.
    """
    gzipped = check_format(key).endswith(".gz")
    if len(body) > max_bytes and not gzipped:
        raise too_large(f"object of {len(body):,} bytes", max_bytes)
    if gzipped and len(body) >= 18 and declared_gzip_size(body[-4:]) > max_bytes:
        check_gzip_size(io.BytesIO(body), max_bytes)
    chunks = list(
        read_chunks(
            io.BytesIO(body), key, max_bytes=max_bytes, chunk_bytes=max_bytes + 1, piece=piece
        )
    )
    if len(chunks) == 1:
        return chunks[0]
    import pandas as pd

    return ReadResult(
        pd.concat([c.frame for c in chunks], ignore_index=True),
        chunks[0].format,
        [line for c in chunks for line in c.bad_lines],
    )


def declared_gzip_size(trailer: bytes) -> int:
    """The size a gzip stream's last four bytes (ISIZE) declare for its last member.

    A complete stream decodes to at least this many bytes (ISIZE is the size mod 2**32, and
    only the last member's); a cut or forged trailer declares anything.
    """
    return int.from_bytes(trailer[-4:], "little")


def check_gzip_size(stream: BinaryIO, max_bytes: int) -> None:
    """Inflate ``stream`` keeping nothing: ``TooLarge`` past ``max_bytes``, or it is incomplete.

    For a gzip whose trailer declares more than the cap: a plain bomb is refused at the cost
    of a piece of memory, before any record is read or written.
    """
    source = _Decoded(stream, True, max_bytes)
    while source.read(_PIECE):
        pass


def read_chunks(
    stream: BinaryIO,
    key: str,
    *,
    max_bytes: int = MAX_DECOMPRESSED_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
    piece: bool = False,
) -> Iterator[ReadResult]:
    """The records of ``stream`` in the format ``key`` declares, a frame per chunk.

    Each chunk holds the whole records of about ``chunk_bytes`` decoded bytes, so memory
    follows the chunk size, not the object's. Bad lines carry their line numbers in the
    whole object. ``max_bytes`` caps what the object decodes to (``TooLarge``, raised when
    the chunk that passes it is read, so chunks before it may already have been yielded;
    ``check_gzip_size`` refuses a plain bomb first). An object with no record at all is
    ``UnreadableObject`` once it has been read; a ``piece`` of a larger one, only when it has
    no line at all.
    """
    fmt = check_format(key)
    source = _Decoded(stream, fmt.endswith(".gz"), max_bytes)
    base = fmt.removesuffix(".gz")
    if base == "parquet":
        chunks = _parquet_chunks(source, max_bytes, chunk_bytes)
    elif base == "csv":
        chunks = _csv_chunks(source, chunk_bytes)
    else:
        chunks = _jsonl_chunks(source, chunk_bytes, judge=not piece)
    records = 0
    for frame, bad, last in chunks:
        records += len(frame) + len(bad)
        box = [ReadResult(frame, fmt, bad, last)] if len(frame) or bad else []
        del frame, bad
        if box:
            yield box.pop()
    if not records:
        raise UnreadableObject(
            "empty object" if not source.read_any else "empty object: no records"
        )


class _Decoded:
    """The decoded bytes of a raw object, read a piece at a time and counted against the cap."""

    def __init__(self, stream: BinaryIO, gzipped: bool, max_bytes: int) -> None:
        self._stream: BinaryIO = gzip.GzipFile(fileobj=stream) if gzipped else stream
        self._gzipped = gzipped
        self._max_bytes = max_bytes
        self.size = 0
        self.read_any = False

    def read(self, size: int) -> bytes:
        """At most ``size`` bytes (``b""`` at the end), or ``TooLarge`` past the cap."""
        try:
            piece = self._stream.read(size)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            if not self._gzipped:
                raise
            # The decoder's own errors only (a cut-off stream raises EOFError): an error reading
            # the object (botocore's timeouts are OSErrors too) is AWS's, to be retried.
            raise UnreadableObject(f"not a complete gzip stream: {exc}") from None
        self.size += len(piece)
        self.read_any = self.read_any or bool(piece)
        if self.size > self._max_bytes:
            what = "gzip: decompressed size" if self._gzipped else "object"
            raise too_large(what, self._max_bytes)
        return piece

    def blocks(
        self, chunk_bytes: int, cut: Callable[[bytearray], int]
    ) -> Iterator[tuple[bytes, bool]]:
        """Blocks of about ``chunk_bytes``, each ending where ``cut`` says a record ends, and
        whether the stream ended with it.

        Read ``_PIECE`` bytes at a time, so passing the cap is noticed holding at most a
        piece more than it; a record longer than two chunks makes the object unreadable.
        """
        carry, ended = b"", False
        while not ended:
            block = bytearray(carry)
            # A carry of a chunk or more is a record not yet ended: read past it.
            want = max(chunk_bytes, len(carry) + min(_PIECE, chunk_bytes))
            while len(block) < want:
                piece = self.read(min(_PIECE, want - len(block)))
                if not piece:
                    ended = True
                    break
                block += piece
            end = len(block) if ended else cut(block)
            if not end:
                if len(block) > 2 * chunk_bytes:
                    raise UnreadableObject(
                        f"a record longer than {2 * chunk_bytes:,} bytes: no end of line found"
                    )
                carry = bytes(block)
                continue
            with memoryview(block) as view:
                box, carry = [bytes(view[:end])], bytes(view[end:])
            del block
            # Blank blocks too: the JSON lines reader counts their lines.
            if box[0]:
                yield box.pop(), ended


def _line_end(block: bytearray) -> int:
    """Just past the block's last line end, ``\n`` or a lone ``\r`` (0: none)."""
    return max(block.rfind(b"\n"), block.rfind(b"\r")) + 1


def _record_end(block: bytearray) -> int:
    """Just past the block's last line end outside a quoted CSV value (0: none).

    A block starts at a record (every cut is one). As Arrow's CSV reader (and Python's)
    reads it, a quote opens a quoted value only at the start of a field; inside one, a doubled
    quote is a quote and a single one closes it; a quote anywhere else (an inch mark in
    ``5'10"``) is a character like any other. Only the quotes are walked, so a file without
    them costs one search.
    """
    import numpy as np

    data = np.frombuffer(block, dtype=np.uint8)
    quotes = np.flatnonzero(data == _QUOTE)
    spans: list[tuple[int, int]] = []  # quoted values: [opening quote, closing quote]
    opened = -1
    skip = False
    for position in quotes.tolist():
        if skip:  # the second quote of a doubled one
            skip = False
        elif opened < 0:
            if position == 0 or data[position - 1] in _FIELD_START:
                opened = position
        elif position + 1 < len(data) and data[position + 1] == _QUOTE:
            skip = True
        else:
            spans.append((opened, position))
            opened = -1
    end = len(block)
    if opened >= 0:
        end = opened  # a quoted value still open at the block's end: cut before it
    while (newline := max(block.rfind(b"\n", 0, end), block.rfind(b"\r", 0, end))) != -1:
        inside = next((s for s in reversed(spans) if s[0] < newline), None)
        if inside is None or inside[1] < newline:
            return newline + 1
        end = inside[0]
    return 0


def _jsonl_chunks(source: _Decoded, chunk_bytes: int, *, judge: bool = True) -> Iterator[_Chunk]:
    """JSON lines a chunk at a time; ``judge``: no JSON object in any line is unreadable."""
    lines_before = 0
    any_good = False
    first_bad: BadLine | None = None
    for block, last in source.blocks(chunk_bytes, _line_end):
        box = [(*_jsonl(block, lines_before), last)]
        lines_before += block.count(b"\n")
        del block
        any_good = any_good or len(box[0][0]) > 0
        first_bad = first_bad or next(iter(box[0][1]), None)
        yield box.pop()
    if judge and first_bad and not any_good:
        raise UnreadableObject(
            f"not JSON lines: no line is a JSON object (line {first_bad.line}: {first_bad.reason})"
        )


def _jsonl(text: bytes, lines_before: int = 0) -> tuple[pd.DataFrame, list[BadLine]]:
    """The JSON objects of ``text`` (lines ``lines_before + 1`` on) and the lines that are not."""
    import pandas as pd

    try:
        return _read_json_lines(text), []
    except (ValueError, TypeError):
        # pandas raises TypeError for a line that is JSON but not an object (42, null).
        pass
    # Some line is not a JSON object: find which, line by line (the slow path), and read the rest.
    good: list[bytes] = []
    bad: list[BadLine] = []
    for number, line in enumerate(text.split(b"\n"), start=lines_before + 1):
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
        shown = line[: 4 * MAX_LINE_TEXT].decode("utf-8", "replace")[:MAX_LINE_TEXT] if kept else ""
        bad.append(BadLine(number, reason, shown))
    if not good:
        return pd.DataFrame(), bad
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


def _csv_chunks(source: _Decoded, chunk_bytes: int) -> Iterator[_Chunk]:
    names: list[str] = []
    records_before = 0
    for block, last in source.blocks(chunk_bytes, _record_end):
        header = not names
        if header:
            names = _column_names(_header(block))
        box = [(*_csv(block, names, header=header, records_before=records_before), last)]
        del block
        records_before += int(header) + len(box[0][0]) + len(box[0][1])
        yield box.pop()


def _column_names(names: list[str]) -> list[str]:
    """The header's names, repeated ones given ".1", ".2" as pandas does: every column kept."""
    if not any(name.strip() for name in names):
        raise UnreadableObject("empty object: no header")
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if not count else f"{name}.{count}")
    return unique


def _csv(
    body: bytes, names: list[str], *, header: bool, records_before: int
) -> tuple[pd.DataFrame, list[BadLine]]:
    """The records of one block of CSV (its first record the header when ``header``).

    A bad line's number counts the records of the blocks before (``records_before``, the
    header included) and of this one.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def read(threads: bool, bad: list[BadLine]) -> pa.Table:
        def on_bad(row: pacsv.InvalidRow) -> str:
            number = (row.number or 0) and row.number + records_before
            bad.append(
                BadLine(
                    number,
                    f"{row.actual_columns} field{'s' * (row.actual_columns != 1)}, "
                    f"expected {row.expected_columns}",
                    row.text[:MAX_LINE_TEXT] if len(bad) < KEPT_LINE_TEXTS else "",
                )
            )
            return "skip"

        return pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=int(header), use_threads=threads
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_bad),
            # Every cell as text (formatted numbers like "12,500" are normalised by the
            # checks); an empty cell is a null.
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=True,
                null_values=[""],
            ),
        )

    bad: list[BadLine] = []
    try:
        table = read(True, bad)
        if bad and any(line.line == 0 for line in bad):
            # Line numbers are known only to a single-threaded read: only blocks with bad lines.
            bad = []
            table = read(False, bad)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise UnreadableObject(f"not CSV: {exc}") from None
    bad.sort(key=lambda line: line.line)  # threads may report them out of order
    return table.to_pandas(), bad


def _parquet_chunks(source: _Decoded, max_bytes: int, chunk_bytes: int) -> Iterator[_Chunk]:
    """Row groups' batches of about ``chunk_bytes`` uncompressed, from a spooled copy.

    Parquet is read from its footer backwards, so the stream is first copied (to disk past
    a chunk: the function's ephemeral storage, not its memory).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.SpooledTemporaryFile(max_size=chunk_bytes) as spooled:
        while piece := source.read(_PIECE):
            spooled.write(piece)
        if not spooled.tell():
            return
        spooled.seek(0)
        try:
            parquet = pq.ParquetFile(spooled)
            meta = parquet.metadata
            # The footer declares each row group's uncompressed size: a file whose in-file
            # compression expands past the cap is refused before any page is decompressed.
            # (A forged footer understates it; the plain-size cap still bounds the file.)
            declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            if declared > max_bytes:
                raise too_large(f"parquet row groups of {declared:,} bytes uncompressed", max_bytes)
            rows = max(1, chunk_bytes * meta.num_rows // max(declared, 1))
            read = 0
            for batch in parquet.iter_batches(batch_size=rows):
                read += batch.num_rows
                box = [(_parquet_frame(pa.Table.from_batches([batch])), [], read >= meta.num_rows)]
                del batch
                yield box.pop()
        except TooLarge:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise UnreadableObject(f"not parquet: {exc}") from None


def _parquet_frame(table: pa.Table) -> pd.DataFrame:
    import pyarrow as pa

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
