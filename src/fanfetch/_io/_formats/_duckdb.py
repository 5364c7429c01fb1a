"""DuckDB (``pip install 'fanfetch[duckdb]'``): records as rows of the table ``records``,
moved in from the journal (``_journal``) at the end of the run in one transaction.

Columns are typed as in Parquet (the batches go in as Arrow tables); ``--select`` columns
that a later run finds other values for are widened (to a double, or to text).
Without ``--resume`` the table is made anew; other tables in the file are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import pyarrow as pa

from ._journal import BATCH_ROWS, Journaled
from ._parquet import arrow_schema, arrow_table
from ._rows import ColumnTypes

__all__ = ["DUCKDB", "DuckdbFormat"]

TABLE = "records"
_SQL_TYPES = {pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN",
              pa.string(): "VARCHAR", pa.null(): "VARCHAR"}  # fmt: skip


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DuckdbFormat(Journaled):
    """Records as the table ``records`` of a DuckDB file."""

    name = "duckdb"

    def _connect(self, path: str) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(path, config={"threads": 1})  # a few batches: threads cost more

    def _schema(self, con: duckdb.DuckDBPyConnection) -> pa.Schema | None:
        found = con.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_name = ?", [TABLE]
        ).fetchall()
        if not found:
            return None
        return con.sql(f"SELECT * FROM {TABLE} LIMIT 0").to_arrow_table().schema

    def _columns(self, path: str) -> list[str]:
        with self._connect(path) as con:
            schema = self._schema(con)
        return [] if schema is None else list(schema.names)

    def _final_rows(self, path: str) -> Iterator[dict[str, Any]]:
        with self._connect(path) as con:
            if self._schema(con) is None:
                return
            reader = con.sql(f"SELECT * FROM {TABLE}").to_arrow_reader(BATCH_ROWS)
            for batch in reader:
                yield from batch.to_pylist()

    def _remove(self, path: str) -> None:
        with self._connect(path) as con:
            con.execute(f"DROP TABLE IF EXISTS {TABLE}")

    def _drop_failed(self, path: str) -> int:
        with self._connect(path) as con:
            if self._schema(con) is None:
                return 0
            [(before,)] = con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()
            con.execute(f"DELETE FROM {TABLE} WHERE NOT ok").fetchall()
            [(after,)] = con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()
        return int(before - after)

    def _fill(self, path: str, rows: Callable[[], Iterator[list[Any]]], types: ColumnTypes) -> None:
        with self._connect(path) as con:
            before = self._schema(con)
            schema = arrow_schema(types, before)
            con.execute("BEGIN")
            if before is None:
                columns = ", ".join(f"{_quote(f.name)} {_SQL_TYPES[f.type]}" for f in schema)
                con.execute(f"CREATE TABLE {TABLE} ({columns})")
            else:
                for field in schema:
                    if before.field(field.name).type != field.type:  # widened: see the docstring
                        kind = _SQL_TYPES[field.type]
                        con.execute(f"ALTER TABLE {TABLE} ALTER {_quote(field.name)} TYPE {kind}")
            for batch in rows():
                if fresh := batch:
                    table = arrow_table(fresh, schema)
                    con.register("fanfetch_batch", table)
                    con.execute(f"INSERT INTO {TABLE} SELECT * FROM fanfetch_batch")
                    con.unregister("fanfetch_batch")
            con.execute("COMMIT")


DUCKDB = DuckdbFormat()
