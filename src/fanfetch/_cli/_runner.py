"""A file-to-file job, as ``fanfetch run`` does it: input -> engine -> writer, with the
progress bar and the summary listening, signals handled, and the output left whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from .._core._exceptions import FanfetchError, InputError, WorkerDied
from .._core._types import printable
from .._engine._pipeline import Pipeline, Spread
from .._io._input import Duplicates, LineParser, aiter_items, count_requests, open_source
from .._io._output import OutputError
from .._observe._summary import Stats, summary_lines
from ._options import (
    EXIT_FAILED,
    EXIT_GUARD,
    EXIT_OK,
    GRACE_SECONDS,
    RunOptions,
    signal_exit_status,
)

if TYPE_CHECKING:
    from rich.console import Console

    from .._core._jobfile import JobFile
    from .._engine._graph import Graph
    from .._engine._scheduler import Engine
    from .._observe._metrics import MetricsServer

__all__ = ["run_graph_job", "run_job"]

_COUNT_LIMIT_BYTES = 2 * 1024**3  # count lines for the progress total only below this size


async def run_job(options: RunOptions, *, announce: str | None = None, call_ms: float = 0.0) -> int:
    """Run one job; return the exit status (see ``_cli``)."""
    err = _Stderr(rich=_shows_progress(options))
    source = open_source(options.source, sql=options.sql)
    stats = Stats()
    metrics: MetricsServer | None = None
    try:
        pipeline = Pipeline(options.job, options.config, stats=stats, spread=_spread(options),
                            warn=lambda message: err.print(f"fanfetch: {message}"))  # fmt: skip
        if options.job.resume and not options.quiet:
            err.print(_resuming(options, pipeline))
        try:
            metrics = _metrics(options, pipeline, stats)
        except BaseException:
            await pipeline.aclose()
            raise
        received: list[int] = []
        outcome = await _run(options, pipeline, source, err, received)
        status = _ended(options, stats, pipeline, err, outcome, received, announce=announce,
                        call_ms=call_ms)  # fmt: skip
        if metrics is not None and not received:  # a signal: go at once
            await _linger(metrics, options, err)
        return status
    finally:
        if metrics is not None:
            metrics.close()
        _close_source(source)


async def _run(
    options: RunOptions, pipeline: Pipeline, source: Any, err: _Stderr, received: list[int]
) -> _Outcome:
    """The pipeline over the input, with signals handled and the views shown."""
    duplicates = Duplicates()
    parser = _parser(options, pipeline, duplicates)
    items = aiter_items(source, duplicates=duplicates, parser=parser)

    async def run() -> None:
        async with contextlib.aclosing(items):
            await pipeline.run(items)

    def show(tg: asyncio.TaskGroup, done: asyncio.Event) -> None:
        _show_progress(tg, options, pipeline, err, done)

    failed = await _supervised(options, pipeline, err, received, run, show)
    return _Outcome(duplicates, failed)


async def _supervised(
    options: RunOptions,
    pipeline: Pipeline | Graph,
    err: _Stderr,
    received: list[int],
    run: Callable[[], Awaitable[None]],
    show: Callable[[asyncio.TaskGroup, asyncio.Event], None],
) -> BaseException | None:
    """``run`` with Ctrl-C and SIGTERM handled and the views shown, then ``pipeline``
    closed; what stopped it, if the output (or a worker) failed."""
    loop = asyncio.get_running_loop()
    _handle_signals(loop, pipeline, received, err)
    failed: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as tg:
            views = asyncio.Event()
            if _shows_progress(options):
                show(tg, views)
            try:
                await run()
            finally:
                views.set()
    except* OutputError as group:
        failed = _first_leaf(group)
    except* WorkerDied as group:
        failed = _first_leaf(group)
    except* InputError as group:
        raise _first_leaf(group) from None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
        try:
            await pipeline.aclose()  # a format that finishes its file at the end does it here
        except OutputError as exc:
            failed = failed or exc
    return failed


async def _linger(metrics: MetricsServer, options: RunOptions, err: _Stderr) -> None:
    """The final counts served until Prometheus scrapes them once more (or a while)."""
    linger = options.metrics_linger
    if not options.quiet and linger > 0:
        err.print(f"fanfetch: metrics: the final counts are served until scraped once more, "
                  f"up to {linger:g} s (--metrics-linger)")  # fmt: skip
    await asyncio.to_thread(metrics.linger, linger)


class _Outcome(NamedTuple):
    duplicates: Duplicates
    failed: BaseException | None  # the output (or the workers) failed: the run stopped


def _resuming(options: RunOptions, pipeline: Pipeline) -> str:
    redo = ""
    if options.job.redo_failed and pipeline.resumed is not None:
        redo = f", {pipeline.resumed.dropped_failed:,} failed ones to do again"
    return f"fanfetch: resuming: {pipeline.already:,} requests already recorded{redo}"


def _metrics(options: RunOptions, pipeline: Pipeline | Graph, stats: Stats) -> MetricsServer | None:
    """``--metrics-port``: the run's Prometheus endpoint."""
    if options.metrics_port is None:
        return None
    from .._observe._metrics import MetricsServer

    engine = pipeline.engine
    return MetricsServer(stats, port=options.metrics_port, host=options.metrics_host,
                         in_flight=lambda: engine.in_flight, paused_hosts=engine.paused_hosts,
                         queued=engine.queued)  # fmt: skip


def _spread(options: RunOptions) -> Spread | None:
    """``--workers N``: the job's requests done by N processes."""
    if options.job.workers <= 1:
        return None
    from .._scale._workers import Workers

    return Workers(options.job.workers, warn=lambda message: _say(f"fanfetch: {message}"))


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")


def _parser(options: RunOptions, pipeline: Pipeline, duplicates: Duplicates) -> LineParser:
    """Input lines as requests (or rows filled into ``--url``), without those done."""
    if options.url_template is None:
        return LineParser(done=pipeline.done, duplicates=duplicates)
    from .._io._template import RowParser

    return RowParser(options.url_template, csv_rows=options.csv_rows, done=pipeline.done,
                     duplicates=duplicates)  # fmt: skip


def _handle_signals(
    loop: asyncio.AbstractEventLoop, pipeline: Pipeline | Graph, received: list[int], err: _Stderr
) -> None:
    """Ctrl-C and SIGTERM stop the run, leaving the output whole (a second one at once);
    SIGUSR1 says where every task is waiting, for a run that seems stuck."""
    workers = pipeline.spec.workers > 1

    def on_signal(signum: int) -> None:
        if not received:
            err.print("\nfanfetch: stopping: the workers finish what is in flight..." if workers
                      else "\nfanfetch: stopping: finishing requests in flight (up to "
                      f"{GRACE_SECONDS:g} s)...")  # fmt: skip
        received.append(signum)
        pipeline.stop(grace=GRACE_SECONDS if len(received) == 1 else 0)

    def dump_state() -> None:
        engine = pipeline.engine
        sys.stderr.write(f"fanfetch: {engine!r} {engine._limiter!r} {pipeline.stats!r}\n")
        for task in asyncio.all_tasks():
            task.print_stack(limit=6, file=sys.stderr)
        sys.stderr.flush()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGUSR1, dump_state)


def _show_progress(
    tg: asyncio.TaskGroup,
    options: RunOptions,
    pipeline: Pipeline | Graph,
    err: _Stderr,
    done: asyncio.Event,
) -> None:
    """The progress bar or the dashboard, until ``done``; and the input's lines counted
    (off the loop) for the total."""
    stats = pipeline.stats
    assert stats is not None, "fanfetch run's pipeline counts in a Stats of its own"
    engine = pipeline.engine
    if options.dashboard:
        from .._observe._dashboard import Dashboard

        view = Dashboard(stats, in_flight=lambda: engine.in_flight, console=err.console(),
                         hosts=engine.busiest_hosts, queued=engine.queued)  # fmt: skip
        tg.create_task(view.run(done))
    else:
        from .._observe._progress import ProgressBar

        bar = ProgressBar(stats, in_flight=lambda: engine.in_flight, console=err.console())
        tg.create_task(bar.run(done))
    if isinstance(pipeline, Pipeline) and _small_enough_to_count(options.source):
        already = pipeline.already
        counting = tg.create_task(asyncio.to_thread(count_requests, options.source))
        counting.add_done_callback(
            lambda t: setattr(stats, "total", max(0, t.result() or 0) - already)
        )


def _ended(
    options: RunOptions,
    stats: Stats,
    pipeline: Pipeline,
    err: _Stderr,
    outcome: _Outcome,
    received: list[int],
    *,
    announce: str | None,
    call_ms: float,
) -> int:
    """The run's last words (warnings, the summary) and its exit status."""
    duplicates, output_failed = outcome
    if (warning := duplicates.message()) is not None:
        err.print(f"fanfetch: {warning}")
    if pipeline.engine.chains_capped:
        err.print(f"fanfetch: warning: {pipeline.engine.chains_capped:,} chain(s) stopped at "
                  f"--max-pages {options.config.pages.max_pages:,} while their last page named "
                  "another")  # fmt: skip
    if isinstance(output_failed, WorkerDied):
        err.print(f"fanfetch: error: {output_failed}")
        return EXIT_FAILED
    if output_failed is not None:
        err.print(f"fanfetch: error: {output_failed}; the run stopped, records so far are whole")
        return EXIT_FAILED
    _guarded(stats, pipeline.engine)
    if not options.quiet:
        for line in summary_lines(stats):
            err.print(line)
        if announce:
            _compare_with_serial(stats, err, announce, call_ms)
    if options.summary_json:
        _write_summary(options.summary_json, stats)
    return _exit_status(stats, received)


def _guarded(stats: Stats, engine: Engine) -> None:
    """What the engine's guard stopped or failed, into the summary."""
    guard = engine.guard
    if guard is not None:
        stats.stopped_by, stats.crossed = guard.stopped_by, guard.crossed()


def _exit_status(stats: Stats, received: list[int]) -> int:
    """A signal's status, else 3 when a guard stopped or failed the run (it wins over 1),
    else 1 when a record is not ok."""
    if received:
        return signal_exit_status(received[0])
    if stats.stopped_by or stats.crossed:
        return EXIT_GUARD
    return EXIT_OK if stats.failed == 0 else EXIT_FAILED


def _close_source(source: Any) -> None:
    if source is not sys.stdin.buffer:
        source.close()


def run_cluster_job(options: RunOptions, *, address: str | None) -> int:
    """Run one job on Ray (``_cluster``): a live progress bar fed by the shards' reports,
    and one summary of the whole job at the end."""
    from .._scale._cluster import JobProgress, run_on_ray

    assert options.output is not None
    show_progress = _shows_progress(options)
    err = _Stderr(rich=show_progress)
    live = Stats()
    in_flight = 0
    bar = None
    if show_progress:
        from .._observe._progress import ProgressBar

        bar = ProgressBar(live, in_flight=lambda: in_flight, console=err.console())
        bar.start()

    def on_progress(job: JobProgress) -> None:
        nonlocal in_flight
        live.total, live.done, live.ok, live.retries = job.total, job.done, job.ok, job.retries
        in_flight = job.in_flight
        if bar is not None:
            bar.refresh()

    try:
        shards = run_on_ray(
            options.source,
            options.output,
            options.config,
            address=address,
            shards=options.job.shards,
            resume=options.job.resume,
            template=options.url_template,
            csv_rows=options.csv_rows,
            on_progress=on_progress,
            warn=lambda message: err.print(f"fanfetch: {message}"),
        )
    finally:
        if bar is not None:
            bar.stop()
    stats = Stats()
    stats.started = live.started
    stats.ended = time.monotonic()
    for shard in shards:
        stats.add(shard)
    if not options.quiet:
        err.print(f"fanfetch: {len(shards)} shards written to {options.output}")
        for line in summary_lines(stats):
            err.print(line)
    if options.summary_json:
        _write_summary(options.summary_json, stats)
    return EXIT_OK if stats.failed == 0 else EXIT_FAILED


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _small_enough_to_count(source: str) -> bool:
    try:
        return source != "-" and os.path.getsize(source) < _COUNT_LIMIT_BYTES
    except OSError:
        return False


def _write_summary(path: str, stats: Stats, **more: Any) -> None:
    figures = {**stats.as_dict(), **more}
    try:
        with open(path, "wb") as f:
            f.write(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        raise FanfetchError(f"cannot write the summary to {path!r}: {exc.strerror}") from exc


class _Stderr:
    """Messages to stderr: through rich while its progress bar is live, else plain writes
    (so a run whose stderr is not a terminal never imports rich)."""

    def __init__(self, *, rich: bool) -> None:
        self._rich = rich
        self._console: Console | None = None

    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        return self._console

    def print(self, message: str) -> None:
        message = printable(message)  # a server's text never reaches the terminal as a command
        if self._rich:
            self.console().print(message, markup=False)
        else:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()


def _shows_progress(options: RunOptions) -> bool:
    """--progress/--no-progress as given, else with --dashboard or when stderr is a terminal;
    never with -q."""
    wanted = (
        (options.dashboard or _stderr_is_terminal())
        if options.progress is None
        else options.progress
    )
    return wanted and not options.quiet


def _stderr_is_terminal() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (OSError, ValueError):
        return False


def _compare_with_serial(stats: Stats, console: _Stderr, output: str, call_ms: float) -> None:
    """The demo's last word: this run's wall time against one call at a time."""
    serial = stats.done * call_ms / 1000.0
    wall = stats.wall
    if wall > 0 and serial > 0:
        console.print(
            f"One call at a time, these {stats.done:,} calls would take at least {serial:,.0f} s "
            f"({call_ms:g} ms each, no retries); fanfetch took {wall:,.1f} s, "
            f"{serial / wall:,.0f}x faster, waiting out every Retry-After as asked. "
            f"Records: {output}"
        )


async def run_graph_job(options: RunOptions, job: JobFile) -> int:
    """Run a job file's steps into the folder ``options.output``; return the exit status."""
    from .._engine._graph import Graph

    err = _Stderr(rich=_shows_progress(options))
    stats = Stats()
    spec = options.job
    assert spec.output is not None
    graph = Graph(job, options.config, spec.output, stats=stats, resume=spec.resume,
                  redo_failed=spec.redo_failed,
                  warn=lambda message: err.print(f"fanfetch: {message}"))  # fmt: skip
    if spec.resume and not options.quiet:
        err.print(f"fanfetch: resuming: {graph.already:,} records already written, "
                  f"in {sum(1 for r in graph.steps.values() if r.recorded)} of "
                  f"{len(graph.steps)} steps")  # fmt: skip
    received: list[int] = []

    def show(tg: asyncio.TaskGroup, done: asyncio.Event) -> None:
        _show_progress(tg, options, graph, err, done)

    try:
        metrics = _metrics(options, graph, stats)
    except BaseException:
        await graph.aclose()
        raise
    try:
        failed = await _supervised(options, graph, err, received, graph.run, show)
    finally:
        if metrics is not None:
            metrics.close()
    if failed is not None:
        err.print(f"fanfetch: error: {failed}; the run stopped, records so far are whole")
        return EXIT_FAILED
    _guarded(stats, graph.engine)
    counts = graph.counts
    if not options.quiet:
        for line in summary_lines(stats):
            err.print(line)
        for name, step in counts.items():
            dup = f", {step.duplicates:,} duplicates skipped" if step.duplicates else ""
            err.print(f"  step {name}: {step.records:,} records, {step.ok:,} ok, "
                      f"{step.failed:,} failed{dup}")  # fmt: skip
    if options.summary_json:
        _write_summary(options.summary_json, stats,
                       steps={n: c.as_dict() for n, c in counts.items()})  # fmt: skip
    return _exit_status(stats, received)
