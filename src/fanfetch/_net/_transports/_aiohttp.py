"""The aiohttp transport: one ``aiohttp.ClientSession`` for the whole run.

It only transports (see ``_base``): aiohttp follows no redirect and decodes no body here
(``allow_redirects=False``, ``auto_decompress=False``); ``_http`` does both, for every
transport. This module is the one place that knows aiohttp's errors.
"""

from __future__ import annotations

import base64
import io
import socket
import ssl
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from yarl import URL

from ..._core._config import Config, Network
from ..._core._exceptions import (
    ConnectError,
    InvalidRequest,
    RequestError,
    RequestTimeout,
    UsageError,
)
from ..._core._redact import redact
from ..._core._types import PLAIN_URL
from ..._core._urls import bypasses_proxy
from ..._version import __version__
from .._decoding import ACCEPT_ENCODING
from ._base import tls_context, tls_error

__all__ = ["AiohttpTransport", "map_aiohttp_error"]

_CHUNK = 64 * 1024
# getaddrinfo's answers that mean the name does not exist (not a passing resolver failure)
_NO_SUCH_NAME = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
)


def map_aiohttp_error(exc: BaseException) -> RequestError | None:
    """Our error for an aiohttp or asyncio error, or None when it does not mean a failed
    request (a bug, which must raise rather than become a record).

    aiohttp's total timeout surfaces as a bare ``asyncio.TimeoutError`` (the builtin
    ``TimeoutError`` on 3.11+), not only as ``ServerTimeoutError``, so both are caught.
    """
    mapped = _map(exc)
    if mapped is None:
        return None
    message = str(mapped)
    clean = redact(message)
    if clean != message:
        mapped = type(mapped)(clean)
    if _no_such_name(exc):
        mapped.retryable = False
    return mapped


def _map(exc: BaseException) -> RequestError | None:
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return RequestTimeout(str(exc) or "the request timed out")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return tls_error(exc.certificate_error)
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return tls_error(exc)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return InvalidRequest(f"invalid URL: {exc}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ConnectError(f"the body was cut short: {exc}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ConnectError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if type(exc).__module__.startswith(("aiohttp_socks", "python_socks")):  # the socks extra
        if "Timeout" in type(exc).__name__:
            return RequestTimeout(f"the socks proxy timed out: {exc}")
        return ConnectError(f"the socks proxy: {exc}")
    return None


def _no_such_name(exc: BaseException) -> bool:
    """A DNS answer that the name does not exist: asking again a second later will not help."""
    os_error = getattr(exc, "os_error", None)
    return isinstance(exc, aiohttp.ClientConnectorDNSError) and (
        getattr(os_error, "errno", None) in _NO_SUCH_NAME
    )


def _mapped(exc: Exception) -> Exception:
    """What to raise for ``exc``: ours when it means a failed request, else itself."""
    if isinstance(exc, RequestError):
        return exc
    return map_aiohttp_error(exc) or exc


_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})  # RFC 9110 9.2.2


class _Sent:
    """One request's trace context: whether it went out on a kept-alive connection."""

    __slots__ = ("reused",)

    def __init__(self) -> None:
        self.reused = False


async def _reused(session: Any, context: Any, params: Any) -> None:
    if isinstance(context.trace_request_ctx, _Sent):
        context.trace_request_ctx.reused = True


class _Exchange:
    """An aiohttp response as an ``Exchange``: its errors mapped as they surface."""

    __slots__ = ("_resp", "content_length", "headers", "reason", "status", "url")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.reason = resp.reason
        self.headers: Mapping[str, str] = resp.headers
        self.url: URL = resp.url
        self.content_length = resp.content_length

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except Exception as exc:
            raise _mapped(exc) from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_chunked(_CHUNK):
                yield chunk
        except Exception as exc:
            raise _mapped(exc) from exc

    async def close(self) -> None:
        resp = self._resp
        resp.release()
        await resp.wait_for_close()


def _ssl(network: Network) -> ssl.SSLContext | bool:
    """What the connector verifies with: True (the system's CAs), False (--insecure), or a
    context with --cacert's CAs and --cert's client certificate."""
    if not network.verify_tls:
        return False
    if network.cacert is None and network.cert is None:
        return True
    return tls_context(network)


def _proxy(url: str | None) -> tuple[URL | None, Mapping[str, str] | None]:
    """The proxy without its credentials, and the header that carries them to it only."""
    if url is None:
        return None, None
    parsed = URL(url)
    if parsed.user is None:
        return parsed, None
    token = base64.b64encode(f"{parsed.user}:{parsed.password or ''}".encode()).decode()
    return parsed.with_user(None), {"Proxy-Authorization": f"Basic {token}"}


class AiohttpTransport:
    """Sends attempts over one pooled session sized to the run's concurrency.

    The session is made on first use, inside the running loop. Its connector allows as many
    connections as there are workers, so a request never queues inside aiohttp and the
    per-attempt timeout counts only the attempt itself.
    """

    def __init__(self, config: Config, *, pool_size: int | None = None) -> None:
        self._config = config
        self._pool_size = pool_size or config.limits.concurrency
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        self._socks = (
            config.network.proxy
            if config.network.proxy and config.network.proxy.startswith("socks")
            else None
        )
        if self._socks is not None:
            try:
                import aiohttp_socks  # noqa: F401
            except ImportError:
                raise UsageError(
                    "a socks proxy needs aiohttp-socks: pip install 'fanfetch[socks]'"
                ) from None
        self._proxy, self._proxy_headers = _proxy(None if self._socks else config.network.proxy)
        # --trust-env: the environment's proxies, chosen here per request (aiohttp's own
        # reading of NO_PROXY knows names only; _urls.bypasses_proxy knows what curl does)
        self._env: dict[str, tuple[URL | None, Mapping[str, str] | None]] = {}
        self._no_proxy = ""
        if config.network.trust_env and config.network.proxy is None:
            env = urllib.request.getproxies_environment()
            self._env = {k: _proxy(env[k]) for k in ("http", "https") if env.get(k)}
            self._no_proxy = env.get("no", "")
        self._ssl = _ssl(
            config.network
        )  # made here: a bad --cacert or --cert stops the run at once

    def _open(self) -> aiohttp.ClientSession:
        options: dict[str, Any] = {
            "limit": self._pool_size,
            "limit_per_host": 0,  # per-host limits are ours (_limits.py), not the pool's
            "ttl_dns_cache": 300,
            "use_dns_cache": True,
            "ssl": self._ssl,
        }
        connector: aiohttp.BaseConnector
        if self._socks is not None:  # every connection through the socks proxy
            from aiohttp_socks import ProxyConnector

            connector = ProxyConnector.from_url(self._socks, **options)
        else:
            connector = aiohttp.TCPConnector(**options)
        reuse = aiohttp.TraceConfig()  # which requests went out on a kept-alive connection
        reuse.on_connection_reuseconn.append(_reused)
        session = aiohttp.ClientSession(
            connector=connector,
            trace_configs=[reuse],
            headers={"User-Agent": f"fanfetch/{__version__}", "Accept-Encoding": ACCEPT_ENCODING},
            auto_decompress=False,  # _http decodes, a piece at a time under the cap
            # requests are independent unless --cookies: then a jar scoped as browsers scope
            # it (a cookie goes back only to the host that set it; IP hosts allowed)
            cookie_jar=aiohttp.CookieJar(unsafe=True)
            if self._config.network.cookies
            else aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,  # the environment's proxies are chosen in open (--trust-env)
        )
        # aiohttp quietly re-sends an idempotent request once when any connection drops before
        # the answer, a new one too (aio-libs/aiohttp#7363, #10790): a server that drops every
        # request would see each twice. Switched off; open() re-sends only what went out on a
        # kept-alive connection, as the lean transport does.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        self._session = session
        return session

    def _timeout(self, seconds: float | None) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=seconds, connect=self._config.timeouts.connect)
            if len(self._timeouts) < 64:  # per-request timeouts are few; never grow unbounded
                self._timeouts[seconds] = timeout
        return timeout

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
        session = self._session or self._open()
        proxy, proxy_headers = self._proxy, self._proxy_headers
        if self._env:
            parsed = url if isinstance(url, URL) else URL(url)
            direct = bypasses_proxy(parsed.raw_host or "", parsed.port, self._no_proxy)
            proxy, proxy_headers = (None, None) if direct else self._env.get(
                parsed.scheme, (None, None)
            )  # fmt: skip
        if proxy_headers is not None and not str(url).startswith("https:"):
            # plain http through a proxy: the proxy reads the request itself (and must drop
            # the header); https goes through a CONNECT tunnel, whose headers it reads instead
            headers = {**(headers or {}), **proxy_headers}
        body: Any = data
        if isinstance(data, bytes) and len(data) > _CHUNK:
            body = io.BytesIO(data)  # aiohttp warns of a big body given as bytes
        if isinstance(url, str) and PLAIN_URL.match(url):
            # sent as written, as the lean transport sends it: parsed, yarl would decode
            # %2E%2E and resolve it (a template's ".." would climb the path)
            url = URL(url, encoded=True)
        for again in (method in _IDEMPOTENT, False):
            sent = _Sent()
            try:
                resp = await session.request(
                    method,
                    url,
                    headers=headers,
                    params=params,
                    data=body,
                    timeout=self._timeout(timeout),
                    allow_redirects=False,
                    proxy=proxy,
                    proxy_headers=proxy_headers,
                    trace_request_ctx=sent,
                )
            except ValueError as exc:  # what aiohttp will not send (a line break in a header)
                raise InvalidRequest(f"the request cannot be sent: {exc}") from None
            except aiohttp.ServerDisconnectedError as exc:
                # dropped unanswered on a kept-alive connection (the server's keep-alive ran
                # out): it cannot have been processed, so once more, whatever --retries says
                if again and sent.reused:
                    if isinstance(body, io.BytesIO):
                        body.seek(0)
                    continue
                raise _mapped(exc) from exc
            except Exception as exc:
                raise _mapped(exc) from exc
            return _Exchange(resp)
        raise AssertionError("unreachable")  # the second pass returns or raises

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        state = "open" if self._session is not None else "not open"
        return f"<AiohttpTransport pool={self._pool_size} {state}>"
