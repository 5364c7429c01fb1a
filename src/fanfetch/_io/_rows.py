"""Items as rows (a job step's ``rows = "EXPR"``): one row per item of each ok answer, the
table a data engineer wants, beside the records.

A row holds its record's ``id``, ``page`` and the item's ``index``, then the item's own
fields (a name that is one of those three gets ``item_`` before it; an item that is no
object is ``value``). Rows are written just after their record, and they are a function of
the records alone: a resumed job first makes its rows file again from its records (into a
new file, renamed over the old one), so a kill between a record and its rows leaves no row
missing or twice.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import jmespath
import orjson

from .._core._config import compile_select
from .._core._models import Result

__all__ = ["Rows", "body_of"]

_OPTIONS = jmespath.Options(dict_cls=dict)
_OWN = ("id", "page", "index")


class Rows:
    """The rows of ``expression`` (JMESPath giving a list) over each ok answer's body."""

    __slots__ = ("_expression", "text")

    def __init__(self, expression: str) -> None:
        self.text = expression
        self._expression = compile_select(expression, "rows")

    def lines(self, rid: Any, page: int | None, body: Any) -> list[bytes]:
        """The rows of one answer, as JSON lines."""
        found = self._expression.search(body, options=_OPTIONS)
        if found is None:
            return []
        items = found if isinstance(found, list) else [found]
        lines = []
        for index, item in enumerate(items):
            row: dict[str, Any] = {"id": rid, "page": page, "index": index}
            if isinstance(item, dict):
                for key, value in item.items():
                    row[f"item_{key}" if key in _OWN else key] = value
            else:
                row["value"] = item
            lines.append(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE, default=str))
        return lines

    def rebuild(self, records: str, rows: str) -> int:
        """Make ``rows`` again from the ok records in ``records`` (a resumed job's first
        step); return how many rows it holds."""
        folder = os.path.dirname(os.path.abspath(rows))
        count = 0
        with tempfile.NamedTemporaryFile("wb", dir=folder, prefix=".rows-", delete=False) as tmp:
            try:
                for record in _records(records):
                    if record.get("ok") and record.get("body_encoding") is None:
                        for line in self.lines(record["id"], record.get("page"),
                                               record.get("body")):  # fmt: skip
                            tmp.write(line)
                            count += 1
                tmp.flush()
                os.fsync(tmp.fileno())
            except BaseException:
                os.unlink(tmp.name)
                raise
        os.replace(tmp.name, rows)
        return count


def body_of(result: Result) -> Any:
    """The body as its record holds it (None when it does not decode: no items, no rows)."""
    try:
        return result.body
    except Exception:
        return None


def _records(path: str) -> Iterator[dict[str, Any]]:
    from ._formats._jsonl import JSON_LINES

    if os.path.exists(path):
        yield from JSON_LINES.read(path)
