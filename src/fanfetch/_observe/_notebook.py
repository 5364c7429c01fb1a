"""Progress in Jupyter: one output that ``fanfetch.run`` updates in place, then the summary.

The display is updated from the thread that called ``run`` (the notebook's own), a few times
a second, from the counters ``Stats`` keeps on the engine's thread; it is IPython's
``update_display_data``, which every Jupyter front end (and nbclient) understands, with a
plain-text form for the rest. No widget library is needed.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any

from .._core._types import Clock
from ._summary import Stats, chains_done, kinds, summary_rows

__all__ = ["NotebookProgress", "in_notebook"]


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where progress is then shown by default)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class NotebookProgress:
    """A progress bar and counts shown as one output, redrawn at most every ``every``
    seconds; ``finish`` draws the last state and the summary as a table."""

    def __init__(self, stats: Stats, *, every: float = 0.25, clock: Clock = time.monotonic):
        from IPython.display import display

        self._stats = stats
        self._every = every
        self._clock = clock
        self._next = 0.0
        self._display: Any = display
        self._handle: Any = display(self._bundle(), raw=True, display_id=True)  # type: ignore[no-untyped-call]

    @property
    def every(self) -> float:
        return self._every

    def refresh(self) -> None:
        """Redraw, if the last time was ``every`` seconds ago."""
        now = self._clock()
        if now >= self._next:
            self._next = now + self._every
            self._handle.update(self._bundle(), raw=True)

    def finish(self) -> None:
        self._handle.update(self._bundle(), raw=True)
        rows = summary_rows(self._stats)
        head = "Summary (interrupted)" if self._stats.interrupted else "Summary"
        cells = "".join(
            f'<tr><th style="text-align:left">{html.escape(k)}</th>'
            f'<td style="text-align:left">{html.escape(v)}</td></tr>'
            for k, v in rows
        )
        text = "\n".join([head] + [f"  {k:<10} {v}" for k, v in rows])
        table = f'<table class="fanfetch-summary"><caption>{head}</caption>{cells}</table>'
        self._display({"text/html": table, "text/plain": text}, raw=True)

    def _bundle(self) -> dict[str, str]:
        stats = self._stats
        done, total = stats.done, stats.total
        wall = stats.wall
        rate = done / wall if wall > 0 else 0.0
        of = f"{done:,}/{total:,} ({100 * done / total:.0f}%)" if total else f"{done:,}"
        chains = f"  {chains_done(stats)}" if stats.paginated else ""
        line = f"fanfetch {of}{chains}  {rate:,.0f}/s  {kinds(stats)}  retries {stats.retries:,}"
        bar = (
            f'<progress value="{done}" max="{total}" style="width:40%"></progress> '
            if total
            else ""
        )
        return {
            "text/html": f'<div class="fanfetch-progress">{bar}<code>{html.escape(line)}</code>'
            "</div>",
            "text/plain": line,
        }

    def __repr__(self) -> str:
        return f"<NotebookProgress done={self._stats.done}>"
