"""The summary: counts, statuses and latency quantiles in constant memory."""

from __future__ import annotations

from fanfetch import Request, Result
from fanfetch._core._events import Finished, Retrying, RunEnded, RunStarted
from fanfetch._core._exceptions import RequestTimeout
from fanfetch._core._models import status_error
from fanfetch._observe._summary import LatencyHistogram, Stats, summary_lines


def test_histogram_quantiles_are_within_one_percent():
    hist = LatencyHistogram()
    for ms in range(1, 1001):
        hist.add(float(ms))
    for q, exact in ((0.5, 500), (0.9, 900), (0.99, 990)):
        value = hist.quantile(q)
        assert value is not None and abs(value - exact) / exact < 0.011
    assert hist.quantile(1.0) == 1000.0 and len(hist.buckets) < 700


def test_stats_count_results_by_status_error_and_retry_and_render():
    clock = iter([0.0, 0.0, 2.0]).__next__
    stats = Stats(clock=clock)
    request = Request("http://127.0.0.1/")
    stats(RunStarted(3))
    stats(Finished(Result(request, status=200, elapsed_ms=10.0)))
    stats(Finished(Result(request, status=404, elapsed_ms=20.0, error=status_error(404, "NF"))))
    stats(Retrying(request, 1, 0.1, "timeout"))
    stats(Finished(Result(request, error=RequestTimeout("slow"), attempts=2, elapsed_ms=30.0)))
    stats(RunEnded(False))
    data = stats.as_dict()
    assert data["requests"] == 3 and data["ok"] == 1 and data["failed"] == 2
    assert data["errors"] == {"http_status": 1, "timeout": 1} and data["statuses"] == {
        "200": 1,
        "404": 1,
    }
    assert data["retries"] == 1 and data["wall_s"] == 2.0 and data["requests_per_s"] == 1.5
    text = "\n".join(summary_lines(stats))
    assert "requests   3" in text and "timeout 1" in text and "p99" in text


def test_counts_travel_as_json_and_add_up_with_what_an_output_already_held():
    """The one counting path: a worker's or a shard's ``Stats.counts()`` (through JSON for a
    shard's ``.done`` file) added to the driver's, with records found on resuming."""
    from collections import Counter

    import orjson

    from fanfetch._core._resume import IdSet, ResumeState

    shard = Stats(clock=lambda: 0.0)
    shard.add_earlier(
        ResumeState(
            IdSet(), 5, 0, 0, failed=Counter(http_status=1), statuses=Counter({200: 4, 500: 1})
        )
    )
    shard.statuses[200] += 1
    shard.done += 1
    shard.ok += 1
    shard.latency.add(12.0)
    driver = Stats(clock=lambda: 0.0)
    driver.add(orjson.loads(orjson.dumps(shard.counts(), option=orjson.OPT_NON_STR_KEYS)))
    summary = driver.as_dict()
    assert (summary["requests"], summary["ok"], summary["failed"]) == (6, 5, 1)
    assert summary["statuses"] == {"200": 5, "500": 1}
    assert summary["errors"] == {"http_status": 1}
    assert summary["latency_ms"]["max"] == 12.0
