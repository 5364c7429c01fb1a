"""``--workers N``: N processes, each with its own event loop, and one writer.

One event loop runs on one core (the GIL), so a client-bound run (big bodies to parse, many
records to encode) tops out at one core. With ``--workers N`` the parent keeps everything
that must be single: reading and numbering the input (and the resume index), and writing
the output, so exactly-once and ``--resume`` hold as with one process. It deals batches of
requests to N worker processes; each runs the ordinary engine with 1/N of every limit
(concurrency, per-host, rates, budget), so the totals hold, and sends back encoded records.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ._config import Config, Limits, Rate
from ._input import Item, coerce
from ._models import Result
from ._output import OrderedLines, encode_result

__all__ = ["WorkerRecord", "max_parts", "run_workers", "share"]

BATCH = 256
# (seq, record line, ok, status, error type, attempts, elapsed ms)
WorkerRecord = tuple[int, bytes, bool, int | None, str | None, int, float]
_DONE = "done"


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

    def part(rate: Rate | None) -> Rate | None:
        if rate is None:
            return None
        return dataclasses.replace(rate, count=rate.count / n)

    per_host = config.limits.per_host
    transform_workers = config.transform_workers
    if config.transform is not None and transform_workers != 0:
        transform_workers = max(1, (transform_workers or os.cpu_count() or 1) // n)
    return dataclasses.replace(
        config,
        limits=Limits(
            concurrency=max(1, config.limits.concurrency // n),
            per_host=None if per_host is None else max(1, per_host // n),
        ),
        rate=part(config.rate),
        rate_per_host=part(config.rate_per_host),
        budget=part(config.budget),
        transform_workers=transform_workers,
    )


# -- in each worker process ---------------------------------------------------------------------


def _worker_main(config: Config, inbox: Any, outbox: Any, parent: int) -> None:
    from ._loop import loop_factory

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(_worker(config, inbox, outbox, parent))


async def _worker(config: Config, inbox: Any, outbox: Any, parent: int) -> None:
    from ._scheduler import Engine

    loop = asyncio.get_running_loop()
    engine = Engine(config)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, engine.stop)

    def take() -> Any:
        while True:  # wake now and then to notice a parent that died without a word
            try:
                return inbox.get(timeout=0.5)
            except queue.Empty:
                if os.getppid() != parent:
                    return None

    async def items() -> AsyncIterator[Item]:
        while (batch := await loop.run_in_executor(None, take)) is not None:
            for request, line, seq in batch:
                yield coerce(request, seq=seq, line=line)

    pending: list[WorkerRecord] = []
    include = config.include_headers

    async def send() -> None:
        batch, pending[:] = list(pending), []
        if batch:
            await loop.run_in_executor(None, outbox.put, batch)

    async def sink(result: Result) -> None:
        error = result.error
        pending.append(
            (
                result.request.seq,
                encode_result(result, include_headers=include),
                result.ok,
                result.status,
                None if error is None else error.type,
                result.attempts,
                result.elapsed_ms,
            )
        )
        if len(pending) >= 64:
            await send()

    async def keep_sending(done: asyncio.Event) -> None:
        while not done.is_set():  # records never wait long in a quiet worker
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.05)
            await send()

    done = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(keep_sending(done))
            try:
                await engine.run(items(), sink)
            finally:
                done.set()
        await send()
    finally:
        await engine.aclose()
        await loop.run_in_executor(None, outbox.put, _DONE)


# -- in the parent ------------------------------------------------------------------------------


async def run_workers(
    n: int,
    config: Config,
    items: AsyncIterator[Item],
    write: Callable[[list[WorkerRecord]], Awaitable[None]],
    write_invalid: Callable[[Result], Awaitable[None]],
    ordered: OrderedLines | None = None,
) -> None:
    """Deal ``items`` to ``n`` worker processes; hand the records they send back to ``write``.

    Lines that are no request (``invalid_request``) are written here, without a round trip.
    With ``ordered``, no item is dealt (or written) too far ahead of the next record due.
    Cancelling this (Ctrl-C) asks the workers to stop; their records still in flight are
    written before it returns.
    """
    n = min(n, max_parts(config))  # more workers than slots would each get one: too many
    context = multiprocessing.get_context("spawn")
    inbox = context.Queue(maxsize=2 * n)
    outbox = context.Queue(maxsize=8 * n)
    part = share(config, n)
    workers = [
        context.Process(
            target=_worker_main,
            args=(part, inbox, outbox, os.getpid()),
            daemon=True,
            name=f"fanfetch-worker-{i}",
        )
        for i in range(n)
    ]
    for process in workers:
        process.start()
    loop = asyncio.get_running_loop()
    stopping = threading.Event()

    def put(item: Any) -> None:
        """Put ``item`` in the inbox; give up when stopping or every worker is gone (a thread
        blocked on a full queue forever would hold up the loop's shutdown)."""
        while not stopping.is_set():
            try:
                inbox.put(item, timeout=0.2)
                return
            except queue.Full:
                if not any(p.is_alive() for p in workers):
                    return

    async def feed() -> None:
        batch: list[tuple[dict[str, Any], int, int]] = []
        async for item in items:
            if ordered is not None:
                seq = item.request.seq if isinstance(item, Result) else item.seq
                if ordered.holds(seq):
                    if batch:  # the record due next may be in it
                        await loop.run_in_executor(None, put, batch)
                        batch = []
                    await ordered.admitted(seq)
            if isinstance(item, Result):
                await write_invalid(item)
                continue
            request = item.to_dict()
            batch.append((request, item.line, item.seq))
            if len(batch) >= BATCH:
                await loop.run_in_executor(None, put, batch)
                batch = []
        if batch:
            await loop.run_in_executor(None, put, batch)

    def receive() -> Any:
        while True:
            try:
                return outbox.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in workers):
                    return _DONE  # all gone (killed?): nothing more will come

    feeder = asyncio.ensure_future(feed())
    finished = 0
    told = False
    try:
        while finished < n:
            if not told and feeder.done():
                feeder.result()  # raise what the input raised
                for _ in range(n):  # then tell every worker the input is over
                    await loop.run_in_executor(None, put, None)
                told = True
            got = await loop.run_in_executor(None, receive)
            if got == _DONE:
                finished += 1
            else:
                await write(got)
    except asyncio.CancelledError:
        stopping.set()
        feeder.cancel()
        for process in workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)  # each stops taking work, finishes, reports
        while finished < n:
            got = await loop.run_in_executor(None, receive)
            if got == _DONE:
                finished += 1
            else:
                await write(got)
        raise
    finally:
        stopping.set()
        feeder.cancel()
        for process in workers:
            await loop.run_in_executor(None, process.join, 10)
            if process.is_alive():
                process.kill()
        inbox.cancel_join_thread()
        outbox.cancel_join_thread()
