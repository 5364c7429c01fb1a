"""The lean transport: HTTP/1.1 over the loop's own transports, parsed by ``httptools``.

One ``asyncio.Protocol`` per connection, one request at a time on it, kept alive and reused
per origin; ``httptools`` (llhttp, the parser under uvicorn) reads the responses. Written by
hand: only the pool and the request/response state machine. It only transports (see
``_base``): no redirect followed, no body decoded.

What it promises, as the aiohttp transport does: a request is sent once (a kept-alive
connection the server closed is never written to again, and nothing is re-sent quietly);
the timeout covers connecting, the answer and its body; headers are capped in size and
count; a body is read no faster than the layer above takes it (reading pauses past
``_PAUSE_AT`` bytes held), so an endless stream holds no more than that.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import socket
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
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

__all__ = ["LeanTransport"]

_MAX_HEAD = 64 * 1024  # bytes of status line and headers
_MAX_HEADERS = 256  # header fields in one response
_PAUSE_AT = 1024 * 1024  # body bytes held before reading pauses
_KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default too)
_DNS_KEPT = 10_000  # hosts whose addresses are kept at once
_ORIGINS_KEPT = 10_000  # origins kept beyond those with idle connections
_DNS_TTL = 300.0
_NO_SUCH_NAME = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})  # RFC 9110 9.2.2
_NO_BODY_STATUS = frozenset({204, 304})


def _ip_family(host: str) -> int | None:
    """The address family of an IP address, or None for a name."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


class _Proxy:
    """An http:// forward proxy: plain requests go to it in absolute form, https ones
    through a CONNECT tunnel; its credentials go to it only."""

    __slots__ = ("auth", "host", "port")  # auth: the Proxy-Authorization value, or ""

    def __init__(self, url: str) -> None:
        parsed = URL(url)
        if parsed.scheme != "http" or not parsed.raw_host:
            raise UsageError(
                "the lean transport speaks to http:// proxies: use `transport=aiohttp` for this one"
            )
        self.host = parsed.raw_host
        self.port = parsed.port or 80
        self.auth = ""
        if parsed.user is not None:
            token = base64.b64encode(f"{parsed.user}:{parsed.password or ''}".encode()).decode()
            self.auth = f"Basic {token}"


class _Origin:
    """Where requests for one scheme://host:port go, worked out once per origin."""

    __slots__ = (
        "host",
        "host_header",
        "idle",
        "key",
        "port",
        "proxy",
        "server_hostname",
        "tls",
    )

    def __init__(self, url: URL, proxy: _Proxy | None) -> None:
        host = url.raw_host
        if not host or url.scheme not in ("http", "https"):
            raise InvalidRequest(f"invalid URL: {redact(str(url))}")
        self.key = f"{url.scheme}://{url.raw_authority.rpartition('@')[2]}"
        self.host = host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.tls = url.scheme == "https"
        self.server_hostname = host
        shown = f"[{host}]" if ":" in host else host
        self.host_header = shown if url.is_default_port() else f"{shown}:{self.port}"
        self.idle: list[_Connection] = []  # most recently used last
        self.proxy = proxy


class _Connection(asyncio.Protocol):
    """One connection and the one exchange on it at a time: httptools' callbacks fill in
    the response; the exchange waits on ``_waiter`` for the next step."""

    def __init__(self, pool: LeanTransport, origin: _Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self.deadline: float | None = None  # when this exchange times out (loop time)
        self._reset()

    def _reset(self) -> None:
        self.busy = False
        self.error: RequestError | None = None
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.until_close = False
        self.no_body = False
        self.reason: str | None = None
        self.fields: list[tuple[str, str]] = []
        self.head_size = 0
        self.body: list[bytes] = []
        self.held = 0
        self.paused = False

    # -- the loop's side ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.pool._open += 1

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes nobody asked for: the connection cannot be trusted
            self._close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ConnectError("the server switched protocols, which fanfetch does not"))
        except httptools.HttpParserError as exc:
            self._fail(ConnectError(f"the server's answer is not valid HTTP/1.1: {exc}"))
        if not self.head_done:
            self.head_size += len(data)
            if self.head_size > _MAX_HEAD and self.error is None:
                self._fail(ConnectError(f"the server's headers are over {_MAX_HEAD:,} bytes"))

    def eof_received(self) -> bool | None:
        return None  # close: a half-closed connection is not kept

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._lost(self)
        if not self.busy or self.complete:
            return
        if self.head_done and self.until_close and exc is None:
            self.complete = True  # an HTTP/1.0 (or length-less) body ends with the connection
            self.keep_alive = False
        elif self.error is None:
            self.error = ConnectError(
                "the body was cut short: the server closed the connection"
                if self.head_done
                else "the server closed the connection without answering"
            )
        self._wake()

    def pause_writing(self) -> None:  # a server that does not read: the timeout ends it
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools' callbacks -------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        if self.complete:  # a second answer to one request: this connection is not kept
            self.keep_alive = False
            return
        self.reason = reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        fields = self.fields
        fields.append((name.decode("latin-1"), value.decode("utf-8", "replace")))
        if len(fields) > _MAX_HEADERS:
            raise ValueError(f"over {_MAX_HEADERS} header fields")  # httptools: a parse error

    def on_headers_complete(self) -> None:
        if self.complete:
            self.keep_alive = False
            return
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the answer is still to come
            self.fields = []
            self.reason = None
            return
        self.status = status
        self.head_done = True
        headers = self.headers = CIMultiDictProxy(CIMultiDict(self.fields))
        length = headers.get("Content-Length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        if self.no_body or status in _NO_BODY_STATUS:
            self.complete = True  # the parser is left waiting for a body: a new one next time
            self.keep_alive = self.parser.should_keep_alive()
            self.parser = httptools.HttpResponseParser(self)
        elif length is None and "Transfer-Encoding" not in headers:
            self.until_close = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.body.append(body)
        self.held += len(body)
        if self.held > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done or self.complete:
            return  # an interim (1xx) answer's end, or a HEAD's parser left behind
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # -- the exchange's side --------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: RequestError) -> None:
        if self.error is None:
            self.error = error
        self._close()
        self._wake()

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def timed_out(self) -> None:
        self.pool._busy.discard(self)
        self._fail(RequestTimeout("the request timed out"))

    async def wait(self) -> None:
        """Until the parser has more (or the connection failed)."""
        if self.error is not None:
            raise self.error
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        waiter = self._waiter = self.pool.loop.create_future()
        await waiter
        if self.error is not None:
            raise self.error

    def send(self, head: bytes, deadline: float | None, no_body: bool) -> None:
        assert self.transport is not None
        self.busy = True
        self.no_body = no_body
        if deadline is not None:
            self.pool._watch(self, deadline)
        self.transport.write(head)

    def done(self) -> None:
        """The exchange is over: back to the pool when it ended cleanly, else closed."""
        if self.deadline is not None:
            self.deadline = None
            self.pool._busy.discard(self)
        if self.complete and self.keep_alive and self.error is None and not self.closed:
            if self.paused and self.transport is not None:
                self.transport.resume_reading()
            self._reset()
            self.pool._release(self)
        else:
            self.busy = False
            self._close()


class _Exchange:
    """One response on a ``_Connection``, read through it."""

    __slots__ = ("_conn", "_url", "content_length", "headers", "reason", "status", "url_text")

    def __init__(self, conn: _Connection, url: URL | None, url_text: str | None) -> None:
        self._conn = conn
        self._url = url
        self.url_text = url_text
        self.status: int = conn.status
        self.reason = conn.reason
        self.headers: Mapping[str, str] = conn.headers
        self.content_length: int | None = conn.content_length

    @property
    def url(self) -> URL:
        if self._url is None:
            assert self.url_text is not None
            self._url = URL(self.url_text, encoded=True)
        return self._url

    async def read(self) -> bytes:
        conn = self._conn
        while not conn.complete:
            await conn.wait()
        if conn.error is not None:
            raise conn.error
        body = conn.body
        return body[0] if len(body) == 1 else b"".join(body)

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.body:
                piece = conn.body[0] if len(conn.body) == 1 else b"".join(conn.body)
                conn.body = []
                conn.held = 0
                yield piece
            elif conn.complete:
                return
            else:
                await conn.wait()

    async def close(self) -> None:
        self._conn.done()


def _tls(network: Network) -> ssl.SSLContext:
    context = tls_context(network)
    context.set_alpn_protocols(["http/1.1"])
    return context


class LeanTransport:
    """HTTP/1.1 connections kept per origin, at most ``pool_size`` open at once."""

    def __init__(self, config: Config, *, pool_size: int | None = None) -> None:
        network = self._network = config.network
        if network.cookies:
            raise UsageError("the lean transport keeps no cookies: use `transport=aiohttp`")
        self._proxy = _Proxy(network.proxy) if network.proxy is not None else None
        self._env_proxies = (
            urllib.request.getproxies_environment()
            if network.trust_env and not network.proxy
            else {}
        )
        for scheme in ("http", "https"):  # one that cannot be used stops the run at once
            if self._env_proxies.get(scheme):
                _Proxy(self._env_proxies[scheme])
        self._pool_size = pool_size or config.limits.concurrency
        self._connect_timeout = config.timeouts.connect
        self._origins: dict[str, _Origin] = {}
        self._open = 0  # connections open, idle or busy (counted by the connections)
        self._dns: dict[tuple[str, int], tuple[float, list[Any]]] = {}
        self._resolving: dict[tuple[str, int], asyncio.Future[list[tuple[int, Any]]]] = {}
        # made here when files are named, so a bad --cacert stops the run at once
        self._tls_context = _tls(network) if network.cacert or network.cert else None
        block = {
            "user-agent": f"User-Agent: fanfetch/{__version__}\r\n",
            "accept": "Accept: */*\r\n",
            "accept-encoding": f"Accept-Encoding: {ACCEPT_ENCODING}\r\n",
        }
        self._defaults = block
        self._default_block = "".join(block.values())
        self._closed = False
        # Timeouts: one timer for the run, set for the nearest deadline of the exchanges in
        # flight, not one per request (a timer made and cancelled is most of a microsecond).
        self._busy: set[_Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # on first use

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            self._tls_context = _tls(self._network)
        return self._tls_context

    # -- the pool -------------------------------------------------------------------------

    def _origin(self, url: URL) -> _Origin:
        origin = _Origin(url, self._proxy)
        known = self._origins.get(origin.key)
        if known is not None:
            return known
        if self._env_proxies and not bypasses_proxy(
            origin.host, origin.port, self._env_proxies.get("no", "")
        ):
            env = self._env_proxies.get(url.scheme)
            origin.proxy = _Proxy(env) if env else None
        if len(self._origins) > _ORIGINS_KEPT:  # a run over very many hosts: forget idle ones
            for key in [k for k, o in self._origins.items() if not o.idle]:
                del self._origins[key]
        self._origins[origin.key] = origin
        return origin

    def _release(self, conn: _Connection) -> None:
        if self._closed:
            conn._close()
            return
        conn.idle_since = time.monotonic()
        conn.origin.idle.append(conn)

    def _watch(self, conn: _Connection, deadline: float) -> None:
        conn.deadline = deadline
        self._busy.add(conn)
        if deadline < self._sweep_at:
            if self._sweep is not None:
                self._sweep.cancel()
            self._sweep_at = deadline
            self._sweep = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        """Fail the exchanges whose time is up; set the timer for the next deadline."""
        self._sweep, self._sweep_at = None, math.inf
        now = self.loop.time() + 0.001  # the loop's timers are in milliseconds
        nearest = math.inf
        for conn in list(self._busy):
            deadline = conn.deadline
            if deadline is None:
                self._busy.discard(conn)
            elif deadline <= now:
                conn.timed_out()
            elif deadline < nearest:
                nearest = deadline
        if nearest < math.inf:
            self._sweep_at = nearest
            self._sweep = self.loop.call_at(nearest, self._expire)

    def _lost(self, conn: _Connection) -> None:
        self._open -= 1

    async def _connection(
        self, origin: _Origin, deadline: float | None, *, reuse: bool = True
    ) -> tuple[_Connection, bool]:
        """A connection to ``origin``: a kept-alive one (and True) when there is one, else a
        new one."""
        idle = origin.idle
        if idle and reuse:
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                if not conn.closed and now - conn.idle_since < _KEEPALIVE:
                    return conn, True
                conn._close()
        if self._open >= self._pool_size:
            self._close_an_idle_one()
        timeout = self._connect_timeout
        if deadline is not None:
            left = deadline - self.loop.time()
            timeout = left if timeout is None else min(timeout, left)
        try:
            async with asyncio.timeout(timeout):
                return await self._connect(origin), False
        except TimeoutError:
            raise RequestTimeout("connecting timed out") from None

    def _close_an_idle_one(self) -> None:
        oldest: _Connection | None = None
        for origin in self._origins.values():
            if origin.idle and (oldest is None or origin.idle[0].idle_since < oldest.idle_since):
                oldest = origin.idle[0]
        if oldest is not None:
            oldest.origin.idle.remove(oldest)
            oldest._close()

    async def _connect(self, origin: _Origin) -> _Connection:
        proxy = origin.proxy
        host, port = (origin.host, origin.port) if proxy is None else (proxy.host, proxy.port)
        tls = origin.tls and proxy is None
        errors: list[str] = []
        for family, address in await self._resolve(host, port):
            try:
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self, origin),
                    address[0],
                    address[1],
                    family=family,
                    ssl=self._tls() if tls else None,
                    server_hostname=origin.server_hostname if tls else None,
                )
            except ssl.SSLError as exc:
                raise tls_error(exc) from None
            except OSError as exc:
                errors.append(exc.strerror or str(exc) or type(exc).__name__)
                continue
            if proxy is not None and origin.tls:
                await self._tunnel(conn, origin, proxy)
            return conn
        which = "the proxy at " if proxy is not None else ""
        raise ConnectError(redact(f"cannot connect to {which}{host}:{port}: {'; '.join(errors)}"))

    async def _tunnel(self, conn: _Connection, origin: _Origin, proxy: _Proxy) -> None:
        """CONNECT through ``proxy`` to ``origin``, then TLS inside the tunnel."""
        host = origin.host
        where = f"[{host}]:{origin.port}" if ":" in host else f"{host}:{origin.port}"
        auth = f"Proxy-Authorization: {proxy.auth}\r\n" if proxy.auth else ""
        head = f"CONNECT {where} HTTP/1.1\r\nHost: {where}\r\n{auth}\r\n"
        conn.send(head.encode(), None, True)
        try:
            while not conn.head_done:
                await conn.wait()
        except BaseException:
            conn.done()
            raise
        status = conn.status
        conn._reset()
        if status != 200:
            conn._close()
            error = ConnectError(f"the proxy refused the tunnel to {where}: HTTP {status}")
            error.retryable = status not in (403, 407)
            raise error
        assert conn.transport is not None
        try:
            tunnelled = await self.loop.start_tls(
                conn.transport, conn, self._tls(), server_hostname=origin.server_hostname
            )
        except ssl.SSLError as exc:
            conn._close()
            raise tls_error(exc) from None
        except OSError as exc:
            conn._close()
            raise ConnectError(f"the tunnel to {where} failed: {exc}") from None
        conn.transport = cast(asyncio.Transport, tunnelled)

    async def _resolve(self, host: str, port: int) -> list[tuple[int, Any]]:
        """The addresses of ``host``: an IP address as it is; a name looked up off the loop,
        once for all the connections that ask at the same time, and kept five minutes."""
        key = (host, port)
        known = self._dns.get(key)
        now = time.monotonic()
        if known is not None and known[0] > now:
            return known[1]
        family = _ip_family(host)
        if family is not None:
            addresses: list[tuple[int, Any]] = [(family, (host, port))]
            self._remember(key, math.inf, addresses)
            return addresses
        pending = self._resolving.get(key)
        if pending is None:
            pending = self._resolving[key] = asyncio.ensure_future(self._lookup(host, port))
            pending.add_done_callback(lambda done: self._looked_up(key, done))
        return await asyncio.shield(pending)

    def _looked_up(self, key: tuple[str, int], done: asyncio.Future[Any]) -> None:
        self._resolving.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: when every asker was cancelled, none would

    async def _lookup(self, host: str, port: int) -> list[tuple[int, Any]]:
        try:
            infos = await self.loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except socket.gaierror as exc:
            error = ConnectError(redact(f"cannot resolve {host}: {exc.strerror or exc}"))
            error.retryable = exc.errno not in _NO_SUCH_NAME
            raise error from None
        except UnicodeError as exc:  # the idna codec: an empty or over-long label
            error = ConnectError(redact(f"cannot resolve {host[:80]}: {exc}"))
            error.retryable = False
            raise error from None
        addresses: list[tuple[int, Any]] = [(info[0], info[4][:2]) for info in infos]
        self._remember((host, port), time.monotonic() + _DNS_TTL, addresses)
        return addresses

    def _remember(
        self, key: tuple[str, int], until: float, addresses: list[tuple[int, Any]]
    ) -> None:
        """Keep ``key``'s addresses until ``until``, in a cache of at most ``_DNS_KEPT``
        hosts (an IP address too: a run over a million hosts must not keep a million)."""
        dns = self._dns
        if len(dns) >= _DNS_KEPT:
            dns.clear()  # a run over very many hosts: what it meets again is cheap to redo
        dns[key] = (until, addresses)

    # -- one request ----------------------------------------------------------------------

    def _head(
        self,
        method: str,
        target: str,
        origin: _Origin,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        text: bool,
    ) -> bytes:
        proxy = origin.proxy
        if proxy is not None and not origin.tls:
            target = origin.key + target  # absolute form, for the proxy to read
            if proxy.auth:
                headers = {**(headers or {}), "Proxy-Authorization": proxy.auth}
        if headers is None and body is None:
            return (
                f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"
                f"{self._default_block}\r\n"
            ).encode()
        given = {name.lower(): (name, value) for name, value in (headers or {}).items()}
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        if "host" not in given:
            lines.append(f"Host: {origin.host_header}\r\n")
        lines.extend(line for name, line in self._defaults.items() if name not in given)
        for lower, (name, value) in given.items():
            value = str(value)
            if not _TOKEN.match(name) or "\n" in value or "\r" in value:
                raise InvalidRequest(f"a header cannot be sent as given: {name!r}")
            if lower not in ("content-length", "transfer-encoding"):
                lines.append(f"{name}: {value}\r\n")
        if body is not None:
            if "content-type" not in given:
                kind = "text/plain; charset=utf-8" if text else "application/octet-stream"
                lines.append(f"Content-Type: {kind}\r\n")
            lines.append(f"Content-Length: {len(body)}\r\n")
        elif method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0\r\n")
        lines.append("\r\n")
        try:
            return "".join(lines).encode()
        except UnicodeEncodeError as exc:  # a lone surrogate from a template
            raise InvalidRequest(f"the request cannot be encoded: {exc.reason}") from None

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
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        if method not in _METHODS and not _TOKEN.match(method):
            raise InvalidRequest(f"invalid method: {method[:40]!r}")
        plain = PLAIN_URL.match(url) if params is None and isinstance(url, str) else None
        parsed: URL | None = None
        if plain is not None:
            text: str | None = url  # type: ignore[assignment]
            origin = self._origins.get(plain[1])
            if origin is None:  # kept under the URL's own spelling too (Example.COM, :80)
                try:
                    parsed_once = URL(url)
                except ValueError as exc:  # a port over 65535: plain to look at, not to use
                    raise InvalidRequest(f"invalid URL: {redact(str(url))}: {exc}") from None
                origin = self._origins[plain[1]] = self._origin(parsed_once)
            target = plain[2] or "/"
        else:
            if params or not isinstance(url, URL):
                try:
                    url = URL(url) if isinstance(url, str) else url
                    if params:
                        url = url.extend_query(params)
                except (ValueError, TypeError) as exc:
                    raise InvalidRequest(f"invalid URL: {redact(str(url))}: {exc}") from None
            parsed = url
            if not parsed.absolute:
                raise InvalidRequest(f"invalid URL: {redact(str(url))}")
            origin = self._origins.get(f"{parsed.scheme}://{parsed.raw_authority}") or self._origin(
                parsed
            )
            target = parsed.raw_path_qs or "/"
            if parsed.raw_user is not None:  # user:password@ in the URL: basic auth
                auth = base64.b64encode(
                    f"{parsed.user or ''}:{parsed.password or ''}".encode()
                ).decode()
                headers = {"Authorization": f"Basic {auth}", **(headers or {})}
                parsed = parsed.with_user(None)
            if parsed.raw_fragment:
                parsed = parsed.with_fragment(None)
            text = None
        body: bytes | None
        if data is None:
            body = None
        elif isinstance(data, str):
            body = data.encode()
        else:
            body = bytes(data)
        head = self._head(method, target, origin, headers, body, isinstance(data, str))
        payload = head if body is None else head + body
        deadline = None if timeout is None else loop.time() + timeout
        conn, reused = await self._connection(origin, deadline)
        try:
            await self._answer(conn, payload, deadline, method)
        except ConnectError:
            # Sent on a kept-alive connection that the server closed before a byte came back:
            # it cannot have been processed. Once more on a new connection, whatever
            # --retries says, as browsers and curl do, for a method that may be repeated.
            if not (reused and conn.head_size == 0 and method in _IDEMPOTENT):
                raise
            conn, _ = await self._connection(origin, deadline, reuse=False)
            await self._answer(conn, payload, deadline, method)
        return _Exchange(conn, parsed, text)

    async def _answer(
        self, conn: _Connection, payload: bytes, deadline: float | None, method: str
    ) -> None:
        """Send ``payload`` on ``conn`` and wait for the answer's head."""
        conn.send(payload, deadline, method == "HEAD")
        try:
            while not conn.head_done:
                await conn.wait()
        except BaseException:
            conn.done()
            raise

    async def aclose(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for origin in self._origins.values():
            for conn in origin.idle:
                if conn.transport is not None and not conn.closed:
                    conn.transport.close()
            origin.idle.clear()
        self._origins.clear()
        await asyncio.sleep(0)  # let connection_lost run before the loop goes

    def __repr__(self) -> str:
        return f"<LeanTransport pool={self._pool_size} open={self._open}>"
