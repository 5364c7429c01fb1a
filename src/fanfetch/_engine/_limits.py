"""Limits on when an attempt may start: per-host concurrency and rate limits, one interface.

The global concurrency limit is not here: it is the size of the scheduler's worker pool.
Every limit takes an injected clock and sleep, so tests move time by hand.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from typing import TYPE_CHECKING

from .._core._config import Rate
from .._core._types import Clock, HostView, Sleep

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._learned import Learner

__all__ = ["GCRA", "Clock", "HostGate", "HostView", "Limiter", "Sleep"]


FORGET_AFTER = 60.0
"""Seconds after which an idle host whose window was narrowed is forgotten (as if new)."""

_SWEEP_FROM = 1024  # hosts (or meters) kept before the first look for ones to forget


class _Host:
    """One host's gate: slots in use, FIFO waiters, the adaptive window and any pause."""

    __slots__ = ("idle_since", "in_use", "paused_until", "throttles", "timer", "waiters",
                 "why", "window")  # fmt: skip

    def __init__(self, window: float) -> None:
        self.in_use = 1
        self.window = window
        self.paused_until = 0.0
        self.idle_since = 0.0
        self.throttles = 0  # times it asked to slow down, and the last reason it gave
        self.why = ""
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.timer: asyncio.TimerHandle | None = None


class HostGate:
    """Per-host concurrency that adapts to what the host says it can bear.

    At most ``limit`` attempts in flight to one host (no limit when None). When the host
    throttles (429/503, or ``RateLimit-Remaining: 0``) it is paused: no new attempt starts on
    it until the time it asked for has passed, and its window of attempts in flight is halved.
    Each success then widens the window by ``1/window`` (about one more per round trip) until
    it is back at ``limit``: additive increase, multiplicative decrease, as TCP does, so a
    throttled API converges on what it can bear instead of being hit in waves.

    A host's entry lives only while an attempt holds or waits for it, or while it is paused
    or narrowed; a narrowed host left idle for ``FORGET_AFTER`` seconds is forgotten when
    the table next grows, so ten million distinct hosts do not keep ten million entries.
    """

    __slots__ = ("_ceiling", "_clock", "_hosts", "_max", "_sweep_at", "limit")

    def __init__(
        self, limit: int | None, *, ceiling: int | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.limit = limit
        self._max = float(limit) if limit else float("inf")
        # A window that has grown back to this is as good as unlimited (the pool is smaller).
        self._ceiling = float(min(limit or ceiling or 2**31, ceiling or 2**31))
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._sweep_at = _SWEEP_FROM

    def __len__(self) -> int:
        """Hosts whose state is kept."""
        return len(self._hosts)

    def paused(self) -> int:
        """Hosts resting now after a 429, a 503 or a rate-limit header (read by --metrics-port
        from its own thread: the table is copied first)."""
        now = self._clock()
        return sum(1 for host in list(self._hosts.values()) if host.paused_until > now)

    def _new_host(self, key: str) -> _Host:
        if len(self._hosts) >= self._sweep_at:
            self._sweep()
        host = self._hosts[key] = _Host(self._max)
        return host

    def _sweep(self) -> None:
        """Forget idle hosts whose pause is over and that have rested ``FORGET_AFTER``
        seconds; look again when the table has doubled (so the cost per host is constant)."""
        now = self._clock()
        for key, host in list(self._hosts.items()):
            if (
                host.in_use == 0
                and not host.waiters
                and host.paused_until <= now
                and now - host.idle_since >= FORGET_AFTER
            ):
                if host.timer is not None:
                    host.timer.cancel()
                del self._hosts[key]
        self._sweep_at = max(_SWEEP_FROM, 2 * len(self._hosts))

    def _open(self, host: _Host, now: float) -> bool:
        return host.in_use < host.window and host.paused_until <= now

    def try_acquire(self, key: str) -> bool:
        """Take a slot on ``key`` if one is free now, without waiting: the common case."""
        host = self._hosts.get(key)
        if host is None:
            self._new_host(key)
            return True
        if host.waiters or host.in_use >= host.window:
            return False
        paused_until = host.paused_until
        if paused_until and paused_until > self._clock():  # a never-paused host reads no clock
            return False
        host.in_use += 1
        return True

    async def acquire(self, key: str) -> None:
        if self.try_acquire(key):
            return
        host = self._hosts[key]
        now = self._clock()
        if not host.waiters and self._open(host, now):  # decided on the reading _arm gets
            host.in_use += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        host.waiters.append(waiter)
        self._arm(host, now)
        try:
            await waiter  # whoever wakes us has counted us in ``in_use`` already
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(key)  # handed a slot just as we were cancelled: give it back
            else:
                host.waiters.remove(waiter)
            raise

    def release(self, key: str) -> None:
        host = self._hosts[key]
        host.in_use -= 1
        if host.waiters:
            self._wake(host)
        if host.in_use == 0:
            self._forget_if_idle(key, host)

    def succeeded(self, key: str) -> None:
        """A 2xx from ``key``: widen its window a little, if it was narrowed."""
        host = self._hosts.get(key)
        if host is not None and host.window < self._max:
            window = host.window + 1.0 / host.window
            host.window = self._max if window >= self._ceiling else window

    def throttled(self, key: str, pause: float, why: str = "") -> None:
        """``key`` asked us to slow down (``why``: how): pause it ``pause`` seconds and halve
        its window."""
        host = self._hosts.get(key)
        if host is None:
            host = self._new_host(key)
            host.in_use = 0
        host.throttles += 1
        host.why = why
        now = self._clock()
        host.window = max(1.0, min(host.window, host.in_use + 1.0) / 2.0)
        host.paused_until = max(host.paused_until, now + pause)
        self._arm(host, now)

    def _wake(self, host: _Host) -> None:
        now = self._clock()
        while host.waiters and self._open(host, now):
            waiter = host.waiters.popleft()
            if not waiter.done():
                host.in_use += 1
                waiter.set_result(None)
        self._arm(host, now)

    def _arm(self, host: _Host, now: float) -> None:
        """One timer per paused host wakes its waiters when the pause ends (no polling).

        ``now`` must be the reading the caller decided on: reading the clock again here
        could find the pause just over, arm nothing, and leave the waiters asleep for ever.
        """
        if host.timer is not None or not host.waiters:
            return
        delay = host.paused_until - now
        if delay > 0:
            host.timer = asyncio.get_running_loop().call_later(delay, self._timer_fired, host)

    def _timer_fired(self, host: _Host) -> None:
        host.timer = None
        self._wake(host)

    def _forget_if_idle(self, key: str, host: _Host) -> None:
        if host.in_use or host.waiters:
            return
        now = self._clock()
        if host.window >= self._max and host.paused_until <= now:
            del self._hosts[key]
        else:
            host.idle_since = now  # kept (narrowed or paused) until a sweep finds it rested

    def set_limit(self, limit: int | None, *, ceiling: int | None = None) -> None:
        """Change the per-host limit mid-run; windows at the old limit move to the new one."""
        old_max = self._max
        self.limit = limit
        self._max = float(limit) if limit else float("inf")
        self._ceiling = float(min(limit or ceiling or 2**31, ceiling or 2**31))
        for key, host in list(self._hosts.items()):
            host.window = self._max if host.window >= old_max else min(host.window, self._max)
            self._wake(host)
            self._forget_if_idle(key, host)

    def busiest(self, most: int) -> list[HostView]:
        """The ``most`` hosts with the most attempts in flight or waiting (resting ones first
        among equals), as the dashboard shows them; read a few times a second, not per
        request."""
        now = self._clock()
        top = heapq.nlargest(
            most,
            list(self._hosts.items()),
            key=lambda kv: (kv[1].in_use + len(kv[1].waiters), kv[1].paused_until > now),
        )
        return [
            HostView(key, h.in_use, len(h.waiters), None if h.window >= self._max else h.window,
                     max(0.0, h.paused_until - now), h.throttles, h.why)
            for key, h in top
        ]  # fmt: skip

    def most_in_use(self) -> int:
        """The most attempts in flight to any one host now."""
        return max((h.in_use for h in list(self._hosts.values())), default=0)

    def in_use(self, key: str) -> int:
        host = self._hosts.get(key)
        return host.in_use if host else 0

    def window(self, key: str) -> float:
        host = self._hosts.get(key)
        return host.window if host else self._max

    def __repr__(self) -> str:
        busy = sum(h.in_use for h in self._hosts.values())
        paused = sum(1 for h in self._hosts.values() if h.paused_until > self._clock())
        return (
            f"<HostGate limit={self.limit} hosts={len(self._hosts)} in_use={busy} paused={paused}>"
        )


LATE_WAKEUP = 0.005  # seconds of starts a meter lets through early: timers fire up to ~1 ms late


class GCRA:
    """The Generic Cell Rate Algorithm (ATM Forum TM 4.0): a token bucket kept as one number.

    ``tat`` is the theoretical arrival time of the next start. A start at ``now`` is allowed when
    ``now >= tat - tolerance``, and then pushes ``tat`` to ``max(tat, now) + interval``, where
    ``tolerance = (burst - 1) * interval + LATE_WAKEUP``. Waiters queue in FIFO order behind
    a lock and ``tat`` moves only when a start really happens.

    The contract: in any window of ``t`` seconds at most ``rate * t + burst`` starts, plus
    ``LATE_WAKEUP`` seconds' worth (5 ms: 5 starts at 1,000/s, half a percent of a second's);
    and the rate itself over a run that nothing else limits. Without that tolerance a waiter
    that woke late (a timer fires up to a millisecond late) pushed every later start back by
    its lateness: ``--rate 1000/s`` delivered 700-775 starts a second.
    """

    __slots__ = ("_clock", "_lock", "_sleep", "_tat", "_tolerance", "burst", "interval")

    def __init__(self, rate: Rate, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep):
        self._clock = clock
        self._sleep = sleep
        self._tat = float("-inf")
        self._lock = asyncio.Lock()
        self.set_rate(rate)

    def set_rate(self, rate: Rate) -> None:
        """Change the rate mid-run; the next start is spaced by the new interval."""
        self.interval = rate.interval
        self.burst = rate.burst
        self._tolerance = (rate.burst - 1) * rate.interval + LATE_WAKEUP

    def delay(self) -> float:
        """Seconds until a start is allowed (0 when one may go now)."""
        allowed_at = self._tat - self._tolerance
        wait = allowed_at - self._clock()
        return wait if wait > 0 else 0.0

    def at_rest(self) -> bool:
        """Whether this meter would behave exactly as a new one (no start owed, none waiting)."""
        return not self._lock.locked() and self._tat <= self._clock()

    def take(self, cost: float = 1.0) -> None:
        """Record a start now, weighing ``cost`` units (1 for a plain request)."""
        now = self._clock()
        self._tat = (self._tat if self._tat > now else now) + cost * self.interval

    def correct(self, units: float) -> None:
        """Count ``units`` more (or fewer, when negative) against what was taken: a budget
        told what a request really cost once it answered."""
        self._tat += units * self.interval

    async def wait(self, cost: float = 1.0) -> None:
        """Return when a start is allowed, and record it.

        With costs (a token budget), a start of cost ``c`` holds the meter for ``c`` intervals,
        so any window of one period starts at most ``count`` units plus one request's cost.
        """
        if not self._lock.locked() and self.delay() == 0.0:
            self.take(cost)  # the common case when under the rate: no lock, no sleep
            return
        async with self._lock:
            while (wait := self.delay()) > 0:
                await self._sleep(wait)
            self.take(cost)

    def __repr__(self) -> str:
        return f"<GCRA interval={self.interval:.6f}s burst={self.burst} tat={self._tat:.3f}>"


class Limiter:
    """All the limits an attempt passes before it starts, and gives back when it ends.

    ``wait_can_start(host)`` takes a slot in the host's gate, then waits for the global rate,
    the host's rate and the cost budget; ``notify_finished(host, ...)`` frees the slot and
    tells the gate how the host answered (``throttle`` seconds when it asked to slow down).
    """

    def __init__(
        self,
        *,
        per_host: int | None = None,
        ceiling: int | None = None,
        rate: Rate | None = None,
        rate_per_host: Rate | None = None,
        budget: Rate | None = None,
        learner: Learner | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.gate = HostGate(per_host, ceiling=ceiling, clock=clock)
        self.learner = learner  # --rate auto, --budget auto: the paces hosts advertise
        self._rate = GCRA(rate, clock=clock, sleep=sleep) if rate else None
        self._budget = GCRA(budget, clock=clock, sleep=sleep) if budget else None
        self._host_rate = rate_per_host
        self._host_meters: dict[str, GCRA] = {}
        self._meters_sweep_at = _SWEEP_FROM
        self._clock = clock
        self._sleep = sleep

    def _forget_rested_meters(self) -> None:
        """Forget the hosts' rate meters that are back at rest: such a meter lets the next
        start go at once, exactly as a new one would, so nothing a limit promises changes."""
        for key, meter in list(self._host_meters.items()):
            if meter.at_rest():
                del self._host_meters[key]
        self._meters_sweep_at = max(_SWEEP_FROM, 2 * len(self._host_meters))

    @property
    def hosts_kept(self) -> int:
        """Hosts whose state (a gate entry or a rate meter) is kept."""
        return len(self.gate) + len(self._host_meters)

    def try_start(self, host: str, cost: float | None = None) -> bool:
        """Start at once if no limit makes it wait (the common case), without a coroutine;
        False: nothing was taken, await ``wait_can_start``."""
        if (
            self._rate is not None
            or self._host_rate is not None
            or (self._budget is not None and cost)
            or (self.learner is not None and self.learner.paces(host))
        ):
            return False
        return self.gate.try_acquire(host)

    def correct_budget(self, units: float) -> None:
        """What a request really cost (``--usage``) less what it was charged at its start."""
        if self._budget is not None and units:
            self._budget.correct(units)

    async def wait_can_start(self, host: str, cost: float | None = None) -> None:
        await self.gate.acquire(host)
        try:
            if self._rate is not None:
                await self._rate.wait()
            if self._host_rate is not None:
                meter = self._host_meters.get(host)
                if meter is None:
                    if len(self._host_meters) >= self._meters_sweep_at:
                        self._forget_rested_meters()
                    meter = GCRA(self._host_rate, clock=self._clock, sleep=self._sleep)
                    self._host_meters[host] = meter
                await meter.wait()
            if self._budget is not None and cost:
                await self._budget.wait(cost)
            if self.learner is not None:
                await self.learner.wait(host, cost)
        except BaseException:
            self.gate.release(host)
            raise

    def resize(
        self,
        *,
        per_host: int | None,
        ceiling: int | None,
        rate: Rate | None,
        rate_per_host: Rate | None,
        budget: Rate | None,
    ) -> None:
        """Take on new limits mid-run (a cluster shard whose share of the job's limits grew)."""
        self.gate.set_limit(per_host, ceiling=ceiling)
        self._rate = self._meter(self._rate, rate)
        self._budget = self._meter(self._budget, budget)
        self._host_rate = rate_per_host
        if rate_per_host is None:
            self._host_meters.clear()
        else:
            for meter in self._host_meters.values():
                meter.set_rate(rate_per_host)

    def _meter(self, meter: GCRA | None, rate: Rate | None) -> GCRA | None:
        if rate is None:
            return None
        if meter is None:
            return GCRA(rate, clock=self._clock, sleep=self._sleep)
        meter.set_rate(rate)
        return meter

    def notify_finished(
        self,
        host: str,
        *,
        ok: bool,
        throttle: float | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if self.learner is not None:
            self.learner.heard(host, headers)
        gate = self.gate
        if throttle is not None:
            gate.throttled(host, throttle, f"HTTP {status}" if status in (429, 503) else
                           f"rate-limit headers (HTTP {status})")  # fmt: skip
        elif ok:
            gate.succeeded(host)
        gate.release(host)

    def busiest(self, most: int) -> list[HostView]:
        """The gate's busiest hosts, each with the pace it taught (``--rate auto``)."""
        views = self.gate.busiest(most)
        learner = self.learner
        if learner is None:
            return views
        return [view._replace(learned=learner.rate_of(view.host)) for view in views]

    def __repr__(self) -> str:
        return f"<Limiter gate={self.gate!r} rate={self._rate!r} budget={self._budget!r}>"
