"""What the engine tells the world: small frozen events handed to listeners.

The progress bar, the summary and any user hook are listeners; the engine knows none of them.
When nobody listens, no event object is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._models import Request, Result

__all__ = ["ChainEnded", "Event", "Finished", "Listener", "Retrying", "RunEnded", "RunStarted"]


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The run began; ``total`` is the number of requests when cheaply known."""

    total: int | None


@dataclass(frozen=True, slots=True)
class Retrying:
    """Attempt ``attempt`` of ``request`` failed with ``reason`` after ``ms`` milliseconds of
    its own; the next starts in ``delay`` s."""

    request: Request
    attempt: int
    delay: float
    reason: str
    ms: float | None = None


@dataclass(slots=True)  # not frozen: one is made per request, and frozen costs twice as much
class Finished:
    """A request is finished for good: its result is final (ok or not)."""

    result: Result


@dataclass(frozen=True, slots=True)
class ChainEnded:
    """``--paginate``: the chain of pages of ``request`` is over. ``unrecorded``: its last
    record named a next page that has no record (past the end, or the run stopping), so the
    total the views count towards is one less than that record promised."""

    request: Request
    unrecorded: bool


@dataclass(frozen=True, slots=True)
class RunEnded:
    """The run is over; ``interrupted`` when it was stopped before the input ran out."""

    interrupted: bool


Event = RunStarted | Retrying | Finished | ChainEnded | RunEnded
Listener = Callable[[Event], None]
