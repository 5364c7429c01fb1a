"""Writing records: one whole JSON line per result, written at once, fsynced every second.

The writer is the engine's sink. It encodes each record once and writes only whole lines, so
a crash leaves at most one torn line at the end of the file (which ``--resume`` repairs).
``OrderedSink`` puts results back into input order within a bounded window (``Reorder``):
when the window is full, workers wait instead of memory growing.
"""

from __future__ import annotations

import asyncio
import os
import stat

import orjson

from ._exceptions import FanfetchError
from ._models import Result
from ._records import JSON_LINES, RecordFormat
from ._reorder import Reorder
from ._types import Sink

__all__ = ["OrderedSink", "OutputError", "RecordWriter"]

_OPTS = orjson.OPT_APPEND_NEWLINE


class OutputError(FanfetchError):
    """The output cannot be written (disk full, closed pipe): the run stops, output whole."""


class RecordWriter:
    """Writes records to a file descriptor in whole lines.

    ``put``, the sink the engine awaits, returns only once the record is written to the OS,
    so a worker takes no new request before its last record is safe: a killed process leaves
    a record for every finished request, and only those in flight lack one. Records finished
    in the same turn of the event loop share one ``write`` call at the start of the next turn,
    so the cost is one system call per turn, not per record. ``sync`` (fsync, off the loop)
    runs about once a second, for a crash of the machine itself.
    """

    def __init__(
        self,
        fd: int,
        *,
        include_headers: bool = False,
        record_format: RecordFormat = JSON_LINES,
        buffer_bytes: int = 256 * 1024,
    ) -> None:
        self._fd = fd
        self._include_headers = include_headers
        self._encode = record_format.encode
        self._limit = buffer_bytes
        self._lines: list[bytes] = []
        self._size = 0
        self._written: asyncio.Future[None] | None = None  # settled by the next batch write
        self.records = 0
        self.failed: OutputError | None = None

    async def put(self, result: Result) -> None:
        if self.failed is not None:
            raise self.failed
        self.write(result)
        written = self._written
        if written is None:
            loop = asyncio.get_running_loop()
            written = self._written = loop.create_future()
            loop.call_soon(self._write_batch)
        await written

    def _write_batch(self) -> None:
        written, self._written = self._written, None
        try:
            self.flush()
        except OutputError as exc:
            if written is not None and not written.done():
                written.set_exception(exc)
            return
        if written is not None and not written.done():
            written.set_result(None)

    def write_lines(self, lines: list[bytes]) -> None:
        """Write records already encoded (by ``--workers`` processes) and flush them."""
        if self.failed is not None:
            raise self.failed
        self._lines.extend(lines)
        self.records += len(lines)
        self.flush()

    def write(self, result: Result) -> None:
        line = self._encode(result, include_headers=self._include_headers)
        self._lines.append(line)
        self._size += len(line)
        self.records += 1
        if self._size >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Write every buffered line; raise ``OutputError`` if the output refuses them."""
        if not self._lines:
            return
        data = memoryview(b"".join(self._lines))
        self._lines.clear()
        self._size = 0
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            self._cut_torn_line(data[:done])
            self.failed = OutputError(f"cannot write the output: {exc.strerror or exc}")
            raise self.failed from exc

    def _cut_torn_line(self, written: memoryview) -> None:
        """After a write failed part way (a full disk), cut the file back to its last whole
        line, so that what the message calls whole is whole."""
        torn = len(written) - (bytes(written).rfind(b"\n") + 1)
        if not torn:
            return
        try:
            info = os.fstat(self._fd)
            if stat.S_ISREG(info.st_mode):
                os.ftruncate(self._fd, info.st_size - torn)
        except OSError:
            pass  # not a file we can cut: --resume repairs a torn tail in any case

    def sync(self) -> None:
        """fsync the output, where it is a file (a pipe or a terminal cannot be synced)."""
        try:
            os.fsync(self._fd)
        except OSError:
            pass

    async def keep_syncing(self, done: asyncio.Event, *, every: float = 1.0) -> None:
        """fsync every ``every`` seconds, off the loop, until ``done`` is set."""
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), every)
            except TimeoutError:
                pass
            if self.failed is None:
                await asyncio.to_thread(self.sync)

    def close(self) -> None:
        """Flush what is left and fsync: the end of every run, interrupted or not."""
        if self.failed is None:
            self.flush()
        self.sync()

    def __repr__(self) -> str:
        return f"<RecordWriter fd={self._fd} records={self.records} buffered={len(self._lines)}>"


class OrderedSink:
    """Hands results to ``inner`` in input order (by ``Request.seq``), holding at most
    ``window`` (see ``Reorder``): a result too far ahead waits, and so holds its worker."""

    def __init__(self, inner: Sink, *, window: int, start: int = 0) -> None:
        self._inner = inner
        self._reorder: Reorder[Result] = Reorder(window=window, start=start)
        self._delivering = False

    async def put(self, result: Result) -> None:
        seq = result.request.seq
        reorder = self._reorder
        await reorder.admitted(seq)
        reorder.add(seq, result)
        if self._delivering:  # the worker delivering now hands this one on too, in turn
            return
        self._delivering = True
        try:
            while due := reorder.take_due():
                for ready in due:
                    await self._inner(ready)
        finally:
            self._delivering = False

    @property
    def held(self) -> int:
        return len(self._reorder)

    def check_empty(self) -> None:
        self._reorder.check_empty()

    def __repr__(self) -> str:
        return f"<OrderedSink {self._reorder!r}>"
