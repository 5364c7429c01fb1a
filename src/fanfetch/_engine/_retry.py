"""Which outcomes are tried again, and how long to wait before the next attempt.

``backoff`` is a pure function; ``Retry-After`` overrides it here, in the policy, so the
scheduler only ever asks one question: "wait how long, or stop?".
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

from .._core._config import RetryPolicy
from .._core._exceptions import RequestError
from ._quota import quota, says_remaining

__all__ = ["backoff", "next_delay", "parse_retry_after", "throttle_delay"]

_RETRY_AFTER_STATUSES = frozenset({429, 503})


def backoff(
    attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and
    Jitter"):

        wait = U(0, min(cap, base * 2 ** (attempt - 1)))

    ``attempt`` is the number of the attempt that just failed (1 for the first). Full jitter
    spreads the retries of many requests that failed together, so they do not come back in waves.
    """
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    return ceiling * rand()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After``: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def next_delay(
    policy: RetryPolicy,
    attempt: int,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    error: RequestError | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None when ``attempt`` was the last.

    Retried: errors that say they are ``retryable`` (timeouts, connection errors), and
    statuses in ``policy.retry_on``. A 429 or 503 with ``Retry-After`` waits at least that
    long; beyond ``max_retry_after`` the request ends.
    """
    if attempt > policy.retries:
        return None
    if error is not None:
        if not error.retryable:  # a timeout or a dropped connection; not a refused certificate
            return None
        return backoff(attempt, base=policy.backoff_base, cap=policy.backoff_max, rand=rand)
    if status is None or status not in policy.retry_on:
        return None
    delay = backoff(attempt, base=policy.backoff_base, cap=policy.backoff_max, rand=rand)
    if status in _RETRY_AFTER_STATUSES and headers is not None:
        asked = parse_retry_after(headers.get("Retry-After"))
        if asked is not None:
            if asked > policy.max_retry_after:
                return None
            delay = max(delay, asked)
    return delay


def throttle_delay(
    policy: RetryPolicy, status: int, headers: Mapping[str, str] | None
) -> float | None:
    """How long the whole host should rest after this answer, or None when it did not object.

    A 429, or a 503 with ``Retry-After``, throttles the host for that long (0 when it gives no
    time: the host's window still narrows). A response of any status whose rate-limit headers
    (any form ``_quota`` reads) say nothing remains, with a reset, rests the host until the
    reset. Never longer than ``policy.max_retry_after``.
    """
    if headers is None:
        return None
    delay: float | None = None
    if status in _RETRY_AFTER_STATUSES:
        asked = parse_retry_after(headers.get("Retry-After"))
        if asked is not None:
            delay = asked
        elif status == 429:
            delay = 0.0
    if says_remaining(headers):  # most answers have no rate-limit headers at all
        for kind in ("requests", "tokens"):
            found = quota(headers, kind)
            if found is not None and found.remaining == 0 and found.reset is not None:
                delay = max(delay or 0.0, found.reset)
    if delay is None:
        return None
    return min(delay, policy.max_retry_after)
