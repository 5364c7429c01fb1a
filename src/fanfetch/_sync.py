"""The blocking API: ``run`` and ``iter_results``, usable where a loop already runs (Jupyter).

The engine gets its own event loop on a background thread and hands results across through a
bounded queue, so this works the same in a plain script, in a notebook cell and inside an
``async def``, with no ``nest_asyncio`` and no patched loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from typing import Any, Unpack

from ._client import RequestLike, resolve_config, stream
from ._config import Config, Options
from ._exceptions import ConfigError
from ._loop import new_event_loop
from ._models import Result
from ._transports import Transport

__all__ = ["iter_results", "run"]

_END = object()


def iter_results(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike] | str | os.PathLike[str],
    *,
    ordered: bool = False,
    on_result: Callable[[Result], None] | None = None,
    cluster: str | None = None,
    output: str | os.PathLike[str] | None = None,
    shards: int | None = None,
    resume: bool = False,
    config: Config | None = None,
    transport: Transport | str | None = None,
    **options: Unpack[Options],
) -> Iterator[Result]:
    """Yield each ``Result`` as it finishes; blocking. Options as for ``fanfetch.stream``.

    ``requests`` is read on the engine's thread. Leaving the loop early (``break``) stops the
    run: requests in flight are cancelled and the thread is joined before this returns.

    With ``cluster="ray"`` (or ``"ray://HOST:PORT"``) the job runs on Ray as
    ``fanfetch run --cluster`` does: ``requests`` may be a path every node can read,
    ``output`` is the directory of part files (required), ``shards`` and ``resume`` as the
    flags. The results are then read back from the parts once the job is done.
    """
    if cluster is not None:
        yield from _cluster_results(
            requests,
            cluster,
            output,
            shards,
            resume,
            ordered,
            on_result,
            config,
            transport,
            options,
        )
        return
    if isinstance(requests, str | os.PathLike):
        raise ConfigError(
            "requests", requests, "give an iterable of requests (a path only with cluster=)"
        )
    for name, value in (("output", output), ("shards", shards), ("resume", resume or None)):
        if value is not None:
            raise ConfigError(
                name,
                value,
                "output=, shards= and resume= go with cluster='ray'; without a cluster the "
                "results come back to you (write them yourself, or use the CLI's -o)",
            )
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1024)
    started: queue.Queue[tuple[asyncio.AbstractEventLoop, asyncio.Task[None]]] = queue.Queue()

    wanted = threading.Event()  # the engine waits for room in ``handoff``
    room: list[asyncio.Event] = []  # made on the engine's loop, set from this thread

    async def pump() -> None:
        room.append(asyncio.Event())
        async with contextlib.aclosing(
            stream(
                requests,
                ordered=ordered,
                on_result=on_result,
                config=config,
                transport=transport,
                **options,
            )
        ) as results:
            async for result in results:
                while True:  # hand over without blocking the engine's loop
                    try:
                        handoff.put_nowait(result)
                        break
                    except queue.Full:
                        room[0].clear()
                        wanted.set()  # then try once more: the reader may have just made room
                    try:
                        handoff.put_nowait(result)
                        break
                    except queue.Full:
                        await room[0].wait()

    def main() -> None:
        loop = new_event_loop()
        try:
            task = loop.create_task(pump())
            started.put((loop, task))
            try:
                loop.run_until_complete(task)
            except asyncio.CancelledError:
                pass
            except BaseException as exc:
                handoff.put(exc)
                return
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            handoff.put(_END)

    thread = threading.Thread(target=main, name="fanfetch-engine", daemon=True)
    thread.start()
    loop, task = started.get()
    try:
        while (item := handoff.get()) is not _END:
            if wanted.is_set():
                wanted.clear()
                with contextlib.suppress(RuntimeError):  # the engine's loop may have just closed
                    loop.call_soon_threadsafe(room[0].set)
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if thread.is_alive():
            # the thread may be past its loop already (closing after an error): then the
            # cancel has nothing left to stop
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
            while thread.is_alive():  # drain so the engine thread is never stuck on a full queue
                with contextlib.suppress(queue.Empty):
                    handoff.get(timeout=0.05)
        thread.join()


def run(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike] | str | os.PathLike[str],
    *,
    ordered: bool = False,
    on_result: Callable[[Result], None] | None = None,
    cluster: str | None = None,
    output: str | os.PathLike[str] | None = None,
    shards: int | None = None,
    resume: bool = False,
    config: Config | None = None,
    transport: Transport | str | None = None,
    **options: Unpack[Options],
) -> list[Result]:
    """Make every request and return all the results, in input order; blocking, and fine
    inside Jupyter.

    This holds every result in memory: for large runs iterate ``iter_results`` instead.
    ``cluster=``, ``output=``, ``shards=`` and ``resume=``: see ``iter_results``.
    """
    results = list(
        iter_results(
            requests,
            ordered=ordered,
            on_result=on_result,
            cluster=cluster,
            output=output,
            shards=shards,
            resume=resume,
            config=config,
            transport=transport,
            **options,
        )
    )
    if cluster is None:  # a list is read by position: give it in input order
        results.sort(key=lambda result: result.request.seq)
    return results


def _cluster_results(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike] | str | os.PathLike[str],
    cluster: str,
    output: str | os.PathLike[str] | None,
    shards: int | None,
    resume: bool,
    ordered: bool,
    on_result: Callable[[Result], None] | None,
    config: Config | None,
    transport: Transport | str | None,
    options: Options,
) -> Iterator[Result]:
    from ._scale._cluster import cluster_results

    if output is None:
        raise ConfigError("output", None, "a cluster job writes part files: give output='DIR'")
    if ordered:
        raise ConfigError("ordered", True, "a cluster job's parts are not in input order")
    if isinstance(requests, AsyncIterable):
        raise ConfigError("requests", requests, "a cluster job takes a path or a plain iterable")
    if transport is not None and not isinstance(transport, str):
        raise ConfigError(
            "transport", transport, "a cluster job's nodes open their own: give a name"
        )
    config = resolve_config(config, options, transport)
    for result in cluster_results(
        requests, cluster=cluster, output=output, config=config, shards=shards, resume=resume
    ):
        if on_result is not None:
            on_result(result)
        yield result
