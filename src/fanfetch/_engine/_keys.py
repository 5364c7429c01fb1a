"""``--key-pool FILE``: several API keys, each with its own rate, budget and pauses.

Each attempt takes the key with the most room (the one whose meters let it start soonest),
and waits only when every key must. A 429 pauses that key alone (for its ``Retry-After``)
while the others go on. A key answered 401 or 403 is tried no more for that request: the
attempt is made again with another key, and when every key was refused for it the last
answer stands. A key leaves the pool (with a warning) only once refused for ``RETIRE_AFTER``
different URLs with no success between: one resource a key may not see is no bad key, and a
URL that refuses every key must not empty the pool. Records carry ``key_index`` (0-based),
never a key.
Spreading load over keys may break an API's terms of use: that is for the user to check.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING

from .._core._config import Rate
from .._core._exceptions import ConfigError, NoKeyLeft
from .._core._types import Clock, Sleep
from ._hooks import AGAIN
from ._limits import GCRA
from ._retry import parse_retry_after

if TYPE_CHECKING:
    from .._net._http import Response
    from ._hooks import Try, Verdict

__all__ = ["Key", "KeyPool"]


RETIRE_AFTER = 3  # different URLs that refuse a key, with no success between, to retire it


class Key:
    __slots__ = ("budget", "header", "index", "paused_until", "rate", "refused", "refused_at")

    def __init__(self, index: int, header: tuple[str, str], rate: GCRA | None,
                 budget: GCRA | None) -> None:  # fmt: skip
        self.index = index
        self.header = header
        self.rate = rate
        self.budget = budget
        self.paused_until = 0.0
        self.refused = False  # out of the pool
        self.refused_at: set[str] = set()  # URLs that refused it since its last success

    def wait_for(self, now: float, cost: float | None) -> float:
        """Seconds before this key may start a request."""
        wait = self.paused_until - now
        if self.rate is not None:
            wait = max(wait, self.rate.delay())
        if self.budget is not None and cost:
            wait = max(wait, self.budget.delay())
        return max(wait, 0.0)


class KeyPool:
    """The keys of one run."""

    def __init__(
        self,
        path: str,
        header: str,
        *,
        rate: Rate | None,
        budget: Rate | None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        try:
            with open(path, encoding="utf-8") as f:
                keys = [line.strip() for line in f if line.strip()]
        except OSError as exc:
            raise ConfigError("key_pool", path, f"cannot read it: {exc.strerror}") from None
        if not keys:
            raise ConfigError("key_pool", path, "it holds no key (one a line)")
        name, sep, template = header.partition(":")
        if not sep or "{key}" not in template or not name.strip():
            raise ConfigError("key_header", header, "write it as 'Header: text {key}'")
        self._clock = clock
        self._sleep = sleep
        self.keys = [
            Key(i, (name.strip(), template.strip().replace("{key}", key)),
                GCRA(rate, clock=clock, sleep=sleep) if rate else None,
                GCRA(budget, clock=clock, sleep=sleep) if budget else None)
            for i, key in enumerate(keys)
        ]  # fmt: skip
        self._changed = asyncio.Event()

    async def before(self, attempt: Try) -> None:
        """The attempt hook: the attempt goes with the key with the most room; its 429 and
        Retry-After are that key's (it rests alone), not the host's."""
        key = await self.take(attempt.cost, attempt.tried)
        attempt.key_index = key.index
        attempt.own_throttle = True
        attempt.add_headers({key.header[0]: key.header[1]})

    async def after(self, attempt: Try, response: Response) -> Verdict:
        """A key refused (401, 403): the attempt made again with another, no retry spent."""
        assert attempt.key_index is not None
        key = self.keys[attempt.key_index]
        tried = attempt.tried | {key.index}
        if self.answered(key, response.status, response.headers, attempt.request.url, tried):
            attempt.tried = tried
            return AGAIN
        return None

    async def take(self, cost: float | None, avoid: frozenset[int] = frozenset()) -> Key:
        """The key with the most room (of those not in ``avoid``: keys already refused for
        this request), once it may start; its meters charged."""
        while True:
            now = self._clock()
            live = [k for k in self.keys if not k.refused and k.index not in avoid]
            if not live:
                raise NoKeyLeft("every key of the pool was refused (401 or 403)")
            best = min(live, key=lambda k: k.wait_for(now, cost))
            wait = best.wait_for(now, cost)
            if wait <= 0:
                if best.rate is not None:
                    best.rate.take()
                if best.budget is not None and cost:
                    best.budget.take(cost)
                return best
            await self._sleep(wait)

    def answered(
        self, key: Key, status: int, headers: object, url: str, tried: frozenset[int]
    ) -> bool:
        """Learn from an answer given to ``key`` for ``url``; True when the attempt should
        be made again with another key (this one was refused, and ``tried``, the keys
        refused for this request so far, leaves one to try)."""
        if status in (401, 403):
            if not key.refused:
                key.refused_at.add(url)
                if len(key.refused_at) >= RETIRE_AFTER:
                    key.refused = True
                    sys.stderr.write(
                        f"fanfetch: warning: key {key.index} of the pool was refused ({status}) "
                        f"for {RETIRE_AFTER} different URLs: taken out of the pool\n"
                    )
            return any(not k.refused and k.index not in tried for k in self.keys)
        if key.refused_at and status < 400:
            key.refused_at.clear()  # it works: what refused it was about those resources
        if status == 429:
            asked = parse_retry_after(headers.get("Retry-After") if headers else None)  # type: ignore[attr-defined]
            key.paused_until = max(key.paused_until, self._clock() + (asked or 1.0))
        return False
