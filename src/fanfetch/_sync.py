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
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sized,
)
from typing import TYPE_CHECKING, Any, Unpack

from ._client import RequestLike, numbered_item, resolve_config
from ._core._config import Config, Options
from ._core._exceptions import ConfigError, ThresholdCrossed
from ._core._job import JobSpec
from ._core._loop import new_event_loop
from ._core._models import Result
from ._core._types import Item
from ._engine._pipeline import Pipeline
from ._net._transports import Transport
from ._observe._notebook import in_notebook
from ._observe._summary import Stats

if TYPE_CHECKING:
    from ._observe._notebook import NotebookProgress
    from ._observe._progress import CalledProgressBar

__all__ = ["iter_results", "run", "run_job"]

_END = object()


def iter_results(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike] | str | os.PathLike[str],
    *,
    ordered: bool = False,
    on_result: Callable[[Result], None] | None = None,
    cluster: str | None = None,
    output: str | os.PathLike[str] | None = None,
    format: str | None = None,
    shards: int | None = None,
    resume: bool = False,
    redo_failed: bool = False,
    config: Config | None = None,
    transport: Transport | str | None = None,
    progress: bool | None = None,
    **options: Unpack[Options],
) -> Iterator[Result]:
    """Yield each ``Result`` as it finishes; blocking. Options as for ``fanfetch.stream``.

    ``requests`` is read on the engine's thread. Leaving the loop early (``break``) stops the
    run: requests in flight are cancelled and the thread is joined before this returns.

    ``output="results.parquet"`` also writes every record there, in the format its name says
    (or ``format=``), as ``fanfetch run -o`` does, each record stored before its result is
    yielded; ``resume=True`` then skips the requests whose id the output already holds (ids
    not given are the position in ``requests``, from 1, as line numbers are for the command
    line), and goes on with each paginated chain after its last recorded page;
    ``redo_failed=True`` also makes again those whose record is not ok.

    ``progress=True`` shows the run's progress as it goes and its summary at the end: in
    place in a Jupyter notebook (the default there), else as the progress bar on stderr.

    With ``cluster="ray"`` (or ``"ray://HOST:PORT"``) the job runs on Ray as
    ``fanfetch run --cluster`` does: ``requests`` may be a path every node can read,
    ``output`` is the directory of part files (required), ``shards`` and ``resume`` as the
    flags. The results are then read back from the parts once the job is done.
    """
    spec = JobSpec(
        output=None if output is None else os.fspath(output), format=format, ordered=ordered,
        resume=resume, redo_failed=redo_failed, cluster=cluster, shards=shards,
    )  # fmt: skip
    if cluster is not None:
        yield from _cluster_results(requests, spec, on_result, config, transport, options)
        return
    if isinstance(requests, str | os.PathLike):
        raise ConfigError(
            "requests", requests, "give an iterable of requests (a path only with cluster=)"
        )
    config = resolve_config(config, options, transport)
    spec.check(config)
    stats = _stats_for(requests, progress, resume=resume)
    handoff = _Handoff()
    engine_transport = None if isinstance(transport, str) else transport

    made: list[Pipeline] = []

    async def run() -> None:
        pipeline = Pipeline(spec, config, stats=stats, transport=engine_transport)
        made.append(pipeline)
        await handoff.run(pipeline, _numbered(requests, pipeline.wanted), on_result)

    yield from handoff.results(run, stats)
    if made and made[0].engine.guard is not None:
        made[0].engine.guard.raise_if_crossed()  # what fanfetch run says with exit status 3


def _stats_for(requests: object, progress: bool | None, *, resume: bool) -> Stats | None:
    """The counts a progress view shows (``progress=``: by default in a notebook)."""
    if not (progress if progress is not None else in_notebook()):
        return None
    stats = Stats()
    if isinstance(requests, Sized) and not resume:
        stats.total = len(requests)
    return stats


async def _numbered(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike], wanted: Callable[[Item], bool]
) -> AsyncGenerator[Item, None]:
    """``requests`` as items, numbered as they come (their position, from 1, is their line,
    and the id of one that gives none, as for the command line), without those ``wanted``
    says are done: ``seq`` counts the items kept, so an ordered run has no gaps to wait for."""
    kept = 0
    position = 0

    def numbered(request: RequestLike) -> Item | None:
        nonlocal kept, position
        position += 1
        item = numbered_item(request, kept, position)
        if not wanted(item):
            return None
        kept += 1
        return item

    if isinstance(requests, AsyncIterable):
        async for request in requests:
            if (item := numbered(request)) is not None:
                yield item
    else:
        for request in requests:
            if (item := numbered(request)) is not None:
                yield item


class _Handoff:
    """Results from the engine's loop, on a thread of its own, to the caller's thread,
    through a bounded queue: the engine waits for room without blocking its loop."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=1024)
        self.pipeline: Pipeline | None = None
        self._wanted = threading.Event()  # the engine waits for room in the queue
        self._room: asyncio.Event | None = None  # made on the engine's loop, set from here
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(
        self,
        pipeline: Pipeline,
        items: AsyncGenerator[Item, None],
        on_result: Callable[[Result], None] | None,
    ) -> None:
        """``pipeline`` run over ``items``, each result handed over (``on_result`` told
        first), on the engine's loop."""
        self.pipeline = pipeline

        async def deliver(result: Result) -> None:
            if on_result is not None:
                on_result(result)
            await self.put(result)

        try:
            async with contextlib.aclosing(items):
                await pipeline.run(items, deliver)
        finally:
            await pipeline.aclose()

    async def put(self, result: Result) -> None:
        while True:  # hand over without blocking the engine's loop
            try:
                self.queue.put_nowait(result)
                return
            except queue.Full:
                assert self._room is not None
                self._room.clear()
                self._wanted.set()  # then try once more: the reader may have just made room
            try:
                self.queue.put_nowait(result)
                return
            except queue.Full:
                await self._room.wait()

    def results(
        self, run: Callable[[], Coroutine[Any, Any, None]], stats: Stats | None
    ) -> Iterator[Result]:
        """Run ``run`` on a new loop on a thread; yield what it hands over, here."""
        started: queue.Queue[tuple[asyncio.AbstractEventLoop, asyncio.Task[None]]] = queue.Queue()

        async def main() -> None:
            self._room = asyncio.Event()
            await run()

        def thread_main() -> None:
            loop = new_event_loop()
            try:
                task = loop.create_task(main())
                started.put((loop, task))
                try:
                    loop.run_until_complete(task)
                except asyncio.CancelledError:
                    pass
                except BaseException as exc:
                    self.queue.put(exc)
                    return
                finally:
                    loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self.queue.put(_END)

        thread = threading.Thread(target=thread_main, name="fanfetch-engine", daemon=True)
        thread.start()
        loop, task = started.get()
        view = None
        if stats is not None:
            view = _progress_view(stats, in_flight=self._in_flight)
        try:
            while (item := self._next(view)) is not _END:
                if self._wanted.is_set():
                    self._wanted.clear()
                    with contextlib.suppress(RuntimeError):  # the loop may have just closed
                        loop.call_soon_threadsafe(self._room.set)  # type: ignore[union-attr]
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if thread.is_alive():
                # the thread may be past its loop already (closing after an error): then the
                # cancel has nothing left to stop
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(task.cancel)
                while thread.is_alive():  # drain: the engine thread never stuck on a full queue
                    with contextlib.suppress(queue.Empty):
                        self.queue.get(timeout=0.05)
            thread.join()
            if view is not None:
                view.finish()

    def _next(self, view: NotebookProgress | CalledProgressBar | None) -> Any:
        if view is None:
            return self.queue.get()
        while True:  # redrawn on this thread (a notebook's output belongs to it)
            try:
                item = self.queue.get(timeout=view.every)
            except queue.Empty:
                view.refresh()
                continue
            view.refresh()
            return item

    def _in_flight(self) -> int:
        return self.pipeline.engine.in_flight if self.pipeline is not None else 0


def _progress_view(
    stats: Stats, *, in_flight: Callable[[], int]
) -> NotebookProgress | CalledProgressBar:
    """Progress in place in a notebook, else the progress bar on stderr."""
    if in_notebook():
        from ._observe._notebook import NotebookProgress

        return NotebookProgress(stats)
    from ._observe._progress import CalledProgressBar  # rich, imported only when shown

    return CalledProgressBar(stats, in_flight=in_flight)


def run(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike] | str | os.PathLike[str],
    *,
    ordered: bool = False,
    on_result: Callable[[Result], None] | None = None,
    cluster: str | None = None,
    output: str | os.PathLike[str] | None = None,
    format: str | None = None,
    shards: int | None = None,
    resume: bool = False,
    redo_failed: bool = False,
    config: Config | None = None,
    transport: Transport | str | None = None,
    progress: bool | None = None,
    **options: Unpack[Options],
) -> list[Result]:
    """Make every request and return all the results, in input order; blocking, and fine
    inside Jupyter.

    This holds every result in memory: for large runs iterate ``iter_results`` instead.
    A guard (``limit=``, ``deadline=``, ``max_cost=``, ``stop_if=``) that stops the run
    leaves the results made so far; a ``fail_if=`` condition true at the end raises
    ``ThresholdCrossed``, which holds them (``.results``) and says which (``.crossed``).
    ``cluster=``, ``output=``, ``format=``, ``shards=``, ``resume=``, ``redo_failed=`` and
    ``progress=`` (on by default in
    a notebook): see ``iter_results``.
    """
    results: list[Result] = []
    crossed: ThresholdCrossed | None = None
    try:
        results.extend(
            iter_results(
                requests,
                ordered=ordered,
                on_result=on_result,
                cluster=cluster,
                output=output,
                format=format,
                shards=shards,
                resume=resume,
                redo_failed=redo_failed,
                config=config,
                transport=transport,
                progress=progress,
                **options,
            )
        )
    except ThresholdCrossed as exc:
        crossed = exc
    if cluster is None:  # a list is read by position: give it in input order
        results.sort(key=lambda result: result.request.seq)
    if crossed is not None:
        raise ThresholdCrossed(crossed.crossed, results) from None
    return results


def _cluster_results(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike] | str | os.PathLike[str],
    spec: JobSpec,
    on_result: Callable[[Result], None] | None,
    config: Config | None,
    transport: Transport | str | None,
    options: Options,
) -> Iterator[Result]:
    from ._scale._cluster import cluster_results

    if isinstance(requests, AsyncIterable):
        raise ConfigError("requests", requests, "a cluster job takes a path or a plain iterable")
    if transport is not None and not isinstance(transport, str):
        raise ConfigError(
            "transport", transport, "a cluster job's nodes open their own: give a name"
        )
    config = resolve_config(config, options, transport)
    spec.check(config)
    assert spec.output is not None and spec.cluster is not None  # JobSpec's rules
    for result in cluster_results(
        requests, cluster=spec.cluster, output=spec.output, config=config, shards=spec.shards,
        resume=spec.resume,
    ):  # fmt: skip
        if on_result is not None:
            on_result(result)
        yield result


def run_job(
    job: str | os.PathLike[str] | Mapping[str, Any],
    *,
    output: str | os.PathLike[str],
    resume: bool = False,
    redo_failed: bool = False,
    config: Config | None = None,
    transport: Transport | str | None = None,
    **options: Unpack[Options],
) -> dict[str, dict[str, int]]:
    """Run a job file (``fanfetch run JOB.toml -o DIR``) and return each step's counts
    (``records``, ``ok``, ``failed``, ``duplicates``); blocking, on a loop of its own.

    ``job`` is the file's path or a dict of the same shape; ``options`` override its
    ``[run]`` table, as flags do on the command line. Each step's records go to
    ``output/STEP.jsonl`` (the folder is made when missing). ``resume=True`` goes on from
    what those hold, each (step, id, page) recorded once; ``redo_failed=True`` also makes
    again the requests whose record is not ok.
    """
    from ._core._jobfile import load_job, run_options

    loaded = load_job(job)
    merged: Any = {**run_options(loaded), **options}  # checked by make_config, as flags are
    config = config or resolve_config(None, merged, transport)
    from ._engine._graph import check_steps

    check_steps(loaded, config)  # before the folder is made
    folder = os.fspath(output)
    os.makedirs(folder, exist_ok=True)
    outcome: dict[str, dict[str, int]] = {}
    failed: list[BaseException] = []

    async def main() -> None:
        from ._engine._graph import Graph

        graph = Graph(loaded, config, folder, stats=Stats(), resume=resume,
                      redo_failed=redo_failed)  # fmt: skip
        try:
            await graph.run()
        finally:
            await graph.aclose()
        outcome.update({name: counts.as_dict() for name, counts in graph.counts.items()})
        if graph.engine.guard is not None:
            graph.engine.guard.raise_if_crossed()

    def thread_main() -> None:
        loop = new_event_loop()
        try:
            loop.run_until_complete(main())
        except BaseException as exc:
            failed.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=thread_main, name="fanfetch-job", daemon=True)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return outcome
