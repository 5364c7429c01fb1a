"""One job pipeline, whichever way a job comes in: ``fanfetch run``, ``fanfetch.run`` and
``iter_results``, a ``--workers`` process, a cluster shard.

``Pipeline`` makes the parts of a job from its ``JobSpec`` (``_job``) and ``Config``: the output's
resume state (the ids to skip, where each paginated chain stands), the writer and the reorder
window in front of it, the engine (or the worker processes), and runs them in one task group.
The entries add only their own edge: the command line its signals, views and exit status,
``_sync`` its hand-off to the caller's thread, a worker its pipe, a shard its reports.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._config import Config
from ._events import Finished, Listener, RunEnded, RunStarted
from ._job import JobSpec
from ._models import Result
from ._output import OrderedChains, OrderedSink, RecordWriter
from ._paginate import ChainState
from ._resume import IdSet, ResumeState
from ._scheduler import Engine
from ._summary import Stats
from ._transports import Transport
from ._types import Item, Sink

if TYPE_CHECKING:
    from ._records import RecordFormat
    from ._reorder import Reorder

__all__ = ["Pipeline", "reorder_window"]


def reorder_window(config: Config, workers: int = 1) -> int:
    """How many results ahead of the one due an ordered output holds: a few times the
    concurrency, and with worker processes a few of each one's batches."""
    from ._scale._workers import BATCH

    window = 4 * config.limits.concurrency
    return window if workers <= 1 else max(window, 4 * BATCH * workers)


class Pipeline:
    """The parts of one job, made from its ``JobSpec`` and ``Config``, run by ``run``.

    Made outside a running loop or in one; ``aclose`` closes the engine and then the
    output (a format that finishes its file at the end does it there). ``stats`` counts
    every result (a worker process's included); ``listeners`` hear the engine's events.
    """

    def __init__(
        self,
        spec: JobSpec,
        config: Config,
        *,
        stats: Stats | None = None,
        listeners: Sequence[Listener] = (),
        transport: Transport | None = None,
        warn: Callable[[str], None] = lambda _: None,
    ) -> None:
        spec.check(config)
        self.spec = spec
        self.config = config
        self.stats = stats
        self.resumed: ResumeState | None = None  # what the output held when resumed
        self.done: IdSet | None = None  # the ids that need no request
        self._warn = warn
        self._work: asyncio.Future[None] | None = None  # worker processes, while they run
        self.writer: RecordWriter | None = None
        chains: dict[int, ChainState] = {}
        record_format = self._format()
        if spec.resume and spec.output is not None and record_format is not None:
            from ._paginate import resume_from

            self.resumed, self.done, chains = resume_from(
                record_format, spec.output, paginated=config.paginate is not None,
                redo_failed=spec.redo_failed, warn=warn,
            )  # fmt: skip
        if record_format is not None:
            from ._formats import open_output

            output = open_output(record_format, spec.output, config, append=spec.resume)
            self.writer = RecordWriter(output)
        heard: list[Listener] = [*listeners] if stats is None else [stats, *listeners]
        try:
            self.engine = Engine(config, transport=transport, listeners=heard, chains=chains)
        except BaseException:
            self.close_output()
            raise

    def _format(self) -> RecordFormat | None:
        if self.spec.output is None:
            return None
        from ._formats import format_for

        return format_for(self.spec.output, self.spec.format)

    @property
    def already(self) -> int:
        """How many records the resumed output held."""
        return self.resumed.records if self.resumed is not None else 0

    def wanted(self, item: Item) -> bool:
        """Whether ``item`` still needs a request (the resume index does not hold its id)."""
        if self.done is None:
            return True
        from ._resume import id_hash

        rid = item.request.id if isinstance(item, Result) else item.id  # a bad line's too
        return id_hash(rid) not in self.done

    async def run(self, items: AsyncIterable[Item], deliver: Sink | None = None) -> None:
        """Run ``items`` through the engine (or the worker processes) into the writer and
        then ``deliver``, in input order with ``ordered``; the output synced as it goes."""
        done = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            if self.writer is not None:
                tg.create_task(self.writer.keep_syncing(done))
            try:
                if self.spec.workers > 1:
                    await self._run_workers(items)
                else:
                    await self._run_engine(items, deliver)
            finally:
                done.set()

    async def _run_engine(self, items: AsyncIterable[Item], deliver: Sink | None) -> None:
        sink = self._sink(deliver)
        reorder: OrderedSink | OrderedChains | None = None
        if self.spec.ordered:
            window = reorder_window(self.config)
            if self.config.paginate is not None:  # each request's pages in page order too
                reorder = OrderedChains(sink, window=window, pages=4 * window)
                self.engine.chain_ended = reorder.chain_ended
            else:
                reorder = OrderedSink(sink, window=window)
            sink = reorder.put
        try:
            await self.engine.run(items, sink)
        finally:
            self.engine.chain_ended = None
        if reorder is not None and not self.engine.interrupted:
            reorder.check_empty()

    def _sink(self, deliver: Sink | None) -> Sink:
        writer = self.writer
        if writer is None:
            return deliver or _discard
        if deliver is None:
            return writer.put
        store = writer.put

        async def stored_then_delivered(result: Result) -> None:
            await store(result)  # a result is handed on only once its record is safe
            await deliver(result)

        return stored_then_delivered

    async def _run_workers(self, items: AsyncIterable[Item]) -> None:
        """The engine's part done by ``spec.workers`` processes (``_scale._workers``)."""
        from ._records import encode_result
        from ._reorder import Reorder
        from ._scale._workers import WorkerRecord, run_workers

        writer, stats = self.writer, self.stats
        assert writer is not None, "worker processes write records: a job with an output"
        ordered: Reorder[bytes] | None = None
        if self.spec.ordered:
            ordered = Reorder[bytes](window=reorder_window(self.config, self.spec.workers))

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
                line = encode_result(result, include_headers=self.config.include_headers)
                ordered.add(result.request.seq, line)
                put_lines([])
            else:
                await writer.put(result)
            if stats is not None:
                stats(Finished(result))

        if stats is not None:
            stats(RunStarted(None))
        aitems = items if isinstance(items, AsyncIterator) else _aiter(items)
        self._work = asyncio.ensure_future(
            run_workers(self.spec.workers, self.config, aitems, write, write_invalid, ordered,
                        warn=self._warn)
        )  # fmt: skip
        try:
            await self._work
            if ordered is not None:
                ordered.check_empty()
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # this run is being cancelled itself, not only the workers by stop()
        finally:
            if stats is not None:
                stats(RunEnded(self._work.cancelled()))

    def stop(self, grace: float) -> None:
        """Take no new requests; what is in flight gets ``grace`` seconds. Worker processes
        keep their own grace: each call asks them once more (the second cuts it short)."""
        if self._work is not None:
            self._work.cancel()
        else:
            self.engine.stop(grace=grace)

    @property
    def interrupted(self) -> bool:
        return self.engine.interrupted or (self._work is not None and self._work.cancelled())

    async def aclose(self) -> None:
        try:
            await self.engine.aclose()
        finally:
            self.close_output()

    def close_output(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __repr__(self) -> str:
        return f"<Pipeline {self.spec} {self.engine!r} {self.writer!r}>"


async def _discard(result: Result) -> None:
    pass


async def _aiter(items: AsyncIterable[Item]) -> AsyncIterator[Item]:
    async with contextlib.aclosing(aiter(items)) as it:  # type: ignore[type-var]
        async for item in it:
            yield item
