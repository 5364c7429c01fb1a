"""The summary: counts, statuses and latency quantiles in constant memory."""

from __future__ import annotations

from fanfetch import Request, Result
from fanfetch._core._events import Finished, Retrying, RunEnded, RunStarted
from fanfetch._core._exceptions import RequestTimeout
from fanfetch._core._models import status_error
from fanfetch._observe._summary import LatencyHistogram, Stats, kind_counts, summary_lines


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


def test_the_summary_the_report_and_the_metrics_classify_outcomes_alike():
    from fanfetch._cli._report import Tally
    from fanfetch._observe._metrics import _Collector

    results = [
        Result(Request("http://127.0.0.1/a", id=1), status=200),
        Result(Request("http://127.0.0.1/b", id=2), status=304, error=status_error(304, None)),
        Result(Request("http://127.0.0.1/c", id=3), status=404, error=status_error(404, None)),
        Result(Request("http://127.0.0.1/d", id=4), status=429, error=status_error(429, None)),
        Result(Request("http://127.0.0.1/e", id=5), status=503, error=status_error(503, None)),
        Result(Request("http://127.0.0.1/f", id=6), error=RequestTimeout("slow")),
    ]
    stats = Stats()
    tally = Tally()
    for result in results:
        stats(Finished(result))
        tally.add(result.to_dict())
    summary = dict(kind_counts(stats))
    assert summary == {"2xx": 1, "3xx": 1, "4xx": 1, "429": 1, "5xx": 1, "timeout": 1}
    assert dict(tally.kinds) == {"2xx": 1, "3xx": 1, "4xx": 1, "429": 1, "5xx": 1, "error": 1}
    (requests,) = [m for m in _Collector(stats, {}).collect() if m.name == "fanfetch_requests"]
    metrics = {
        (s.labels["status_class"], s.labels["error_type"]): s.value for s in requests.samples
    }
    assert {k: v for k, v in metrics.items() if v} == {
        ("2xx", "none"): 1, ("3xx", "http_status"): 1, ("4xx", "http_status"): 1,
        ("429", "http_status"): 1, ("5xx", "http_status"): 1, ("none", "timeout"): 1,
    }  # fmt: skip
