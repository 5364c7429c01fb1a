"""Putting things that finish in any order back into input order, within a bounded window.

One algorithm for every ordered output: the engine's results (``--ordered``, the API's
``ordered=True``) and the encoded records that ``--workers`` processes send back.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

__all__ = ["Reorder"]

T = TypeVar("T")


class Reorder(Generic[T]):
    """Items keyed by ``seq`` (0, 1, 2, ...) handed out in that order, at most ``window``
    held at once.

    Whoever brings item ``seq`` first awaits ``admitted(seq)``: no item more than ``window``
    ahead of the next one due is taken, so memory stays bounded. The item due next is
    always admitted, so this cannot deadlock. ``take_due`` hands out every item now due.
    """

    def __init__(self, *, window: int, start: int = 0) -> None:
        self._window = window
        self._next = start
        self._held: dict[int, T] = {}
        self._moved = asyncio.Event()

    def __len__(self) -> int:
        """Items held, waiting for the one due next."""
        return len(self._held)

    @property
    def due(self) -> int:
        """The ``seq`` handed out next."""
        return self._next

    def holds(self, seq: int) -> bool:
        """Whether ``seq`` is too far ahead to be taken now."""
        return seq >= self._next + self._window

    async def admitted(self, seq: int) -> None:
        while self.holds(seq):
            await self._moved.wait()

    def add(self, seq: int, item: T) -> None:
        self._held[seq] = item

    def take_due(self) -> list[T]:
        """Every item due now, in order (empty when the next one due has not come)."""
        held = self._held
        due: list[T] = []
        while self._next in held:
            due.append(held.pop(self._next))
            self._next += 1
        if due:
            self._moved.set()
            self._moved = asyncio.Event()
        return due

    def check_empty(self) -> None:
        """At the end of a run that was not stopped nothing may be left waiting: an item
        held here for ever would be a request without its record."""
        if self._held:
            raise RuntimeError(
                f"the reorder window ended holding {len(self._held)} results (the next due, "
                f"{self._next}, never came): a bug in fanfetch, please report it"
            )

    def __repr__(self) -> str:
        return f"<Reorder next={self._next} held={len(self._held)} window={self._window}>"
