"""A record as a table's row, and back: the columns every table format shares.

A row has the record's main fields as columns (``error`` split in ``error_type`` and
``error_message``; ``body`` and ``meta`` as JSON text), every other field of the record in
``extra`` (JSON text, null when there is none), and with ``--select`` giving an object, one
column per key of it. Nothing is lost: ``record_from_row`` gives the record back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from ..._core._resume import IdSet, ResumeState, id_hash

__all__ = [
    "BASE_COLUMNS",
    "ColumnTypes",
    "columns_for",
    "decode_id",
    "encode_id",
    "record_from_row",
    "row_from_record",
    "tally",
]

BASE_COLUMNS = (
    "id", "url", "method", "ok", "status", "attempts", "elapsed_ms", "started_at",
    "error_type", "error_message", "body", "meta", "extra",
)  # fmt: skip
_IN_COLUMNS = {"id", "url", "method", "ok", "status", "attempts", "elapsed_ms", "started_at",
               "error", "body", "meta"}  # fmt: skip


def columns_for(selected: Sequence[str]) -> tuple[str, ...]:
    """The table's columns: the shared ones, then the keys ``--select`` gives (a key named
    like a shared column gets ``body_`` in front)."""
    own = tuple(f"body_{key}" if key in BASE_COLUMNS else key for key in selected)
    return BASE_COLUMNS + own


def encode_id(rid: Any) -> str:
    """An id (a string or a whole number) as text, without losing its type: a number as its
    digits, a string as it is, unless it would read as a number or starts with a quote (then
    as JSON: ``"17"`` with its quotes)."""
    if isinstance(rid, str):
        return orjson.dumps(rid).decode() if rid.startswith('"') or _is_int(rid) else rid
    return str(rid)


def decode_id(text: Any) -> Any:
    """``encode_id`` undone."""
    if not isinstance(text, str):
        return text  # a format that keeps types (SQLite) stored the id itself
    if text.startswith('"'):
        return orjson.loads(text)
    return int(text) if _is_int(text) else text


def _is_int(text: str) -> bool:
    """Whether ``text`` is a whole number as ``str(int)`` writes it."""
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit() and str(int(text)) == text


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def row_from_record(
    record: Mapping[str, Any], selected: Sequence[str], *, text_ids: bool = True
) -> list[Any]:
    """The row of one record (values as Python objects: the format types them)."""
    error = record.get("error")
    body = record.get("body")
    extra = (
        {k: v for k, v in record.items() if k not in _IN_COLUMNS}
        if len(record) > len(_IN_COLUMNS)
        else {}  # the usual record: its fields are all columns (a quick test, per row)
    )
    if isinstance(body, str):
        if "body_encoding" not in extra:
            extra["body_encoding"] = "text"  # so the text is not read back as JSON
        body_text: str | None = body
    else:
        body_text = _json_text(body)
    rid = record.get("id")
    row = [
        encode_id(rid) if text_ids else rid,
        record.get("url"),
        record.get("method"),
        record.get("ok"),
        record.get("status"),
        record.get("attempts"),
        record.get("elapsed_ms"),
        record.get("started_at"),
        error.get("type") if isinstance(error, Mapping) else None,
        error.get("message") if isinstance(error, Mapping) else None,
        body_text,
        _json_text(record.get("meta")),
        _json_text(extra) if extra else None,
    ]
    if selected:
        picked = body if isinstance(body, Mapping) else {}
        row.extend(picked.get(key) for key in selected)
    return row


def record_from_row(row: Mapping[str, Any], *, text_ids: bool = True) -> dict[str, Any]:
    """The record a row holds (``row_from_record`` undone), fields in the records' order."""
    extra = orjson.loads(row["extra"]) if row.get("extra") else {}
    encoding = extra.pop("body_encoding", None)
    body_text = row.get("body")
    if encoding == "text":
        body = body_text
    elif encoding is not None:
        body, extra["body_encoding"] = body_text, encoding
    else:
        body = None if body_text is None else orjson.loads(body_text)
    error_type = row.get("error_type")
    record: dict[str, Any] = {
        "id": decode_id(row.get("id")) if text_ids else row.get("id"),
        "url": row.get("url"),
        "method": row.get("method"),
        "ok": bool(row.get("ok")) if row.get("ok") is not None else None,
        "status": row.get("status"),
        "attempts": row.get("attempts"),
        "elapsed_ms": row.get("elapsed_ms"),
        "started_at": row.get("started_at"),
        "body": body,
        "error": None
        if error_type is None
        else {"type": error_type, "message": row.get("error_message") or ""},
        "meta": None if row.get("meta") is None else orjson.loads(row["meta"]),
    }
    record.update(extra)
    return record


class ColumnTypes:
    """The Python types seen in each ``--select`` column, to type it in Parquet and DuckDB:
    whole numbers, numbers, booleans or text as such; anything else (or a mix) as JSON
    text."""

    def __init__(self, selected: Sequence[str]) -> None:
        self.selected = tuple(selected)
        self.seen: list[set[type]] = [set() for _ in selected]

    def add(self, values: Iterable[Any]) -> None:
        for seen, value in zip(self.seen, values, strict=False):
            if value is not None:
                seen.add(type(value))

    def kinds(self) -> list[str]:
        """One of ``null`` (no value yet), ``int``, ``float``, ``bool``, ``str``, ``json``."""
        out = []
        for seen in self.seen:
            if not seen:
                out.append("null")
            elif seen == {str}:
                out.append("str")
            elif seen == {bool}:
                out.append("bool")
            elif seen == {int}:
                out.append("int")
            elif seen <= {int, float}:
                out.append("float")
            else:
                out.append("json")
        return out


def tally(
    rows: Iterable[tuple[Any, Any, Any, Any]], *, expected: int = 0, text_ids: bool = True
) -> ResumeState:
    """A ``ResumeState`` from ``(id, ok, status, error_type)`` of each row (a repeated id is
    counted once)."""
    done = IdSet(expected)
    failed: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    kept = 0
    for rid, ok, status, error_type in rows:
        if not done.add(id_hash(decode_id(rid) if text_ids else rid)):
            continue
        kept += 1
        if isinstance(status, int):
            statuses[status] += 1
        if not ok:
            failed[error_type or "?"] += 1
    return ResumeState(done, kept, 0, 0, failed, statuses)
