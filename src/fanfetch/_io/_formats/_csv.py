"""CSV: one row per record under a header line, written whole as JSON lines are.

Values are text: ``true``/``false`` for ``ok``, an empty field for null, JSON text for
``body``, ``meta`` and ``extra`` (see ``_rows``). A field holding a line break is quoted, so
a record may span lines; recovery finds where the last whole record ends by counting quotes
(RFC 4180 doubles a quote inside a quoted field, so a record ends at a line end after an
even number of them) and cuts what follows.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from ..._core._exceptions import UsageError
from ..._core._models import Result
from ..._core._resume import IdSet, ResumeState
from ..._core._voice import speak
from .._records import FdOutput, open_fd
from ._rows import columns_for, record_from_row, row_from_record, tally

__all__ = ["CSV", "CsvFormat"]

_INTS = {"status", "attempts"}


_FORMULA = ("=", "+", "-", "@", "\t", "\r", "'")  # what a spreadsheet may run (and the mark)


def neutralised(text: str) -> str:
    """A cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return first: OWASP's CSV injection) with a leading ``'``, which spreadsheets
    show as text; a plain number (``-5``) is left alone. A cell that starts with ``'`` gets
    one more, so that ``restored`` gives every cell back as it was."""
    if not text.startswith(_FORMULA) or (text[0] in "+-" and _is_number(text)):
        return text
    return "'" + text


def restored(text: str) -> str:
    """``neutralised`` undone: what fanfetch's own readers give back."""
    return text[1:] if text.startswith("'") else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _cell(value: Any, raw: bool = False) -> Any:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, list | dict):
        value = orjson.dumps(value).decode()
    if isinstance(value, str) and not raw:
        return neutralised(value)
    return value


class _Encoder:
    def __init__(self, selected: Sequence[str], include_headers: bool, raw: bool) -> None:
        self.selected = tuple(selected)
        self.include_headers = include_headers
        self.raw = raw
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")
        # The csv module quotes a field with a line break only when the break is in its
        # lineterminator: a bare CR would end the row for every reader. A row with one is
        # written again by this writer (CR quoted), its own CRLF ending made LF.
        self._cr_writer = csv.writer(self._buffer, lineterminator="\r\n")

    def line(self, row: list[Any]) -> bytes:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        raw = self.raw
        cells = [_cell(v, raw) for v in row]
        self._writer.writerow(cells)
        text = buffer.getvalue()
        if "\r" in text:
            buffer.seek(0)
            buffer.truncate()
            self._cr_writer.writerow(cells)
            text = buffer.getvalue()[:-2] + "\n"
        return text.encode()

    def result(self, result: Result) -> bytes:
        record = result.to_dict(include_headers=self.include_headers)
        return self.line(row_from_record(record, self.selected))

    def from_line(self, line: bytes) -> bytes:
        return self.line(row_from_record(orjson.loads(line), self.selected))


class _CsvOutput(FdOutput):
    def __init__(self, fd: int, encoder: _Encoder, *, owns: bool) -> None:
        super().__init__(fd, encode=encoder.result, owns=owns)
        self._encoder = encoder

    def from_line(self, line: bytes) -> Any:
        return self._encoder.from_line(line)


def _whole_length(path: str) -> tuple[int, int]:
    """The length of the whole records at the start of ``path``, and the file's size."""
    whole = size = 0
    odd = False
    with open(path, "rb") as f:
        for line in f:
            size += len(line)
            if line.count(b'"') % 2:
                odd = not odd
            if not odd and line.endswith(b"\n"):
                whole = size
    return whole, size


_NO_FIELD_LIMIT = 2**31 - 1  # what csv.field_size_limit takes at most on every platform


def _rows(path: str) -> Iterator[dict[str, Any]]:
    """The rows of a CSV output, however big a cell is. The csv module refuses fields over
    128 KiB by a process-wide limit: it is lifted for each row read here and put back, so
    a body of a megabyte reads back and the caller's own limit stays its own."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        while True:
            before = csv.field_size_limit(_NO_FIELD_LIMIT)
            try:
                row = next(reader, None)
            finally:
                csv.field_size_limit(before)
            if row is None:
                return
            yield {k: _value(k, v) for k, v in row.items()}


def _value(column: str, text: str | None) -> Any:
    if text is None or text == "":
        return "" if column == "id" and text == "" else None
    text = restored(text)
    if column == "ok":
        return text == "true"
    if column in _INTS:
        return int(text)
    if column in ("elapsed_ms", "started_at"):
        return float(text)
    return text


class CsvFormat:
    """Records as CSV rows under a header; resumable as JSON lines are."""

    name = "csv"
    neutralises_cells = True  # open takes raw_cells

    def open(
        self,
        path: str | None,
        *,
        append: bool = False,
        include_headers: bool = False,
        selected: Sequence[str] = (),
        raw_cells: bool = False,
    ) -> FdOutput:
        """``raw_cells``: no cell is ``neutralised`` (``--csv-raw``)."""
        columns = columns_for(selected)
        header = ",".join(columns).encode() + b"\n"
        found = self.columns(path) if append and path else []
        if found and found != list(columns):
            raise UsageError(
                f"{path} has other columns than this run writes ({', '.join(found)}): "
                "is `select` the same?"
            )
        fd, owns = open_fd(path, append=append)
        output = _CsvOutput(fd, _Encoder(selected, include_headers, raw_cells), owns=owns)
        if not append or os.fstat(fd).st_size == 0:
            output.write([header])
        return output

    def recover(
        self, path: str, *, redo_failed: bool = False, warn: Callable[[str], None] = lambda _: None
    ) -> ResumeState:
        if not os.path.exists(path):
            return ResumeState(IdSet(), 0, 0, 0)
        whole, size = _whole_length(path)
        if whole < size:
            with open(path, "r+b") as f:
                f.truncate(whole)
            warn(speak(f"`resume`: cut a torn last record ({size - whole} bytes) from {path}"))
        if not redo_failed:
            state = tally((r["id"], r["ok"], r["status"], r["error_type"]) for r in _rows(path))
        else:  # keep only the ok records, the file rewritten with them
            rows = list(_rows(path))
            keep = [r for r in rows if r["ok"]]
            self._rewrite(path, keep)
            state = tally((r["id"], r["ok"], r["status"], r["error_type"]) for r in keep)
            state.dropped_failed = len(rows) - len(keep)
        state.torn_bytes = size - whole
        return state

    def columns(self, path: str) -> list[str]:
        if not os.path.exists(path):
            return []
        with open(path, "rb") as f:
            header = f.readline().decode(errors="replace").strip()
        return header.split(",") if header else []

    def _rewrite(self, path: str, rows: list[dict[str, Any]]) -> None:
        with open(path, "rb") as f:
            header = f.readline()
        columns = header.decode().strip().split(",")
        encoder = _Encoder((), False, False)  # read back restored: neutralised again
        directory = os.path.dirname(os.path.abspath(path))
        with tempfile.NamedTemporaryFile("wb", dir=directory, delete=False) as tmp:
            tmp.write(header)
            for row in rows:
                tmp.write(encoder.line([row.get(c) for c in columns]))
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)

    def read(self, path: str) -> Iterator[dict[str, Any]]:
        for row in _rows(path):
            yield record_from_row(row)

    def __repr__(self) -> str:
        return "<CsvFormat>"


CSV = CsvFormat()
