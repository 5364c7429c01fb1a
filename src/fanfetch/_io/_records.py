"""The record format seam: a result as a record, and records read back (``--resume``, the
cluster's parts, ``Result.from_record``, ``fanfetch export``), behind two small protocols.

A ``RecordFormat`` opens an ``Output`` (which encodes results into the items it stores and
stores them whole), recovers a file after a crash and indexes the ids it holds (so
``--resume`` works for it), and reads its records back. JSON lines lives here, as the
format every other one is measured against; the table formats are in ``_formats``, one
module each, chosen by ``-o``'s name in ``_formats.FORMATS``.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import orjson

from .._core._exceptions import UsageError
from .._core._files import clean_temps, temp_prefix
from .._core._models import Result
from .._core._resume import IdSet, ResumeState, id_hash
from .._core._voice import speak

__all__ = [
    "JSON_LINES",
    "FdOutput",
    "JsonLines",
    "Output",
    "RecordFormat",
    "encode_record",
    "encode_result",
    "read_json_lines",
]

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
        warn(speak(f"`resume`: {bad} line(s) of {path} are not records and were ignored"))
    return ResumeState(done, kept, torn, dropped, failed, statuses)


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
