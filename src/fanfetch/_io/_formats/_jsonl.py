"""JSON lines: one record per line, written whole with one ``write`` per batch; after a
crash a torn last line is cut, and ``--resume`` indexes the ids the lines hold."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from ..._core._files import clean_temps, temp_prefix
from ..._core._models import Result
from ..._core._resume import IdSet, ResumeState, id_hash
from ..._core._voice import speak
from .._records import FdOutput, encode_result, open_fd

__all__ = ["JSON_LINES", "JsonLines", "read_json_lines"]


def read_json_lines(path: str, skipped: list[int]) -> Iterator[dict[str, Any]]:
    """The records of a JSON-lines file, leaving out (and counting in ``skipped[0]``) any line
    that is not one: a torn last line, or something else."""
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                skipped[0] += 1  # a torn last line, or not a record at all
                continue
            if isinstance(record, dict):
                yield record
            else:
                skipped[0] += 1


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
    clean_temps(path)  # a rewrite a kill cut short
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return ResumeState(IdSet(), 0, 0, 0)
    try:
        torn = _repair_torn_tail(fd)
    finally:
        os.close(fd)
    if torn:
        warn(speak(f"`resume`: cut a torn last line ({torn} bytes) from {path}"))
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    done = IdSet(lines)
    pages = IdSet(lines if redo_failed else 0)  # (id, page) of a paginated output's records
    kept = dropped = bad = 0
    failed: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    tmp = None
    if redo_failed:
        directory = os.path.dirname(os.path.abspath(path))
        tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, renamed over path
            "wb", dir=directory, prefix=temp_prefix(path), suffix=".tmp", delete=False
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
                first = done.add(id_hash(rid))
                if redo_failed:  # one record per id (per page of a chain): the first ok one
                    page = record.get("page")
                    if page is None and not first:
                        continue
                    if page is not None and not pages.add(id_hash([rid, page])):
                        continue
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
        warn(speak(f"`resume`: {bad} line(s) of {path} are not records and were ignored"))
    return ResumeState(done, kept, torn, dropped, failed, statuses)


class JsonLines:
    """One JSON object per line: written whole, a torn last line cut on recovery."""

    name = "jsonl"

    def encode(self, result: Result, *, include_headers: bool = False) -> bytes:
        return encode_result(result, include_headers=include_headers)

    def open(
        self,
        path: str | None,
        *,
        append: bool = False,
        include_headers: bool = False,
        selected: Sequence[str] = (),
    ) -> FdOutput:
        fd, owns = open_fd(path, append=append)
        return FdOutput(fd, owns=owns, include_headers=include_headers)

    def recover(
        self, path: str, *, redo_failed: bool = False, warn: Callable[[str], None] = lambda _: None
    ) -> ResumeState:
        return _recover(path, redo_failed=redo_failed, warn=warn)

    def read(self, path: str) -> Iterator[dict[str, Any]]:
        with open(path, "rb") as f:
            for line in f:
                record: dict[str, Any] = orjson.loads(line)
                yield record

    def columns(self, path: str) -> list[str]:
        return []

    def __repr__(self) -> str:
        return "<JsonLines>"


JSON_LINES = JsonLines()
