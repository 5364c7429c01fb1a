"""Limits on when an attempt may start: per-host concurrency and rate limits, one interface.

The global concurrency limit is not here: it is the size of the scheduler's worker pool.
Every limit takes an injected clock and sleep, so tests move time by hand.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ._config import Rate

__all__ = ["GCRA", "Clock", "HostSlots", "Limiter", "Sleep"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class HostSlots:
    """At most ``limit`` attempts in flight to any one host.

    A host's entry exists only while some attempt holds or waits for one of its slots, so a run
    over ten million distinct hosts does not keep ten million semaphores.
    """

    __slots__ = ("_hosts", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # host -> [slots in use, waiters]
        self._hosts: dict[str, tuple[list[int], deque[asyncio.Future[None]]]] = {}

    async def acquire(self, host: str) -> None:
        entry = self._hosts.get(host)
        if entry is None:
            self._hosts[host] = ([1], deque())
            return
        used, waiters = entry
        if used[0] < self.limit and not waiters:
            used[0] += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter  # release() hands its slot straight to us: used[0] is unchanged
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(host)  # we were handed a slot just as we were cancelled
            else:
                waiters.remove(waiter)
            raise

    def release(self, host: str) -> None:
        used, waiters = self._hosts[host]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        used[0] -= 1
        if used[0] == 0:
            del self._hosts[host]

    def in_use(self, host: str) -> int:
        entry = self._hosts.get(host)
        return entry[0][0] if entry else 0

    def __repr__(self) -> str:
        busy = sum(e[0][0] for e in self._hosts.values())
        return f"<HostSlots limit={self.limit} hosts={len(self._hosts)} in_use={busy}>"


class GCRA:
    """The Generic Cell Rate Algorithm (ATM Forum TM 4.0): a token bucket kept as one number.

    ``tat`` is the theoretical arrival time of the next start. A start at ``now`` is allowed when
    ``now >= tat - (burst - 1) * interval``, and then pushes ``tat`` to ``max(tat, now) +
    interval``. Waiters queue in FIFO order behind a lock and ``tat`` moves only when a start
    really happens, at the time it really happens: a waiter that wakes late never lets the
    next one in early, so no window of one period holds more than ``count + burst - 1`` starts.
    """

    __slots__ = ("_clock", "_lock", "_sleep", "_tat", "burst", "interval")

    def __init__(self, rate: Rate, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep):
        self.interval = rate.interval
        self.burst = rate.burst
        self._clock = clock
        self._sleep = sleep
        self._tat = float("-inf")
        self._lock = asyncio.Lock()

    def delay(self) -> float:
        """Seconds until a start is allowed (0 when one may go now)."""
        allowed_at = self._tat - (self.burst - 1) * self.interval
        wait = allowed_at - self._clock()
        return wait if wait > 0 else 0.0

    def take(self) -> None:
        """Record a start now."""
        now = self._clock()
        self._tat = (self._tat if self._tat > now else now) + self.interval

    async def wait(self) -> None:
        """Return when a start is allowed, and record it."""
        if not self._lock.locked() and self.delay() == 0.0:
            self.take()  # the common case when under the rate: no lock, no sleep
            return
        async with self._lock:
            while (wait := self.delay()) > 0:
                await self._sleep(wait)
            self.take()

    def __repr__(self) -> str:
        return f"<GCRA interval={self.interval:.6f}s burst={self.burst} tat={self._tat:.3f}>"


class Limiter:
    """All the limits an attempt passes before it starts, and gives back when it ends.

    ``wait_can_start(host)`` takes a host slot, then waits for the global and per-host rates;
    ``notify_finished(host)`` frees the slot. With no limits set both are nearly free.
    """

    def __init__(
        self,
        *,
        per_host: int | None = None,
        rate: Rate | None = None,
        rate_per_host: Rate | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._slots = HostSlots(per_host) if per_host else None
        self._rate = GCRA(rate, clock=clock, sleep=sleep) if rate else None
        self._host_rate = rate_per_host
        self._host_meters: dict[str, GCRA] = {}
        self._clock = clock
        self._sleep = sleep
        self.active = bool(per_host or rate or rate_per_host)

    async def wait_can_start(self, host: str) -> None:
        if self._slots is not None:
            await self._slots.acquire(host)
        try:
            if self._rate is not None:
                await self._rate.wait()
            if self._host_rate is not None:
                meter = self._host_meters.get(host)
                if meter is None:
                    meter = GCRA(self._host_rate, clock=self._clock, sleep=self._sleep)
                    self._host_meters[host] = meter
                await meter.wait()
        except BaseException:
            self.notify_finished(host)
            raise

    def notify_finished(self, host: str) -> None:
        if self._slots is not None:
            self._slots.release(host)

    def __repr__(self) -> str:
        return f"<Limiter slots={self._slots!r} rate={self._rate!r} hosts={len(self._host_meters)}>"
