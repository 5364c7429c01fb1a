"""The resume index: which ids an output file already holds, in about 12 bytes an id.

``--resume`` reads the output once, repairs a torn last line, and keeps a hash of every id it
holds in an ``IdSet`` (open addressing over one ``array('Q')``, at most 70% full), so a
10-million-record resume needs about 115 MB, not the gigabytes a Python ``set`` of
strings would. Two ids collide only if their 64-bit BLAKE2b hashes do: at ten million ids the
chance of any collision is about 3 in a million.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson

__all__ = ["IdSet", "ResumeState", "id_hash", "prepare_resume"]


def id_hash(rid: Any) -> int:
    """A request id as a non-zero 64-bit integer (``17`` and ``"17"`` differ, as in records)."""
    key = rid.encode() if isinstance(rid, str) else b"\x00" + orjson.dumps(rid)
    value = int.from_bytes(blake2b(key, digest_size=8).digest(), "little")
    return value or 1


class IdSet:
    """A set of 64-bit hashes; 0 marks an empty slot. Linear probing, at most 70% full:
    about 11.5 bytes an id when sized for its content, 23 just after growing.
    """

    __slots__ = ("_count", "_size", "_table")

    _LOAD = 0.7

    def __init__(self, expected: int = 0) -> None:
        self._size = max(1024, int(expected / self._LOAD) + 1)
        self._table = array("Q", bytes(8 * self._size))
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, h: int) -> bool:
        """Add ``h``; return False when it was already there."""
        table, size = self._table, self._size
        i = h % size
        while (slot := table[i]) != 0:
            if slot == h:
                return False
            i = i + 1 if i + 1 < size else 0
        table[i] = h
        self._count += 1
        if self._count > self._LOAD * size:
            self._grow()
        return True

    def __contains__(self, h: object) -> bool:
        if not isinstance(h, int):
            return False
        table, size = self._table, self._size
        i = h % size
        while (slot := table[i]) != 0:
            if slot == h:
                return True
            i = i + 1 if i + 1 < size else 0
        return False

    def _grow(self) -> None:
        old = self._table
        self._size *= 2
        self._table = array("Q", bytes(8 * self._size))
        self._count = 0
        for h in old:
            if h:
                self.add(h)

    @property
    def nbytes(self) -> int:
        return self._table.itemsize * len(self._table)

    def __repr__(self) -> str:
        return f"<IdSet {self._count:,} ids in {self.nbytes:,} bytes>"


@dataclass(slots=True)
class ResumeState:
    """What the output already holds: ids that need no new request, and what was repaired."""

    done: IdSet
    records: int
    torn_bytes: int
    dropped_failed: int
    failed: Counter[str] = field(default_factory=Counter)  # kept records not ok, by error type
    statuses: Counter[int] = field(default_factory=Counter)  # kept records, by final status


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


def prepare_resume(
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
