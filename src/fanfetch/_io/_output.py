"""Writing records: each result stored whole at once (in the output's format), fsynced every
second.

The writer is the engine's sink. It encodes each record once and stores whole batches, so a
crash leaves at most one torn record at the end of a file (which ``--resume`` repairs).
``OrderedSink`` puts results back into input order within a bounded window (``Reorder``):
when the window is full, workers wait instead of memory growing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from .._core._exceptions import OutputError
from .._core._models import Result
from .._core._types import Sink
from ._records import FdOutput, Output
from ._reorder import Reorder

__all__ = ["OrderedChains", "OrderedSink", "OutputError", "RecordWriter"]

_OPTS = orjson.OPT_APPEND_NEWLINE


class RecordWriter:
    """Writes records to an ``Output`` (a file descriptor: JSON lines) in whole batches.

    ``put``, the sink the engine awaits, returns only once the record is stored (written to
    the OS, or committed), so a worker takes no new request before its last record is safe:
    a killed process leaves a record for every finished request, and only those in flight
    lack one. Records finished in the same turn of the event loop share one ``write`` at the
    start of the next turn, so the cost is one store per turn, not per record. ``sync``
    (fsync, off the loop) runs about once a second, for a crash of the machine itself.
    """

    def __init__(
        self,
        output: Output | int,
        *,
        include_headers: bool = False,
        buffer_bytes: int = 256 * 1024,
    ) -> None:
        if isinstance(output, int):  # a file descriptor the caller owns: JSON lines
            output = FdOutput(output, include_headers=include_headers)
        self.output = output
        self._encode = output.encode
        self._limit = buffer_bytes
        self._items: list[Any] = []
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
        """Write records already encoded as JSON lines (by ``--workers``) and flush them."""
        if self.failed is not None:
            raise self.failed
        from_line = self.output.from_line
        self._items.extend(from_line(line) for line in lines)
        self.records += len(lines)
        self.flush()

    def write(self, result: Result) -> None:
        item = self._encode(result)
        self._items.append(item)
        self._size += len(item)  # bytes for lines; a row's length counts as a little
        self.records += 1
        if self._size >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Store every buffered item; raise ``OutputError`` if the output refuses them."""
        if not self._items:
            return
        items = self._items
        self._items = []
        self._size = 0
        try:
            self.output.write(items)
        except OSError as exc:
            self.failed = OutputError(f"cannot write the output: {exc.strerror or exc}")
            raise self.failed from exc

    def sync(self) -> None:
        self.output.sync()

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
        """Flush what is left and close the output: the end of every run, interrupted or
        not (a format that finishes its file at the end does so here)."""
        try:
            if self.failed is None:
                self.flush()
        finally:
            try:
                self.output.close()
            except OSError as exc:
                if self.failed is None:
                    self.failed = OutputError(f"cannot finish the output: {exc.strerror or exc}")
                    raise self.failed from exc

    def __repr__(self) -> str:
        return f"<RecordWriter {self.output!r} records={self.records} buffered={len(self._items)}>"


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


class OrderedChains:
    """``--ordered`` with ``--paginate``: requests in input order, each request's pages in
    page order. The chain due next goes straight through; pages of later chains wait, for at
    most ``window`` chains and ``pages`` pages (a worker bringing one more waits, except the
    one whose chain is due, so this cannot deadlock). The engine says when a chain has ended
    (``chain_ended``): the last page is not always a record (a 404 past the end)."""

    def __init__(self, inner: Sink, *, window: int, pages: int) -> None:
        self._inner = inner
        self._reorder: Reorder[list[Result]] = Reorder(window=window)
        self._partial: dict[int, list[Result]] = {}
        self._pages = pages
        self._held = 0
        self._room = asyncio.Event()
        self._delivering = False

    async def put(self, result: Result) -> None:
        seq = result.request.seq
        if seq != self._reorder.due:
            await self._reorder.admitted(seq)
            while self._held >= self._pages and seq != self._reorder.due:
                self._room.clear()
                await self._room.wait()
        self._partial.setdefault(seq, []).append(result)
        self._held += 1
        if result.page is None:  # no chain: a bad line
            await self.chain_ended(seq)
        else:
            await self._drain()

    async def chain_ended(self, seq: int) -> None:
        self._reorder.add(seq, self._partial.pop(seq, []))
        await self._drain()

    async def _drain(self) -> None:
        if self._delivering:  # whoever is delivering hands this on too, in turn
            return
        self._delivering = True
        try:
            while True:
                if due := self._reorder.take_due():  # whole chains, now due
                    for pages in due:
                        await self._deliver(pages)
                elif ready := self._partial.pop(self._reorder.due, None):
                    await self._deliver(ready)  # the chain due next, so far
                else:
                    break
        finally:
            self._delivering = False

    async def _deliver(self, pages: list[Result]) -> None:
        for page in pages:
            self._held -= 1
            await self._inner(page)
        self._room.set()

    def check_empty(self) -> None:
        self._reorder.check_empty()
        if self._partial:
            raise RuntimeError(f"--ordered ended holding pages of {len(self._partial)} chains")

    def __repr__(self) -> str:
        return f"<OrderedChains {self._reorder!r} pages held={self._held}>"
