"""The resume index: which ids an output file already holds, in about 12 bytes an id.

``--resume`` reads the output once, repairs a torn last line, and keeps a hash of every id it
holds in an ``IdSet`` (open addressing over one ``array('Q')``, at most 70% full), so a
10-million-record resume needs about 115 MB, not the gigabytes a Python ``set`` of
strings would. Two ids collide only if their 64-bit BLAKE2b hashes do: at ten million ids the
chance of any collision is about 3 in a million.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson

__all__ = ["IdSet", "ResumeState", "id_hash"]


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
