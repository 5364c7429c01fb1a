"""The transport seam: what a transport promises the layer above it (``_http``).

A transport only transports: it sends one request as it is given (no redirects followed,
no body decoded) and hands back the status, the headers and the body as it comes, mapping
its own library's errors onto fanfetch's (and re-raising what it does not know). Body caps,
decoding, saving to files and the redirect policy live above it, once, for every transport.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from yarl import URL

from ..._core._config import Network
from ..._core._exceptions import ConfigError, TLSError
from ..._core._files import SavedBody

__all__ = ["Exchange", "Response", "Transport", "tls_context", "tls_error"]


class Exchange(Protocol):
    """One request sent and its response begun: the status line and headers are in, the
    body is still to read (as it came, ``Content-Encoding`` not undone)."""

    status: int
    reason: str | None
    headers: Mapping[str, str]

    @property
    def url(self) -> URL:
        """The URL the request went to, query included (parsed when asked: only a redirect
        needs it)."""
        ...

    content_length: int | None

    async def read(self) -> bytes:
        """The whole body (for one the caller knows to be small)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body, a piece at a time."""
        ...

    async def close(self) -> None:
        """Done with it: the connection goes back to the pool if the body was read."""
        ...


class Transport(Protocol):
    """Sends requests; a ``RequestError`` (a timeout, a refused connection...) when the
    exchange fails."""

    async def open(
        self,
        method: str,
        url: URL | str,
        *,
        headers: Mapping[str, str] | None,
        params: Mapping[str, Any] | None,
        data: bytes | str | None,
        timeout: float | None,
    ) -> Exchange:
        """Send the request; return once the response's headers are in. ``timeout``
        covers the whole exchange, body included (None: no limit)."""
        ...

    async def aclose(self) -> None: ...


class Response:
    """A whole response, as the layer above a transport hands it to the attempt loop."""

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


def tls_context(network: Network) -> ssl.SSLContext:
    """What every transport verifies with: the system's CAs (``SSL_CERT_FILE`` honoured),
    ``--cacert``'s instead, ``--cert``'s client certificate, or nothing (``--insecure``)."""
    try:
        context = ssl.create_default_context(cafile=network.cacert)
        if network.cert is not None:
            context.load_cert_chain(network.cert, network.key)
    except (OSError, ssl.SSLError) as exc:
        which = "cert" if network.cert is not None and "cert" not in str(exc).lower() else "cacert"
        raise ConfigError(which, getattr(network, which), f"cannot use it: {exc}") from None
    if not network.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def tls_error(exc: BaseException) -> TLSError:
    """Our error for a failed handshake, naming the fixes."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSError(
            f"the server's certificate was refused: {exc}. HINT: trust its CA with "
            "`cacert=ca.pem` (or SSL_CERT_FILE=ca.pem), or skip verification with "
            "`verify_tls=False`"
        )
    return TLSError(
        f"TLS failed: {exc}. HINT: check the URL's scheme and port; a server that asks for "
        "a client certificate needs `cert` (and `key`); or `verify_tls=False`"
    )
