"""Output formats, chosen by ``-o``'s name (or ``--format``): JSON lines (``_records``), and
the table formats, one module each, imported only when chosen (Parquet and DuckDB need an
extra; a missing one is a usage error that names the ``pip install``).

A new format is its module (a ``RecordFormat``: open an output, recover and index a file for
``--resume``, read it back) and one line in ``FORMATS``.
"""

from __future__ import annotations

import importlib
import os

from .._config import Config, select_columns
from .._exceptions import UsageError
from .._records import JSON_LINES, Output, RecordFormat

__all__ = ["FORMATS", "format_for", "format_named", "open_output"]

FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {  # name: (where, the suffixes it owns)
    "jsonl": ("fanfetch._records:JSON_LINES", (".jsonl", ".ndjson")),
    "csv": ("fanfetch._formats._csv:CSV", (".csv",)),
    "sqlite": ("fanfetch._formats._sqlite:SQLITE", (".sqlite", ".sqlite3", ".db")),
    "parquet": ("fanfetch._formats._parquet:PARQUET", (".parquet",)),
    "duckdb": ("fanfetch._formats._duckdb:DUCKDB", (".duckdb",)),
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
    record_format: RecordFormat, path: str | None, config: Config, *, append: bool
) -> Output:
    """``path`` opened in ``record_format`` for a run of ``config`` (its headers setting,
    and the columns its ``--select`` gives)."""
    selected = select_columns(config.select) if config.select is not None else ()
    if getattr(record_format, "neutralises_cells", False):  # CSV: formulas, or --csv-raw
        return record_format.open(  # type: ignore[call-arg]
            path, append=append, include_headers=config.include_headers, selected=selected,
            raw_cells=config.csv_raw,
        )  # fmt: skip
    return record_format.open(
        path, append=append, include_headers=config.include_headers, selected=selected
    )
