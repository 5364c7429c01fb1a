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
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sized
from typing import TYPE_CHECKING, Any, Unpack

from ._client import Fetcher, RequestLike, resolve_config
from ._config import Config, Options
from ._exceptions import ConfigError
from ._input import coerce
from ._loop import new_event_loop
from ._models import Result
from ._notebook import in_notebook
from ._output import RecordWriter
from ._paginate import ChainState
from ._scheduler import Engine
from ._summary import Stats
from ._transports import Transport
from ._types import Item

if TYPE_CHECKING:
    from ._notebook import NotebookProgress
    from ._progress import CalledProgressBar

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
    progress: bool | None = None,
    **options: Unpack[Options],
) -> Iterator[Result]:
    """Yield each ``Result`` as it finishes; blocking. Options as for ``fanfetch.stream``.

    ``requests`` is read on the engine's thread. Leaving the loop early (``break``) stops the
    run: requests in flight are cancelled and the thread is joined before this returns.

    ``output="results.parquet"`` also writes every record there, in the format its name says
    (as ``fanfetch run -o`` does, each record stored before its result is yielded), and
    ``resume=True`` then skips the requests whose id the output already holds (ids not given
    are the position in ``requests``, from 1, as line numbers are for the command line).

    ``progress=True`` shows the run's progress as it goes and its summary at the end: in
    place in a Jupyter notebook (the default there), else as the progress bar on stderr.

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
    if shards is not None:
        raise ConfigError("shards", shards, "shards= goes with cluster='ray'")
    if resume and output is None:
        raise ConfigError("resume", resume, "resume= reads what output= holds: give output=")
    config = resolve_config(config, options, transport)
    if isinstance(transport, str):
        transport = None
    items: Any = requests  # Result items (invalid requests, numbered) pass through
    chains: dict[int, ChainState] = {}
    if output is not None:
        items, chains = _skipping_done(
            requests, os.fspath(output), resume=resume, paginated=config.paginate is not None
        )
    stats: Stats | None = None
    if progress if progress is not None else in_notebook():
        stats = Stats()
        if isinstance(requests, Sized) and not resume:
            stats.total = len(requests)
    engines: list[Engine] = []
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1024)
    started: queue.Queue[tuple[asyncio.AbstractEventLoop, asyncio.Task[None]]] = queue.Queue()

    wanted = threading.Event()  # the engine waits for room in ``handoff``
    room: list[asyncio.Event] = []  # made on the engine's loop, set from this thread

    async def pump() -> None:
        room.append(asyncio.Event())
        writer = None
        if output is not None:
            writer = _open_writer(os.fspath(output), config, append=resume)
        try:
            await _pump(writer)
        finally:
            if writer is not None:
                writer.close()

    async def _pump(writer: RecordWriter | None) -> None:
        listeners = [stats] if stats else ()
        fetcher = Fetcher(config, transport=transport, listeners=listeners, chains=chains)
        engines.append(fetcher._engine)
        async with (
            fetcher,
            contextlib.aclosing(
                fetcher.stream(items, ordered=ordered, on_result=on_result)
            ) as results,
        ):
            async for result in results:
                if writer is not None:
                    await writer.put(result)
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
    view = None
    if stats is not None:
        view = _progress_view(stats, in_flight=lambda: engines[0].in_flight if engines else 0)
    try:
        while True:
            if view is None:
                item = handoff.get()
            else:  # redrawn on this thread (a notebook's output belongs to it)
                try:
                    item = handoff.get(timeout=view.every)
                except queue.Empty:
                    view.refresh()
                    continue
                view.refresh()
            if item is _END:
                break
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
        if view is not None:
            view.finish()


def _progress_view(
    stats: Stats, *, in_flight: Callable[[], int]
) -> NotebookProgress | CalledProgressBar:
    """Progress in place in a notebook, else the progress bar on stderr."""
    if in_notebook():
        from ._notebook import NotebookProgress

        return NotebookProgress(stats)
    from ._progress import CalledProgressBar  # rich, imported only when shown

    return CalledProgressBar(stats, in_flight=in_flight)


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
    progress: bool | None = None,
    **options: Unpack[Options],
) -> list[Result]:
    """Make every request and return all the results, in input order; blocking, and fine
    inside Jupyter.

    This holds every result in memory: for large runs iterate ``iter_results`` instead.
    ``cluster=``, ``output=``, ``shards=``, ``resume=`` and ``progress=`` (on by default in
    a notebook): see ``iter_results``.
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
            progress=progress,
            **options,
        )
    )
    if cluster is None:  # a list is read by position: give it in input order
        results.sort(key=lambda result: result.request.seq)
    return results


def _open_writer(output: str, config: Config, *, append: bool) -> RecordWriter:
    from ._formats import format_for, open_output

    return RecordWriter(open_output(format_for(output), output, config, append=append))


def _skipping_done(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike],
    output: str,
    *,
    resume: bool,
    paginated: bool,
) -> tuple[Iterable[Item] | AsyncIterable[Item], dict[int, ChainState]]:
    """``requests`` made into requests (numbered as they come), without those ``output``
    already holds a record for (a paginated one: whose chain ended there); and where the
    other chains stand."""
    from ._formats import format_for
    from ._paginate import resume_from
    from ._resume import IdSet, id_hash

    done, chains = IdSet(), dict[int, ChainState]()
    if resume:
        _, done, chains = resume_from(format_for(output), output, paginated=paginated)

    def wanted(item: Item) -> bool:
        return isinstance(item, Result) or id_hash(item.id) not in done

    if isinstance(requests, AsyncIterable):

        async def aitems() -> AsyncIterator[Item]:
            seq = 0
            async for request in requests:
                item = coerce(request, seq=seq)
                seq += 1
                if wanted(item):
                    yield item

        return aitems(), chains
    items = (item for seq, r in enumerate(requests) if wanted(item := coerce(r, seq=seq)))
    return items, chains


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
