"""The retry policy: what is retried, backoff with full jitter, and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from fanfetch import RetryPolicy
from fanfetch._core._exceptions import ConnectError, InvalidRequest, RequestTimeout
from fanfetch._engine._retry import backoff, next_delay, parse_retry_after

POLICY = RetryPolicy(retries=3, backoff_base=1.0, backoff_max=5.0, max_retry_after=60)


def test_backoff_ceiling_doubles_per_attempt_up_to_the_cap():
    top = [backoff(n, base=1.0, cap=5.0, rand=lambda: 1.0) for n in range(1, 6)]
    assert top == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff(3, base=1.0, cap=5.0, rand=lambda: 0.25) == 1.0  # full jitter: U(0, ceiling)


def test_timeouts_connection_errors_and_listed_statuses_are_retried_others_are_final():
    one = lambda: 1.0  # noqa: E731
    assert next_delay(POLICY, 1, error=RequestTimeout("t"), rand=one) == 1.0
    assert next_delay(POLICY, 2, error=ConnectError("c"), rand=one) == 2.0
    assert next_delay(POLICY, 1, status=503, rand=one) == 1.0
    assert next_delay(POLICY, 1, status=404) is None
    assert next_delay(POLICY, 1, error=InvalidRequest("x")) is None
    assert next_delay(POLICY, 4, status=503) is None  # 3 retries: attempt 4 was the last


def test_retry_after_sets_a_floor_and_beyond_the_cap_the_request_ends():
    assert next_delay(POLICY, 1, status=429, headers={"Retry-After": "7"}, rand=lambda: 0) == 7.0
    assert next_delay(POLICY, 1, status=503, headers={"Retry-After": "61"}) is None
    assert next_delay(POLICY, 1, status=500, headers={"Retry-After": "7"}, rand=lambda: 0) == 0


@pytest.mark.parametrize("value", [None, "", "soon", "nan"])
def test_unusable_retry_after_values_are_ignored(value):
    assert parse_retry_after(value) is None


def test_retry_after_may_be_an_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now.timestamp()) == 0.0


def test_throttle_reads_retry_after_and_ratelimit_headers():
    from fanfetch._engine._retry import throttle_delay

    assert throttle_delay(POLICY, 429, {"Retry-After": "3"}) == 3.0
    assert throttle_delay(POLICY, 429, {}) == 0.0  # no time given: narrow, do not pause
    assert throttle_delay(POLICY, 503, {}) is None
    assert throttle_delay(POLICY, 200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "7"}) == 7.0
    assert throttle_delay(POLICY, 200, {"RateLimit": "limit=10, remaining=0, reset=4"}) == 4.0
    assert (
        throttle_delay(POLICY, 200, {"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "9"})
        is None
    )
    assert throttle_delay(POLICY, 429, {"Retry-After": "999"}) == 60.0  # capped


def test_redact_masks_secret_looking_query_values_only():
    from fanfetch._core._redact import redact

    text = redact("GET http://127.0.0.1/x?api_key=abc&page=2&X-Amz-Signature=qq&access_token=t")
    assert text == (
        "GET http://127.0.0.1/x?api_key=***&page=2&X-Amz-Signature=***&access_token=***"
    )


@pytest.mark.parametrize(
    ("headers", "rest"),
    [
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}, 1.0),
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1m30s"}, 90.0),
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "20ms"}, 0.02),
        ({"x-ratelimit-remaining-tokens": "5", "x-ratelimit-reset-tokens": "6m0s"}, None),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "soon"}, None),
    ],
)
def test_openai_style_rate_limit_headers_rest_the_host_until_their_reset(headers, rest):
    from fanfetch._engine._retry import throttle_delay

    assert throttle_delay(RetryPolicy(), 200, headers) == (pytest.approx(rest) if rest else None)


def test_cost_and_usage_read_the_request_and_the_answer():
    import orjson

    from fanfetch import Request
    from fanfetch._engine._cost import Costs

    costs = Costs("sum([json.max_tokens, tokens(json.prompt)])", "usage.total_tokens")
    request = Request("http://127.0.0.1/", json={"max_tokens": 100, "prompt": "x" * 41})
    assert costs.cost_of(request) == 111  # 100, and 41 characters as 11 tokens
    given = Request("http://127.0.0.1/", json={"max_tokens": 100}, cost=7)
    assert costs.cost_of(given) == 7  # a line's own cost stands
    odd = Request("http://127.0.0.1/", json={"max_tokens": "lots"})
    assert "not a number" in str(costs.cost_of(odd)) or "cannot be applied" in str(
        costs.cost_of(odd)
    )
    assert costs.used(orjson.dumps({"usage": {"total_tokens": 250}})) == 250
    assert costs.used(b"not json") is None
