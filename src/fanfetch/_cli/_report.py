"""``fanfetch report OUT -o report.html``: one self-contained HTML page about a run.

The records are read once, one at a time, into a ``Tally`` whose every part is bounded (time
bins merge in pairs when there are too many; hosts and error messages beyond a cap are counted
together; the slowest requests are a small heap), so a report of a hundred million records
takes the memory of one of a thousand. The page needs nothing from the network: styles are
inline and the charts are SVG drawn here; the figures are also in the page as JSON
(``<script type="application/json" id="fanfetch-data">``) for anyone who wants them.
"""

from __future__ import annotations

import heapq
import html
import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from .._core._exceptions import UsageError
from .._io._formats import check_holds, format_for, has_records, read_errors, unreadable
from .._io._formats._jsonl import JSON_LINES, read_json_lines
from .._observe._summary import LatencyHistogram, outcome_kind
from .._version import __version__

__all__ = ["KINDS", "Tally", "render", "write_report"]

KINDS = ("2xx", "3xx", "4xx", "429", "5xx", "error")
"""What a request came to: ok, a final status by class (429 apart), or an error without one
that is a status (timeout, connection, invalid_response...)."""

_COLORS = {"2xx": "#3a9d5d", "3xx": "#7a8b99", "4xx": "#e0a030", "429": "#9b59b6",
           "5xx": "#d64541", "error": "#444c56"}  # fmt: skip


def kind_of(record: Mapping[str, Any]) -> str:
    """The kind (one of ``KINDS``) of one record, by the summary's rule (``outcome_kind``):
    every error that is not a failed status is ``error`` here."""
    error = record.get("error")
    status = record.get("status")
    error_type = error.get("type") if isinstance(error, Mapping) else None
    if error_type is None and not record.get("ok"):
        error_type = "error"  # a record that is not ok and says no more
    kind = outcome_kind(bool(record.get("ok")), status if isinstance(status, int) else None,
                        error_type)  # fmt: skip
    return kind if kind in KINDS else "error"


class _Host:
    __slots__ = ("kinds", "latency", "requests", "retries")

    def __init__(self) -> None:
        self.requests = 0
        self.retries = 0
        self.kinds: Counter[str] = Counter()
        self.latency = LatencyHistogram()


class Tally:
    """Everything the report shows, added up one record at a time in bounded memory."""

    def __init__(
        self, *, bins: int = 1024, hosts: int = 200, messages: int = 500, slowest: int = 20
    ) -> None:
        self.requests = self.ok = self.retries = self.untimed = self.skipped = 0
        self.kinds: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()  # by type
        self.messages: Counter[tuple[str, str]] = Counter()
        self.other_messages = 0  # messages past the cap, counted together
        self.latency = LatencyHistogram()
        self.hosts: dict[str, _Host] = {}
        self.other_hosts = _Host()
        self.slowest: list[tuple[float, int, dict[str, Any]]] = []  # a min-heap
        self.first: float | None = None  # earliest start, epoch seconds
        self.last: float | None = None  # latest end
        self.width = 0.01  # seconds per time bin; doubles when there are too many bins
        self.bins: dict[int, list[float]] = {}  # bin -> counts by kind, then sum and max ms
        self._caps = (bins, hosts, messages, slowest)
        self._seen = 0

    def add(self, record: Mapping[str, Any]) -> None:
        self.requests += 1
        kind = kind_of(record)
        self.kinds[kind] += 1
        ok = kind == "2xx"
        self.ok += ok
        status = record.get("status")
        if isinstance(status, int):
            self.statuses[status] += 1
        attempts = record.get("attempts") or 0
        retries = max(0, attempts - 1) if isinstance(attempts, int) else 0
        self.retries += retries
        error = record.get("error")
        if not ok and isinstance(error, Mapping):
            etype, message = str(error.get("type")), str(error.get("message"))
            self.errors[etype] += 1
            key = (etype, message)
            if key in self.messages or len(self.messages) < self._caps[2]:
                self.messages[key] += 1
            else:
                self.other_messages += 1
        elapsed = record.get("elapsed_ms")
        timed = isinstance(elapsed, int | float) and attempts
        host = self._host(record.get("url"))
        host.requests += 1
        host.retries += retries
        host.kinds[kind] += 1
        if not timed:
            return
        ms = float(elapsed)  # type: ignore[arg-type]
        self.latency.add(ms)
        host.latency.add(ms)
        self._seen += 1
        entry = (ms, self._seen, _slow_entry(record, kind))
        if len(self.slowest) < self._caps[3]:
            heapq.heappush(self.slowest, entry)
        elif ms > self.slowest[0][0]:
            heapq.heapreplace(self.slowest, entry)
        started = record.get("started_at")
        if not isinstance(started, int | float):
            self.untimed += 1
            return
        ended = started + ms / 1000.0
        self.first = started if self.first is None else min(self.first, started)
        self.last = ended if self.last is None else max(self.last, ended)
        self._bin(ended, kind, ms)

    def _host(self, url: Any) -> _Host:
        try:
            name = urlsplit(url).netloc.rpartition("@")[2] if isinstance(url, str) else ""
        except ValueError:
            name = ""
        found = self.hosts.get(name or "-")
        if found is not None:
            return found
        if len(self.hosts) >= self._caps[1]:
            return self.other_hosts
        found = self.hosts[name or "-"] = _Host()
        return found

    def _bin(self, at: float, kind: str, ms: float) -> None:
        key = math.floor(at / self.width)
        row = self.bins.get(key)
        if row is None:
            if len(self.bins) >= self._caps[0]:
                self._coarsen()
                key = math.floor(at / self.width)
                row = self.bins.get(key)
            if row is None:
                row = self.bins[key] = [0.0] * (len(KINDS) + 2)
        row[KINDS.index(kind)] += 1
        row[-2] += ms
        if ms > row[-1]:
            row[-1] = ms

    def _coarsen(self) -> None:
        """Twice as wide bins, half as many: bin k of width w lies in bin k // 2 of 2w."""
        merged: dict[int, list[float]] = {}
        for key, row in self.bins.items():
            _merge(merged.setdefault(key // 2, [0.0] * len(row)), row)
        self.bins = merged
        self.width *= 2

    def series(self, most: int = 120) -> tuple[float, list[tuple[float, list[float]]]]:
        """The time bins, merged so there are at most ``most`` across the run, empty ones
        included: (bin width in seconds, [(seconds since the first start, row)])."""
        if not self.bins or self.first is None:
            return self.width, []
        lo, hi = min(self.bins), max(self.bins)
        factor = 1
        while (hi // factor - lo // factor + 1) > most:
            factor *= 2
        width = self.width * factor
        merged: dict[int, list[float]] = {}
        for key, row in self.bins.items():
            _merge(merged.setdefault(key // factor, [0.0] * len(row)), row)
        first = lo // factor
        out = []
        for key in range(first, hi // factor + 1):
            row = merged.get(key, [0.0] * (len(KINDS) + 2))
            out.append((key * width - self.first, row))
        return width, out

    def data(self) -> dict[str, Any]:
        """The figures, as plain data (the page's JSON)."""
        lat = self.latency
        wall = (self.last - self.first) if self.first is not None and self.last else None
        hosts = sorted(self.hosts.items(), key=lambda kv: -kv[1].requests)
        if self.other_hosts.requests:
            hosts.append(("(other hosts)", self.other_hosts))
        return {
            "requests": self.requests,
            "ok": self.ok,
            "failed": self.requests - self.ok,
            "retries": self.retries,
            "kinds": {k: self.kinds[k] for k in KINDS if self.kinds[k]},
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors.most_common()),
            "messages": [
                {"type": t, "message": m, "count": n} for (t, m), n in self.messages.most_common()
            ]
            + (
                [{"type": "", "message": "(other messages)", "count": self.other_messages}]
                if self.other_messages
                else []
            ),
            "started_at": self.first,
            "wall_s": None if wall is None else round(wall, 3),
            "requests_per_s": round(self.requests / wall, 1) if wall else None,
            "latency_ms": _quantiles(lat),
            "slowest": [entry for _, _, entry in sorted(self.slowest, reverse=True)],
            "hosts": [
                {
                    "host": name,
                    "requests": h.requests,
                    "ok": h.kinds["2xx"],
                    "retries": h.retries,
                    "kinds": {k: h.kinds[k] for k in KINDS if h.kinds[k]},
                    "latency_ms": _quantiles(h.latency),
                }
                for name, h in hosts
            ],
            "skipped_lines": self.skipped,
            "untimed": self.untimed,
        }


def _merge(into: list[float], row: Sequence[float]) -> None:
    for i in range(len(row) - 1):
        into[i] += row[i]
    into[-1] = max(into[-1], row[-1])


def _slow_entry(record: Mapping[str, Any], kind: str) -> dict[str, Any]:
    error = record.get("error")
    return {
        "id": record.get("id"),
        "url": record.get("url"),
        "status": record.get("status"),
        "kind": kind,
        "error": error.get("type") if isinstance(error, Mapping) else None,
        "attempts": record.get("attempts"),
        "elapsed_ms": record.get("elapsed_ms"),
    }


def _quantiles(lat: LatencyHistogram) -> dict[str, float | None]:
    def q(x: float) -> float | None:
        v = lat.quantile(x)
        return None if v is None else round(v, 3)

    return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99),
            "max": round(lat.max, 3) if lat.count else None}  # fmt: skip


def tally(paths: Sequence[str], source_format: str | None = None) -> Tally:
    """Read every record of ``paths`` (a folder stands for its ``*.jsonl`` parts) into one
    ``Tally``."""
    counted = Tally()
    for path in _expand(paths):
        skipped = [0]
        reader = format_for(path, source_format)
        check_holds(reader, path)
        records: Iterable[dict[str, Any]] = (
            read_json_lines(path, skipped) if reader is JSON_LINES else reader.read(path)
        )
        try:
            for record in records:
                counted.add(record)
        except read_errors() as exc:
            raise unreadable(path, exc) from None
        counted.skipped += skipped[0]
    return counted


def _expand(paths: Sequence[str]) -> Iterator[str]:
    for path in paths:
        if os.path.isdir(path):
            parts = sorted(n for n in os.listdir(path) if n.endswith(".jsonl"))
            if not parts:
                raise UsageError(f"{path!r} holds no .jsonl parts")
            yield from (os.path.join(path, n) for n in parts)
        elif has_records(path):  # a Parquet or DuckDB output's journal, during a run, counts
            yield path
        else:
            raise UsageError(f"cannot read {path!r}: no such file")


def write_report(paths: Sequence[str], output: str, *, source_format: str | None = None,
                 title: str | None = None) -> Tally:  # fmt: skip
    """Read ``paths``' records and write the page to ``output`` (replaced whole, never
    half-written); return what was counted."""
    for path in _expand(paths):
        if os.path.exists(output) and os.path.exists(path) and os.path.samefile(path, output):
            raise UsageError("the report would replace its input: give another -o")
    counted = tally(paths, source_format)
    page = render(counted, title=title or ", ".join(os.path.basename(p) for p in paths))
    tmp = f"{output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, output)
    except OSError as exc:
        raise UsageError(f"cannot write {output!r}: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return counted


# ---- the page ----------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 background:#f6f7f9;color:#1f2328}
header{background:#1f2328;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#c9d1d9}
main{padding:18px 28px;max-width:1200px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:14px 18px;
 margin:0 0 16px}
h2{font-size:16px;margin:0 0 10px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:16px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 16px;
 min-width:120px}
.card b{display:block;font-size:22px}.card span{color:#57606a;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.u{word-break:break-all}
svg{display:block;width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#57606a}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.note{color:#57606a;font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, int):  # a count is a count: 7, never 7.00
        return f"{value:,}{unit}"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}{unit}"
    return f"{value:,.1f}{unit}" if abs(value) >= 10 else f"{value:,.2f}{unit}"


def _legend(kinds: Iterable[str]) -> str:
    items = "".join(f'<span><i style="background:{_COLORS[k]}"></i>{_e(k)}</span>' for k in kinds)
    return f'<div class="legend">{items}</div>'


def _nice(top: float) -> float:
    """A round number at or above ``top``, for an axis."""
    if top <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(top))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * exp >= top:
            return step * exp
    return 10 * exp


def _frame(width: int, height: int, pad: tuple[int, int, int, int], top: float, label: str,
           ticks_x: list[tuple[float, str]], chart: str) -> str:  # fmt: skip
    left, right, upper, lower = pad
    inner_h = height - upper - lower
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">']
    for i in range(5):
        y = upper + inner_h * i / 4
        value = top * (4 - i) / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#eaeef2"/>')  # fmt: skip
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_e(_num(value))}</text>")  # fmt: skip
    for x, text in ticks_x:
        parts.append(f'<text x="{x:.1f}" y="{height - lower + 16}" text-anchor="middle">'
                     f"{_e(text)}</text>")  # fmt: skip
    parts.append(chart)
    parts.append(f'<text x="{left}" y="{upper - 8}">{_e(label)}</text></svg>')
    return "".join(parts)


def _time_ticks(span: float, left: float, inner_w: float) -> list[tuple[float, str]]:
    if span <= 0:
        return []
    step = _nice(span / 6)
    ticks, t = [], 0.0
    while t <= span + 1e-9:
        ticks.append((left + inner_w * t / span, _duration(t)))
        t += step
    return ticks


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:g} s" if seconds >= 1 or seconds == 0 else f"{seconds * 1000:.0f} ms"


def throughput_chart(series: list[tuple[float, list[float]]], width_s: float) -> str:
    """Requests finished per second in each time bin, stacked by kind."""
    w, h, pad = 1000, 260, (60, 16, 26, 26)
    inner_w, inner_h = w - pad[0] - pad[1], h - pad[2] - pad[3]
    rates = [sum(row[: len(KINDS)]) / width_s for _, row in series]
    top = _nice(max(rates, default=0.0))
    bar_w = inner_w / max(len(series), 1)
    bars = []
    for i, (t, row) in enumerate(series):
        y: float = pad[2] + inner_h
        x = pad[0] + i * bar_w
        for k, kind in enumerate(KINDS):
            n = row[k]
            if not n:
                continue
            bh = inner_h * (n / width_s) / top
            y -= bh
            bars.append(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{max(bar_w - 0.6, 0.6):.2f}" '
                f'height="{bh:.2f}" fill="{_COLORS[kind]}" data-kind="{kind}">'
                f"<title>{_e(_duration(t))}: {n:,.0f} {kind} ({n / width_s:,.1f}/s)</title></rect>"
            )
    span = len(series) * width_s
    return _frame(w, h, pad, top, "requests finished per second, by kind",
                  _time_ticks(span, pad[0], inner_w), "".join(bars))  # fmt: skip


def latency_over_time_chart(series: list[tuple[float, list[float]]], width_s: float) -> str:
    """Mean and slowest latency of the requests that finished in each time bin."""
    w, h, pad = 1000, 220, (60, 16, 26, 26)
    inner_w, inner_h = w - pad[0] - pad[1], h - pad[2] - pad[3]
    points = []
    for i, (_, row) in enumerate(series):
        n = sum(row[: len(KINDS)])
        if n:
            points.append((i, row[-2] / n, row[-1]))
    top = _nice(max((p[2] for p in points), default=0.0))
    bar_w = inner_w / max(len(series), 1)

    def line(pick: int, color: str, name: str) -> str:
        """A path through the bins that had requests, broken where bins had none."""
        steps, previous = [], -2
        for p in points:
            x, y = pad[0] + (p[0] + 0.5) * bar_w, pad[2] + inner_h * (1 - p[pick] / top)
            # a slice after an empty one starts afresh, with a dot (seen even if alone)
            steps.append(f"L{x:.1f},{y:.1f}" if p[0] == previous + 1 else f"M{x:.1f},{y:.1f}h0.1")
            previous = p[0]
        return (f'<path d="{" ".join(steps)}" fill="none" stroke="{color}" '
                f'stroke-width="1.6" stroke-linecap="round" data-line="{name}"/>')  # fmt: skip

    chart = line(1, "#0969da", "mean") + line(2, "#d64541", "max") if points else ""
    span = len(series) * width_s
    return _frame(w, h, pad, top, "latency in ms over time: mean (blue) and slowest (red)",
                  _time_ticks(span, pad[0], inner_w), chart)  # fmt: skip


def latency_histogram_chart(lat: LatencyHistogram) -> str:
    """How many requests took how long, on a log scale of time (about 40 bars)."""
    w, h, pad = 1000, 240, (60, 16, 26, 26)
    inner_w, inner_h = w - pad[0] - pad[1], h - pad[2] - pad[3]
    if not lat.count:
        return _frame(w, h, pad, 1.0, "latency distribution (no timed requests)", [], "")
    growth = LatencyHistogram._GROWTH
    lo, hi = min(lat.buckets), max(lat.buckets)
    per_bar = max(1, math.ceil((hi - lo + 1) / 40))
    bars: Counter[int] = Counter()
    for bucket, n in lat.buckets.items():
        bars[(bucket - lo) // per_bar] += n
    count = (hi - lo) // per_bar + 1
    top = _nice(max(bars.values()))
    bar_w = inner_w / count
    parts = []
    for i in range(count):
        n = bars.get(i, 0)
        a = math.expm1((lo + i * per_bar) * growth)
        b = math.expm1((lo + (i + 1) * per_bar) * growth)
        bh = inner_h * n / top
        parts.append(
            f'<rect x="{pad[0] + i * bar_w:.2f}" y="{pad[2] + inner_h - bh:.2f}" '
            f'width="{max(bar_w - 1, 0.6):.2f}" height="{bh:.2f}" fill="#0969da">'
            f"<title>{a:,.1f} to {b:,.1f} ms: {n:,}</title></rect>"
        )
    ticks = []
    for i in range(0, count, max(1, count // 8)):
        ms = math.expm1((lo + i * per_bar) * growth)
        ticks.append((pad[0] + i * bar_w, _num(ms, " ms")))
    for row, (name, q) in enumerate((("p50", 0.5), ("p90", 0.9), ("p99", 0.99))):
        v = lat.quantile(q)
        if v is None:
            continue
        at = (int(math.log1p(v) / growth - 1e-9) - lo) / per_bar
        x = pad[0] + min(max(at, 0.0), count) * bar_w
        left = x < w - 120  # the label right of its line, unless that runs off the chart
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{pad[2]}" y2="{pad[2] + inner_h}" '
            f'stroke="#d64541" stroke-dasharray="3,3"/><text x="{x + 3 if left else x - 3:.1f}" '
            f'y="{pad[2] + 12 + 14 * row}" text-anchor="{"start" if left else "end"}" '
            f'style="fill:#d64541">{name} {_e(_num(v))}</text>'
        )
    return _frame(w, h, pad, top, "requests by latency (ms, log scale)", ticks, "".join(parts))


def mix_chart(kinds: Mapping[str, int]) -> str:
    """One bar, split by kind: what the requests came to."""
    total = sum(kinds.values())
    w, h = 1000, 46
    x, parts = 0.0, []
    for kind in KINDS:
        n = kinds.get(kind, 0)
        if not n:
            continue
        bw = w * n / total
        parts.append(f'<rect x="{x:.2f}" y="4" width="{bw:.2f}" height="38" '
                     f'fill="{_COLORS[kind]}" data-kind="{kind}"><title>{kind}: {n:,} '
                     f"({100 * n / total:.1f}%)</title></rect>")  # fmt: skip
        if bw > 60:
            parts.append(f'<text x="{x + 6:.1f}" y="27" style="fill:#fff">{kind} '
                         f"{100 * n / total:.1f}%</text>")  # fmt: skip
        x += bw
    return f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="mix">{"".join(parts)}</svg>'


def render(counted: Tally, *, title: str) -> str:
    """The whole page."""
    data = counted.data()
    width_s, series = counted.series()
    lat = data["latency_ms"]
    started = data["started_at"]
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
        if started is not None
        else "no start times in these records"
    )
    cards = [
        ("requests", _num(data["requests"])),
        ("ok", _num(data["ok"])),
        ("failed", _num(data["failed"])),
        ("retries", _num(data["retries"])),
        ("wall time", _num(data["wall_s"], " s")),
        ("requests/s", _num(data["requests_per_s"])),
        ("p50", _num(lat["p50"], " ms")),
        ("p99", _num(lat["p99"], " ms")),
        ("max", _num(lat["max"], " ms")),
    ]
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>fanfetch report: {_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>fanfetch report: {_e(title)}</h1>",
        f"<p>first request {_e(when)} · fanfetch {_e(__version__)}</p></header><main>",
        '<div class="cards">',
        *(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards),
        "</div>",
    ]
    if data["requests"]:
        shown = [k for k in KINDS if k in data["kinds"]]
        out += ['<section id="mix"><h2>What the requests came to</h2>',
                mix_chart(data["kinds"]), _legend(shown)]  # fmt: skip
        statuses = ", ".join(f"{k}: {v:,}" for k, v in data["statuses"].items()) or "-"
        errors = ", ".join(f"{k} {v:,}" for k, v in data["errors"].items()) or "none"
        out.append(f'<p class="note">statuses: {_e(statuses)}<br>errors by type: '
                   f"{_e(errors)}</p></section>")  # fmt: skip
    if series:
        out += ['<section id="throughput"><h2>Throughput and mix over time</h2>',
                throughput_chart(series, width_s), _legend(KINDS),
                f'<p class="note">each bar: {_e(_duration(width_s))} of the run</p></section>',
                '<section id="latency-time"><h2>Latency over time</h2>',
                latency_over_time_chart(series, width_s), "</section>"]  # fmt: skip
    out += ['<section id="latency"><h2>Latency distribution</h2>',
            latency_histogram_chart(counted.latency), "</section>"]  # fmt: skip
    out.append(_table(
        "slowest", "The slowest requests",
        ["id", "url", "status", "error", "attempts", "elapsed ms"],
        [[s["id"], s["url"], s["status"], s["error"], s["attempts"], _num(s["elapsed_ms"])]
         for s in data["slowest"]], numeric={2, 4, 5}, wide={1},
    ))  # fmt: skip
    out.append(_table(
        "errors", "Every distinct error message",
        ["count", "type", "message"],
        [[f"{m['count']:,}", m["type"], m["message"]] for m in data["messages"]],
        numeric={0}, wide={2}, empty="no errors",
    ))  # fmt: skip
    out.append(_table(
        "hosts", "By host",
        ["host", "requests", "ok", "4xx", "429", "5xx", "errors", "retries", "p50 ms",
         "p99 ms", "max ms"],
        [[h["host"], f"{h['requests']:,}", f"{h['ok']:,}",
          *(f"{h['kinds'].get(k, 0):,}" for k in ("4xx", "429", "5xx", "error")),
          f"{h['retries']:,}", _num(h["latency_ms"]["p50"]), _num(h["latency_ms"]["p99"]),
          _num(h["latency_ms"]["max"])] for h in data["hosts"]],
        numeric=set(range(1, 11)),
    ))  # fmt: skip
    notes = []
    if data["skipped_lines"]:
        notes.append(f"{data['skipped_lines']:,} line(s) were not records (a torn last line?) "
                     "and are left out.")  # fmt: skip
    if data["untimed"]:
        notes.append(f"{data['untimed']:,} record(s) have no started_at (written by an older "
                     "fanfetch) and are left out of the time charts.")  # fmt: skip
    out += [f'<p class="note">{_e(n)}</p>' for n in notes]
    blob = orjson.dumps(data, default=str).decode().replace("<", "\\u003c")  # inert in HTML
    out.append(f'</main><script type="application/json" id="fanfetch-data">{blob}</script>')
    out.append("</body></html>\n")
    return "".join(out)


def _table(
    ident: str, title: str, head: list[str], rows: list[list[Any]], *,
    numeric: set[int], wide: set[int] | None = None, empty: str = "none",
) -> str:  # fmt: skip
    wide = wide or set()

    def cell(i: int, value: Any, tag: str = "td") -> str:
        cls = "n" if i in numeric else "u" if i in wide else ""
        return f'<{tag} class="{cls}">{_e(value)}</{tag}>' if cls else f"<{tag}>{_e(value)}</{tag}>"

    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    if not rows:
        body = f'<tr><td colspan="{len(head)}" class="note">{_e(empty)}</td></tr>'
    heads = "".join(cell(i, h, "th") for i, h in enumerate(head))
    return (
        f'<section id="{ident}"><h2>{_e(title)}</h2><table><tr>{heads}</tr>{body}</table></section>'
    )
