"""``--dashboard``: a live view of the run in the terminal, drawn from counters on a timer.

Like the progress bar it costs the run nothing per request: ``Stats`` counts as it always
does, and a few times a second this reads it (and the busiest hosts' state) and draws. Once a
second it keeps a sample (requests done, a copy of the latency buckets) for the rate's
sparkline and the latency of the last ten seconds. A terminal too small for the view gets the
plain progress line instead.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import Callable

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .._core._types import Clock, HostView, printable
from ._progress import redraw_until
from ._summary import LatencyHistogram, Stats, chains_done, kind_counts, kinds

__all__ = ["Dashboard"]

MIN_WIDTH, MIN_HEIGHT = 80, 24
LATENCY_WIDTH = 46  # its columns: a name, p50, p90, p99, max; its bars and their counts
MIX_WIDTH = 35  # a kind, its count (to 100 million), its share
_HOST_COLUMNS = 19  # in flight, waiting, their spaces
_WHY = 36  # the window, and why a host rests ("for 1.2 s: 429 Retry-After")
_NARROW = 7  # what limits a host, when there is no room for the above (rests "12s", "1940/s")
"""Below this the view does not fit: the progress line is drawn instead."""

_SPARKS = "▁▂▃▄▅▆▇█"
_RECENT = 10  # seconds of "recent" latency


def sparkline(values: list[float], width: int, height: int = 1) -> list[str]:
    """The last ``width`` values as columns of block characters ``height`` rows tall, scaled
    to their maximum (eighths of a row; a value above zero shows at least one)."""
    values = values[-width:]
    top = max(values, default=0.0)
    levels = [math.ceil(v / top * 8 * height) if top > 0 else 0 for v in values]
    rows = []
    for row in range(height - 1, -1, -1):
        cells = (min(8, level - 8 * row) for level in levels)
        rows.append("".join(_SPARKS[c - 1] if c > 0 else " " for c in cells))
    return rows


def _quantiles(buckets: Counter[int], count: int, biggest: float) -> list[float | None]:
    lat = LatencyHistogram()
    lat.buckets, lat.count, lat.max = buckets, count, biggest
    return [lat.quantile(q) for q in (0.5, 0.9, 0.99)] + [biggest if count else None]


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


class Dashboard:
    """The run's live view: progress, rate over time, latency, the mix, the busiest hosts."""

    def __init__(
        self,
        stats: Stats,
        *,
        in_flight: Callable[[], int],
        hosts: Callable[[int], list[HostView]],
        queued: Callable[[], int] = lambda: 0,
        console: Console,
        clock: Clock = time.monotonic,
        every: float = 0.25,
    ) -> None:
        self._stats = stats
        self._in_flight = in_flight
        self._hosts = hosts
        self._queued = queued
        self._console = console
        self._clock = clock
        self._every = every
        self._rates: deque[float] = deque(maxlen=240)  # requests/s, one per second
        self._marks: deque[tuple[float, int, Counter[int], int]] = deque(maxlen=_RECENT + 1)
        self._next_sample = clock()

    def sample(self) -> None:
        """Keep this second's figures (called on every refresh; acts once a second)."""
        now = self._clock()
        if now < self._next_sample:
            return
        stats = self._stats
        lat = stats.latency
        if self._marks:
            then, done, _, _ = self._marks[-1]
            if now > then:
                self._rates.append((stats.done - done) / (now - then))
        self._marks.append((now, stats.done, Counter(lat.buckets), lat.count))
        self._next_sample = now + 1.0

    def fits(self) -> bool:
        width, height = self._console.size
        return width >= MIN_WIDTH and height >= MIN_HEIGHT

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.render()

    def render(self) -> RenderableType:
        """The view as it is now (the progress line alone when the terminal is too small)."""
        line = self._line()
        if not self.fits():
            return line
        width = self._console.size.width
        # Fixed widths (rich then need not measure what the panels hold): the latency and
        # the mix panels get what their columns need, the rate and the hosts the rest.
        left = min(width - LATENCY_WIDTH, width * 3 // 5)
        top = Table.grid(padding=0)
        top.add_column(width=left)
        top.add_column(width=width - left)
        top.add_row(self._rate_panel(left - 4), self._latency_panel())
        left = MIX_WIDTH if width < 120 else max(MIX_WIDTH, width // 3)
        bottom = Table.grid(padding=0)
        bottom.add_column(width=left)
        bottom.add_column(width=width - left)
        bottom.add_row(self._mix_panel(), self._hosts_panel(width - left - 4))
        return Group(line, top, bottom)

    def _line(self) -> Text:
        stats = self._stats
        wall = stats.wall
        rate = stats.done / wall if wall > 0 else 0.0
        total = stats.total
        done = f"{stats.done:,}/{total:,} {100 * stats.done / total:3.0f}%" if total else (
            f"{stats.done:,}"
        )  # fmt: skip
        eta = ""
        if total and rate > 0 and stats.done < total:
            eta = f"  eta {_duration((total - stats.done) / rate)}"
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("fanfetch ", style="bold")
        chains = f"  {chains_done(stats)}" if stats.paginated else ""
        text.append(f"{done}{chains}  {rate:,.0f}/s  in flight {self._in_flight():,}  ")
        text.append(f"queued {self._queued():,}  elapsed {_duration(wall)}{eta}  ")
        text.append(kinds(stats))
        text.append(f"  retries {stats.retries:,}", style="yellow")
        return text

    def _rate_panel(self, width: int) -> Panel:
        rates = list(self._rates)
        now = rates[-1] if rates else 0.0
        peak = max(rates, default=0.0)
        body = Text()
        for row in sparkline(rates, max(10, width), height=8):
            body.append(row + "\n", style="cyan")
        body.append(f"now {now:,.0f}/s   peak {peak:,.0f}/s   "
                    f"last {min(len(rates), max(10, width))} s")  # fmt: skip
        return Panel(body, title="requests per second", title_align="left")

    def _latency_panel(self) -> Panel:
        stats = self._stats
        lat = stats.latency
        rows = [("ms", ["p50", "p90", "p99", "max"])]
        rows.append(("all", [_ms(v) for v in _quantiles(lat.buckets, lat.count, lat.max)]))
        if len(self._marks) >= 2:
            _, _, old, old_count = self._marks[0]
            recent = Counter(lat.buckets)
            recent.subtract(old)
            recent = +recent
            count = lat.count - old_count
            top = max(recent, default=None)
            biggest = math.expm1((top + 1) * LatencyHistogram._GROWTH) if top is not None else 0
            values = _quantiles(recent, count, min(biggest, lat.max))
            rows.append((f"last {_RECENT} s", [_ms(v) for v in values]))
        # Plain text in columns, not a rich Table: a table costs a millisecond per redraw
        text = Text("\n".join(f"{name:>9}" + "".join(f"{v:>8}" for v in values)
                              for name, values in rows) + "\n\n")  # fmt: skip
        text.append_text(self._histogram(lat))
        return Panel(text, title="latency", title_align="left")

    def _histogram(self, lat: LatencyHistogram, rows: int = 6, width: int = 24) -> Text:
        """Every request's latency in ``rows`` log-spaced bands, as horizontal bars."""
        text = Text()
        if not lat.count:
            return text
        lo, hi = min(lat.buckets), max(lat.buckets)
        per = max(1, math.ceil((hi - lo + 1) / rows))
        bands: Counter[int] = Counter()
        for bucket, n in lat.buckets.items():
            bands[(bucket - lo) // per] += n
        most = max(bands.values())
        growth = LatencyHistogram._GROWTH
        for band in range((hi - lo) // per + 1):
            upper = math.expm1((lo + (band + 1) * per) * growth)
            n = bands.get(band, 0)
            bar = "█" * max(1 if n else 0, round(width * n / most))
            text.append(f"≤{_ms(upper):>7} ms ")
            text.append(f"{bar:<{width}}", style="blue")
            text.append(f" {n:,}\n")
        return text

    def _mix_panel(self) -> Panel:
        stats = self._stats
        text = Text()
        done = max(stats.done, 1)
        for name, n in kind_counts(stats):
            style = "green" if name == "2xx" else "magenta" if name == "429" else "red"
            text.append(f"{name:<12}", style=style)
            text.append(f"{n:>11,} {100 * n / done:6.1f}%\n")
        text.append(f"{'retries':<12}{stats.retries:>11,}")
        return Panel(text, title="status and errors", title_align="left")

    def _hosts_panel(self, inner: int, most: int = 8) -> Panel:
        """The busiest hosts in ``inner`` columns: a narrow panel keeps the host, in flight
        and waiting, and says only whether a host rests; a wide one its window, and why it
        rests or the pace it taught (``--rate auto``). A host is shortened in its name,
        never in its port."""
        views = self._hosts(most)
        full = inner >= 16 + _HOST_COLUMNS + _WHY  # room for the window and why it rests
        name_w = max(12, inner - _HOST_COLUMNS - (_WHY if full else _NARROW))
        head = f"{'host':<{name_w}} {'in flight':>9} {'waiting':>8}"
        text = Text(head + (f" {'window':>7}  throttled" if full else "  limit"),
                    style="bold", no_wrap=True, overflow="ellipsis")  # fmt: skip
        for view in views:
            host = fit_host(printable(view.host), name_w)
            text.append(f"\n{host:<{name_w}} {view.in_flight:>9,} {view.waiting:>8,}",
                        style="default")  # fmt: skip
            if not full:  # resting, or the pace it taught, or neither
                if view.resting > 0:
                    text.append(f" {view.resting:>5.0f}s", style="magenta")
                elif view.learned is not None:
                    text.append(f" {_per_second(view.learned):>6}", style="cyan")
                else:
                    text.append(f" {'-':>6}")
                continue
            window = "-" if view.window is None else f"{view.window:.1f}"
            text.append(f" {window:>7}  ", style="default")
            if view.resting > 0:
                text.append(f"for {view.resting:.1f} s: {printable(view.why)}", style="magenta")
            elif view.learned is not None:  # --rate auto: the pace its headers taught
                text.append(f"paced {view.learned:,.1f}/s", style="cyan")
                if view.throttles:
                    text.append(f", {view.throttles}x", style="dim")
            elif view.throttles:
                text.append(f"{view.throttles}x, last {printable(view.why)}", style="dim")
            else:
                text.append("-")
        if not views:
            text.append("\n(none busy)", style="default")
        return Panel(text, title="busiest hosts", title_align="left")

    async def run(self, done: asyncio.Event) -> None:
        """Draw every ``every`` seconds until ``done`` is set; leave the last view on screen."""
        with Live(self, console=self._console, auto_refresh=False, transient=False,
                  redirect_stdout=False, redirect_stderr=False) as live:  # fmt: skip

            def draw() -> None:
                self.sample()
                live.refresh()

            await redraw_until(done, self._every, draw)

    def __repr__(self) -> str:
        return f"<Dashboard done={self._stats.done} every={self._every}s>"


def _per_second(rate: float) -> str:
    """A learned pace in at most 6 characters: ``48.5/s``, ``1940/s``, ``12k/s``."""
    if rate >= 10_000:
        return f"{rate / 1000:.0f}k/s"
    return f"{rate:.1f}/s" if rate < 100 else f"{rate:.0f}/s"


def fit_host(host: str, width: int) -> str:
    """``host`` (``name:port``) in ``width`` characters: the name shortened, never the port
    (``127.0.0.1:4…`` would read as another port)."""
    if len(host) <= width:
        return host
    name, sep, port = host.rpartition(":")
    if not sep or not port.isdigit() or width < len(port) + 3:
        return host[: width - 1] + "…"
    return name[: width - len(port) - 2] + "…:" + port


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
