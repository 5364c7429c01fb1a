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
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from .._core._config import Config
from .._core._events import Listener
from .._core._exceptions import ConfigError
from .._core._job import JobSpec
from .._core._models import Result
from .._core._resume import IdSet, ResumeState
from .._core._types import Item, Sink
from .._io._output import OrderedChains, OrderedSink, RecordWriter
from .._net._transports import Transport
from .._observe._summary import Stats
from ._paginate import ChainState
from ._scheduler import Engine

if TYPE_CHECKING:
    from .._io._records import RecordFormat
    from .._io._rows import Rows

__all__ = ["Pipeline", "Spread", "reorder_window", "rows_path"]


def reorder_window(config: Config) -> int:
    """How many results ahead of the one due an ordered output holds: a few times the
    concurrency (worker processes hold a few of each one's batches more: ``Workers``)."""
    return 4 * config.limits.concurrency


class Spread(Protocol):
    """What runs a job's requests instead of its one engine: ``--workers``' processes
    (``_scale._workers.Workers``), given by the entry that offers them."""

    async def run(self, pipeline: Pipeline, items: AsyncIterator[Item]) -> None:
        """Every item's record into ``pipeline.writer``, counted in ``pipeline.stats``."""
        ...

    def stop(self) -> None:
        """Ask the processes to stop (a second time: at once)."""
        ...


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
        engine: Engine | None = None,
        spread: Spread | None = None,
        warn: Callable[[str], None] = lambda _: None,
    ) -> None:
        spec.check(config)
        if spec.workers > 1 and spread is None:
            raise ConfigError("workers", spec.workers, "worker processes are for the command "
                              "line's jobs")  # fmt: skip
        self.spec = spec
        self.spread = spread
        self.config = config
        self.stats = stats
        self.resumed: ResumeState | None = None  # what the output held when resumed
        self.done: IdSet | None = None  # the ids that need no request
        self.warn = warn
        self.writer: RecordWriter | None = None
        chains: dict[int, ChainState] = {}
        record_format = self._format()
        if spec.resume and spec.output is not None and record_format is not None:
            from ._paginate import resume_from

            self.resumed, self.done, chains = resume_from(
                record_format, spec.output, paginated=config.pages.paginate is not None,
                redo_failed=spec.redo_failed, warn=warn,
            )  # fmt: skip
        if record_format is not None:
            from .._io._formats import open_output

            output = open_output(record_format, spec.output, config.records, append=spec.resume)
            self.writer = RecordWriter(output)
        self.rows: Rows | None = None  # --rows: the items of each answer, in rows_writer
        self.rows_writer: RecordWriter | None = None
        if config.records.rows is not None:
            try:
                self._open_rows(config.records.rows, record_format)
            except BaseException:
                self.close_output()
                raise
        heard: list[Listener] = [*listeners] if stats is None else [stats, *listeners]
        self._owns_engine = engine is None  # a Fetcher's engine outlives its streams
        try:
            self.engine = engine or Engine(config, transport=transport, listeners=heard,
                                           chains=chains)  # fmt: skip
        except BaseException:
            self.close_output()
            raise

    def _open_rows(self, expression: str, record_format: RecordFormat | None) -> None:
        from .._io._records import FdOutput
        from .._io._rows import Rows

        output = self.spec.output
        if (
            output is None
            or output == "-"
            or record_format is None
            or (record_format.name != "jsonl")
        ):
            raise ConfigError("rows", expression, "writes OUTPUT.rows.jsonl beside a JSON-lines "
                              "output: give `output` a name ending in .jsonl")  # fmt: skip
        self.rows = Rows(expression)
        path = rows_path(output)
        if self.spec.resume:  # a function of the records: made again from them
            self.rows.rebuild(output, path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if self.spec.resume else os.O_TRUNC)
        self.rows_writer = RecordWriter(FdOutput(os.open(path, flags, 0o644), owns=True))

    def _format(self) -> RecordFormat | None:
        if self.spec.output is None:
            return None
        from .._io._formats import format_for

        return format_for(self.spec.output, self.spec.format)

    @property
    def already(self) -> int:
        """How many records the resumed output held."""
        return self.resumed.records if self.resumed is not None else 0

    def wanted(self, item: Item) -> bool:
        """Whether ``item`` still needs a request (the resume index does not hold its id)."""
        if self.done is None:
            return True
        from .._core._resume import id_hash

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
                if self.spread is not None:
                    await self.spread.run(self, _aiter(items))
                else:
                    await self._run_engine(items, deliver)
            finally:
                done.set()

    async def _run_engine(self, items: AsyncIterable[Item], deliver: Sink | None) -> None:
        sink = self._sink(deliver)
        reorder: OrderedSink | OrderedChains | None = None
        if self.spec.ordered:
            window = reorder_window(self.config)
            if self.config.pages.paginate is not None:  # each request's pages in page order too
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
        rows, rows_writer = self.rows, self.rows_writer
        if rows is not None and rows_writer is not None:
            from .._io._rows import body_of

            put = writer.put

            async def with_rows(result: Result) -> None:
                await put(result)
                if result.ok:  # after its record: a kill between is mended by a resume
                    rows_writer.write_lines(rows.lines(result.request.id, result.page,
                                                       body_of(result)))  # fmt: skip

            if deliver is None:
                return with_rows
            store = with_rows
        elif deliver is None:
            return writer.put
        else:
            store = writer.put

        async def stored_then_delivered(result: Result) -> None:
            await store(result)  # a result is handed on only once its record is safe
            await deliver(result)

        return stored_then_delivered

    def stop(self, grace: float) -> None:
        """Take no new requests; what is in flight gets ``grace`` seconds. Worker processes
        keep their own grace: each call asks them once more (the second cuts it short)."""
        if self.spread is not None:
            self.spread.stop()
        else:
            self.engine.stop(grace=grace)

    async def aclose(self) -> None:
        try:
            if self._owns_engine:
                await self.engine.aclose()
        finally:
            self.close_output()

    def close_output(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            if self.rows_writer is not None:
                self.rows_writer.close()

    def __repr__(self) -> str:
        return f"<Pipeline {self.spec} {self.engine!r} {self.writer!r}>"


async def _discard(result: Result) -> None:
    pass


def rows_path(output: str) -> str:
    """Where ``--rows`` puts the rows of ``output``: ``out.jsonl`` -> ``out.rows.jsonl``."""
    base, ext = os.path.splitext(output)
    return f"{base}.rows{ext or '.jsonl'}"


def _aiter(items: AsyncIterable[Item]) -> AsyncIterator[Item]:
    if isinstance(items, AsyncIterator):
        return items
    return aiter(items)
