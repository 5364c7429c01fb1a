"""A transport that answers from a function: for tests of everything above the socket."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from .._exceptions import ConnectError, RequestError, RequestTimeout
from .._models import Request
from ._base import Response

__all__ = ["MockTransport"]

Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport:
    """Calls ``handler(request)`` for each attempt.

    A ``RequestError`` it raises is the attempt's error, as are ``TimeoutError`` (a timeout)
    and ``OSError`` (a connection error); anything else is a bug in the handler and raises.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.calls = 0

    async def send(self, request: Request, timeout: float | None) -> Response:
        self.calls += 1
        try:
            response = self._handler(request)
            if inspect.isawaitable(response):
                response = await response
        except RequestError:
            raise
        except TimeoutError as exc:
            raise RequestTimeout(str(exc) or "the request timed out") from exc
        except OSError as exc:
            raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return response

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<MockTransport calls={self.calls}>"
