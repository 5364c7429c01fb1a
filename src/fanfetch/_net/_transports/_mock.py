"""A transport that answers from a function: for tests of everything above the socket."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from yarl import URL

from ..._core._exceptions import ConnectError, RequestError, RequestTimeout
from ..._core._models import Request
from ._base import Response

__all__ = ["MockTransport"]

Handler = Callable[[Request], Response | Awaitable[Response]]


class _Answer:
    """A handler's ``Response`` as an ``Exchange``: its body whole, its content type as a
    header (a handler may give ``content_type=`` instead of one)."""

    __slots__ = ("_body", "_url", "content_length", "headers", "reason", "status")

    def __init__(self, response: Response, url: URL | str) -> None:
        headers = dict(response.headers)
        if response.content_type and not any(k.lower() == "content-type" for k in headers):
            charset = f"; charset={response.charset}" if response.charset else ""
            headers["Content-Type"] = response.content_type + charset
        self.status = response.status
        self.reason: str | None = response.reason
        self.headers: Mapping[str, str] = headers
        self._url = url
        self._body = response.content
        self.content_length: int | None = len(response.content)

    @property
    def url(self) -> URL:  # parsed only for a redirect: the hot path never asks
        if isinstance(self._url, str):
            self._url = URL(self._url)
        return self._url

    async def read(self) -> bytes:
        return self._body

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body

    async def close(self) -> None:
        return None


class MockTransport:
    """Calls ``handler(request)`` for each request sent (redirects too: a 3xx with a
    ``Location`` is followed, as from a server). The handler gets a ``Request`` for what was
    sent: its ``url``, ``method``, ``headers``, ``params`` and ``data`` (a JSON body as bytes).

    A ``RequestError`` it raises is the attempt's error, as are ``TimeoutError`` (a timeout)
    and ``OSError`` (a connection error); anything else is a bug in the handler and raises.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.calls = 0

    async def open(
        self,
        method: str,
        url: URL | str,
        *,
        headers: Mapping[str, str] | None,
        params: Mapping[str, Any] | None,
        data: bytes | str | None,
        timeout: float | None,
    ) -> _Answer:
        self.calls += 1
        target: URL | str = url
        if params:
            target = URL(url).update_query({k: str(v) for k, v in params.items()})
        sent = Request(str(target), method=method, headers=headers, params=params)
        sent.data = data
        try:
            response = self._handler(sent)
            if inspect.isawaitable(response):
                response = await response
        except RequestError:
            raise
        except TimeoutError as exc:
            raise RequestTimeout(str(exc) or "the request timed out") from exc
        except OSError as exc:
            raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return _Answer(response, target)

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<MockTransport calls={self.calls}>"
