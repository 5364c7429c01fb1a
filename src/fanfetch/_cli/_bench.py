"""``fanfetch bench``: the lesson people come to this tool with, measured on their own machine.

For I/O-bound calls: one at a time, threads, processes, asyncio's naive gather and fanfetch,
against the embedded mock API (its own process, on loopback). For a CPU-bound step: threads
do not help (the GIL lets one thread run Python at a time) while processes do. Under a
minute; a table, and a chart when matplotlib is installed.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import platform
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import orjson

__all__ = ["BenchRow", "run_bench"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class BenchRow:
    group: str
    name: str
    work: int
    seconds: float
    why: str

    @property
    def rate(self) -> float:
        return self.work / self.seconds if self.seconds > 0 else 0.0


_local = threading.local()


def _get(url: str) -> bool:
    """One GET over a kept-alive http.client connection (one per thread or process)."""
    parts = urlsplit(url)
    conn = getattr(_local, "conn", None)
    if conn is None or _local.pid != os.getpid():  # a forked child must not share our socket
        _local.pid = os.getpid()
        host = parts.hostname or "127.0.0.1"
        conn = _local.conn = http.client.HTTPConnection(host, parts.port, timeout=30)
    conn.request("GET", parts.path)
    response = conn.getresponse()
    body = response.read()
    orjson.loads(body)
    return response.status == 200


def _get_many(urls: list[str]) -> int:
    return sum(_get(u) for u in urls)


def burn(units: int) -> int:
    """Pure-Python CPU work: what parsing or cleaning a big body costs."""
    total = 0
    for i in range(units * 100_000):
        total += i * i % 7
    return total


def _in_threads(function: Callable[[_T], object], items: list[_T], threads: int) -> list[object]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(function, items))


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _io_rows(base: str, n: int, n_serial: int, concurrency: int) -> list[BenchRow]:
    urls = [f"{base}/items/{i}" for i in range(n)]
    cores = os.cpu_count() or 1
    rows = [
        BenchRow(
            "I/O-bound",
            "one at a time",
            n_serial,
            _timed(lambda: _get_many(urls[:n_serial])),
            "each call waits for the last: the time is the sum of all the latencies",
        ),
        BenchRow(
            "I/O-bound",
            f"{concurrency} threads",
            n,
            _timed(lambda: _in_threads(_get, urls, concurrency)),
            "waiting releases the GIL, so threads overlap waits; each costs a stack",
        ),
    ]
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(burn, [0] * cores))  # start the processes before timing
        chunks = [urls[i::cores] for i in range(cores)]
        rows.append(
            BenchRow(
                "I/O-bound",
                f"{cores} processes",
                n,
                _timed(lambda: sum(pool.map(_get_many, chunks))),
                "one call at a time per process: as many in flight as there are processes",
            )
        )

    async def naive() -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:

            async def one(url: str) -> None:
                async with session.get(url) as response:
                    orjson.loads(await response.read())

            await asyncio.gather(*(one(u) for u in urls))

    rows.append(
        BenchRow(
            "I/O-bound",
            "asyncio: a task per URL, gather",
            n,
            _timed(lambda: asyncio.run(naive())),
            "all at once: fast here, but every task sits in memory and no limit holds",
        )
    )
    from .._sync import run as fanfetch_run

    rows.append(
        BenchRow(
            "I/O-bound",
            f"fanfetch (concurrency {concurrency})",
            n,
            _timed(lambda: fanfetch_run(urls, concurrency=concurrency)),
            "a fixed pool on one event loop: the overlap of asyncio, with memory flat and limits",
        )
    )
    return rows


def _cpu_rows(tasks: int, units: int) -> list[BenchRow]:
    cores = os.cpu_count() or 1
    work = [units] * tasks
    rows = [
        BenchRow(
            "CPU-bound",
            "one at a time",
            tasks,
            _timed(lambda: [burn(u) for u in work]),
            "one core busy",
        ),
        BenchRow(
            "CPU-bound",
            f"{cores} threads",
            tasks,
            _timed(lambda: _in_threads(burn, work, cores)),
            "no faster: the GIL lets one thread run Python at a time",
        ),
    ]
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(burn, [0] * cores))  # start the processes before timing
        rows.append(
            BenchRow(
                "CPU-bound",
                f"{cores} processes",
                tasks,
                _timed(lambda: list(pool.map(burn, work))),
                "each process has its own GIL: as many cores as there are busy",
            )
        )
    return rows


def run_bench(*, quick: bool = False, chart: str | None = None) -> list[BenchRow]:
    """Run the lesson and print it; return the rows."""
    from .._mockapi import mock_api_process

    latency_ms = 20
    with mock_api_process("--latency-ms", str(latency_ms)) as base:
        n, n_serial = (200, 40) if quick else (1000, 200)
        rows = _io_rows(base, n, n_serial, concurrency=100)
    rows += _cpu_rows(tasks=8 if not quick else 4, units=10 if not quick else 3)
    _print(rows, latency_ms)
    if chart:
        _chart(rows, chart)
    return rows


def _print(rows: list[BenchRow], latency_ms: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"fanfetch bench on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; I/O-bound calls: the mock API on loopback, {latency_ms} "
        "ms each"
    )
    for group in ("I/O-bound", "CPU-bound"):
        table = Table(title=group, title_justify="left")
        table.add_column("way (and why)", ratio=1)
        for column in ("calls", "seconds", "per second", "speed-up"):
            table.add_column(column, justify="right", no_wrap=True)
        base = next(r for r in rows if r.group == group)
        for row in (r for r in rows if r.group == group):
            table.add_row(
                f"[bold]{row.name}[/]\n[dim]{row.why}[/]",
                f"{row.work:,}",
                f"{row.seconds:.2f}",
                f"{row.rate:,.0f}",
                f"{row.rate / base.rate:,.1f}x",
            )
        console.print(table)


def _chart(rows: list[BenchRow], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: matplotlib is not installed (pip install 'fanfetch[bench]')")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, group in zip(axes, ("I/O-bound", "CPU-bound"), strict=True):
        chosen = [r for r in rows if r.group == group]
        base = chosen[0].rate
        ax.barh([r.name for r in chosen], [r.rate / base for r in chosen], color="tab:blue")
        ax.set_title(f"{group}: speed-up over one at a time")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"chart: {path}")
