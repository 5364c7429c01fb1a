"""SQLite: records as rows of the table ``records``, each batch one committed transaction.

The commit is a record's durability point (WAL, ``synchronous=NORMAL``: a killed process
loses nothing committed; like JSON lines' once-a-second fsync, a power cut may lose the last
moments). SQLite keeps each value's own type, so ids stay whole numbers or strings, and the
``--select`` columns hold numbers as numbers. Without ``--resume`` the table is made anew;
other tables in the same file are left alone.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from ..._core._exceptions import UsageError
from ..._core._models import Result
from ..._core._resume import IdSet, ResumeState
from ._rows import columns_for, record_from_row, row_from_record, tally

__all__ = ["SQLITE", "SqliteFormat"]

TABLE = "records"
_TYPES = {"url": "TEXT", "method": "TEXT", "ok": "INTEGER", "status": "INTEGER",
          "attempts": "INTEGER", "elapsed_ms": "REAL", "started_at": "REAL", "error_type": "TEXT",
          "error_message": "TEXT", "body": "TEXT", "meta": "TEXT", "extra": "TEXT"}  # fmt: skip


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _connect(path: str) -> sqlite3.Connection:
    if path in ("", "-"):
        raise UsageError("a SQLite output needs a file: give -o NAME.sqlite")
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise UsageError(f"cannot open SQLite output {path!r}: {exc}") from exc
    return conn


def _existing_columns(conn: sqlite3.Connection) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")]


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return value


class _SqliteOutput:
    def __init__(
        self, conn: sqlite3.Connection, columns: Sequence[str], selected: Sequence[str],
        include_headers: bool,
    ) -> None:  # fmt: skip
        self._conn = conn
        self._selected = tuple(selected)
        self._include_headers = include_headers
        marks = ", ".join("?" * len(columns))
        names = ", ".join(map(_quote, columns))
        self._insert = f"INSERT INTO {TABLE} ({names}) VALUES ({marks})"

    def _row(self, record: dict[str, Any]) -> tuple[Any, ...]:
        row = row_from_record(record, self._selected, text_ids=False)
        if self._selected:
            row[len(row) - len(self._selected) :] = map(_cell, row[-len(self._selected) :])
        return tuple(row)

    def encode(self, result: Result) -> tuple[Any, ...]:
        return self._row(result.to_dict(include_headers=self._include_headers))

    def from_line(self, line: bytes) -> tuple[Any, ...]:
        return self._row(orjson.loads(line))

    def write(self, items: list[Any]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN")
            conn.executemany(self._insert, items)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise OSError(f"SQLite: {exc}") from exc

    def sync(self) -> None:
        pass  # each batch is committed; see the module's docstring

    def close(self) -> None:
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise OSError(f"SQLite: {exc}") from exc
        finally:
            self._conn.close()


class SqliteFormat:
    """Records as rows of ``records`` in a SQLite file."""

    name = "sqlite"

    def open(
        self,
        path: str | None,
        *,
        append: bool = False,
        include_headers: bool = False,
        selected: Sequence[str] = (),
    ) -> _SqliteOutput:
        conn = _connect(path or "")
        columns = columns_for(selected)
        found = _existing_columns(conn)
        if append and found and found != list(columns):
            conn.close()
            raise UsageError(
                f"{path}'s table {TABLE} has other columns than this run writes "
                f"({', '.join(found)}): is `select` the same?"
            )
        if not append:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        kinds = ", ".join(f"{_quote(c)} {_TYPES.get(c, '')}".rstrip() for c in columns)
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({kinds})")
        return _SqliteOutput(conn, columns, selected, include_headers)

    def recover(
        self, path: str, *, redo_failed: bool = False, warn: Callable[[str], None] = lambda _: None
    ) -> ResumeState:
        conn = _connect(path)
        try:
            if not _existing_columns(conn):
                return ResumeState(IdSet(), 0, 0, 0)
            dropped = 0
            if redo_failed:
                dropped = conn.execute(f"DELETE FROM {TABLE} WHERE NOT ok").rowcount
            rows = conn.execute(f"SELECT id, ok, status, error_type FROM {TABLE} ORDER BY rowid")
            (count,) = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
            state = tally(rows, expected=count, text_ids=False)
        finally:
            conn.close()
        state.dropped_failed = dropped
        return state

    def columns(self, path: str) -> list[str]:
        if not os.path.exists(path):
            return []  # not made just to be looked at
        conn = _connect(path)
        try:
            return _existing_columns(conn)
        finally:
            conn.close()

    def read(self, path: str) -> Iterator[dict[str, Any]]:
        conn = _connect(path)
        try:
            cursor = conn.execute(f"SELECT * FROM {TABLE} ORDER BY rowid")
            names = [d[0] for d in cursor.description]
            for values in cursor:
                yield record_from_row(dict(zip(names, values, strict=True)), text_ids=False)
        finally:
            conn.close()

    def __repr__(self) -> str:
        return "<SqliteFormat>"


SQLITE = SqliteFormat()
