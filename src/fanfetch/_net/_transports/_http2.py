"""The HTTP/2 transport: pyreqwest (Rust's reqwest and hyper, on tokio) behind the seam.

Chosen by measurement (``benchmarks/http2.py``, figures in ``benchmarks/RESULTS.md``): of
the clients that speak HTTP/2 and install here, it costs the least CPU per request. It offers
HTTP/2 by ALPN on https:// URLs (one connection per host carries many requests at once) and
speaks HTTP/1.1 where a server or a plain http:// URL does not. As every transport, it only
transports: no redirect followed (``follow_redirects(False)``), no body decoded (its own
decoders off; ``_http`` decodes under the cap), and its errors mapped onto fanfetch's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

from yarl import URL

from ..._core._config import Config
from ..._core._exceptions import (
    ConfigError,
    ConnectError,
    InvalidRequest,
    RequestError,
    RequestTimeout,
    TLSError,
    UsageError,
)
from ..._core._redact import redact
from ..._version import __version__
from .._decoding import ACCEPT_ENCODING

__all__ = ["Http2Transport", "map_pyreqwest_error"]

MAX_HEADER_BYTES = 64 * 1024  # as the lean transport's cap on a response's head

_TLS_WORDS = ("certificate", "tls", "handshake", "ssl", "unknownissuer")


def map_pyreqwest_error(exc: BaseException) -> RequestError | None:
    """Our error for a pyreqwest error, or None when it is not about the request."""
    from pyreqwest import exceptions as e

    message = redact(str(exc)) or type(exc).__name__
    if isinstance(exc, e.RequestTimeoutError | TimeoutError):
        return RequestTimeout(f"the request timed out ({type(exc).__name__})")
    if isinstance(exc, e.BuilderError):
        return InvalidRequest(f"the request cannot be sent: {message}")
    if isinstance(exc, e.RequestError):
        if any(word in message.lower() for word in _TLS_WORDS):
            return TLSError(
                f"TLS failed: {message}. HINT: trust the server's CA with `cacert=ca.pem`, "
                "or skip verification with `verify_tls=False`"
            )
        return ConnectError(f"{type(exc).__name__}: {message}")
    return None


def _mapped(exc: Exception) -> Exception:
    return exc if isinstance(exc, RequestError) else (map_pyreqwest_error(exc) or exc)


class _Exchange:
    __slots__ = ("_request", "_response", "content_length", "headers", "reason", "status", "url")

    def __init__(self, request: Any, response: Any, url: URL) -> None:
        self._request = request
        self._response = response
        self.status: int = response.status
        self.reason: str | None = None
        self.headers: Mapping[str, str] = _Headers(response.headers)
        self.url = url
        length = self.headers.get("Content-Length")
        self.content_length = int(length) if length is not None and length.isdigit() else None

    async def read(self) -> bytes:
        try:
            return bytes(await self._response.body_reader.bytes())
        except Exception as exc:
            raise _mapped(exc) from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        reader = self._response.body_reader
        try:
            while (chunk := await reader.read_chunk()) is not None:
                yield bytes(chunk)
        except Exception as exc:
            raise _mapped(exc) from exc

    async def close(self) -> None:
        await self._request.__aexit__(None, None, None)


class _Headers(Mapping[str, str]):
    """pyreqwest's header map as a case-insensitive mapping of the first value of each."""

    __slots__ = ("_map",)

    def __init__(self, headers: Any) -> None:
        self._map = headers

    def __getitem__(self, key: str) -> str:
        value: str | None = self._map.get(key.lower())
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._map.get(key.lower())
        return default if value is None else value

    def __iter__(self) -> Any:
        return iter(dict.fromkeys(self._map.keys()))

    def __len__(self) -> int:
        return len(dict.fromkeys(self._map.keys()))

    def items(self) -> Any:  # every value, as aiohttp's multidict gives them
        return list(self._map.items())

    def getall(self, key: str, default: Any = None) -> Any:  # every value of one field
        values = self._map.getall(key.lower())
        return list(values) if values else ([] if default is None else default)


class Http2Transport:
    """One pyreqwest client for the run, HTTP/2 offered on every TLS connection."""

    def __init__(self, config: Config, *, pool_size: int | None = None) -> None:
        try:
            from pyreqwest.client import ClientBuilder
        except ImportError:
            raise UsageError("`http2` needs pyreqwest: pip install 'fanfetch[http2]'") from None
        if config.network.cookies or config.network.proxy is not None or config.network.trust_env:
            raise UsageError(
                "`http2` sends no proxy and keeps no cookies yet: leave out `http2` "
                "for `proxy`, `trust_env` or `cookies`"
            )
        self._pool_size = pool_size or config.limits.concurrency
        builder = (
            ClientBuilder()
            .http2(True)
            .follow_redirects(False)
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .user_agent(f"fanfetch/{__version__}")
            .default_headers({"Accept-Encoding": ACCEPT_ENCODING, "Accept": "*/*"})
            .max_connections(self._pool_size)
            # the headers a server may send, as the other transports allow (h2's default is
            # 16 KiB: more was "unable to maintain the header compression context")
            .http2_max_header_list_size(MAX_HEADER_BYTES)
        )
        if config.timeouts.connect is not None:
            builder = builder.connect_timeout(timedelta(seconds=config.timeouts.connect))
        if not config.network.verify_tls:
            builder = builder.danger_accept_invalid_certs(True)
        try:
            if config.network.cacert is not None:
                with open(config.network.cacert, "rb") as f:
                    builder = builder.add_root_certificate_pem(f.read())
            if config.network.cert is not None:
                with open(config.network.cert, "rb") as f:
                    identity = f.read()
                if config.network.key is not None:
                    with open(config.network.key, "rb") as f:
                        identity += b"\n" + f.read()
                builder = builder.identity_pem(identity)
        except (OSError, ValueError) as exc:
            which = "cert" if config.network.cert is not None else "cacert"
            raise ConfigError(
                which, getattr(config.network, which), f"cannot use it: {exc}"
            ) from None
        self._builder = builder
        self._client: Any = None

    async def open(
        self,
        method: str,
        url: URL | str,
        *,
        headers: Mapping[str, str] | None,
        params: Mapping[str, Any] | None,
        data: bytes | str | None,
        timeout: float | None,
    ) -> _Exchange:
        if self._client is None:
            self._client = self._builder.build()  # inside the loop: pyreqwest wants one
        try:
            parsed = URL(url) if isinstance(url, str) else url
            if params:
                parsed = parsed.extend_query(params)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f"invalid URL: {redact(str(url))}: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise InvalidRequest(f"invalid URL: {redact(str(parsed))}")
        try:
            builder = self._client.request(method, str(parsed.with_fragment(None)))
            if headers:
                builder = builder.headers({k: str(v) for k, v in headers.items()})
            if isinstance(data, str):
                builder = builder.body_text(data)
            elif data is not None:
                builder = builder.body_bytes(data)
            if timeout is not None:
                builder = builder.timeout(timedelta(seconds=timeout))
            request = builder.build_streamed()
        except ValueError as exc:  # what it will not send (a line break in a header)
            raise InvalidRequest(f"the request cannot be sent: {redact(str(exc))}") from None
        try:
            response = await request.__aenter__()
        except Exception as exc:
            raise _mapped(exc) from exc
        return _Exchange(request, response, parsed)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"<Http2Transport pool={self._pool_size}>"
