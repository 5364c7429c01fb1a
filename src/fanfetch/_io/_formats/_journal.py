"""Formats written whole at the end of a run (Parquet, DuckDB), with a JSON-lines journal
as the records' durability point while it runs.

A Parquet file cannot be appended to once written, and DuckDB commits cost milliseconds
each, too much for a batch per turn of the loop. So records go to ``OUTPUT.journal`` (JSON
lines, exactly as ``-o out.jsonl`` writes them) and, when the run ends (finished,
interrupted or failed), into the output in large batches, which is then renamed into place
(Parquet) or committed (DuckDB), and the journal removed. After a ``kill -9`` the journal is
still there: ``--resume`` repairs it and counts its ids with the output's, and the next end
moves both in. A record already in the output (the process died between the two steps) is
not moved twice: ids are unique, and the move skips those the output holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import orjson

from ..._core._exceptions import UsageError
from ..._core._files import clean_temps
from ..._core._resume import IdSet, ResumeState, id_hash
from .._records import FdOutput, open_fd
from ._jsonl import JSON_LINES
from ._rows import (
    ColumnTypes,
    columns_for,
    decode_id,
    record_from_row,
    row_from_record,
    tally,
)

__all__ = ["BATCH_ROWS", "Journaled", "journal_path"]

BATCH_ROWS = 16_384


def journal_path(path: str) -> str:
    return path + ".journal"


def _key(rid: Any, page: Any) -> int:
    """What makes a record one of its own: its id, and with ``--paginate`` its page."""
    return id_hash(rid) if page is None else id_hash([rid, page])


def _page_of(row: dict[str, Any]) -> Any:
    return orjson.loads(row["extra"]).get("page") if row.get("extra") else None


class _JournalOutput(FdOutput):
    def __init__(self, fd: int, finish: Callable[[], None], *, include_headers: bool) -> None:
        super().__init__(fd, owns=True, include_headers=include_headers)
        self._finish = finish

    def close(self) -> None:
        super().close()
        self._finish()


class Journaled:
    """The journal's half of a format; a subclass says how the output itself is read,
    counted, emptied of failed records and filled."""

    name = ""

    # --- what a subclass provides -------------------------------------------------------
    def _check(self) -> None:
        """Import what the format needs (a missing extra raises ImportError here)."""

    def columns(self, path: str) -> list[str]:
        """The output's columns (none when there is no output yet)."""
        return self._columns(path) if os.path.exists(path) else []

    def _columns(self, path: str) -> list[str]:
        """The columns of an output that exists."""
        raise NotImplementedError

    def _final_rows(self, path: str) -> Iterator[dict[str, Any]]:
        """The output's rows, as ``_rows`` makes them."""
        raise NotImplementedError

    def _drop_failed(self, path: str) -> int:
        """Remove the output's failed records; how many were removed."""
        raise NotImplementedError

    def _remove(self, path: str) -> None:
        """Empty the output (a run without ``--resume`` starts afresh)."""
        raise NotImplementedError

    def _fill(self, path: str, rows: Callable[[], Iterator[list[Any]]], types: ColumnTypes) -> None:
        """Add ``rows()`` (batches of rows, ids as text) to the output; ``types`` has the
        ``--select`` columns' types."""
        raise NotImplementedError

    # --- RecordFormat --------------------------------------------------------------------
    def open(
        self,
        path: str | None,
        *,
        append: bool = False,
        include_headers: bool = False,
        selected: Sequence[str] = (),
    ) -> FdOutput:
        if path is None or path == "-":
            raise UsageError(f"a {self.name} output needs a file: give -o NAME.{self.name}")
        self._check()
        clean_temps(path)  # a killed run's half-written files beside the output
        journal = journal_path(path)
        if append:
            found = self.columns(path)
            if found and found != list(columns_for(selected)):
                raise UsageError(
                    f"{path} has other columns than this run writes ({', '.join(found)}): "
                    "is `select` the same?"
                )
        if not append:
            self._remove(path)
            if os.path.exists(journal):
                os.unlink(journal)
        fd, _ = open_fd(journal, append=True)
        return _JournalOutput(
            fd, lambda: self.finish(path, tuple(selected)), include_headers=include_headers
        )

    def finish(self, path: str, selected: Sequence[str]) -> None:
        """Move the journal's records into the output, then remove the journal."""
        journal = journal_path(path)
        if not os.path.exists(journal):
            return
        known = IdSet()
        if os.path.exists(path):
            for row in self._final_rows(path):
                known.add(_key(decode_id(row["id"]), _page_of(row)))

        def batches() -> Iterator[list[Any]]:
            """Rows not in the output yet (a record moved in before a crash is not again).
            An empty output has none to skip: the journal never holds a record twice."""
            records = JSON_LINES.read(journal)
            while chunk := list(islice(records, BATCH_ROWS)):
                if not known:
                    yield [row_from_record(r, selected) for r in chunk]
                    continue
                yield [
                    row_from_record(r, selected)
                    for r in chunk
                    if known.add(_key(r["id"], r.get("page")))
                ]

        types = ColumnTypes(selected)
        if selected:  # a first pass, for the types of the columns --select gives
            for record in JSON_LINES.read(journal):
                body = record.get("body")
                if isinstance(body, dict):
                    types.add(body.get(key) for key in selected)
        self._fill(path, batches, types)
        os.unlink(journal)

    def recover(
        self, path: str, *, redo_failed: bool = False, warn: Callable[[str], None] = lambda _: None
    ) -> ResumeState:
        self._check()
        clean_temps(path)  # a killed run's half-written files beside the output
        journal = journal_path(path)
        dropped = 0
        if os.path.exists(journal):
            dropped = JSON_LINES.recover(journal, redo_failed=redo_failed, warn=warn).dropped_failed
        if redo_failed and os.path.exists(path):
            dropped += self._drop_failed(path)

        def rows() -> Iterable[tuple[Any, Any, Any, Any]]:
            if os.path.exists(path):
                for row in self._final_rows(path):
                    yield decode_id(row["id"]), row["ok"], row["status"], row["error_type"]
            if os.path.exists(journal):
                for record in JSON_LINES.read(journal):
                    error = record.get("error")
                    kind = error.get("type") if isinstance(error, dict) else None
                    yield record["id"], record.get("ok"), record.get("status"), kind

        state = tally(rows(), text_ids=False)
        state.dropped_failed = dropped
        return state

    def read(self, path: str) -> Iterator[dict[str, Any]]:
        self._check()
        known = IdSet()
        if os.path.exists(path):
            for row in self._final_rows(path):
                record = record_from_row(row)
                known.add(_key(record["id"], record.get("page")))
                yield record
        journal = journal_path(path)
        if os.path.exists(journal):
            with open(journal, "rb") as f:
                for line in f:
                    try:
                        record = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue  # a torn last line: --resume cuts it
                    if known.add(_key(record["id"], record.get("page"))):
                        yield record

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
