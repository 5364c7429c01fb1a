"""Parquet (``pip install 'fanfetch[parquet]'``): one file, written whole at the end of the
run from the journal (``_journal``), in row groups of 16,384 rows, renamed into place.

Columns are typed: ``ok`` boolean, ``status`` and ``attempts`` integers, ``elapsed_ms`` and
``started_at`` doubles, the rest text (``id`` as ``_rows.encode_id`` writes it); ``--select``
columns take the type of their values (whole numbers, numbers, booleans, text; JSON text for
lists, objects or a mix).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..._core._files import temp_prefix
from ._journal import BATCH_ROWS, Journaled
from ._rows import BASE_COLUMNS, ColumnTypes, columns_for

__all__ = ["PARQUET", "ParquetFormat", "arrow_schema", "arrow_table"]

_BASE_TYPES = {"ok": pa.bool_(), "status": pa.int64(), "attempts": pa.int64(),
               "elapsed_ms": pa.float64(), "started_at": pa.float64()}  # fmt: skip
_KINDS = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string(),
          "json": pa.string(), "null": pa.null()}  # fmt: skip


def _kind_of(arrow_type: pa.DataType) -> str:
    if pa.types.is_null(arrow_type):
        return "null"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    return "str"


def arrow_schema(types: ColumnTypes, before: pa.Schema | None = None) -> pa.Schema:
    """The columns' types; with ``before`` (a file's schema), one that holds its values too."""
    kinds = types.kinds()
    if before is not None:
        for i, key in enumerate(columns_for(types.selected)[len(BASE_COLUMNS) :]):
            if key in before.names:
                old = _kind_of(before.field(key).type)
                new = kinds[i] if types.seen[i] else old
                kinds[i] = (
                    old if old == new else "float" if {old, new} == {"int", "float"} else "json"
                )
    fields = [pa.field(c, _BASE_TYPES.get(c, pa.string())) for c in BASE_COLUMNS]
    own = columns_for(types.selected)[len(BASE_COLUMNS) :]
    fields += [pa.field(c, _KINDS[k]) for c, k in zip(own, kinds, strict=True)]
    return pa.schema(fields)


def arrow_table(rows: list[list[Any]], schema: pa.Schema) -> pa.Table:
    """Rows (``_rows.row_from_record``) as a table of ``schema``: a value that is not of its
    column's type is written as JSON text there (the schema says text for those)."""
    import orjson

    columns = []
    for i, (field, values) in enumerate(zip(schema, zip(*rows, strict=True), strict=True)):
        if i >= len(BASE_COLUMNS) and pa.types.is_string(field.type):
            values = tuple(
                None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode()
                for v in values
            )
        columns.append(pa.array(values, type=field.type))  # ints go into doubles as they are
    return pa.Table.from_arrays(columns, schema=schema)


class ParquetFormat(Journaled):
    """Records as one Parquet file."""

    name = "parquet"

    def _columns(self, path: str) -> list[str]:
        return list(pq.ParquetFile(path).schema_arrow.names)

    def _final_rows(self, path: str) -> Iterator[dict[str, Any]]:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            yield from batch.to_pylist()

    def _remove(self, path: str) -> None:
        if os.path.exists(path):
            os.unlink(path)

    def _drop_failed(self, path: str) -> int:
        table = pq.read_table(path)
        kept = table.filter(pc.equal(table["ok"], True))
        self._replace(path, lambda writer: writer.write_table(kept), kept.schema)
        return int(table.num_rows - kept.num_rows)

    def _replace(
        self, path: str, fill: Callable[[pq.ParquetWriter], None], schema: pa.Schema
    ) -> None:
        """Write a new file beside ``path`` and rename it into place."""
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=temp_prefix(path), suffix=".parquet")
        os.close(fd)
        try:
            with pq.ParquetWriter(tmp, schema) as writer:
                fill(writer)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _fill(self, path: str, rows: Callable[[], Iterator[list[Any]]], types: ColumnTypes) -> None:
        before = pq.ParquetFile(path) if os.path.exists(path) else None
        schema = arrow_schema(types, before.schema_arrow if before is not None else None)

        def fill(writer: pq.ParquetWriter) -> None:
            if before is not None:
                for batch in before.iter_batches(batch_size=BATCH_ROWS):
                    writer.write_table(pa.Table.from_batches([batch]).cast(schema))
            for batch in rows():
                if fresh := batch:
                    writer.write_table(arrow_table(fresh, schema), row_group_size=BATCH_ROWS)

        self._replace(path, fill, schema)


PARQUET = ParquetFormat()
