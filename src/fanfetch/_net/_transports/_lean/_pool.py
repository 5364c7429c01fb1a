"""``LeanTransport``: HTTP/1.1 connections kept per origin, at most ``pool_size`` open at
once; one timer for the deadlines of every exchange in flight; CONNECT tunnels through a
proxy; a request sent on a kept-alive connection the server had closed sent once more."""

from __future__ import annotations

import asyncio
import base64
import math
import ssl
import time
import urllib.request
from collections.abc import Mapping
from typing import Any, cast

from yarl import URL

from ...._core._config import Config, Network
from ...._core._exceptions import ConnectError, InvalidRequest, RequestTimeout, UsageError
from ...._core._redact import redact
from ...._core._types import PLAIN_URL
from ...._core._urls import bypasses_proxy
from .._base import tls_context, tls_error
from ._connection import Connection, Exchange
from ._dns import Resolver
from ._head import METHODS, TOKEN, Heads
from ._origin import Origin, Proxy

__all__ = ["LeanTransport"]

_KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default too)
_ORIGINS_KEPT = 10_000  # origins kept beyond those with idle connections
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})  # RFC 9110 9.2.2


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
        self._proxy = Proxy(network.proxy) if network.proxy is not None else None
        self._env_proxies = (
            urllib.request.getproxies_environment()
            if network.trust_env and not network.proxy
            else {}
        )
        for scheme in ("http", "https"):  # one that cannot be used stops the run at once
            if self._env_proxies.get(scheme):
                Proxy(self._env_proxies[scheme])
        self._pool_size = pool_size or config.limits.concurrency
        self._connect_timeout = config.timeouts.connect
        self._origins: dict[str, Origin] = {}
        self._open = 0  # connections open, idle or busy (counted by the connections)
        self._resolver = Resolver()
        # made here when files are named, so a bad --cacert stops the run at once
        self._tls_context = _tls(network) if network.cacert or network.cert else None
        self._head = Heads().head
        self._closed = False
        # Timeouts: one timer for the run, set for the nearest deadline of the exchanges in
        # flight, not one per request (a timer made and cancelled is most of a microsecond).
        self._busy: set[Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # on first use

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            self._tls_context = _tls(self._network)
        return self._tls_context

    # -- the pool -------------------------------------------------------------------------

    def _origin(self, url: URL) -> Origin:
        origin = Origin(url, self._proxy)
        known = self._origins.get(origin.key)
        if known is not None:
            return known
        if self._env_proxies and not bypasses_proxy(
            origin.host, origin.port, self._env_proxies.get("no", "")
        ):
            env = self._env_proxies.get(url.scheme)
            origin.proxy = Proxy(env) if env else None
        if len(self._origins) > _ORIGINS_KEPT:  # a run over very many hosts: forget idle ones
            for key in [k for k, o in self._origins.items() if not o.idle]:
                del self._origins[key]
        self._origins[origin.key] = origin
        return origin

    def _release(self, conn: Connection) -> None:
        if self._closed:
            conn._close()
            return
        conn.idle_since = time.monotonic()
        conn.origin.idle.append(conn)

    def _watch(self, conn: Connection, deadline: float) -> None:
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

    def _lost(self, conn: Connection) -> None:
        self._open -= 1

    async def _connection(
        self, origin: Origin, deadline: float | None, *, reuse: bool = True
    ) -> tuple[Connection, bool]:
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
        oldest: Connection | None = None
        for origin in self._origins.values():
            if origin.idle and (oldest is None or origin.idle[0].idle_since < oldest.idle_since):
                oldest = origin.idle[0]
        if oldest is not None:
            oldest.origin.idle.remove(oldest)
            oldest._close()

    async def _connect(self, origin: Origin) -> Connection:
        proxy = origin.proxy
        host, port = (origin.host, origin.port) if proxy is None else (proxy.host, proxy.port)
        tls = origin.tls and proxy is None
        errors: list[str] = []
        for family, address in await self._resolver.resolve(host, port):
            try:
                _, conn = await self.loop.create_connection(
                    lambda: Connection(self, origin),
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

    async def _tunnel(self, conn: Connection, origin: Origin, proxy: Proxy) -> None:
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

    # -- one request ----------------------------------------------------------------------

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
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        if method not in METHODS and not TOKEN.match(method):
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
        return Exchange(conn, parsed, text)

    async def _answer(
        self, conn: Connection, payload: bytes, deadline: float | None, method: str
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
