"""The async Python API: ``Fetcher`` for a shared session and limits, ``stream`` for one go.

Options are keyword arguments named like the CLI's flags; they build one ``Config``, the same
object the CLI builds, and run on the same ``Engine``: there is no second code path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any, Unpack

from ._core._config import Config, Options, make_config
from ._core._events import Listener
from ._core._exceptions import ConfigError
from ._core._job import JobSpec
from ._core._models import Request, Result
from ._core._types import Item
from ._engine._channel import Channel
from ._engine._paginate import ChainState
from ._engine._pipeline import Pipeline
from ._engine._scheduler import Engine
from ._io._input import coerce
from ._net._transports import Transport

__all__ = ["Fetcher", "RequestLike", "resolve_config", "stream"]

RequestLike = Request | Mapping[str, Any] | str
"""A request as the API takes it: a ``Request``, a dict of the JSON-line shape, or a URL."""


def resolve_config(
    config: Config | None, options: Options, transport: Transport | str | None = None
) -> Config:
    """``config=`` or flat options (a transport's name among them), never both: the one
    ``Config`` a run uses."""
    named = {"transport": transport} if isinstance(transport, str) else {}
    if config is not None and (options or named):
        names = ", ".join(sorted([*options, *named]))
        raise ConfigError("config", "with " + names, "give either config= or options, not both")
    return config if config is not None else make_config(**named, **options)


async def _coerced(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike],
) -> AsyncGenerator[Item, None]:
    seq = 0
    if isinstance(requests, AsyncIterable):
        async for item in requests:
            yield numbered_item(item, seq)
            seq += 1
    else:
        for item in requests:
            yield numbered_item(item, seq)
            seq += 1


def numbered_item(item: RequestLike | Result, seq: int, line: int = 0) -> Item:
    """``item`` as the ``seq``-th of a run: a request made of it, or a record already made
    (an invalid request's, fanfetch.map's row that makes none) numbered as the rest, or an
    ordered run would wait for it for ever."""
    if isinstance(item, Result):
        item.request.seq = seq
        return item
    return coerce(item, seq=seq, line=line)


class Fetcher:
    """One session and one set of limits, for single calls and many.

    ::

        async with fanfetch.Fetcher(concurrency=50, retries=2) as f:
            one = await f.fetch("http://127.0.0.1:8080/items/1")
            async for result in f.stream(urls):
                ...
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        transport: Transport | str | None = None,
        listeners: Sequence[Listener] = (),
        chains: Mapping[int, ChainState] | None = None,
        **options: Unpack[Options],
    ) -> None:
        """``chains``: where each paginated request stands in an output being resumed
        (``_paginate.resume_from``), so its chain goes on after its last recorded page."""
        self.config = resolve_config(config, options, transport)
        if isinstance(transport, str):
            transport = None  # the Engine opens the one the config names
        self._engine = Engine(self.config, transport=transport, listeners=listeners, chains=chains)

    async def __aenter__(self) -> Fetcher:
        return self

    @property
    def stopped_by(self) -> str | None:
        """The guard that stopped this fetcher, with its bound (``"limit 100"``,
        ``"deadline"``, ``"max_cost 50"``, ``"stop_if error_rate > 0.5"``), else None:
        once one has, no new request starts."""
        guard = self._engine.guard
        return None if guard is None else guard.stopped_by

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._engine.aclose()

    async def fetch(self, request: RequestLike) -> Result:
        """Make one request (with the limits and retries); its result, never an exception."""
        item = coerce(request)
        if isinstance(item, Result):
            return item
        return await self._engine.call(item)

    async def stream(
        self,
        requests: Iterable[RequestLike] | AsyncIterable[RequestLike],
        *,
        ordered: bool = False,
        on_result: Callable[[Result], None] | None = None,
    ) -> AsyncGenerator[Result, None]:
        """Results as they finish (or in input order with ``ordered=True``).

        ``requests`` is consumed lazily: at most about twice the concurrency is read ahead,
        and a slow consumer holds the workers back rather than results piling up. A
        ``fail_if=`` condition that holds once the results are all out raises
        ``ThresholdCrossed``.
        """
        results: Channel[Result] = Channel(self.config.limits.concurrency)

        async def put(result: Result) -> None:
            if on_result is not None:
                on_result(result)
            await results.put(result)

        # the job pipeline over this fetcher's engine: no output, results handed on here
        pipeline = Pipeline(JobSpec(ordered=ordered), self.config, engine=self._engine)
        items = _coerced(requests)

        async def produce() -> None:
            try:
                async with contextlib.aclosing(items):
                    await pipeline.run(items, put)
            finally:
                results.end()

        producer = asyncio.create_task(produce())
        try:
            while (result := await results.get()) is not None:
                yield result
            await producer  # raises what the engine raised, if anything
            if self._engine.guard is not None:  # a fetcher's guards count over its life
                self._engine.guard.raise_if_crossed()
        finally:
            if not producer.done():
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer

    def __repr__(self) -> str:
        return f"<Fetcher {self._engine!r}>"


async def stream(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike],
    *,
    ordered: bool = False,
    on_result: Callable[[Result], None] | None = None,
    config: Config | None = None,
    transport: Transport | str | None = None,
    **options: Unpack[Options],
) -> AsyncGenerator[Result, None]:
    """Make every request; yield each ``Result`` as it finishes. Options: see ``make_config``."""
    async with (
        Fetcher(config, transport=transport, **options) as fetcher,
        contextlib.aclosing(
            fetcher.stream(requests, ordered=ordered, on_result=on_result)
        ) as results,
    ):
        async for result in results:
            yield result
