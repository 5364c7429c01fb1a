"""The engine: items in -> limits -> retry -> transport -> one result out for each.

A fixed pool of worker coroutines pulls from a bounded queue that one feeder fills from the
(lazy) input, so memory stays flat however many requests there are. Nothing here makes a task
per request: that is the pattern fanfetch exists to replace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from .._core._config import Auto, Config
from .._core._events import ChainEnded, Finished, Listener, RunEnded, RunStarted
from .._core._exceptions import InvalidRequest, PaginationError, TransformError
from .._core._models import Request, Result
from .._core._resume import id_hash
from .._core._types import Clock, Item, Sink, Sleep
from .._net._http import HTTP
from .._net._transports import Transport, open_transport
from ._attempt import Attempts
from ._channel import Channel
from ._guards import Guard
from ._learned import learner_for
from ._limits import HostView, Limiter
from ._paginate import ChainState, Paginator
from ._select import Selector
from ._transform import Transformer

__all__ = ["Engine", "Profile", "profile_for"]


def _as_event(listener: Listener, result: Result) -> None:
    listener(Finished(result))


class Profile(NamedTuple):
    """What a request's records go through besides its attempts: the rule of its pages and
    what is kept of its body (a job file's steps each have their own)."""

    paginator: Paginator | None
    selector: Selector | None


def profile_for(config: Config) -> Profile:
    pages, select = config.pages, config.records.select
    paginator = None
    if pages.paginate is not None:
        paginator = Paginator(pages.paginate, items=pages.items, page_start=pages.page_start,
                              page_size=pages.page_size, max_pages=pages.max_pages,
                              allow_link_local=config.http.allow_link_local,
                              has_next=pages.has_next)  # fmt: skip
    return Profile(paginator, Selector(select) if select is not None else None)


class Engine:
    """Runs items through a pool of ``config.limits.concurrency`` workers.

    ``stop()`` (Ctrl-C, SIGTERM) stops taking new items; attempts in flight get ``grace``
    seconds to finish and be recorded, then are cancelled. What was not finished has no
    record, so a ``--resume`` run picks it up.
    """

    def __init__(
        self,
        config: Config,
        *,
        transport: Transport | None = None,
        listeners: Sequence[Listener] = (),
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        chains: Mapping[int, ChainState] | None = None,
        chain_state: Callable[[Request], ChainState | None] | None = None,
        profile_of: Callable[[Request], Profile] | None = None,
    ) -> None:
        self.config = config
        self._owns_transport = transport is None
        self._transport: Transport = transport or open_transport(config)
        self._listeners = tuple(listeners)
        # Per request, each listener is told its result: directly where it has a ``finished``
        # method (``Stats``: no event object, no dispatch), else as a ``Finished`` event.
        self._tell_finished = tuple(
            getattr(listener, "finished", None) or functools.partial(_as_event, listener)
            for listener in self._listeners
        )
        self._clock = clock
        self._sleep = sleep
        self._limiter = limiter = Limiter(
            per_host=config.limits.per_host,
            ceiling=config.limits.concurrency,
            rate=Auto.fixed(config.limits.rate),
            rate_per_host=Auto.fixed(config.limits.rate_per_host),
            budget=Auto.fixed(config.costs.budget),
            learner=learner_for(config, clock=clock, sleep=sleep),
            clock=clock,
            sleep=sleep,
        )
        guard = Guard(config.guards, clock=clock)
        self.guard = guard if guard.needed else None  # --limit, --deadline, --stop-if...
        self._attempts = Attempts(
            config,
            HTTP(config.http, self._transport),
            limiter,
            clock=clock,
            sleep=sleep,
            stopping=lambda: self._stopping,
            on_retry=self._emit if self._listeners else None,
            guard=self.guard,
        )
        self._paginator, self._selector = profile_for(config)
        self._profile_of = profile_of  # a job's steps: each request's own
        # where a resumed request's chain stands: by its id (a job's steps: by step and id)
        if chain_state is None:
            known = chains or {}
            chain_state = lambda request: known.get(id_hash(request.id))  # noqa: E731
        self._chain_state = chain_state
        self.chain_ended: Callable[[int], Awaitable[None]] | None = None  # --ordered pages
        self._transformer = (
            Transformer(config.records.transform, workers=config.records.transform_workers)
            if config.records.transform is not None
            else None
        )
        self._stopping = False
        if self.guard is not None:
            guard.on_stop = lambda: self.stop(grace=None)
            self._tell_finished = (*self._tell_finished, guard.finished)
        self._handoff: Channel[Item] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._feeder: asyncio.Task[None] | None = None
        self._spawn: Callable[[], None] | None = None  # one more worker, mid-run
        self.in_flight = 0
        self.interrupted = False
        self._pool_max = config.limits.concurrency  # workers beyond this end (a resize)

    # -- control -----------------------------------------------------------------------------

    def stop(self, grace: float | None = 5.0) -> None:
        """Take no new items; cancel whatever is still in flight after ``grace`` seconds
        (None: let it finish, as a guard does).

        Called again with a shorter grace (a second Ctrl-C), it cuts the wait short.
        """
        if self._stopping:
            if grace is not None and grace <= 0:
                self._cancel_workers()
            return
        self._stopping = True
        self.interrupted = True
        if self._feeder is not None:
            self._feeder.cancel()  # it may be blocked on a slow input, such as an idle stdin
        if self._handoff is not None:
            self._handoff.end(drop=True)
        if grace is not None:
            asyncio.get_running_loop().call_later(grace, self._cancel_workers)

    def resize(self, config: Config) -> None:
        """Take on ``config``'s limits mid-run: a cluster shard whose share of the job changed.

        The pool grows as requests come that can use more workers, and shrinks as workers
        finish their request (none is taken away mid-request: ``fits`` says when the smaller
        limits are kept); the per-host limit, rates and budget move at once.
        """
        limits = config.limits
        budget = config.costs.budget
        self.config = dataclasses.replace(
            self.config, limits=limits, costs=dataclasses.replace(self.config.costs, budget=budget)
        )
        self._limiter.resize(
            per_host=limits.per_host,
            ceiling=limits.concurrency,
            rate=Auto.fixed(limits.rate),
            rate_per_host=Auto.fixed(limits.rate_per_host),
            budget=Auto.fixed(budget),
        )
        self._attempts.config = self.config
        self._pool_max = limits.concurrency
        handoff, spawn = self._handoff, self._spawn
        if spawn is None or handoff is None or self._stopping:
            return  # not running, or stopping
        for _ in range(min(limits.concurrency - len(self._workers), len(handoff))):
            spawn()  # for the queued requests that the larger pool can take now

    def fits(self) -> bool:
        """Whether what is in flight now keeps within the limits (after a ``resize`` that
        made them smaller, once enough requests have finished)."""
        per_host = self.config.limits.per_host
        return self.in_flight <= self._pool_max and (
            per_host is None or self._limiter.gate.most_in_use() <= per_host
        )

    def _cancel_workers(self) -> None:
        for task in self._workers:
            task.cancel()

    # -- running -----------------------------------------------------------------------------

    async def run(
        self,
        items: Iterable[Item] | AsyncIterable[Item],
        sink: Sink,
        *,
        total: int | None = None,
    ) -> None:
        """Make every request in ``items``, handing each result to ``sink`` as it finishes."""
        if self._stopping:  # stopped before it began (a very early Ctrl-C): nothing to do
            return
        handoff = self._handoff = Channel[Item](2 * self.config.limits.concurrency)
        self._emit(RunStarted(total))
        try:
            async with asyncio.TaskGroup() as tg:

                def spawn() -> None:
                    self._workers.append(tg.create_task(self._work(handoff, sink)))

                self._spawn = spawn
                self._feeder = tg.create_task(self._feed(items, handoff, spawn))
        finally:
            self._spawn = None
            self._workers = []
            self._feeder = None
            self._handoff = None
            self._emit(RunEnded(self.interrupted))

    async def _feed(
        self,
        items: Iterable[Item] | AsyncIterable[Item],
        handoff: Channel[Item],
        spawn: Callable[[], None],
    ) -> None:
        """Hand the items out, starting a worker with each of the first ``concurrency``: the
        pool is never larger than the requests can use (two requests at ``-c 100000000``
        start two workers), and a long run has its whole pool after its first requests."""
        put = handoff.put
        workers = self._workers
        try:
            if isinstance(items, AsyncIterable):
                async for item in items:
                    if self._stopping:
                        return
                    await put(item)
                    if len(workers) < self.config.limits.concurrency:
                        spawn()
            else:
                for item in items:
                    if self._stopping:
                        return
                    await put(item)
                    if len(workers) < self.config.limits.concurrency:
                        spawn()
        finally:
            handoff.end()  # the input ran out, failed or was cancelled: the workers stop

    async def _work(self, handoff: Channel[Item], sink: Sink) -> None:
        tell_finished = self._tell_finished
        attempts = self._attempts.run
        get = handoff.get
        workers = self._workers
        profile_of = self._profile_of
        while (item := await get()) is not None:
            if self._stopping:
                return
            if isinstance(item, Result):
                result = item
            elif pager := self._paginator if profile_of is None else profile_of(item)[0]:
                await self._chain(item, sink, pager)
                if self.chain_ended is not None:
                    await self.chain_ended(item.seq)
                await asyncio.sleep(0)
                continue
            else:
                if self.guard is not None and not self.guard.may_start():
                    return  # a guard stopped the run: this one is --resume's
                self.in_flight += 1
                try:
                    started = await attempts(item)
                finally:
                    self.in_flight -= 1
                if started is None:
                    return  # --max-cost: it did not start, it is --resume's
                result = started
                selector = self._selector if profile_of is None else profile_of(item)[1]
                if selector is not None and result.ok:
                    result = selector.apply(result)
                if self._transformer is not None and result.ok:
                    result = await self._transform(result)
            await sink(result)
            for tell in tell_finished:
                tell(result)
            # Let the loop run everything else that is ready before this worker starts its
            # next request: a quarter less CPU per request (benchmarks/FINDINGS.md).
            await asyncio.sleep(0)
            if len(workers) > self._pool_max:  # the pool was made smaller: this one ends
                workers.remove(asyncio.current_task())  # type: ignore[arg-type]
                return

    async def _finish(self, result: Result) -> Result:
        profile_of = self._profile_of
        selector = self._selector if profile_of is None else profile_of(result.request)[1]
        if selector is not None and result.ok:
            result = selector.apply(result)
        if self._transformer is not None and result.ok:
            result = await self._transform(result)
        return result

    async def _chain(self, origin: Request, sink: Sink, pager: Paginator) -> None:
        """Every page of one request, in turn: a record each, with ``page`` and ``next``."""
        request, page = pager.first(origin, self._chain_state(origin))
        if page > 1:  # resumed: a copy of the origin's
            request.page = page
        fetched: dict[tuple[str, str, str], int] = {}
        while True:
            key = (
                request.url,
                repr(sorted((request.params or {}).items())),
                pager.body_of(request),
            )
            if key in fetched:
                message = f"page {page} would fetch page {fetched[key]} again: a loop"
                result = Result(request, error=PaginationError(message), attempts=0)
                value = None
            else:
                if self.guard is not None and not self.guard.may_start():
                    self._chain_over(origin, unrecorded=True)
                    return  # a guard stopped the run: --resume goes on from the last page
                fetched[key] = page
                self.in_flight += 1
                try:
                    started = await self._attempts.run(request)
                finally:
                    self.in_flight -= 1
                if started is None:  # --max-cost: the page did not start
                    self._chain_over(origin, unrecorded=True)
                    return
                result = started
                if page > 1 and pager.ends_quietly(result):
                    self._chain_over(origin, unrecorded=True)
                    return  # past the last page: not a page of its own
                try:
                    value = pager.after(request, result, page)
                except PaginationError as exc:  # its next link is no URL: the chain ends here
                    result, value = result.replace(error=exc), None
            result = await self._finish(result.replace(page=page, next=value))
            await self._sink_and_tell(result, sink)
            if value is None or self._stopping:
                self._chain_over(origin, unrecorded=value is not None)
                return
            request, page = pager.following(origin, value), page + 1
            request.page = page  # a copy of the origin's: its saved body a file of its own
            await asyncio.sleep(0)  # as between requests: let the loop run what is ready

    async def _sink_and_tell(self, result: Result, sink: Sink) -> None:
        await sink(result)
        for tell in self._tell_finished:
            tell(result)

    @property
    def chains_capped(self) -> int:
        """Chains ended by ``max_pages`` while their last page named another."""
        return self._paginator.capped if self._paginator is not None else 0

    def paused_hosts(self) -> int:
        """Hosts resting after a throttle now (for --metrics-port, from its thread)."""
        return self._limiter.gate.paused()

    def busiest_hosts(self, most: int) -> list[HostView]:
        """The hosts with the most attempts in flight or waiting (for --dashboard)."""
        return self._limiter.busiest(most)

    def queued(self) -> int:
        """Requests read and waiting for a worker."""
        handoff = self._handoff
        return len(handoff) if handoff is not None else 0

    async def call(self, request: Request) -> Result:
        """One request, through the limits and retries, outside any run."""
        result = await self._attempts.run(request)
        if result is None:  # --max-cost is spent: it cannot start
            return Result(request, error=InvalidRequest("the `max_cost` is spent"), attempts=0)
        return result

    async def _transform(self, result: Result) -> Result:
        assert self._transformer is not None
        try:
            value = await self._transformer.apply(result.to_dict())
        except TransformError as exc:
            return result.replace(error=exc)
        return result.replace(transformed=value)

    async def aclose(self) -> None:
        """Close the transport (if the engine made it) and the transform pool."""
        if self._transformer is not None:
            await self._transformer.aclose()
        if self._owns_transport:
            await self._transport.aclose()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _chain_over(self, origin: Request, *, unrecorded: bool) -> None:
        if self._listeners:
            self._emit(ChainEnded(origin, unrecorded))

    def _emit(self, event: Any) -> None:
        for listener in self._listeners:
            listener(event)

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else "running" if self._workers else "idle"
        return f"<Engine {state} workers={len(self._workers)} in_flight={self.in_flight}>"
