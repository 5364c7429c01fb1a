"""The engine: items in -> limits -> retry -> transport -> one result out for each.

A fixed pool of worker coroutines pulls from a bounded queue that one feeder fills from the
(lazy) input, so memory stays flat however many requests there are. Nothing here makes a task
per request: that is the pattern fanfetch exists to replace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from typing import Any

from ._channel import Channel
from ._config import Config, Rate
from ._events import Finished, Listener, Retrying, RunEnded, RunStarted
from ._exceptions import InvalidRequest, RequestError
from ._limits import Limiter
from ._models import Request, Result, status_error
from ._redact import redact_url
from ._retry import next_delay, throttle_delay
from ._transform import Transformer, TransformError
from ._transports import AiohttpTransport, Transport
from ._transports._base import Response
from ._types import Clock, Item, Sink, Sleep

__all__ = ["Engine"]


def host_key(url: str) -> str:
    """The ``host:port`` a URL goes to: what per-host limits and throttling count by.

    A string split, not a URL parse: it runs once per request, and the URL was already
    checked when it was read (http or https, a host, no user:password part).
    """
    rest = url.partition("://")[2]
    end = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if i != -1 and i < end:
            end = i
    return rest[:end].lower()


def _host_of(request: Request) -> str:
    """``request``'s ``host:port`` key, from its parsed URL when the input checked it.

    yarl's ``raw_authority`` is already lower-cased and is several times quicker than
    ``host_port_subcomponent``, which is needed only to drop an explicit default port.
    """
    target = request.target
    if target is None:
        return host_key(request.url)
    key: str = target.raw_authority
    if key.endswith((":80", ":443")):
        key = target.host_port_subcomponent
    return key


def over_budget(request: Request, budget: Rate) -> Result:
    """A request whose cost alone is over the budget can never start: it fails at once."""
    message = (
        f"cost {request.cost:g} is over the whole budget of {budget}; "
        "split the request or raise --budget"
    )
    return Result(request, error=InvalidRequest(message), attempts=0)


def _attempt_entry(
    attempt: int,
    response: Response | None,
    error: RequestError | None,
    began: float,
    ended: float,
    delay: float | None,
) -> dict[str, Any]:
    """One line of ``--include-attempts`` history."""
    return {
        "attempt": attempt,
        "status": response.status if response is not None else None,
        "error": error.type if error is not None else None,
        "ms": round((ended - began) * 1000.0, 3),
        "wait_ms": round(delay * 1000.0, 3) if delay is not None else None,
    }


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
    ) -> None:
        self.config = config
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport(config)
        self._listeners = tuple(listeners)
        self._clock = clock
        self._sleep = sleep
        self._limiter = Limiter(
            per_host=config.limits.per_host,
            ceiling=config.limits.concurrency,
            rate=config.rate,
            rate_per_host=config.rate_per_host,
            budget=config.budget,
            clock=clock,
            sleep=sleep,
        )
        self._default_timeout = config.timeouts.attempt
        self._transformer = (
            Transformer(config.transform, workers=config.transform_workers)
            if config.transform is not None
            else None
        )
        self._stopping = False
        self._handoff: Channel[Item] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._feeder: asyncio.Task[None] | None = None
        self._spawn: Callable[[], None] | None = None  # one more worker, mid-run
        self.in_flight = 0
        self.interrupted = False

    # -- control -----------------------------------------------------------------------------

    def stop(self, grace: float = 5.0) -> None:
        """Take no new items; cancel whatever is still in flight after ``grace`` seconds.

        Called again with a shorter grace (a second Ctrl-C), it cuts the wait short.
        """
        if self._stopping:
            if grace <= 0:
                self._cancel_workers()
            return
        self._stopping = True
        self.interrupted = True
        if self._feeder is not None:
            self._feeder.cancel()  # it may be blocked on a slow input, such as an idle stdin
        if self._handoff is not None:
            self._handoff.end(drop=True)
        asyncio.get_running_loop().call_later(grace, self._cancel_workers)

    def resize(self, config: Config) -> None:
        """Take on ``config``'s limits mid-run: a cluster shard whose share of the job grew.

        The pool only grows (a worker is never taken away mid-request), as requests come
        that can use more workers; the per-host limit, rates and budget move either way.
        """
        limits = config.limits
        self.config = dataclasses.replace(
            self.config,
            limits=limits,
            rate=config.rate,
            rate_per_host=config.rate_per_host,
            budget=config.budget,
        )
        self._limiter.resize(
            per_host=limits.per_host,
            ceiling=limits.concurrency,
            rate=config.rate,
            rate_per_host=config.rate_per_host,
            budget=config.budget,
        )
        handoff, spawn = self._handoff, self._spawn
        if spawn is None or handoff is None or self._stopping:
            return  # not running, or stopping
        for _ in range(min(limits.concurrency - len(self._workers), len(handoff))):
            spawn()  # for the queued requests that the larger pool can take now

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
        transport = self._transport
        handoff = self._handoff = Channel[Item](2 * self.config.limits.concurrency)
        self._emit(RunStarted(total))
        try:
            async with asyncio.TaskGroup() as tg:

                def spawn() -> None:
                    self._workers.append(tg.create_task(self._work(handoff, transport, sink)))

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

    async def _work(self, handoff: Channel[Item], transport: Transport, sink: Sink) -> None:
        listeners = self._listeners
        get = handoff.get
        while (item := await get()) is not None:
            if self._stopping:
                return
            if isinstance(item, Result):
                result = item
            else:
                self.in_flight += 1
                try:
                    result = await self._call(item, transport)
                finally:
                    self.in_flight -= 1
                if self._transformer is not None and result.ok:
                    await self._transform(result)
            await sink(result)
            if listeners:
                event = Finished(result)
                for listener in listeners:
                    listener(event)
            # Let the loop run everything else that is ready before this worker starts its
            # next request. Measured against nginx (c=100, same syscalls either way): 92 ->
            # 68 us of CPU per request with a sink that does not wait, 80-88 -> 76-78 with
            # the record writer, whose put already waits for the next turn. Probably because
            # taking the finished requests first runs the same code on many in a row, where
            # starting the next at once interleaves each worker's whole path with the others'.
            await asyncio.sleep(0)

    async def call(self, request: Request) -> Result:
        """One request, through the limits and retries, outside any run."""
        return await self._call(request, self._transport)

    async def _transform(self, result: Result) -> None:
        assert self._transformer is not None
        try:
            value = await self._transformer.apply(result.to_dict())
        except TransformError as exc:
            result.error = exc
            return
        result.extra = {**(result.extra or {}), "transformed": value}

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

    async def _call(self, request: Request, transport: Transport) -> Result:
        """All the attempts of one request, and its one final result."""
        clock = self._clock
        limiter = self._limiter
        policy = self.config.retry
        timeout = request.timeout or self._default_timeout
        host = _host_of(request)
        cost = request.cost
        budget = self.config.budget
        if cost is not None and budget is not None and cost > budget.count:
            return over_budget(request, budget)
        history: list[dict[str, Any]] | None = [] if self.config.include_attempts else None
        start = clock()
        attempt = 0
        while True:
            attempt += 1
            response: Response | None = None
            error: RequestError | None = None
            if not limiter.try_start(host, cost):
                await limiter.wait_can_start(host, cost)
            began = clock() if history is not None else 0.0
            try:
                response = await transport.send(request, timeout)
            except RequestError as exc:
                # The result keeps the error for its record, not the frames it came through:
                # they hold the attempt's locals (a body read so far) in a reference cycle
                # that only the garbage collector would free.
                error = exc.with_traceback(None)
                error.__cause__ = error.__context__ = None
            finally:
                if response is None:  # an error, or cancelled
                    limiter.notify_finished(host, ok=False)
                else:
                    status = response.status
                    limiter.notify_finished(
                        host,
                        ok=200 <= status < 300,
                        throttle=throttle_delay(policy, status, response.headers),
                    )
            if response is not None and 200 <= response.status < 300:
                delay = None
            else:
                delay = next_delay(
                    policy,
                    attempt,
                    status=response.status if response is not None else None,
                    headers=response.headers if response is not None else None,
                    error=error,
                )
            if history is not None:
                history.append(_attempt_entry(attempt, response, error, began, clock(), delay))
            if delay is None or self._stopping:
                break
            if self._listeners:
                reason = error.type if error is not None else f"status {response.status}"  # type: ignore[union-attr]
                self._emit(Retrying(request, attempt, delay, reason))
            await self._sleep(delay)
        elapsed_ms = (clock() - start) * 1000.0
        if response is None:
            result = Result(
                request,
                status=error.status if error is not None else None,
                error=error,
                attempts=attempt,
                elapsed_ms=elapsed_ms,
            )
        else:
            status = response.status
            result = Result(
                request,
                status=status,
                headers=response.headers,
                content=response.content,
                content_type=response.content_type,
                charset=response.charset,
                error=None if 200 <= status < 300 else status_error(status, response.reason),
                attempts=attempt,
                elapsed_ms=elapsed_ms,
            )
            if response.redirects:
                result.redirects = response.redirects
                result.final_url = redact_url(response.url or "")
            if response.saved is not None:
                saved = response.saved
                result.extra = {"path": saved.path, "bytes": saved.size, "sha256": saved.sha256}
        result.history = history
        return result

    def _emit(self, event: Any) -> None:
        for listener in self._listeners:
            listener(event)

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else "running" if self._workers else "idle"
        return f"<Engine {state} workers={len(self._workers)} in_flight={self.in_flight}>"
