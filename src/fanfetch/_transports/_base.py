"""What a transport promises the scheduler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .._files import SavedBody
from .._models import Request

__all__ = ["Response", "Transport"]


class Response:
    """A whole response: the body is read before the transport returns it."""

    __slots__ = (
        "charset",
        "content",
        "content_type",
        "headers",
        "reason",
        "redirects",
        "saved",
        "status",
        "url",
    )

    def __init__(
        self,
        status: int,
        content: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        content_type: str = "",
        charset: str | None = None,
        reason: str | None = None,
        url: str | None = None,
    ) -> None:
        self.status = status
        self.content = content
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.content_type = content_type
        self.charset = charset
        self.reason = reason
        self.url = url  # where the body came from, when redirects led elsewhere
        self.redirects = 0  # how many were followed
        self.saved: SavedBody | None = None  # with --save-dir: the file the body went to

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.content)} bytes>"


class Transport(Protocol):
    """Sends one attempt of a request.

    ``send`` returns the whole response (any status) or raises a ``RequestError``; it never
    hands back anything still to be awaited.
    """

    async def send(self, request: Request, timeout: float | None) -> Response: ...

    async def aclose(self) -> None: ...
