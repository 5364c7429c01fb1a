"""Output formats, chosen by ``-o``'s name (or ``--format``): JSON lines (``_jsonl``), and
the table formats, one module each, imported only when chosen (Parquet and DuckDB need an
extra; a missing one is a usage error that names the ``pip install``).

A new format is its module (a ``RecordFormat``: open an output, recover and index a file for
``--resume``, read it back) and one line in ``FORMATS``.
"""

from __future__ import annotations

import importlib
import os

from ..._core._config import Records, select_columns
from ..._core._exceptions import UsageError
from .._records import Output, RecordFormat
from ._jsonl import JSON_LINES

__all__ = [
    "FORMATS",
    "check_holds",
    "format_for",
    "format_named",
    "has_records",
    "held_format",
    "open_output",
    "unreadable",
]

FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {  # name: (where, the suffixes it owns)
    "jsonl": ("fanfetch._io._formats._jsonl:JSON_LINES", (".jsonl", ".ndjson")),
    "csv": ("fanfetch._io._formats._csv:CSV", (".csv",)),
    "sqlite": ("fanfetch._io._formats._sqlite:SQLITE", (".sqlite", ".sqlite3", ".db")),
    "parquet": ("fanfetch._io._formats._parquet:PARQUET", (".parquet",)),
    "duckdb": ("fanfetch._io._formats._duckdb:DUCKDB", (".duckdb",)),
}


def format_named(name: str) -> RecordFormat:
    """The format called ``name``; a usage error naming the choices, or the extra to install."""
    entry = FORMATS.get(name)
    if entry is None:
        raise UsageError(f"no output format {name!r}; choose one of: {', '.join(FORMATS)}")
    module, _, attr = entry[0].partition(":")
    try:
        found: RecordFormat = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        missing = exc.name or "a module"
        raise UsageError(
            f"the {name} output needs {missing}: pip install 'fanfetch[{name}]'"
        ) from None
    return found


def format_for(path: str | None, name: str | None = None) -> RecordFormat:
    """The format ``name`` says, else the one ``path``'s suffix says (JSON lines for any other
    name, and for stdout)."""
    if name is not None:
        return format_named(name)
    if path:
        suffix = os.path.splitext(path)[1].lower()
        for known, (_, suffixes) in FORMATS.items():
            if suffix in suffixes:
                return format_named(known)
    return JSON_LINES


def open_output(
    record_format: RecordFormat, path: str | None, records: Records, *, append: bool
) -> Output:
    """``path`` opened in ``record_format`` for records made as ``records`` says (their
    headers, and the columns a ``select`` gives)."""
    selected = select_columns(records.select) if records.select is not None else ()
    if getattr(record_format, "neutralises_cells", False):  # CSV: formulas, or --csv-raw
        return record_format.open(  # type: ignore[call-arg]
            path, append=append, include_headers=records.include_headers, selected=selected,
            raw_cells=records.csv_raw,
        )  # fmt: skip
    return record_format.open(
        path, append=append, include_headers=records.include_headers, selected=selected
    )


def held_format(path: str) -> str | None:
    """The format a file's first bytes say it holds: Parquet's, SQLite's and DuckDB's magic
    numbers, a JSON object first (JSON lines) or a header that starts with ``id`` (CSV, as
    fanfetch writes it). None for a missing or empty file, or one fanfetch cannot tell."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if head[8:12] == b"DUCK":
        return "duckdb"
    first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].strip()
    if first.startswith(b"{"):
        return "jsonl"
    if first == b"id" or first.startswith(b"id,"):
        return "csv"
    return None


def has_records(path: str) -> bool:
    """Whether ``path`` holds records, or will: a Parquet or DuckDB output during its run (or
    after a kill) is only its journal so far, which its format reads too."""
    return os.path.exists(path) or os.path.exists(path + ".journal")


def check_holds(record_format: RecordFormat, path: str) -> None:
    """Refuse to read (or add to) ``path`` in ``record_format`` when its contents are another
    format's: a ``.jsonl`` holding CSV was read as no records, and every request fetched
    again and appended to it."""
    held = held_format(path)
    if held is not None and held != record_format.name:
        raise UsageError(
            f"{path} holds {held} records, not {record_format.name}: name the format it "
            f"holds (`format={held}`, or --from {held} for export and report), or give "
            "another output"
        )


def unreadable(path: str, exc: BaseException) -> UsageError:
    """A file of records that its format's own reader refused (corrupt, cut short, not
    what its name says), as a one-line usage error."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return UsageError(f"cannot read the records in {path}: {first}")


def read_errors() -> tuple[type[BaseException], ...]:
    """What the formats' readers raise on a file they cannot read: pyarrow's errors are
    ``ValueError``s (and ``OSError``s), orjson's too; SQLite's and DuckDB's their own."""
    import csv
    import sqlite3
    import sys

    errors: tuple[type[BaseException], ...] = (ValueError, OSError, csv.Error, sqlite3.Error)
    duckdb = sys.modules.get("duckdb")  # only if a DuckDB file was read: it is imported then
    if duckdb is not None:
        errors += (duckdb.Error,)
    return errors
