"""Which outcomes are tried again, and how long to wait before the next attempt.

``backoff`` is a pure function; ``Retry-After`` overrides it here, in the policy, so the
scheduler only ever asks one question: "wait how long, or stop?".
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

from ._config import RetryPolicy
from ._exceptions import RequestError

__all__ = ["backoff", "next_delay", "parse_retry_after"]

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

    Retried: timeouts and connection errors, and statuses in ``policy.retry_on``. A 429 or 503
    with ``Retry-After`` waits at least that long; beyond ``max_retry_after`` the request ends.
    """
    if attempt > policy.retries:
        return None
    if error is not None:
        if error.type not in ("timeout", "connection"):
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
