"""A bounded queue between coroutines, for the paths every request takes.

``asyncio.Queue`` does this job, but costs a tenth of fanfetch's own work at ten thousand
requests a second (``benchmarks/FINDINGS.md``). Here a queued item is taken without waiting
on anything; producers stopped by a full channel are woken only when it is
half empty, not once per item; and the end is one flag, not a sentinel per consumer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Channel"]

T = TypeVar("T")


class Channel(Generic[T]):
    """Items from any number of producers to any number of consumers, in order.

    ``put`` returns at once while the channel holds fewer than ``maxsize`` items; the put
    that fills it waits until it is half empty. (Each producer may so add one item over
    ``maxsize``: the bound is ``maxsize`` plus the number of producers.) ``get`` returns
    None once the channel is ended and empty.
    """

    __slots__ = ("_ended", "_getters", "_half", "_items", "_max", "_putters")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[T] = deque()
        self._max = maxsize
        self._half = maxsize // 2
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: list[asyncio.Future[None]] = []
        self._ended = False

    async def put(self, item: T) -> None:
        """Queue ``item``; when that fills the channel, wait until it is half empty."""
        items = self._items
        items.append(item)
        if self._getters:
            self._wake_getter()
        if len(items) >= self._max and not self._ended:
            putter = asyncio.get_running_loop().create_future()
            self._putters.append(putter)
            await putter

    async def get(self) -> T | None:
        """The next item, waiting for one if need be; None when there are no more."""
        items = self._items
        while not items:
            if self._ended:
                return None
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                if getter.done() and not getter.cancelled():
                    self._wake_getter()  # woken for an item it will not take: pass it on
                raise
        item = items.popleft()
        if self._putters and len(items) <= self._half:
            self._wake_putters()
        return item

    def __len__(self) -> int:
        """Items queued, not yet taken."""
        return len(self._items)

    def _wake_getter(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def _wake_putters(self) -> None:
        putters, self._putters = self._putters, []
        for putter in putters:
            if not putter.done():
                putter.set_result(None)

    def end(self, *, drop: bool = False) -> None:
        """No more items: consumers get None once the channel is empty (at once, with
        ``drop``, which forgets what is queued); waiting producers return."""
        self._ended = True
        if drop:
            self._items.clear()
        for getter in self._getters:
            if not getter.done():
                getter.set_result(None)
        self._getters.clear()
        self._wake_putters()

    def __repr__(self) -> str:
        state = "ended" if self._ended else "open"
        return (
            f"<Channel {state} queued={len(self._items)} getters={len(self._getters)} "
            f"putters={len(self._putters)}>"
        )
