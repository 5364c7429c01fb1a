"""The event loop fanfetch runs on: uvloop where it is installed, asyncio's own elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["loop_factory", "new_event_loop"]


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop factory when uvloop imports, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # not on this platform (e.g. Windows): asyncio's loop works, slower
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    return loop_factory()()
