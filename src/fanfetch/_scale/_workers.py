"""``--workers N``: N processes, each with its own event loop, and one writer.

One event loop runs on one core (the GIL), so a client-bound run (big bodies to parse, many
records to encode) tops out at one core. With ``--workers N`` the parent keeps everything
that must be single: reading and numbering the input (and the resume index), and writing
the output, so exactly-once and ``--resume`` hold as with one process. It deals batches of
requests to N worker processes; each runs the ordinary engine with 1/N of every limit
(concurrency, per-host, rates, budget), so the totals hold, and sends back encoded records.

Each worker has a pipe of its own each way, and the parent keeps the requests it dealt to
each one until their records come back. So a worker that dies (kill -9, out of memory) is
noticed when its pipe closes, and its unfinished requests are dealt to a new worker: a
record that arrived before the death is kept, the rest are asked again, none twice. (A
shared ``multiprocessing.Queue`` would lose them silently, and a worker killed while holding
its lock would stop the others.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from .._core._config import Auto, Config, Limits, Rate
from .._core._events import Finished, RunEnded, RunStarted
from .._core._exceptions import WorkerDied
from .._core._models import Result
from .._core._types import Item
from .._core._voice import VOICE, Voice
from .._io._input import coerce
from .._io._records import encode_result
from .._io._reorder import Reorder

if TYPE_CHECKING:
    from .._engine._pipeline import Pipeline

__all__ = ["WorkerRecord", "Workers", "max_parts", "run_workers", "share"]

BATCH = 256
WorkerRecord = tuple[int, bytes]  # (seq, record line)
Dealt = tuple[dict[str, Any], int, int]  # (request, line, seq)
_DONE = "done"
_RESTARTS_PER_WORKER = 3  # a worker that keeps dying is not a passing fault: stop then


def max_parts(config: Config) -> int:
    """Into how many parts the limits can be cut with at least one slot in each: no more
    than the concurrency, nor than the per-host limit."""
    per_host = config.limits.per_host
    return min(config.limits.concurrency, per_host if per_host is not None else 2**31)


def share(config: Config, n: int) -> Config:
    """The config of one of ``n`` workers: 1/n of every limit, so that the totals hold.

    Slots are rounded down, so ``n`` parts never add up to more than the whole; ``n`` must
    not be over ``max_parts(config)``, where each part still gets a slot.
    """

    def part(rate: Rate | Auto | None) -> Rate | Auto | None:
        if rate is None:
            return None
        if isinstance(rate, Auto):  # each worker paces at its share of what a host advertises
            return Auto(share=rate.share / n)
        return dataclasses.replace(rate, count=rate.count / n)

    per_host = config.limits.per_host
    transform_workers = config.records.transform_workers
    if config.records.transform is not None and transform_workers != 0:
        transform_workers = max(1, (transform_workers or os.cpu_count() or 1) // n)
    return dataclasses.replace(
        config,
        limits=Limits(
            concurrency=max(1, config.limits.concurrency // n),
            per_host=None if per_host is None else max(1, per_host // n),
            rate=part(config.limits.rate),
            rate_per_host=part(config.limits.rate_per_host),
        ),
        costs=dataclasses.replace(config.costs, budget=part(config.costs.budget)),
        records=dataclasses.replace(config.records, transform_workers=transform_workers),
    )


# -- in each worker process ---------------------------------------------------------------------


def _worker_main(config: Config, inbox: Connection, outbox: Connection, voice: Voice) -> None:
    from .._core._loop import loop_factory
    from .._core._tuning import collect_young_rarely

    collect_young_rarely()  # a process of fanfetch's own, as ``fanfetch run`` is
    VOICE.set(voice)  # its records' messages name options as its parent's do

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(_worker(config, inbox, outbox))
    except* (BrokenPipeError, ConnectionResetError, EOFError):
        pass  # the parent is gone (killed): nobody to send records to, nothing to print


async def _worker(config: Config, inbox: Connection, outbox: Connection) -> None:
    """One worker: the job pipeline without an output, its records sent down the pipe."""
    from .._core._job import JobSpec
    from .._engine._pipeline import Pipeline

    loop = asyncio.get_running_loop()
    pipe = _Pipe(config, inbox, outbox, loop)
    pipeline = Pipeline(JobSpec(), config, listeners=[pipe.hear])
    signals: list[int] = []

    def on_signal() -> None:  # the parent's first word stops taking work; a second cuts the grace
        signals.append(1)
        pipeline.stop(grace=5.0 if len(signals) == 1 else 0.0)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    threading.Thread(target=pipe.read_inbox, name="fanfetch-inbox", daemon=True).start()
    done = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(pipe.keep_sending(done))
            try:
                await pipeline.run(pipe.items(), pipe.sink)
            finally:
                done.set()
        await pipe.send()
    finally:
        await pipeline.aclose()
    # Done only after a clean end: a worker that raised says nothing more, so the parent
    # reads its pipe's end as a death and deals its unanswered requests again.
    with contextlib.suppress(OSError):
        await loop.run_in_executor(None, outbox.send, _DONE)


class _Pipe:
    """A worker's two pipes: batches of requests in, records and counts out."""

    def __init__(
        self, config: Config, inbox: Connection, outbox: Connection, loop: asyncio.AbstractEventLoop
    ) -> None:
        from .._observe._summary import Stats

        self._inbox, self._outbox, self._loop = inbox, outbox, loop
        self._include = config.records.include_headers
        self._batches: asyncio.Queue[Any] = asyncio.Queue()
        self._pending: list[WorkerRecord] = []
        self._sending = asyncio.Lock()
        self._tally = Stats()  # counted from the engine's events, as a single process counts

    def hear(self, event: Any) -> None:
        self._tally(event)

    def read_inbox(self) -> None:
        """On a daemon thread (an executor thread blocked in ``recv`` would hold up the
        loop's shutdown when a signal stops the run before the input is over)."""
        while True:
            try:
                batch = self._inbox.recv()
            except (EOFError, OSError):  # the parent is gone: no more work will come
                batch = None
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                self._loop.call_soon_threadsafe(self._batches.put_nowait, batch)
            if batch is None:
                return

    async def items(self) -> AsyncIterator[Item]:
        while (batch := await self._batches.get()) is not None:
            for request, line, seq in batch:
                yield coerce(request, seq=seq, line=line)

    async def send(self) -> None:
        """The records so far, with what this worker's ``Stats`` counted since the last.

        One send at a time: ``Connection.send`` from two executor threads at once interleaves
        their bytes, and the parent, reading a message it cannot unpickle, takes the worker
        for dead (seen with 140 KB bodies, where a batch takes long to send)."""
        async with self._sending:
            batch, self._pending = self._pending, []
            counts, self._tally = self._tally.counts(), type(self._tally)()
            if batch or counts["done"] or counts["retries"]:
                await self._loop.run_in_executor(None, self._outbox.send, (batch, counts))

    async def sink(self, result: Result) -> None:
        line = encode_result(result, include_headers=self._include)
        self._pending.append((result.request.seq, line))
        if len(self._pending) >= 64:
            await self.send()

    async def keep_sending(self, done: asyncio.Event) -> None:
        while not done.is_set():  # records never wait long in a quiet worker
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.05)
            await self.send()


# -- in the parent ------------------------------------------------------------------------------


class _Worker:
    """The parent's side of one worker process: its pipes and what it has yet to answer."""

    def __init__(self, context: Any, config: Config, index: int, events: _Events) -> None:
        inbox_read, self.inbox = context.Pipe(duplex=False)
        self.outbox, outbox_write = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_worker_main,
            args=(config, inbox_read, outbox_write, VOICE.get()),
            daemon=True,
            name=f"fanfetch-worker-{index}",
        )
        self.process.start()
        inbox_read.close()  # the child's ends: closed here, so a dead child reads as EOF
        outbox_write.close()
        self.index = index
        self.dealt: dict[int, Dealt] = {}  # seq -> request, until its record comes back
        self.finished = False  # said it is done
        self.dead = False
        self._sending = asyncio.Lock()  # one message at a time on the pipe
        threading.Thread(
            target=self._listen, args=(events,), name=f"fanfetch-listen-{index}", daemon=True
        ).start()

    def _listen(self, events: _Events) -> None:
        """Hand each message to the loop; EOF (or a message cut short) means the worker died."""
        while True:
            try:
                message = self.outbox.recv()
            except Exception:  # EOF, or a message cut short by the death
                events.put(self, None)
                return
            events.put(self, message)
            if message == _DONE:
                return

    async def send(self, message: Any) -> None:
        """Send off the loop (a full pipe blocks), one message at a time."""
        async with self._sending:
            await asyncio.get_running_loop().run_in_executor(None, self._send, message)

    def _send(self, message: Any) -> None:
        try:
            self.inbox.send(message)
        except OSError:
            pass  # it died: its listener says so, and its requests are dealt again

    def close(self) -> None:
        for conn in (self.inbox, self.outbox):
            conn.close()

    async def aclose(self) -> None:
        """Close its pipes once no send is under way (a file descriptor closed under a
        sending thread could be reused by the next worker's pipe)."""
        async with self._sending:
            self.close()


class _Events:
    """Messages from every worker's listener thread, in order, to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.queue: asyncio.Queue[tuple[_Worker, Any]] = asyncio.Queue()

    def put(self, worker: _Worker, message: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
            self._loop.call_soon_threadsafe(self.queue.put_nowait, (worker, message))


async def run_workers(
    n: int,
    config: Config,
    items: AsyncIterator[Item],
    write: Callable[[list[WorkerRecord], dict[str, Any]], Awaitable[None]],
    write_invalid: Callable[[Result], Awaitable[None]],
    ordered: Reorder[bytes] | None = None,
    *,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Deal ``items`` to ``n`` worker processes; hand the records they send back, and what
    their ``Stats`` counted, to ``write``.

    Lines that are no request (``invalid_request``) are written here, without a round trip.
    With ``ordered``, no item is dealt (or written) too far ahead of the next record due.
    A worker that dies has its unfinished requests dealt to a new one (``warn`` says so).
    Cancelling this (Ctrl-C) asks the workers to stop (cancelling again, at once); their
    records still in flight are written before it returns.
    """
    dealer = _Dealer(n, config, write, write_invalid, ordered, warn)
    await dealer.run(items)


class _Dealer:
    """The parent's side of ``run_workers``: deals batches, reads records back, replaces a
    worker that dies, and stops them all when asked."""

    def __init__(
        self,
        n: int,
        config: Config,
        write: Callable[[list[WorkerRecord], dict[str, Any]], Awaitable[None]],
        write_invalid: Callable[[Result], Awaitable[None]],
        ordered: Reorder[bytes] | None,
        warn: Callable[[str], None] | None,
    ) -> None:
        self.n = n = min(n, max_parts(config))  # more workers than slots: each would get one
        self._context = multiprocessing.get_context("spawn")
        self._part = share(config, n)
        self._loop = asyncio.get_running_loop()
        self._events = _Events(self._loop)
        self._write, self._write_invalid = write, write_invalid
        self._ordered = ordered
        self._warn = warn
        self.workers = [_Worker(self._context, self._part, i, self._events) for i in range(n)]
        self._cap = max(2 * BATCH, 2 * self._part.limits.concurrency)  # dealt, unanswered
        self._room = asyncio.Event()
        self._input_over = False
        self._restarts = 0
        self._stopping = False

    async def _deal(self, batch: list[Dealt]) -> None:
        while True:
            live = [w for w in self.workers if not w.dead]
            worker = min(live, key=lambda w: len(w.dealt))
            if len(worker.dealt) < self._cap:
                break
            self._room.clear()
            await self._room.wait()
        for dealt in batch:
            worker.dealt[dealt[2]] = dealt
        await worker.send(batch)

    async def _feed(self, items: AsyncIterator[Item]) -> None:
        ordered = self._ordered
        batch: list[Dealt] = []
        async for item in items:
            if ordered is not None:
                seq = item.request.seq if isinstance(item, Result) else item.seq
                if ordered.holds(seq):
                    if batch:  # the record due next may be in it
                        await self._deal(batch)
                        batch = []
                    await ordered.admitted(seq)
            if isinstance(item, Result):
                await self._write_invalid(item)
                continue
            batch.append((item.to_dict(), item.line, item.seq))
            if len(batch) >= BATCH:
                await self._deal(batch)
                batch = []
        if batch:
            await self._deal(batch)
        self._input_over = True
        for worker in self.workers:
            if not worker.dead:
                await worker.send(None)

    async def _replace(self, dead: _Worker) -> None:
        """A new worker in the dead one's place, given what the dead one left unanswered."""
        self._restarts += 1
        left = list(dead.dealt.values())
        if self._restarts > _RESTARTS_PER_WORKER * self.n:
            raise WorkerDied(
                f"worker processes died {self._restarts} times ({len(left):,} requests "
                "unanswered by the last); the records so far are whole: run again with "
                "`resume=True`"
            )
        if self._warn is not None:
            await self._loop.run_in_executor(None, dead.process.join, 5)  # its pipe closed
            code = dead.process.exitcode
            why = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
            self._warn(
                f"warning: worker process {dead.index} died ({why}); its "
                f"{len(left):,} unfinished requests go to a new worker"
            )
        await dead.aclose()  # its pipes: EOF was read, nothing more will come
        fresh = _Worker(self._context, self._part, dead.index, self._events)
        self.workers[self.workers.index(dead)] = fresh
        for start in range(0, len(left), BATCH):
            batch = left[start : start + BATCH]
            for dealt in batch:
                fresh.dealt[dealt[2]] = dealt
            await fresh.send(batch)
        if self._input_over:
            await fresh.send(None)

    def _stop(self) -> None:
        """The first time, each worker stops taking work, finishes and reports; the second
        time, it cancels what is still in flight."""
        for worker in self.workers:
            pid = worker.process.pid
            if not worker.dead and worker.process.is_alive() and pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    async def _consume(self) -> None:
        workers = self.workers
        while not all(w.finished or (w.dead and self._stopping) for w in workers):
            worker, message = await self._events.queue.get()
            if worker not in workers:
                continue  # a message from a worker already replaced
            if message is None:  # its pipe closed: exited after DONE, or died
                await self._ended(worker)
            elif message == _DONE:
                if worker.dealt and not self._stopping:  # done, with requests unanswered:
                    worker.dead = True  # as good as dead (they would be lost), so
                    await self._replace(worker)  # they are dealt again
                    self._room.set()
                else:
                    worker.finished = True
            else:
                records, counts = message
                dealt = worker.dealt
                fresh = [record for record in records if dealt.pop(record[0], None) is not None]
                await self._write(fresh, counts)
                self._room.set()

    async def _ended(self, worker: _Worker) -> None:
        """``worker``'s pipe closed: after it said DONE, or it died (then it is replaced,
        unless the run is stopping or it had nothing left to do)."""
        worker.dead = True
        unanswered = worker.dealt or not self._input_over
        if not worker.finished and not self._stopping and unanswered:
            await self._replace(worker)
        elif not worker.finished:
            worker.finished = not worker.dealt
        self._room.set()

    async def run(self, items: AsyncIterator[Item]) -> None:
        feeder = asyncio.ensure_future(self._feed(items))
        consumer = asyncio.ensure_future(self._consume())
        try:
            done, _ = await asyncio.wait({feeder, consumer}, return_when=asyncio.FIRST_EXCEPTION)
            if feeder in done:
                feeder.result()  # raise what the input raised
            await consumer
        except asyncio.CancelledError:
            self._stopping = True
            feeder.cancel()
            self._stop()
            while not consumer.done():
                try:
                    await asyncio.shield(consumer)
                except asyncio.CancelledError:
                    if consumer.done():
                        break
                    self._stop()  # cancelled again: a second Ctrl-C
            raise
        finally:
            self._stopping = True
            await self._close(feeder, consumer)

    async def _close(self, feeder: asyncio.Future[None], consumer: asyncio.Future[None]) -> None:
        feeder.cancel()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await consumer
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feeder
        for worker in self.workers:
            await self._loop.run_in_executor(None, worker.process.join, 10)
            if worker.process.is_alive():
                worker.process.kill()
            worker.close()


class Workers:
    """A job's requests done by ``n`` worker processes (``run_workers``), their records put
    into the pipeline's writer (in input order with ``ordered``) and counted in its stats:
    the ``Spread`` that ``fanfetch run --workers`` gives its ``Pipeline``."""

    def __init__(self, n: int, *, warn: Callable[[str], None] | None = None) -> None:
        self.n = n
        self._warn = warn
        self._work: asyncio.Future[None] | None = None

    async def run(self, pipeline: Pipeline, items: AsyncIterator[Item]) -> None:
        writer, stats, config = pipeline.writer, pipeline.stats, pipeline.config
        assert writer is not None, "worker processes write records: a job with an output"
        ordered: Reorder[bytes] | None = None
        if pipeline.spec.ordered:  # wide enough for every worker to hold a few batches
            window = max(4 * config.limits.concurrency, 4 * BATCH * self.n)
            ordered = Reorder[bytes](window=window)

        def put_lines(lines: list[bytes]) -> None:
            if ordered is None:
                writer.write_lines(lines)
            elif due := ordered.take_due():
                writer.write_lines(due)

        async def write(records: list[WorkerRecord], counts: dict[str, Any]) -> None:
            if ordered is not None:
                for seq, line in records:
                    ordered.add(seq, line)
            put_lines([line for _, line in records])
            if stats is not None:
                stats.add(counts)  # what the worker's own Stats counted from its events

        async def write_invalid(result: Result) -> None:
            if ordered is not None:
                line = encode_result(result, include_headers=config.records.include_headers)
                ordered.add(result.request.seq, line)
                put_lines([])
            else:
                await writer.put(result)
            if stats is not None:
                stats(Finished(result))

        if stats is not None:
            stats(RunStarted(None))
        self._work = work = asyncio.ensure_future(
            run_workers(self.n, config, items, write, write_invalid, ordered, warn=self._warn)
        )
        try:
            await work
            if ordered is not None:
                ordered.check_empty()
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # this run is being cancelled itself, not only the workers by stop()
        finally:
            if stats is not None:
                stats(RunEnded(work.cancelled()))

    def stop(self) -> None:
        """Each worker stops taking work and finishes what it holds; a second time, it
        cancels that too (``run_workers`` cancelled)."""
        if self._work is not None:
            self._work.cancel()

    def __repr__(self) -> str:
        return f"<Workers n={self.n}>"
