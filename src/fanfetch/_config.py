"""Configuration as small immutable value objects, validated when made.

Every option of the CLI maps to one field here; the CLI and the Python API build the same
objects, so there is one set of defaults (the ``DEFAULT_*`` constants) and one validation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._exceptions import ConfigError

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_BODY",
    "DEFAULT_RETRY",
    "DEFAULT_RETRY_ON",
    "DEFAULT_TIMEOUTS",
    "Config",
    "Limits",
    "Rate",
    "RetryPolicy",
    "Timeouts",
]

DEFAULT_CONCURRENCY = 100
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_RETRY_ON: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 10
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_MAX = 30.0
DEFAULT_MAX_RETRY_AFTER = 120.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How many requests may be in flight: in all (``concurrency``) and to one host."""

    concurrency: int = DEFAULT_CONCURRENCY
    per_host: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigError("concurrency", self.concurrency, "give a whole number >= 1, e.g. 100")
        if self.per_host is not None and (not isinstance(self.per_host, int) or self.per_host < 1):
            raise ConfigError("per_host", self.per_host, "give a whole number >= 1, or None")


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """``attempt``: seconds one attempt may take, counted once it holds its slot (not queued)."""

    attempt: float | None = DEFAULT_TIMEOUT
    connect: float | None = None

    def __post_init__(self) -> None:
        for name, option in (("attempt", "timeout"), ("connect", "connect_timeout")):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ConfigError(option, value, "give seconds > 0, or None for none")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Which outcomes are tried again, how often, and how long to wait in between.

    ``retries`` counts further attempts after the first. Timeouts and connection errors are
    always retryable; statuses only when in ``retry_on``. See ``_retry.backoff`` for waits.
    """

    retries: int = DEFAULT_RETRIES
    retry_on: frozenset[int] = DEFAULT_RETRY_ON
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError("retries", self.retries, "give a whole number >= 0 (0: no retries)")
        if self.backoff_base < 0:
            raise ConfigError("backoff_base", self.backoff_base, "give seconds >= 0")
        if self.backoff_max < self.backoff_base:
            raise ConfigError("backoff_max", self.backoff_max, "give seconds >= backoff_base")
        if self.max_retry_after < 0:
            raise ConfigError("max_retry_after", self.max_retry_after, "give seconds >= 0")
        object.__setattr__(self, "retry_on", frozenset(self.retry_on))
        if any(not isinstance(c, int) or not 100 <= c <= 599 for c in self.retry_on):
            shown = ",".join(map(str, sorted(self.retry_on, key=str)))
            raise ConfigError("retry_on", shown, "statuses are whole numbers from 100 to 599")


_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$", re.I)
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PER |= {"h": 3600.0, "hour": 3600.0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """At most ``count`` starts per ``period`` seconds, evenly spaced; ``burst`` may go at once."""

    count: float
    period: float = 1.0
    burst: int = 1

    def __post_init__(self) -> None:
        if self.count <= 0 or self.period <= 0:
            raise ConfigError("rate", f"{self.count}/{self.period}s", "give a positive rate")
        if not isinstance(self.burst, int) or self.burst < 1:
            raise ConfigError("burst", self.burst, "give a whole number >= 1")

    @property
    def interval(self) -> float:
        """Seconds between two evenly spaced starts."""
        return self.period / self.count

    @classmethod
    def parse(cls, text: str, *, burst: int = 1, parameter: str = "rate") -> Rate:
        """Read ``"100/s"``, ``"3000/min"`` or ``"10/h"``."""
        match = _RATE_RE.match(text)
        if not match:
            raise ConfigError(parameter, text, "write it as COUNT/UNIT, e.g. 100/s or 3000/min")
        count = float(match.group(1))
        if count <= 0:
            raise ConfigError(parameter, text, "the count must be above 0")
        return cls(count=count, period=_PER[match.group(2).lower()], burst=burst)

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period, f"{self.period}s")
        return f"{self.count:g}/{unit}"


DEFAULT_LIMITS = Limits()
DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything one run needs to know, in one immutable object shared by CLI and API."""

    limits: Limits = DEFAULT_LIMITS
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    retry: RetryPolicy = DEFAULT_RETRY
    rate: Rate | None = None
    rate_per_host: Rate | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    budget: Rate | None = None
    include_headers: bool = False
    include_attempts: bool = False
    max_body: int = DEFAULT_MAX_BODY
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    verify_tls: bool = True
    transform: str | Callable[[dict[str, Any]], Any] | None = None
    transform_workers: int | None = None  # None: one per core; 0: on the loop itself
    save_dir: str | None = None  # stream 2xx bodies to files here instead of into records
    max_file: int | None = None  # with save_dir: the largest file (None: no limit)

    def __post_init__(self) -> None:
        if self.transform_workers is not None and (
            not isinstance(self.transform_workers, int) or self.transform_workers < 0
        ):
            raise ConfigError(
                "transform_workers", self.transform_workers, "give a whole number >= 0"
            )
        if not isinstance(self.max_body, int) or self.max_body < 0:
            raise ConfigError("max_body", self.max_body, "give a size in bytes >= 0")
        if self.max_file is not None and (not isinstance(self.max_file, int) or self.max_file < 0):
            raise ConfigError("max_file", self.max_file, "give a size in bytes >= 0, or None")
        if not isinstance(self.max_redirects, int) or self.max_redirects < 0:
            raise ConfigError("max_redirects", self.max_redirects, "give a whole number >= 0")
