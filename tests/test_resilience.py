"""Retries, throttling, rate limits and size limits, asserted from a fault server's own log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.faults import FaultServer


@pytest.fixture
async def faults() -> AsyncIterator[FaultServer]:
    server = await FaultServer(hosts=("127.0.0.1", "127.0.0.2", "127.0.0.3")).start()
    try:
        yield server
    finally:
        await server.stop()


# case -> (attempts the server sees, final ok, final status, final error type)
CASES: dict[str, tuple[int, bool, int | None, str | None]] = {
    "flaky500": (2, True, 200, None),
    "twice503": (3, True, 200, None),
    "ra429s": (2, True, 200, None),
    "ra429date": (2, True, 200, None),
    "ra_too_long": (1, False, 503, "http_status"),
    "reset": (2, True, 200, None),
    "slow": (2, True, 200, None),
    "perm500": (4, False, 500, "http_status"),
    "notfound": (1, False, 404, "http_status"),
    "notjson": (1, True, 200, None),
    "huge": (1, False, 200, "too_large"),  # the server answered: its status is kept
    "hugechunked": (1, False, 200, "too_large"),
    "trickle": (4, False, None, "timeout"),
    "truncated": (2, True, 200, None),
}


@pytest.mark.slow
async def test_every_fault_case_gets_the_right_attempts_waits_and_final_record(
    faults: FaultServer,
):
    # a throttling case pauses its whole host: those get hosts of their own, and the one that
    # asks for an hour (paused for --max-retry-after) one to itself
    hosts = {"ra429s": "127.0.0.2", "ra429date": "127.0.0.2", "ra_too_long": "127.0.0.3"}
    lines = "".join(faults.url(case, host=hosts.get(case)) + "\n" for case in CASES).encode()
    result = await run_cli(
        "run", "-", "-q", "--retries", "3", "--timeout", "0.5", "--backoff-base", "0.01",
        "--backoff-max", "0.05", "--max-body", str(1024 * 1024), "--max-retry-after", "60",
        "--include-attempts", stdin=lines,
    )  # fmt: skip
    records: dict[str, dict[str, Any]] = {r["url"].split("/")[-2]: r for r in result.records}
    assert set(records) == set(CASES)
    for case, (attempts, ok, status, error) in CASES.items():
        record = records[case]
        seen = faults.log.count(case)
        assert seen == attempts, f"{case}: the server saw {seen} attempts"
        assert record["attempts"] == attempts, case
        assert len(record["history"]) == attempts, case
        assert (record["ok"], record["status"]) == (ok, status), case
        assert (record["error"] or {}).get("type") == error, case
    # Retry-After is honoured: the second attempt comes no sooner than asked
    first, second = faults.log.times("ra429s")
    assert second - first >= 1.0
    first, second = faults.log.times("ra429date")
    assert second - first >= 0.9  # an HTTP date has whole seconds; it asked for 1 to 2 s
    assert records["ra_too_long"]["history"][0]["wait_ms"] is None  # 3600 s: not waited for
    assert records["notjson"]["body"] == "{oops"
    assert result.status == 1


@pytest.mark.slow
async def test_a_429_with_retry_after_pauses_the_whole_host(faults: FaultServer):
    lines = (faults.url("ra429s", "x") + "\n").encode() + b"".join(
        (faults.url("hold", i) + "\n").encode() for i in range(150)
    )
    result = await run_cli("run", "-", "-q", "-c", "5", "--backoff-base", "0.01", stdin=lines)
    assert result.status == 0 and len(result.records) == 151
    throttled_at = faults.log.answered["ra429s", "x", 1]
    # requests already on the wire when the 429 left may still arrive in the first moments
    during = [a for a in faults.log.attempts if throttled_at + 0.05 < a.at < throttled_at + 0.95]
    assert during == []
    after = [a for a in faults.log.attempts if a.at >= throttled_at + 0.95]
    assert len(after) > 50  # and the host was used again once the pause was over


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    j = 0
    most = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        most = max(most, i - j + 1)
    return most


@pytest.mark.slow
async def test_rate_limits_hold_overall_and_per_host_as_the_server_sees_them(faults: FaultServer):
    lines = b"".join(
        (faults.url("ok", i, host=("127.0.0.1", "127.0.0.2")[i % 2]) + "\n").encode()
        for i in range(120)
    )
    result = await run_cli("run", "-", "-q", "-c", "50", "--rate", "80/s", "--rate-per-host",
                           "30/s", stdin=lines)  # fmt: skip
    assert result.status == 0
    attempts = faults.log.attempts
    # The server stamps an arrival when its (busy, shared) loop gets to the request, so under
    # load a few arrive bunched: allow 2 starts of slack. Unlimited, the 120 would all land
    # within a fraction of a second; the exact spacing of starts is tested on a fake clock.
    assert max_in_window([a.at for a in attempts], 1.0) <= 80 + 2
    for host in ("127.0.0.1", "127.0.0.2"):
        assert max_in_window([a.at for a in attempts if a.host == host], 1.0) <= 30 + 2


async def test_a_request_whose_cost_is_over_the_whole_budget_fails_at_once(faults: FaultServer):
    import orjson

    lines = b"".join(
        orjson.dumps({"url": faults.url("ok", i), "cost": cost}) + b"\n"
        for i, cost in enumerate((100, 90000, 100))
    )
    result = await run_cli("run", "-", "-q", "--budget", "60000/min", stdin=lines, timeout=20)
    records = {r["id"]: r for r in result.records}
    assert records[2]["error"]["type"] == "invalid_request"
    assert "over the whole budget" in records[2]["error"]["message"]
    assert records[1]["ok"] and records[3]["ok"]
    assert faults.log.count("ok", "1") == 0  # never sent
