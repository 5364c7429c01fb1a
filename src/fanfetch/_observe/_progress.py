"""The progress bar on stderr: it reads ``Stats`` a few times a second, not on every result.

Per-result work stays in ``Stats`` (a few integer increments); rendering happens on a timer,
so a run at ten thousand requests a second pays for ten refreshes a second, not ten thousand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from .._core._types import printable
from ._summary import Stats, chains_done, kinds, summary_lines

__all__ = ["CalledProgressBar", "ProgressBar", "redraw_until"]


async def redraw_until(done: asyncio.Event, every: float, draw: Callable[[], None]) -> None:
    """Call ``draw`` every ``every`` seconds until ``done`` is set, then once more (the final
    state)."""
    while not done.is_set():
        draw()
        try:
            await asyncio.wait_for(done.wait(), every)
        except TimeoutError:
            pass
    draw()


class ProgressBar:
    """done/total, rate, in flight, what the requests came to by kind, retries and ETA,
    refreshed every ``every`` seconds."""

    def __init__(
        self,
        stats: Stats,
        *,
        in_flight: Callable[[], int],
        console: Console,
        every: float = 0.1,
    ) -> None:
        self._stats = stats
        self._in_flight = in_flight
        self._every = every
        self._progress = Progress(
            TextColumn("[bold]fanfetch"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]:>7,.0f}/s"),
            TextColumn("in flight {task.fields[in_flight]:,}"),
            TextColumn("{task.fields[kinds]}"),
            TextColumn("[yellow]retries {task.fields[retries]:,}"),
            TimeRemainingColumn(),
            console=console,
            auto_refresh=False,
            transient=False,
        )
        self._task = self._progress.add_task(
            "run", total=None, rate=0.0, in_flight=0, kinds="-", retries=0
        )

    def refresh(self) -> None:
        stats = self._stats
        wall = stats.wall
        self._progress.update(
            self._task,
            total=stats.total,
            completed=stats.done,
            rate=stats.done / wall if wall > 0 else 0.0,
            in_flight=self._in_flight(),
            kinds=" ".join(part for part in (kinds(stats), chains_done(stats)) if part),
            retries=stats.retries,
        )
        self._progress.refresh()

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    async def run(self, done: asyncio.Event) -> None:
        """Refresh until ``done`` is set, then draw the final state once and stop."""
        self.start()
        try:
            await redraw_until(done, self._every, self.refresh)
        finally:
            self.stop()

    def __repr__(self) -> str:
        return f"<ProgressBar done={self._stats.done} every={self._every}s>"


class CalledProgressBar:
    """The progress bar for the blocking API (``fanfetch.run(..., progress=True)`` outside a
    notebook): redrawn by the calling thread's ``refresh`` at most every ``every`` seconds, and
    ``finish`` prints the summary under it."""

    def __init__(
        self, stats: Stats, *, in_flight: Callable[[], int], console: Console | None = None,
        every: float = 0.1,
    ) -> None:  # fmt: skip
        self._console = console or Console(stderr=True, highlight=False)
        self._bar = ProgressBar(stats, in_flight=in_flight, console=self._console, every=every)
        self._stats = stats
        self.every = every
        self._next = 0.0
        self._bar.start()

    def refresh(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every
            self._bar.refresh()

    def finish(self) -> None:
        self._bar.refresh()
        self._bar.stop()
        for line in summary_lines(self._stats):
            self._console.print(printable(line), markup=False)
