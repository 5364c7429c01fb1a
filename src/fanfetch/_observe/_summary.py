"""Counting a run as it goes, and the end summary people read (like hey or oha print).

``Stats`` is a listener; it keeps counts and a fixed-size latency histogram, so a run of ten
million requests costs it the same memory as a run of ten.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._core._events import ChainEnded, Event, Finished, Retrying, RunEnded, RunStarted
from .._core._resume import ResumeState
from .._core._types import Clock

if TYPE_CHECKING:
    from .._core._models import Result

__all__ = [
    "STATUS_KINDS",
    "LatencyHistogram",
    "Stats",
    "chains_done",
    "failed_statuses",
    "kind_counts",
    "kinds",
    "outcome_kind",
    "summary_lines",
    "summary_rows",
]


class LatencyHistogram:
    """Latencies in log-spaced buckets, each 1% wide: quantiles within 1%, in constant memory."""

    _GROWTH = math.log(1.01)

    __slots__ = ("buckets", "count", "max")

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.max = 0.0

    def add(self, ms: float) -> None:
        self.buckets[int(math.log1p(ms) / self._GROWTH)] += 1
        self.count += 1
        if ms > self.max:
            self.max = ms

    def quantile(self, q: float) -> float | None:
        """The latency in ms below which a share ``q`` of the samples fall (bucket upper bound)."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return min(math.expm1((bucket + 1) * self._GROWTH), self.max)
        return self.max


class Stats:
    """What the summary and the progress bar show, kept up to date from the engine's events."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.ended: float | None = None
        self._total: int | None = None
        self.ahead = 0  # --paginate: pages a record named, beyond the requests read
        self.chains_done = 0  # --paginate: chains of pages over
        self.paginated = False
        self.done = 0
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.retries = 0
        self.interrupted = False
        self.stopped_by: str | None = None  # the guard that stopped the run (--limit...)
        self.crossed: list[str] = []  # the --fail-if conditions true at the end
        self.latency = LatencyHistogram()

    def count(
        self, ok: bool, status: int | None, error: str | None, attempts: int, elapsed_ms: float
    ) -> None:
        """One finished request; ``elapsed_ms``: its last attempt's own time (the latency
        percentiles are per attempt: a retried one's earlier attempts come as ``Retrying``)."""
        self.done += 1
        if status is not None:
            self.statuses[status] += 1
        if ok:
            self.ok += 1
        else:
            self.errors[error or "http_status"] += 1
        if attempts:
            self.latency.add(elapsed_ms)

    @property
    def total(self) -> int | None:
        """Requests to make in all, when known: those read, and with ``--paginate`` the
        pages found so far (so it grows as pages name more; never under what is done)."""
        total = self._total
        return None if total is None else max(total + self.ahead, self.done)

    @total.setter
    def total(self, value: int | None) -> None:
        self._total = value

    @property
    def chains(self) -> int | None:
        """``--paginate``: the chains of pages, one per request read (when known)."""
        return self._total if self.paginated else None

    def finished(self, result: Result) -> None:
        """One request finished: what the engine calls per request, without an event."""
        if result.page is not None:  # a page of a chain: the next it names is one more
            self.paginated = True
            if result.next is not None:
                self.ahead += 1
        error = result.error
        self.count(
            result.ok,
            result.status,
            None if error is None else error.type,
            result.attempts,
            result.elapsed_ms if result.attempt_ms is None else result.attempt_ms,
        )

    def __call__(self, event: Event) -> None:
        if type(event) is Finished:
            self.finished(event.result)
        elif isinstance(event, ChainEnded):
            self.chains_done += 1
            if event.unrecorded:
                self.ahead -= 1
        elif isinstance(event, Retrying):
            self.retries += 1
            if event.ms is not None:
                self.latency.add(event.ms)
        elif isinstance(event, RunStarted):
            self.started = self._clock()
            if event.total is not None:  # else keep one known beforehand (a list's length)
                self.total = event.total
        elif isinstance(event, RunEnded):
            self.ended = self._clock()
            self.interrupted = event.interrupted

    def counts(self) -> dict[str, Any]:
        """What this has counted, as plain data another ``Stats`` can ``add``: a ``--workers``
        process sends its counts with each batch of records, a cluster shard with its reports
        (and in its ``.done`` file, where JSON makes the numeric keys text)."""
        lat = self.latency
        return {
            "done": self.done,
            "ok": self.ok,
            "errors": dict(self.errors),
            "statuses": dict(self.statuses),
            "retries": self.retries,
            "buckets": dict(lat.buckets),
            "max_ms": lat.max,
        }

    def add(self, counts: Mapping[str, Any]) -> None:
        """Add ``counts`` (from ``counts()``) to these."""
        self.done += counts["done"]
        self.ok += counts["ok"]
        self.errors.update(counts["errors"])
        for status, n in counts["statuses"].items():
            self.statuses[int(status)] += n
        self.retries += counts["retries"]
        lat = self.latency
        for bucket, n in counts["buckets"].items():
            lat.buckets[int(bucket)] += n
            lat.count += n
        lat.max = max(lat.max, counts["max_ms"])

    def add_earlier(self, state: ResumeState) -> None:
        """Count the records an output already held (a cluster shard run again, or resumed)."""
        self.done += state.records
        self.ok += state.records - sum(state.failed.values())
        self.errors.update(state.failed)
        self.statuses.update(state.statuses)

    @property
    def failed(self) -> int:
        return self.done - self.ok

    @property
    def wall(self) -> float:
        return (self.ended if self.ended is not None else self._clock()) - self.started

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data, for ``--summary-json``."""
        wall = self.wall
        lat = self.latency

        def q(x: float) -> float | None:
            v = lat.quantile(x)
            return None if v is None else round(v, 3)

        return {
            "requests": self.done,
            "ok": self.ok,
            "failed": self.failed,
            "errors": dict(sorted(self.errors.items())),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "retries": self.retries,
            "wall_s": round(wall, 3),
            "requests_per_s": round(self.done / wall, 1) if wall > 0 else None,
            "latency_ms": {
                "p50": q(0.5),
                "p90": q(0.9),
                "p99": q(0.99),
                "max": round(lat.max, 3) if lat.count else None,
            },
            "interrupted": self.interrupted,
            "stopped_by": self.stopped_by,
            "fail_if": list(self.crossed),
        }

    def __repr__(self) -> str:
        return f"<Stats done={self.done} ok={self.ok} retries={self.retries}>"


STATUS_KINDS = ("3xx", "4xx", "429", "5xx")  # the classes of a final status that failed


def outcome_kind(ok: bool, status: int | None, error_type: str | None) -> str:
    """What one request came to, the one rule the summary, the report and the metrics share:
    ``2xx`` when ok; a final status that failed by its class (``3xx``, ``4xx``, ``429``
    apart as the API asking for less, ``5xx``); else its error's type."""
    if ok:
        return "2xx"
    if status is not None and status >= 300 and error_type in (None, "http_status"):
        return "429" if status == 429 else f"{min(status // 100, 5)}xx"
    return error_type or "error"


def failed_statuses(stats: Stats) -> dict[str, int]:
    """The final statuses that failed, by kind (``outcome_kind``)."""
    kinds: dict[str, int] = {}
    for status, n in dict(stats.statuses).items():  # a copy: a notebook reads from its thread
        if status >= 300 and n:
            kind = outcome_kind(False, status, "http_status")
            kinds[kind] = kinds.get(kind, 0) + n
    return kinds


def kind_counts(stats: Stats) -> list[tuple[str, int]]:
    """What the finished requests came to, by kind: the ok ones (``2xx``), the final statuses
    that failed by class (``429`` apart: it says the API wants less), then every other error
    by type; each request counted once, kinds with none left out."""
    failed = failed_statuses(stats)
    classes = {"2xx": stats.ok, **{kind: failed.get(kind, 0) for kind in STATUS_KINDS}}
    others = {kind: n for kind, n in dict(stats.errors).items() if n and kind != "http_status"}
    counts = [(name, n) for name, n in classes.items() if n] + sorted(others.items())
    told = sum(classes.values()) - stats.ok + sum(others.values())
    if stats.failed > told:  # failures known only as a count (a cluster's shards report so)
        counts.append(("failed", stats.failed - told))
    return counts


def chains_done(stats: Stats) -> str:
    """``chains 3/4`` with ``--paginate`` (every view shows it beside requests done/total)."""
    if not stats.paginated:
        return ""
    chains = stats.chains
    return f"chains {stats.chains_done:,}/{chains:,}" if chains else f"chains {stats.chains_done:,}"


def kinds(stats: Stats) -> str:
    """``kind_counts`` as one line: ``2xx 980  4xx 3  429 2  5xx 5  timeout 4``."""
    return "  ".join(f"{name} {n:,}" for name, n in kind_counts(stats)) or "-"


def summary_rows(stats: Stats) -> list[tuple[str, str]]:
    """The end summary as (name, value) rows: totals, errors by type, statuses, rate and
    latency quantiles."""
    data = stats.as_dict()
    rows: list[tuple[str, str]] = []
    rows.append(("requests", f"{data['requests']:,}"))
    rows.append(("ok", f"{data['ok']:,}"))
    failed = ", ".join(f"{k} {v:,}" for k, v in data["errors"].items())
    rows.append(("failed", f"{data['failed']:,}" + (f"  ({failed})" if failed else "")))
    statuses = ", ".join(f"{k}: {v:,}" for k, v in data["statuses"].items())
    rows.append(("statuses", statuses or "-"))
    rows.append(("retries", f"{data['retries']:,}"))
    rate = data["requests_per_s"]
    wall = f"{data['wall_s']:.2f} s" + (f"  ({rate:,.0f} requests/s)" if rate else "")
    rows.append(("wall time", wall))
    lat = data["latency_ms"]
    if lat["p50"] is not None:
        rows.append(
            (
                "latency",
                f"p50 {lat['p50']:.1f} ms  p90 {lat['p90']:.1f} ms  "
                f"p99 {lat['p99']:.1f} ms  max {lat['max']:.1f} ms",
            )
        )
    return rows


def summary_lines(stats: Stats) -> list[str]:
    """The end summary as aligned plain-text lines. Plain text, not a rich table: a run
    whose stderr is no terminal then never imports rich, which is a good part of a short
    run's start-up time.
    """
    head = "Summary (interrupted)" if stats.interrupted and not stats.stopped_by else "Summary"
    lines = [head] + [f"  {name:<10} {value}" for name, value in summary_rows(stats)]
    if stats.stopped_by:
        lines.append(f"  {'stopped':<10} by {stats.stopped_by}: --resume does the rest")
    for condition in stats.crossed:
        lines.append(f"  {'fail_if':<10} {condition}")
    return lines
