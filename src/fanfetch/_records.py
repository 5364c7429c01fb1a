"""The record format: a result as a record, and records read back (``--resume``, the
cluster's parts, ``Result.from_record``), behind one small protocol.

A format encodes a result as the bytes of one record, recovers a file after a crash and
indexes the ids it holds (so ``--resume`` works for it), and reads its records back. JSON
lines is the one format today; a new one is a new class here and an entry in ``FORMATS``.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import orjson

from ._models import Result
from ._resume import IdSet, ResumeState, id_hash

__all__ = [
    "FORMATS",
    "JSON_LINES",
    "JsonLines",
    "RecordFormat",
    "encode_record",
    "encode_result",
    "format_for",
]

_OPTS = orjson.OPT_APPEND_NEWLINE


class RecordFormat(Protocol):
    """How records are written to and read back from a file."""

    def encode(self, result: Result, *, include_headers: bool = False) -> bytes:
        """One result as the bytes of its record (never raises: every request gets one)."""
        ...

    def recover(
        self, path: str, *, redo_failed: bool = False, warn: Callable[[str], None] = ...
    ) -> ResumeState:
        """After a crash: repair ``path`` (a torn last record) and index the ids it holds;
        with ``redo_failed``, keep only its ok records."""
        ...

    def read(self, path: str) -> Iterator[dict[str, Any]]:
        """The records of ``path``, one at a time."""
        ...


def encode_result(result: Result, *, include_headers: bool = False) -> bytes:
    """A result's record as the line written for it (a JSON body kept as its own bytes).

    Never raises: every request gets its line. A field that cannot be written as it is
    (API users may put anything in ``meta``; a body may nest deeper than orjson writes, 254
    levels, though it reads 1024) is degraded, first to strings for unknown types, then a
    too-deep body to its text and any other too-deep field to its ``repr``.
    """
    record = result.to_dict(include_headers=include_headers, for_writing=True)
    try:
        return orjson.dumps(record, option=_OPTS)
    except TypeError:
        return _degraded(result, record)


def encode_record(record: dict[str, Any]) -> bytes:
    """One record as one JSON line (with its newline)."""
    try:
        return orjson.dumps(record, option=_OPTS)
    except TypeError:
        return orjson.dumps(record, option=_OPTS | _LENIENT, default=str)


_LENIENT = orjson.OPT_NON_STR_KEYS


def _degraded(result: Result, record: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(record, option=_OPTS | _LENIENT, default=str)
    except TypeError:
        pass  # nested too deep: find the fields that are
    for name, value in list(record.items()):
        try:
            orjson.dumps(value, option=_LENIENT, default=str)
        except TypeError:
            if name == "body":
                record["body"] = result.text
                record.pop("body_encoding", None)
            else:
                record[name] = repr(value)
    return orjson.dumps(record, option=_OPTS | _LENIENT, default=str)


def _repair_torn_tail(fd: int) -> int:
    """Cut a last line that has no newline (a write cut by a crash); return bytes cut."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    end = size
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start)
        if end == size and chunk.endswith(b"\n"):
            return 0
        cut = chunk.rfind(b"\n")
        if cut != -1:
            keep = start + cut + 1
            os.ftruncate(fd, keep)
            return size - keep
        end = start
    os.ftruncate(fd, 0)
    return size


def _recover(
    path: str, *, redo_failed: bool = False, warn: Callable[[str], None] = lambda _: None
) -> ResumeState:
    """Read ``path`` for ``--resume``: repair it, index its ids, and with ``redo_failed``
    rewrite it (atomically: temp file, fsync, rename) keeping only its ok records.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return ResumeState(IdSet(), 0, 0, 0)
    try:
        torn = _repair_torn_tail(fd)
    finally:
        os.close(fd)
    if torn:
        warn(f"--resume: cut a torn last line ({torn} bytes) from {path}")
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    done = IdSet(lines)
    kept = dropped = bad = 0
    failed: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    tmp = None
    if redo_failed:
        directory = os.path.dirname(os.path.abspath(path))
        tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, renamed over path
            "wb", dir=directory, prefix=".fanfetch-", suffix=".tmp", delete=False
        )
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    record = orjson.loads(line)
                    rid, ok = record["id"], record.get("ok") is True
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    bad += 1
                    continue
                if redo_failed and not ok:
                    dropped += 1
                    continue
                if not done.add(id_hash(rid)) and redo_failed:
                    continue  # one record per id: the first ok one stays
                kept += 1
                status = record.get("status")
                if isinstance(status, int):
                    statuses[status] += 1
                if not ok:
                    error = record.get("error")
                    failed[error.get("type", "?") if isinstance(error, dict) else "?"] += 1
                if tmp is not None:
                    tmp.write(line)
        if tmp is not None:
            tmp.flush()
            os.fsync(tmp.fileno())
            tmp.close()
            os.replace(tmp.name, path)
            tmp = None
    finally:
        if tmp is not None:
            tmp.close()
            os.unlink(tmp.name)
    if bad:
        warn(f"--resume: {bad} line(s) of {path} are not records and were ignored")
    return ResumeState(done, kept, torn, dropped, failed, statuses)


class JsonLines:
    """One JSON object per line: written whole, a torn last line cut on recovery."""

    suffixes = (".jsonl", ".ndjson")

    def encode(self, result: Result, *, include_headers: bool = False) -> bytes:
        return encode_result(result, include_headers=include_headers)

    def recover(
        self, path: str, *, redo_failed: bool = False, warn: Callable[[str], None] = lambda _: None
    ) -> ResumeState:
        return _recover(path, redo_failed=redo_failed, warn=warn)

    def read(self, path: str) -> Iterator[dict[str, Any]]:
        with open(path, "rb") as f:
            for line in f:
                record: dict[str, Any] = orjson.loads(line)
                yield record

    def __repr__(self) -> str:
        return "<JsonLines>"


JSON_LINES = JsonLines()
FORMATS: dict[str, RecordFormat] = {suffix: JSON_LINES for suffix in JsonLines.suffixes}


def format_for(path: str | None) -> RecordFormat:
    """The format a file's name asks for (JSON lines for any other name, and for stdout)."""
    if path:
        suffix = os.path.splitext(path)[1].lower()
        if suffix in FORMATS:
            return FORMATS[suffix]
    return JSON_LINES
