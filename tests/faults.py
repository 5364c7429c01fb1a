"""A fault-injecting loopback server, deterministic per request id and attempt.

``GET /f/{case}/{id}`` behaves as ``case`` says for that id's Nth attempt, and logs every
attempt (case, id, attempt, arrival time, host) so tests assert from the server's side.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate

from aiohttp import web

BOUND = 10.0


def loopback(host: str) -> str:
    """``host``, which must be a loopback address: tests talk to nothing else."""
    assert host.startswith("127."), host
    return host


def refused_url(host: str, path: str = "/x") -> str:
    """An http URL for ``host`` that fanfetch must refuse before any connection (a
    link-local address, a name no DNS can hold, a short IPv4 form): the one place the
    tests write a host off loopback, and never one they connect to. (A test that sends such
    a URL also goes through a loopback proxy, or a transport that fails it unresolved.)"""
    return "http" + "://" + host + path


@dataclass(frozen=True)
class Attempt:
    case: str
    id: str
    n: int
    at: float  # loop time of arrival
    host: str


@dataclass
class FaultLog:
    attempts: list[Attempt] = field(default_factory=list)
    answered: dict[tuple[str, str, int], float] = field(default_factory=dict)

    def count(self, case: str, rid: str = "1") -> int:
        return sum(1 for a in self.attempts if a.case == case and a.id == rid)

    def times(self, case: str, rid: str = "1") -> list[float]:
        return [a.at for a in self.attempts if a.case == case and a.id == rid]


class FaultServer:
    def __init__(self, hosts: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.hosts = hosts
        self.log = FaultLog()
        self.port = 0
        self._seen: Counter[tuple[str, str]] = Counter()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    def url(self, case: str, rid: str | int = "1", host: str | None = None) -> str:
        url = f"http://127.0.0.1:{self.port}/f/{case}/{rid}"
        return url if host is None else url.replace("127.0.0.1", loopback(host), 1)

    async def start(self) -> FaultServer:
        app = web.Application()
        app.router.add_get("/f/{case}/{id}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.hosts[0], 0).start()
        self.port = self._runner.addresses[0][1]
        for host in self.hosts[1:]:
            await web.TCPSite(self._runner, host, self.port).start()
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _rest(self, seconds: float) -> None:
        """Wait ``seconds`` (bounded), or less if the server is stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), min(seconds, BOUND))
        except TimeoutError:
            pass

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        case, rid = request.match_info["case"], request.match_info["id"]
        self._seen[case, rid] += 1
        n = self._seen[case, rid]
        loop = asyncio.get_running_loop()
        host = request.host.rsplit(":", 1)[0]
        self.log.attempts.append(Attempt(case, rid, n, loop.time(), host))
        try:
            handler: Callable[[web.Request, int], Awaitable[web.StreamResponse]]
            handler = getattr(self, "case_" + case)
            return await handler(request, n)
        finally:
            self.log.answered[case, rid, n] = loop.time()

    @staticmethod
    def _json(status: int, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response({"status": status}, status=status, headers=headers)

    async def case_ok(self, request: web.Request, n: int) -> web.Response:
        return self._json(200)

    async def case_hold(self, request: web.Request, n: int) -> web.Response:
        await asyncio.sleep(0.005)  # service time, so that requests overlap
        return self._json(200)

    async def case_flaky500(self, request: web.Request, n: int) -> web.Response:
        return self._json(500 if n == 1 else 200)

    async def case_twice503(self, request: web.Request, n: int) -> web.Response:
        return self._json(503 if n <= 2 else 200)

    async def case_ra429s(self, request: web.Request, n: int) -> web.Response:
        return self._json(429, {"Retry-After": "1"}) if n == 1 else self._json(200)

    async def case_ra429date(self, request: web.Request, n: int) -> web.Response:
        if n == 1:
            when = formatdate(time.time() + 2, usegmt=True)  # whole seconds: waits 1 to 2 s
            return self._json(429, {"Retry-After": when})
        return self._json(200)

    async def case_ra_too_long(self, request: web.Request, n: int) -> web.Response:
        return self._json(503, {"Retry-After": "3600"})

    async def case_reset(self, request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            assert request.transport is not None
            request.transport.abort()  # the connection is reset before any answer
            raise web.HTTPInternalServerError()
        return self._json(200)

    async def case_slow(self, request: web.Request, n: int) -> web.Response:
        if n == 1:
            await self._rest(BOUND)  # far slower than the client's timeout
        return self._json(200)

    async def case_perm500(self, request: web.Request, n: int) -> web.Response:
        return self._json(500)

    async def case_notfound(self, request: web.Request, n: int) -> web.Response:
        return self._json(404)

    async def case_notjson(self, request: web.Request, n: int) -> web.Response:
        return web.Response(body=b"{oops", content_type="application/json")

    async def case_huge(self, request: web.Request, n: int) -> web.Response:
        return web.Response(body=b"x" * (4 * 1024 * 1024), content_type="text/plain")

    async def case_hugechunked(self, request: web.Request, n: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"x" * 65536
        try:
            for _ in range(64):  # 4 MiB, in chunks, with no Content-Length
                await response.write(chunk)
        except ConnectionError:
            pass  # the client hung up once it had seen enough, as it should
        return response

    async def case_trickle(self, request: web.Request, n: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(200):  # a byte every 50 ms: never done within any sane timeout
                await response.write(b".")
                await self._rest(0.05)
                if self._stopping.is_set():
                    break
        except ConnectionError:
            pass
        return response

    async def case_truncated(self, request: web.Request, n: int) -> web.StreamResponse:
        if n > 1:
            return self._json(200)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b'{"partial": ')
        assert request.transport is not None
        request.transport.abort()  # the chunked body ends without its last chunk
        return response
