"""``--metrics-port``: a Prometheus endpoint that reads the run's counters when scraped.

Nothing is counted twice and nothing per request: a scrape (on prometheus_client's own
thread) copies what ``Stats`` already keeps, so the run pays only for the scrapes. The
duration histogram comes from the summary's own 1%-wide buckets; its ``_sum`` is therefore
good to about 1%.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .._core._exceptions import UsageError
from ._summary import LatencyHistogram, Stats, failed_statuses

__all__ = ["MetricsServer"]

_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Collector:
    def __init__(self, stats: Stats, gauges: dict[str, tuple[str, Callable[[], int]]]) -> None:
        self._stats = stats
        self._gauges = gauges
        self.scraped = threading.Event()  # set by each scrape (``MetricsServer.linger``)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        self.scraped.set()
        stats = self._stats
        errors = dict(stats.errors)  # copied at once, in C
        requests = CounterMetricFamily(
            "fanfetch_requests", "Finished requests: ok ones as 2xx/none, failed statuses by "
            "class with error_type http_status, other errors by type with status_class none.",
            labels=["status_class", "error_type"],
        )  # fmt: skip
        requests.add_metric(["2xx", "none"], stats.ok)
        for name, n in sorted(failed_statuses(stats).items()):
            requests.add_metric([name, "http_status"], n)
        for kind, n in sorted(errors.items()):
            if kind != "http_status":
                requests.add_metric(["none", kind], n)
        yield requests
        yield CounterMetricFamily("fanfetch_retries", "Attempts made again.", value=stats.retries)
        for name, (text, read) in self._gauges.items():
            yield GaugeMetricFamily(name, text, value=read())
        if (total := stats.total) is not None:
            yield GaugeMetricFamily("fanfetch_requests_expected", "Requests to make in all, as "
                                    "known now (with --paginate it grows as pages name more).",
                                    value=total)  # fmt: skip
        if stats.paginated:
            yield GaugeMetricFamily("fanfetch_chains_done", "With --paginate: chains of pages "
                                    "over.", value=stats.chains_done)  # fmt: skip
        yield _histogram(stats.latency, HistogramMetricFamily)


def _histogram(latency: LatencyHistogram, family: Any) -> Any:
    buckets = dict(latency.buckets)
    growth = LatencyHistogram._GROWTH
    cumulative = []
    upper = {i: math.expm1((i + 1) * growth) / 1000.0 for i in buckets}  # seconds
    for bound in _BOUNDS:
        cumulative.append((repr(bound), sum(n for i, n in buckets.items() if upper[i] <= bound)))
    count = sum(buckets.values())
    total = sum(n * upper[i] for i, n in buckets.items())  # seconds, each at its bucket's top
    cumulative.append(("+Inf", count))
    return family(
        "fanfetch_request_duration_seconds",
        "Each attempt's own time (a retried request's backoff is not latency).",
        buckets=cumulative,
        sum_value=total,
    )


class MetricsServer:
    """The endpoint of one run, on ``host:port`` (127.0.0.1 unless asked otherwise)."""

    def __init__(
        self, stats: Stats, *, port: int, host: str, in_flight: Callable[[], int],
        paused_hosts: Callable[[], int], queued: Callable[[], int],
    ) -> None:  # fmt: skip
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise UsageError(
                "`metrics_port` needs prometheus_client: pip install 'fanfetch[metrics]'"
            ) from None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(
            collector := _Collector(
                stats,
                {
                    "fanfetch_in_flight": ("Requests in flight now.", in_flight),
                    "fanfetch_host_throttled": (
                        "Hosts resting after a throttle now.",
                        paused_hosts,
                    ),
                    "fanfetch_queue_depth": ("Requests read and waiting for a worker.", queued),
                },
            )
        )
        self._collector = collector
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise UsageError(f"`metrics_port={port}`: cannot listen: {exc.strerror}") from None

    def linger(self, seconds: float) -> bool:
        """After the run: serve the final counts until they are scraped once more (so
        Prometheus sees the end), or ``seconds`` pass; blocking. Whether it was scraped."""
        self._collector.scraped.clear()
        return self._collector.scraped.wait(seconds)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
