"""The progress bar, rendered into an in-memory terminal on a clock the test moves."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from fanfetch import Request, Result
from fanfetch._core._events import Finished, Retrying, RunStarted
from fanfetch._core._exceptions import RequestTimeout
from fanfetch._observe._progress import ProgressBar
from fanfetch._observe._summary import Stats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    return console, out


def _finish(stats: Stats, n: int, *, ok: bool = True) -> None:
    for i in range(n):
        request = Request(f"http://127.0.0.1/{i}", id=i)
        error = None if ok else RequestTimeout("slow")
        stats(Finished(Result(request, status=200 if ok else None, error=error)))


def test_the_bar_shows_done_of_total_the_rate_in_flight_errors_and_retries():
    clock = Clock()
    stats = Stats(clock=clock)
    stats(RunStarted(10))
    stats.total = 10
    _finish(stats, 6)
    _finish(stats, 2, ok=False)
    stats(Retrying(Request("http://127.0.0.1/x"), 1, 0.5, "timeout"))
    clock.now += 4.0  # 8 done in 4 s
    console, out = _terminal()
    bar = ProgressBar(stats, in_flight=lambda: 3, console=console)
    bar.start()
    bar.refresh()
    bar.stop()
    screen = out.getvalue()
    assert "8/10" in screen and "80%" in screen
    assert "2/s" in screen  # 8 requests in 4 seconds
    assert "in flight 3" in screen and "retries 1" in screen
    assert "2xx 6  timeout 2" in screen  # by kind, not one count of errors


def test_the_bar_counts_each_request_once_by_kind():
    from fanfetch._core._models import status_error
    from fanfetch._observe._summary import kinds

    stats = Stats(clock=Clock())
    request = Request("http://127.0.0.1/")
    for status in (200, 200, 404, 429, 503, 500):
        error = None if status == 200 else status_error(status, None)
        stats(Finished(Result(request, status=status, error=error)))
    stats(Finished(Result(request, error=RequestTimeout("slow"))))
    assert kinds(stats) == "2xx 2  4xx 1  429 1  5xx 2  timeout 1"
    assert kinds(Stats(clock=Clock())) == "-"
    counted = Stats(clock=Clock())  # a cluster's bar knows only how many, not which
    counted.done, counted.ok = 10, 7
    assert kinds(counted) == "2xx 7  failed 3"


async def test_the_bar_redraws_as_the_run_goes_and_draws_its_end_once_done():
    clock = Clock()
    stats = Stats(clock=clock)
    stats(RunStarted(None))
    console, out = _terminal()
    bar = ProgressBar(stats, in_flight=lambda: 0, console=console, every=60.0)
    done = asyncio.Event()
    running = asyncio.ensure_future(bar.run(done))
    await asyncio.sleep(0)  # the bar's first frame: nothing done yet
    assert "0/?" in out.getvalue()
    _finish(stats, 5)
    clock.now += 1.0
    done.set()  # the bar does not wait out its 60 s: the end is drawn at once
    await asyncio.wait_for(running, 5)
    last = out.getvalue().rsplit("0/?", 1)[-1]
    assert "5/?" in last and "5/s" in last and "2xx 5" in last
