"""``fanfetch export IN -o OUT`` (and ``fanfetch.read``): records from one format to another,
streamed in flat memory.

Each record goes through the output as a ``--workers`` record does (as its JSON line, which
the output turns into its own item), so an exported file is the file ``fanfetch run`` would
have written. With ``select`` the expression is applied to each ok record's JSON body, as
``fanfetch run --select`` does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from .._core._config import compile_select, select_columns
from .._core._exceptions import UsageError
from ._formats import check_holds, format_for, has_records, read_errors, unreadable
from ._formats._jsonl import JSON_LINES, read_json_lines
from ._formats._rows import BASE_COLUMNS
from ._records import RecordFormat, encode_record

__all__ = ["export"]

_BATCH = 4096


def _source_columns(path: str, record_format: RecordFormat) -> tuple[str, ...]:
    """The ``--select`` keys a table already has as columns of its own."""
    own = record_format.columns(path)[len(BASE_COLUMNS) :]
    return tuple(
        n.removeprefix("body_") if n.removeprefix("body_") in BASE_COLUMNS else n for n in own
    )


def _next_chunk(records: Iterator[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    try:
        return list(islice(records, _BATCH))
    except read_errors() as exc:  # corrupt, or cut short: one line, not a traceback
        raise unreadable(source, exc) from None


def export(
    source: str,
    output: str,
    *,
    source_format: str | None = None,
    output_format: str | None = None,
    select: str | None = None,
    warn: Callable[[str], None] = lambda _: None,
) -> int:
    """Write every record of ``source`` to ``output``; return how many."""
    if not has_records(source):
        raise UsageError(f"cannot read {source!r}: no such file")
    reader = format_for(source, source_format)
    check_holds(reader, source)
    writer_format = format_for(output, output_format)
    if os.path.exists(output) and os.path.exists(source) and os.path.samefile(source, output):
        raise UsageError("the output is the input itself: give another -o")
    compiled = compile_select(select) if select is not None else None
    try:
        selected = select_columns(select) if select is not None else _source_columns(source, reader)
    except read_errors() as exc:
        raise unreadable(source, exc) from None
    skipped = [0]
    records = read_json_lines(source, skipped) if reader is JSON_LINES else reader.read(source)
    out = writer_format.open(output, selected=selected)
    count = 0
    try:
        while chunk := _next_chunk(records, source):
            if compiled is not None:
                for record in chunk:
                    body = record.get("body")
                    if record.get("ok") and isinstance(body, dict | list):
                        record["body"] = compiled.search(body)
            out.write([out.from_line(encode_record(record)) for record in chunk])
            count += len(chunk)
    finally:
        out.close()
    if skipped[0]:
        warn(f"{skipped[0]} line(s) of {source} are not records and were left out")
    return count
