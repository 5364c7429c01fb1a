"""The embedded mock API answers as documented (the demo, examples and users rely on it)."""

from __future__ import annotations

from collections import Counter

import fanfetch


def test_echo_items_and_status_routes_answer_as_documented():
    with fanfetch.MockAPI(latency_ms=0) as api:
        echo, item, status = fanfetch.run(
            [
                {"url": f"{api.url}/echo?q=1", "method": "POST", "json": {"a": 1},
                 "headers": {"X-Test": "yes"}},
                f"{api.url}/items/42",
                f"{api.url}/status/418",
            ],
            ordered=True,
            retries=0,
        )  # fmt: skip
    body = echo.json()
    assert echo.ok and body["method"] == "POST" and body["query"] == {"q": "1"}
    assert body["body"] == {"a": 1} and body["headers"]["X-Test"] == "yes"
    assert item.json()["id"] == "42"
    assert status.status == 418 and not status.ok


def test_error_and_throttle_rates_give_that_share_of_500_503_and_429():
    with fanfetch.MockAPI(
        latency_ms=0, error_rate=0.2, throttle_rate=0.1, retry_after=0, seed=3
    ) as api:
        results = fanfetch.run([f"{api.url}/items/{i}" for i in range(500)], retries=0)
    counts = Counter(r.status for r in results)
    assert 60 <= counts[500] + counts[503] <= 140  # about 20% of 500
    assert 25 <= counts[429] <= 75  # about 10%
