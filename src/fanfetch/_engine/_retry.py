"""Which outcomes are tried again, and how long to wait before the next attempt.

``backoff`` is a pure function; ``Retry-After`` overrides it here, in the policy, so the
scheduler only ever asks one question: "wait how long, or stop?".
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

from .._core._config import RetryPolicy
from .._core._exceptions import RequestError

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


_RATELIMIT_RE = re.compile(r"(?:^|[,;\s])(remaining|reset)\s*=\s*(\d+(?:\.\d+)?)", re.I)
_EPOCH = 1_000_000_000  # an X-RateLimit-Reset above this is a Unix time, not seconds from now


def throttle_delay(
    policy: RetryPolicy, status: int, headers: Mapping[str, str] | None
) -> float | None:
    """How long the whole host should rest after this answer, or None when it did not object.

    A 429, or a 503 with ``Retry-After``, throttles the host for that long (0 when it gives no
    time: the host's window still narrows). A response of any status whose rate-limit headers
    say nothing remains (``RateLimit-Remaining: 0`` / ``X-RateLimit-Remaining: 0`` with a reset,
    or ``RateLimit: remaining=0, reset=N``) rests the host until the reset. Never longer than
    ``policy.max_retry_after``.
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
    remaining = headers.get("RateLimit-Remaining") or headers.get("X-RateLimit-Remaining")
    combined = headers.get("RateLimit")
    if remaining is not None or combined:  # most answers have no rate-limit headers at all
        reset = headers.get("RateLimit-Reset") or headers.get("X-RateLimit-Reset")
        if combined:
            fields = {k.lower(): v for k, v in _RATELIMIT_RE.findall(combined)}
            remaining = fields.get("remaining", remaining)
            reset = fields.get("reset", reset)
        if remaining is not None and reset is not None and remaining.strip() == "0":
            try:
                seconds = float(reset)
            except ValueError:
                seconds = None
            if seconds is not None:
                if seconds > _EPOCH:
                    seconds -= time.time()
                delay = max(delay or 0.0, seconds, 0.0)
    for kind in ("requests", "tokens"):  # OpenAI-style: x-ratelimit-remaining-tokens: 0
        left = headers.get(f"x-ratelimit-remaining-{kind}")
        if left is not None and left.strip() == "0":
            seconds = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
            if seconds is not None:
                delay = max(delay or 0.0, seconds)
    if delay is None:
        return None
    return min(delay, policy.max_retry_after)


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str | None) -> float | None:
    """Seconds in ``6m0s``, ``1.5s``, ``20ms`` or a bare number (as OpenAI-style reset
    headers write them); None if unusable."""
    if not value:
        return None
    text = value.strip().lower()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)
