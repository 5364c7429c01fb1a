"""The async Python API: ``Fetcher`` for a shared session and limits, ``stream`` for one go.

Options are keyword arguments named like the CLI's flags; they build one ``Config``, the same
object the CLI builds, and run on the same ``Engine``: there is no second code path.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any

from ._channel import Channel
from ._config import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_ON,
    DEFAULT_TIMEOUT,
    Config,
    Limits,
    Rate,
    RetryPolicy,
    Timeouts,
)
from ._events import Listener
from ._exceptions import ConfigError
from ._input import coerce
from ._models import Request, Result
from ._options import BY_NAME
from ._output import OrderedSink
from ._scheduler import Engine
from ._transports import Transport
from ._types import Item

__all__ = ["Fetcher", "RequestLike", "make_config", "resolve_config", "stream"]

RequestLike = Request | Mapping[str, Any] | str
"""A request as the API takes it: a ``Request``, a dict of the JSON-line shape, or a URL."""


def make_config(
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    per_host: int | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    connect_timeout: float | None = None,
    retries: int = DEFAULT_RETRIES,
    retry_on: Iterable[int] = DEFAULT_RETRY_ON,
    backoff_base: float = DEFAULT_BACKOFF_BASE,
    backoff_max: float | None = None,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    rate: str | Rate | None = None,
    rate_per_host: str | Rate | None = None,
    burst: int = 1,
    budget: str | Rate | None = None,
    headers: Mapping[str, str] | None = None,
    include_headers: bool = False,
    include_attempts: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    verify_tls: bool = True,
    transform: str | Callable[[dict[str, Any]], Any] | None = None,
    transform_workers: int | None = None,
    save_dir: str | None = None,
    max_file: int | None = None,
) -> Config:
    """Build a ``Config`` from flat keyword options (the CLI's flags, in Python; the one
    table of them, with their help, is ``_options.OPTIONS``). ``backoff_max`` left out is
    30 s, or ``backoff_base`` when that is larger."""
    if backoff_max is None:
        backoff_max = max(DEFAULT_BACKOFF_MAX, backoff_base)

    def as_rate(value: str | Rate | None, name: str) -> Rate | None:
        if value is None or isinstance(value, Rate):
            return value
        if isinstance(value, str):
            return Rate.parse(value, burst=1 if name == "budget" else burst, parameter=name)
        raise ConfigError(name, value, "give a string like '100/s' or a fanfetch.Rate")

    return Config(
        limits=Limits(concurrency=concurrency, per_host=per_host),
        timeouts=Timeouts(attempt=timeout, connect=connect_timeout),
        retry=RetryPolicy(
            retries=retries,
            retry_on=frozenset(retry_on),
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
        ),
        rate=as_rate(rate, "rate"),
        rate_per_host=as_rate(rate_per_host, "rate_per_host"),
        budget=as_rate(budget, "budget"),
        headers=dict(headers or {}),
        include_headers=include_headers,
        include_attempts=include_attempts,
        max_body=max_body,
        max_redirects=max_redirects,
        verify_tls=verify_tls,
        transform=transform,
        transform_workers=transform_workers,
        save_dir=save_dir,
        max_file=max_file,
    )


def resolve_config(config: Config | None, options: Mapping[str, Any]) -> Config:
    """``config=`` or flat options, never both: the one ``Config`` a run uses."""
    if config is not None and options:
        names = ", ".join(sorted(options))
        raise ConfigError("config", "with " + names, "give either config= or options, not both")
    for name in sorted(options):
        if name not in _OPTIONS:
            near = difflib.get_close_matches(name, _OPTIONS, n=1)
            hint = f"no such option; did you mean {near[0]}?" if near else "no such option"
            raise ConfigError(name, options[name], f"{hint} (the options: {', '.join(_OPTIONS)})")
    return config if config is not None else make_config(**options)


_OPTIONS = sorted(BY_NAME)


async def _coerced(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike],
) -> AsyncGenerator[Item, None]:
    seq = 0
    if isinstance(requests, AsyncIterable):
        async for item in requests:
            yield coerce(item, seq=seq)
            seq += 1
    else:
        for item in requests:
            yield coerce(item, seq=seq)
            seq += 1


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
        transport: Transport | None = None,
        listeners: Sequence[Listener] = (),
        **options: Any,
    ) -> None:
        self.config = resolve_config(config, options)
        self._engine = Engine(self.config, transport=transport, listeners=listeners)

    async def __aenter__(self) -> Fetcher:
        return self

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
        and a slow consumer holds the workers back rather than results piling up.
        """
        window = self.config.limits.concurrency
        results: Channel[Result] = Channel(window)

        async def put(result: Result) -> None:
            if on_result is not None:
                on_result(result)
            await results.put(result)

        reorder = OrderedSink(put, window=2 * window) if ordered else None
        sink = reorder.put if reorder is not None else put
        items = _coerced(requests)

        async def produce() -> None:
            try:
                async with contextlib.aclosing(items):
                    await self._engine.run(items, sink)
                if reorder is not None and not self._engine.interrupted:
                    reorder.check_empty()
            finally:
                results.end()

        producer = asyncio.create_task(produce())
        try:
            while (result := await results.get()) is not None:
                yield result
            await producer  # raises what the engine raised, if anything
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
    transport: Transport | None = None,
    **options: Any,
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
