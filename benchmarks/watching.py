"""What watching a run costs: the progress bar, and --dashboard with --metrics-port scraped
every second, against no display at all, at as many requests a second as one process makes
here (about 8,000: the costs are per redraw and per scrape, so the faster the run, the larger
their share).

Each run is a whole ``fanfetch run`` process against nginx on loopback (run.py's fast
server); its stderr is a pseudo-terminal (120x40, drained by a thread) so the bar and the
dashboard really draw. CPU is the process's own user + system time (``wait4``), per request;
the configurations take turns. Then, as a steadier figure, the CPU time of one dashboard
redraw and one scrape, timed in this process on a run's worth of counters.

    python benchmarks/watching.py [--requests 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import PY, fast_server, free_port, write_urls

CONFIGS = {
    "no display": ["--no-progress"],
    "progress bar": ["--progress"],
    "dashboard + metrics": ["--dashboard", "--metrics-port", "{port}"],
}


def one_run(urls: str, n: int, flags: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run."""
    port = free_port()
    flags = [f.replace("{port}", str(port)) for f in flags]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    drained = threading.Thread(target=_drain, args=(master,), daemon=True)
    drained.start()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [PY, "-m", "fanfetch", "run", urls, "-o", os.path.join(tmp, "out.jsonl"),
             "-c", "100", *flags],
            stdout=subprocess.DEVNULL, stderr=slave,
            env={**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"},
        )  # fmt: skip
        os.close(slave)
        stop = threading.Event()
        if "--metrics-port" in flags:  # Prometheus would scrape every 15 s; this, every second
            threading.Thread(target=_scrape, args=(port, stop), daemon=True).start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        stop.set()
        with open(os.path.join(tmp, "out.jsonl"), "rb") as f:
            lines = sum(1 for _ in f)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0 and lines == n, (status, lines)
    return usage.ru_utime + usage.ru_stime, wall


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


def _scrape(port: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
        except OSError:
            pass  # not listening yet, or already gone


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {name: [] for name in CONFIGS}
    walls: dict[str, list[float]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp, fast_server() as (base, server):
        urls = write_urls(os.path.join(tmp, "urls.txt"), base, args.requests)
        print(f"{server}; {args.requests:,} requests, c=100", file=sys.stderr)
        for _ in range(args.repeats):
            for name, flags in CONFIGS.items():
                used, wall = one_run(urls, args.requests, flags)
                cpu[name].append(used / args.requests * 1e6)
                walls[name].append(wall)
                print(f"  {name:>20}: {cpu[name][-1]:5.1f} us/request, {wall:5.2f} s",
                      file=sys.stderr)  # fmt: skip
    redraw_ms, scrape_ms = per_redraw()
    base_us = statistics.median(cpu["no display"])
    print("| display | CPU µs per request (median, min-max) | vs none | wall s (median) |")
    print("|---|---:|---:|---:|")
    for name in CONFIGS:
        med = statistics.median(cpu[name])
        low, high = min(cpu[name]), max(cpu[name])
        change = 100 * (med / base_us - 1)
        wall = statistics.median(walls[name])
        print(f"| {name} | {med:.1f} ({low:.1f}-{high:.1f}) | {change:+.1f}% | {wall:.2f} |")
    rate = args.requests / statistics.median(walls["no display"])
    share = (4 * redraw_ms + scrape_ms) / 1000  # of one core, each second
    print(f"\none dashboard redraw: {redraw_ms:.2f} ms of CPU; one scrape: {scrape_ms:.2f} ms; "
          f"four redraws and a scrape a second at {rate:,.0f} requests/s: "
          f"{share * 1e6 / rate:.2f} us per request")  # fmt: skip


def per_redraw(rounds: int = 200) -> tuple[float, float]:
    """CPU ms of one dashboard redraw (into a terminal-sized buffer) and of one scrape, on
    counters like a 100,000-request run's."""
    import io
    import random

    from prometheus_client import CollectorRegistry, generate_latest
    from rich.console import Console

    from fanfetch._engine._limits import HostGate
    from fanfetch._observe._dashboard import Dashboard
    from fanfetch._observe._metrics import _Collector
    from fanfetch._observe._summary import Stats

    stats = Stats()
    stats.total = 1_000_000
    rng = random.Random(7)
    for i in range(100_000):
        status = 200 if i % 50 else rng.choice((429, 500, 503, 404))
        stats.count(status == 200, status, None if status == 200 else "http_status", 1,
                    rng.lognormvariate(3, 0.6))  # fmt: skip
    gate = HostGate(8)
    for h in range(20):
        for _ in range(h % 8):
            gate.try_acquire(f"127.0.0.{h}:8080")
    gate.throttled("127.0.0.3:8080", 5.0, "HTTP 429")
    console = Console(file=io.StringIO(), width=120, height=40, force_terminal=True)
    view = Dashboard(stats, in_flight=lambda: 100, hosts=gate.busiest, console=console)
    view.sample()
    start = time.process_time()
    for _ in range(rounds):
        view.sample()
        console.print(view.render())
        console.file = io.StringIO()
    redraw = (time.process_time() - start) / rounds * 1000
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(stats, {"fanfetch_in_flight": ("in flight", lambda: 100)}))
    start = time.process_time()
    for _ in range(rounds):
        generate_latest(registry)
    scrape = (time.process_time() - start) / rounds * 1000
    return redraw, scrape


if __name__ == "__main__":
    main()
