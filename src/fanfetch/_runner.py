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
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from ._events import Finished, RunEnded, RunStarted
from ._exceptions import FanfetchError, InputError, WorkerDied
from ._formats import format_for, open_output
from ._input import Duplicates, aiter_items, count_requests, open_source
from ._job import EXIT_FAILED, EXIT_OK, GRACE_SECONDS, RunOptions, signal_exit_status
from ._models import Result
from ._output import OrderedChains, OrderedSink, OutputError, RecordWriter
from ._paginate import ChainState, resume_from
from ._records import encode_result
from ._reorder import Reorder
from ._resume import IdSet
from ._scheduler import Engine
from ._summary import Stats, summary_lines
from ._types import Item, printable

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["run_job"]

_COUNT_LIMIT_BYTES = 2 * 1024**3  # count lines for the progress total only below this size


async def run_job(options: RunOptions, *, announce: str | None = None, call_ms: float = 0.0) -> int:
    """Run one job; return the exit status (see ``_cli``)."""
    config = options.config
    show_progress = _shows_progress(options)
    err = _Stderr(rich=show_progress)
    source = open_source(options.source)
    record_format = format_for(options.output, options.format)
    done_ids: IdSet | None = None
    chains: dict[int, ChainState] = {}
    already = 0
    if options.resume and options.output:
        state, done_ids, chains = resume_from(
            record_format,
            options.output,
            paginated=config.paginate is not None,
            redo_failed=options.redo_failed,
            warn=lambda message: err.print(f"fanfetch: {message}"),
        )
        already = state.records
        if not options.quiet:
            redo = (
                f", {state.dropped_failed:,} failed ones to do again" if options.redo_failed else ""
            )
            err.print(f"fanfetch: resuming: {already:,} requests already recorded{redo}")
    output = open_output(record_format, options.output, config, append=options.resume)
    stats = Stats()
    metrics = None
    try:
        engine = Engine(config, listeners=[stats], chains=chains)
        if options.metrics_port is not None:
            from ._metrics import MetricsServer

            metrics = MetricsServer(
                stats, port=options.metrics_port, host=options.metrics_host,
                in_flight=lambda: engine.in_flight, paused_hosts=engine.paused_hosts,
                queued=engine.queued,
            )  # fmt: skip
    except BaseException:
        output.close()
        raise
    writer = RecordWriter(output)
    sink = writer.put
    if options.ordered and config.paginate is not None:
        paged = OrderedChains(writer.put, window=4 * config.limits.concurrency,
                              pages=16 * config.limits.concurrency)  # fmt: skip
        engine.chain_ended = paged.chain_ended
        reorder: OrderedSink | OrderedChains | None = paged
        sink = paged.put
    elif options.ordered:
        reorder = OrderedSink(writer.put, window=4 * config.limits.concurrency)
        sink = reorder.put
    else:
        reorder = None
    received: list[int] = []

    work: list[asyncio.Future[None]] = []  # with --workers: the task that runs them

    def on_signal(signum: int) -> None:
        if work:  # the workers stop themselves, with their own grace period
            if not received:
                err.print("\nfanfetch: stopping: the workers finish what is in flight...")
            received.append(signum)
            work[0].cancel()  # a second time: the workers cancel what is in flight
            return
        if received:  # a second Ctrl-C: stop waiting for the grace period
            engine.stop(grace=0)
            return
        received.append(signum)
        err.print(
            f"\nfanfetch: stopping: finishing requests in flight (up to {GRACE_SECONDS:g} s)..."
        )
        engine.stop(grace=GRACE_SECONDS)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    def dump_state() -> None:
        """SIGUSR1: say where every task is waiting (for a run that seems stuck)."""
        sys.stderr.write(f"fanfetch: {engine!r} {engine._limiter!r} {stats!r}\n")
        for task in asyncio.all_tasks():
            task.print_stack(limit=6, file=sys.stderr)
        sys.stderr.flush()

    loop.add_signal_handler(signal.SIGUSR1, dump_state)
    done = asyncio.Event()
    output_failed: BaseException | None = None
    duplicates = Duplicates()
    parser = None
    if options.url_template is not None:
        from ._template import RowParser

        parser = RowParser(
            options.url_template, csv_rows=options.csv_rows, done=done_ids, duplicates=duplicates
        )
    items = aiter_items(source, done=done_ids, duplicates=duplicates, parser=parser)
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(writer.keep_syncing(done))
            if show_progress and options.dashboard:
                from ._dashboard import Dashboard

                view = Dashboard(stats, in_flight=lambda: engine.in_flight, console=err.console(),
                                 hosts=engine.busiest_hosts, queued=engine.queued)  # fmt: skip
                tg.create_task(view.run(done))
            elif show_progress:
                from ._progress import ProgressBar

                bar = ProgressBar(stats, in_flight=lambda: engine.in_flight, console=err.console())
                tg.create_task(bar.run(done))
            if show_progress and _small_enough_to_count(options.source):
                counting = tg.create_task(asyncio.to_thread(count_requests, options.source))
                counting.add_done_callback(
                    lambda t: setattr(stats, "total", max(0, t.result() or 0) - already)
                )
            try:
                async with contextlib.aclosing(items):
                    if options.workers > 1:
                        await _run_workers(options, items, writer, stats, work)
                    else:
                        await engine.run(items, sink)
                        if reorder is not None and not engine.interrupted:
                            reorder.check_empty()
            finally:
                done.set()
    except* OutputError:
        output_failed = writer.failed  # the writer is where every OutputError comes from
    except* WorkerDied as group:
        output_failed = _first_leaf(group)
    except* InputError as group:
        raise _first_leaf(group) from None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
        await engine.aclose()
        if metrics is not None:
            metrics.close()
        try:
            writer.close()  # a format that finishes its file at the end does it here
        except OutputError:
            output_failed = output_failed or writer.failed
        if source is not sys.stdin.buffer:
            source.close()

    if (warning := duplicates.message()) is not None:
        err.print(f"fanfetch: {warning}")
    if engine.chains_capped:
        err.print(f"fanfetch: warning: {engine.chains_capped:,} chain(s) stopped at --max-pages "
                  f"{config.max_pages:,} while their last page named another")  # fmt: skip
    if isinstance(output_failed, WorkerDied):
        err.print(f"fanfetch: error: {output_failed}")
        return EXIT_FAILED
    if output_failed is not None:
        err.print(f"fanfetch: error: {output_failed}; the run stopped, records so far are whole")
        return EXIT_FAILED
    if not options.quiet:
        for line in summary_lines(stats):
            err.print(line)
        if announce:
            _compare_with_serial(stats, err, announce, call_ms)
    if options.summary_json:
        _write_summary(options.summary_json, stats)
    if received:
        return signal_exit_status(received[0])
    return EXIT_OK if stats.failed == 0 else EXIT_FAILED


def run_cluster_job(options: RunOptions, *, address: str | None) -> int:
    """Run one job on Ray (``_cluster``): a live progress bar fed by the shards' reports,
    and one summary of the whole job at the end."""
    from ._scale._cluster import JobProgress, run_on_ray

    assert options.output is not None
    show_progress = _shows_progress(options)
    err = _Stderr(rich=show_progress)
    live = Stats()
    in_flight = 0
    bar = None
    if show_progress:
        from ._progress import ProgressBar

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
            shards=options.shards,
            resume=options.resume,
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


async def _run_workers(
    options: RunOptions,
    items: AsyncIterator[Item],
    writer: RecordWriter,
    stats: Stats,
    work: list[asyncio.Future[None]],
) -> None:
    """The same job spread over ``options.workers`` processes (see ``_workers``)."""
    from ._scale._workers import BATCH, WorkerRecord, run_workers

    ordered = None
    if options.ordered:  # wide enough for every worker to hold a few batches
        window = max(4 * options.config.limits.concurrency, 4 * BATCH * options.workers)
        ordered = Reorder[bytes](window=window)

    async def write(records: list[WorkerRecord], counts: dict[str, Any]) -> None:
        if ordered is None:
            writer.write_lines([line for _, line in records])
        else:
            for seq, line in records:
                ordered.add(seq, line)
            if due := ordered.take_due():
                writer.write_lines(due)
        stats.add(counts)  # what the worker's own Stats counted, from its engine's events

    async def write_invalid(result: Result) -> None:
        if ordered is None:
            await writer.put(result)
        else:
            line = encode_result(result, include_headers=options.config.include_headers)
            ordered.add(result.request.seq, line)
            if due := ordered.take_due():
                writer.write_lines(due)
        stats(Finished(result))

    stats(RunStarted(None))
    work.append(
        asyncio.ensure_future(
            run_workers(
                options.workers,
                options.config,
                items,
                write,
                write_invalid,
                ordered,
                warn=_warn,
            )
        )
    )
    try:
        await work[0]
        if ordered is not None:
            ordered.check_empty()
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():  # type: ignore[union-attr]
            raise  # we are being cancelled ourselves, not only the workers by a signal
    finally:
        stats(RunEnded(work[0].cancelled()))


def _warn(message: str) -> None:
    sys.stderr.write(f"fanfetch: {message}\n")


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _small_enough_to_count(source: str) -> bool:
    try:
        return source != "-" and os.path.getsize(source) < _COUNT_LIMIT_BYTES
    except OSError:
        return False


def _write_summary(path: str, stats: Stats) -> None:
    try:
        with open(path, "wb") as f:
            f.write(orjson.dumps(stats.as_dict(), option=orjson.OPT_INDENT_2))
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
