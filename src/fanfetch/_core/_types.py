"""Type aliases and rules shared by layers that must not import each other."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

if TYPE_CHECKING:
    from ._models import Request, Result

__all__ = [
    "PLAIN_URL",
    "Clock",
    "HostView",
    "Item",
    "JSONValue",
    "Sink",
    "Sleep",
    "is_success",
    "printable",
]

Clock: TypeAlias = Callable[[], float]
"""Seconds from an arbitrary start, never going back (``time.monotonic``)."""

Sleep: TypeAlias = Callable[[float], Awaitable[None]]

JSONValue: TypeAlias = Any
"""Whatever ``orjson.loads`` may return."""

Item: TypeAlias = "Request | Result"
"""What the reader hands the scheduler: a request to make, or an invalid line's record."""

Sink: TypeAlias = "Callable[[Result], Awaitable[None]]"
"""Where finished results go; awaiting it is how a slow consumer holds the workers back."""


def is_success(status: int) -> bool:
    """The one rule for "this response is a success": a 2xx status."""
    return 200 <= status < 300


PLAIN_URL = re.compile(
    r"(https?://(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?)"
    r"([/?][A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*)?\Z"
)
"""An http(s) URL that needs no quoting, no user:password part and no fragment: it can be
sent as it is written. Group 1 is its scheme and authority, group 2 the path and query.
Checking this is an eighth of parsing the URL (yarl); anything else is parsed."""


_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (9, 10)}


def printable(text: str) -> str:
    """``text`` safe to draw on a terminal: C0 controls (but tab and newline), DEL and the C1
    controls written as ``\\xNN``, so that no server-chosen byte (``ESC c``, a C1 CSI, a BEL)
    reaches the terminal as a command."""
    if text.isascii() and text.isprintable():  # the common case, at C speed
        return text
    return text.translate(_CONTROLS)


class HostView(NamedTuple):
    """One host's state now, for the dashboard."""

    host: str
    in_flight: int
    waiting: int
    window: float | None  # None: not narrowed (the per-host limit, or none)
    resting: float  # seconds until it may be asked again; 0 when it is not resting
    throttles: int  # times it asked us to slow down (while it was kept)
    why: str  # how it asked, the last time
    learned: float | None = None  # starts a second its headers taught (--rate auto)
