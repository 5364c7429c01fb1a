"""The progress bar on stderr: it reads ``Stats`` a few times a second, not on every result.

Per-result work stays in ``Stats`` (a few integer increments); rendering happens on a timer,
so a run at ten thousand requests a second pays for ten refreshes a second, not ten thousand.
"""

from __future__ import annotations

import asyncio
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

from ._summary import Stats

__all__ = ["ProgressBar"]


def kinds(stats: Stats) -> str:
    """What the finished requests came to, by kind: ``2xx 980  4xx 3  429 2  5xx 5
    timeout 4``. The ok ones, the final statuses that failed by class (429 apart: it says the
    API wants less), then every other error by type; each request counted once, kinds with
    none left out."""
    classes = {"2xx": stats.ok, "4xx": 0, "429": 0, "5xx": 0}
    for status, n in stats.statuses.items():
        if status == 429:
            classes["429"] += n
        elif 400 <= status < 500:
            classes["4xx"] += n
        elif status >= 500:
            classes["5xx"] += n
    others = {kind: n for kind, n in stats.errors.items() if n and kind != "http_status"}
    parts = [f"{name} {n:,}" for name, n in classes.items() if n]
    parts += [f"{kind} {n:,}" for kind, n in sorted(others.items())]
    told = sum(classes.values()) - stats.ok + sum(others.values())
    if stats.failed > told:  # failures known only as a count (a cluster's shards report so)
        parts.append(f"failed {stats.failed - told:,}")
    return "  ".join(parts) or "-"


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
            kinds=kinds(stats),
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
            while not done.is_set():
                self.refresh()
                try:
                    await asyncio.wait_for(done.wait(), self._every)
                except TimeoutError:
                    pass
            self.refresh()
        finally:
            self.stop()

    def __repr__(self) -> str:
        return f"<ProgressBar done={self._stats.done} every={self._every}s>"
