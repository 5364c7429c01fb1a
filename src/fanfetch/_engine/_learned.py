"""``--rate auto`` and ``--budget auto``: each host paced at the rate its rate-limit headers
advertise, so a job runs at the limit without being refused.

Read from any answer that carries them: ``X-RateLimit-Limit/Remaining/Reset`` (Reset in
seconds from now, or a Unix time), the older IETF trio ``RateLimit-Limit/Remaining/Reset``
and ``RateLimit: limit=, remaining=, reset=``, the structured fields of
draft-ietf-httpapi-ratelimit-headers 07 on (``RateLimit-Policy: "default";q=100;w=60`` and
``RateLimit: "default";r=50;t=30``), and OpenAI's ``x-ratelimit-{limit,remaining,reset}-
{requests,tokens}`` (limits per minute).

The pace is the policy's rate (limit over window) less a margin, moved by what remains: when
what remains is surely less than that pace would spend before the reset, the rest is spread
over the time left; when it is surely more (a job that started mid-window), the pace rises
to spend it, at most to twice the policy's rate. "Surely": a reset given in whole seconds is
a second out either way, so a one-second window learns nothing from it. Adjusting
concurrency instead overshoots a per-second limit by design; the rate itself follows the
window. A window the server does not state is taken as the longest reset it has given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .._core._config import Auto, Config, Rate
from .._core._types import Clock, Sleep
from ._limits import _SWEEP_FROM, FORGET_AFTER, GCRA
from ._quota import Quota, quota

__all__ = ["MARGIN", "Learner", "Pace", "learner_for"]

MARGIN = 0.97
"""The share of the advertised rate aimed at: room for a timer that fires late and for
requests that reach the server closer together than they left."""

CATCH_UP = 2.0  # at most this many times the policy's rate while spending a window's rest


class Pace:
    """One host's learned pace: the longest reset it gave (its window, when it did not say)
    and the rate in starts (or units) a second to hold to now."""

    __slots__ = ("longest_reset", "per_second", "seen")

    def __init__(self) -> None:
        self.longest_reset = 0.0
        self.per_second = 0.0
        self.seen = 0.0

    def learn(self, quota: Quota, now: float) -> float | None:
        """The pace ``quota`` asks for, in units a second (None: it says nothing usable)."""
        self.seen = now
        remaining, reset = quota.remaining, quota.reset
        if reset is not None and reset > self.longest_reset:
            self.longest_reset = reset
        window = quota.window or math.ceil(self.longest_reset) or None
        if not window or not quota.limit:
            return None
        policy = MARGIN * quota.limit / window
        rate = policy
        if remaining is not None and reset is not None and reset > 0:
            if remaining < policy * (reset - 1.0):  # surely short: spread the rest
                rate = max(remaining, 1.0) / (reset + 1.0)
            elif remaining > policy * (reset + 1.0):  # surely more than the pace would spend
                rate = min(remaining / (reset + 1.0), CATCH_UP * policy)
        self.per_second = rate
        return rate


class _Host:
    __slots__ = ("requests", "requests_meter", "tokens", "tokens_meter")

    def __init__(self) -> None:
        self.requests = Pace()
        self.tokens = Pace()
        self.requests_meter: GCRA | None = None
        self.tokens_meter: GCRA | None = None


class Learner:
    """The learned pace of each host that advertised one: its own meter of starts (and of
    tokens, for ``--budget auto``), which an attempt waits on after the fixed limits.

    A host is unpaced until an answer of its advertises a limit; one idle for
    ``FORGET_AFTER`` seconds with its meters at rest is forgotten when the table has
    doubled (its next answer teaches it again).
    """

    __slots__ = ("_clock", "_hosts", "_requests", "_share", "_sleep", "_sweep_at", "_tokens")

    def __init__(
        self, *, requests: bool, tokens: bool, share: float = 1.0, clock: Clock, sleep: Sleep
    ) -> None:
        self._requests, self._tokens, self._share = requests, tokens, share
        self._clock, self._sleep = clock, sleep
        self._hosts: dict[str, _Host] = {}
        self._sweep_at = _SWEEP_FROM

    def paces(self, host: str) -> bool:
        """Whether an attempt on ``host`` has a learned pace to wait for."""
        return host in self._hosts

    async def wait(self, host: str, cost: float | None) -> None:
        learned = self._hosts.get(host)
        if learned is None:
            return
        if learned.requests_meter is not None:
            await learned.requests_meter.wait()
        if cost and learned.tokens_meter is not None:
            await learned.tokens_meter.wait(cost)

    def heard(self, host: str, headers: Mapping[str, str] | None) -> None:
        """An answer from ``host``: learn from the limits its headers advertise, if any."""
        if headers is None:
            return
        if self._requests and (found := quota(headers)) is not None:
            learned = self._host(host)
            rate = learned.requests.learn(found, self._clock())
            if rate:
                learned.requests_meter = self._paced(learned.requests_meter, rate)
        if self._tokens and (found := quota(headers, "tokens")) is not None:
            learned = self._host(host)
            rate = learned.tokens.learn(found, self._clock())
            if rate:
                learned.tokens_meter = self._paced(learned.tokens_meter, rate)

    def _paced(self, meter: GCRA | None, per_second: float) -> GCRA:
        rate = Rate(count=per_second * self._share)
        if meter is None:
            return GCRA(rate, clock=self._clock, sleep=self._sleep)
        meter.set_rate(rate)
        return meter

    def _host(self, host: str) -> _Host:
        learned = self._hosts.get(host)
        if learned is None:
            if len(self._hosts) >= self._sweep_at:
                self._sweep()
            learned = self._hosts[host] = _Host()
        return learned

    def _sweep(self) -> None:
        now = self._clock()
        for host, learned in list(self._hosts.items()):
            meters = (learned.requests_meter, learned.tokens_meter)
            if now - max(learned.requests.seen, learned.tokens.seen) >= FORGET_AFTER and all(
                m is None or m.at_rest() for m in meters
            ):
                del self._hosts[host]
        self._sweep_at = max(_SWEEP_FROM, 2 * len(self._hosts))

    def rate_of(self, host: str) -> float | None:
        """``host``'s learned pace in starts a second now (None: it advertised none)."""
        learned = self._hosts.get(host)
        if learned is None or learned.requests_meter is None:
            return None
        return learned.requests.per_second * self._share

    def __len__(self) -> int:
        return len(self._hosts)


def learner_for(config: Config, *, clock: Clock, sleep: Sleep) -> Learner | None:
    """The learner ``auto`` in ``rate``, ``rate_per_host`` or ``budget`` asks for, if any."""
    limits, budget = config.limits, config.costs.budget
    learned = [r for r in (limits.rate, limits.rate_per_host, budget) if isinstance(r, Auto)]
    if not learned:
        return None
    return Learner(
        requests=isinstance(limits.rate, Auto) or isinstance(limits.rate_per_host, Auto),
        tokens=isinstance(budget, Auto),
        share=min(auto.share for auto in learned),
        clock=clock,
        sleep=sleep,
    )
