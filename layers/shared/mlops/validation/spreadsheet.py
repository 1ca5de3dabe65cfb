"""CSV written for people: no cell runs as a formula when a spreadsheet opens the file.

OWASP "CSV Injection": a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is read as a formula by Excel, LibreOffice and Google Sheets; prefixing such a cell with
a single quote makes it text. Only files for people are neutralised: the data zones are
parquet (never opened by a spreadsheet) and keep every value exactly as it came.

A number in a numeric column stays a number (``-3.5`` cannot run anything): in those columns
a cell that is wholly a decimal number is left as it is.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel's limit of characters in one cell ("Excel specifications and limits"): a longer cell
# spills into the next row, so longer text is cut with a mark saying so.
MAX_CELL_CHARS = 32_767
TRUNCATED = "…[truncated]"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise(value: str, *, numeric: bool = False) -> str:
    """``value`` as a spreadsheet shows it but never evaluates it: a quote before a formula."""
    if numeric and _NUMBER.fullmatch(value):
        return value
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def cell(value: object, *, numeric: bool = False) -> str:
    """The text of one cell: empty for a null, neutralised, cut to what a cell holds."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = neutralise(str(value), numeric=numeric)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - len(TRUNCATED)] + TRUNCATED
    return text


def to_csv(frame: pd.DataFrame, numeric_columns: Collection[str] = ()) -> bytes:
    """``frame`` as UTF-8 CSV (with a BOM, so Excel reads it as UTF-8), every cell neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    names = [str(c) for c in frame.columns]
    writer.writerow(cell(name) for name in names)
    numeric = [name in numeric_columns for name in names]
    # pandas' NA and NaT as None: a null is an empty cell whatever its column's type.
    cells = frame.astype(object).where(frame.notna(), None)
    for row in cells.itertuples(index=False, name=None):
        writer.writerow(cell(v, numeric=n) for v, n in zip(row, numeric, strict=True))
    return ("\ufeff" + out.getvalue()).encode("utf-8")
