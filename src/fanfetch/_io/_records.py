"""The record format seam: a result as a record, and records read back (``--resume``, the
cluster's parts, ``Result.from_record``, ``fanfetch export``), behind two small protocols.

A ``RecordFormat`` opens an ``Output`` (which encodes results into the items it stores and
stores them whole), recovers a file after a crash and indexes the ids it holds (so
``--resume`` works for it), and reads its records back. The formats are in ``_formats``,
one module each, chosen by ``-o``'s name in ``_formats.FORMATS``; what is here is what they
share: a result as its JSON line (``encode_result``, the line every format is measured
against) and an output of lines written to a file descriptor (``FdOutput``).
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import orjson

from .._core._exceptions import UsageError
from .._core._models import Result
from .._core._resume import ResumeState

__all__ = ["FdOutput", "Output", "RecordFormat", "encode_record", "encode_result", "open_fd"]

_OPTS = orjson.OPT_APPEND_NEWLINE


class Output(Protocol):
    """One run's open output. ``encode`` never raises (every request gets its record);
    ``write`` stores a batch whole or raises ``OSError`` (what it took of a batch it could
    not finish is cut off again, so the output stays whole)."""

    def encode(self, result: Result) -> Any:
        """A result as the item this output stores."""
        ...

    def from_line(self, line: bytes) -> Any:
        """A record already encoded as a JSON line (by a ``--workers`` process) as an item."""
        ...

    def write(self, items: list[Any]) -> None:
        """Store ``items``: once this returns they survive the process being killed."""
        ...

    def sync(self) -> None:
        """Make what is stored survive the machine going down (fsync)."""
        ...

    def close(self) -> None:
        """The end of a run, interrupted or not: sync, and finish the file."""
        ...


class RecordFormat(Protocol):
    """How records are written to and read back from a file."""

    name: str

    def open(
        self,
        path: str | None,
        *,
        append: bool = False,
        include_headers: bool = False,
        selected: Sequence[str] = (),
    ) -> Output:
        """An output writing to ``path`` (None: stdout, where the format allows it),
        appending to what it holds with ``append``. ``selected``: the keys a ``--select``
        object gives, for formats with columns."""
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

    def columns(self, path: str) -> list[str]:
        """The columns ``path`` holds (none for a format without columns, or no file)."""
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


_TERMINAL_CONTROLS = re.compile(rb"\x7f|\xc2[\x80-\x9f]")  # DEL, and C1 in UTF-8


def _json_escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match[0].decode())  # the same character, as JSON escapes it


class FdOutput:
    """Records as lines of bytes, written to a file descriptor (a file, a pipe, stdout) in
    one ``write`` call per batch."""

    def __init__(
        self,
        fd: int,
        *,
        encode: Callable[[Result], bytes] | None = None,
        owns: bool = False,
        include_headers: bool = False,
    ) -> None:
        self.fd = fd
        self._owns = owns
        self.encode: Callable[[Result], Any] = encode or (
            lambda result: encode_result(result, include_headers=include_headers)
        )
        self._terminal = os.isatty(fd)  # records read by a person, on a terminal

    def from_line(self, line: bytes) -> Any:
        return line

    def write(self, items: list[Any]) -> None:
        joined = b"".join(items)
        if self._terminal:  # JSON escapes C0 itself; DEL and C1 (a CSI) are escaped here
            joined = _TERMINAL_CONTROLS.sub(_json_escape, joined)
        data = memoryview(joined)
        done = 0
        try:
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except OSError:
            self._cut_torn_line(data[:done])
            raise

    def _cut_torn_line(self, written: memoryview) -> None:
        """After a write failed part way (a full disk), cut the file back to its last whole
        line, so that what the message calls whole is whole."""
        torn = len(written) - (bytes(written).rfind(b"\n") + 1)
        if not torn:
            return
        try:
            info = os.fstat(self.fd)
            if stat.S_ISREG(info.st_mode):
                os.ftruncate(self.fd, info.st_size - torn)
        except OSError:
            pass  # not a file we can cut: --resume repairs a torn tail in any case

    def sync(self) -> None:
        """fsync, where it is a file (a pipe or a terminal cannot be synced)."""
        try:
            os.fsync(self.fd)
        except OSError:
            pass

    def close(self) -> None:
        self.sync()
        if self._owns:
            os.close(self.fd)
            self._owns = False

    def __repr__(self) -> str:
        return f"<FdOutput fd={self.fd}>"


def open_fd(path: str | None, *, append: bool) -> tuple[int, bool]:
    """A file descriptor for ``path`` (stdout for None or ``-``) and whether it is ours to
    close; a ``UsageError`` when it cannot be opened."""
    if path is None or path == "-":
        return sys.stdout.fileno(), False
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    try:
        return os.open(path, flags, 0o644), True
    except OSError as exc:
        raise UsageError(f"cannot write output {path!r}: {exc.strerror}") from exc
