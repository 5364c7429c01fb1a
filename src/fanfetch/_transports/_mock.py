"""A transport that answers from a function: for tests of everything above the socket."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from .._exceptions import map_transport_error
from .._models import Request
from ._base import Response

__all__ = ["MockTransport"]

Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport:
    """Calls ``handler(request)`` for each attempt; what it raises is mapped like a real error."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.calls = 0

    async def send(self, request: Request, timeout: float | None) -> Response:
        self.calls += 1
        try:
            response = self._handler(request)
            if inspect.isawaitable(response):
                response = await response
        except Exception as exc:
            raise map_transport_error(exc) from exc
        return response

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<MockTransport calls={self.calls}>"
