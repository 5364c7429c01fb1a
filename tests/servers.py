"""Loopback servers for the tests: real aiohttp servers (and one raw TCP one) on 127.0.0.x.

Each keeps its own log of what it saw, so tests assert from the server's side: how many
requests were in flight at once, to which host, how many attempts each id got.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.faults import loopback

BOUND = 10.0  # no handler waits longer than this, whatever a test forgets to release


@dataclass
class Log:
    in_flight: int = 0
    max_in_flight: int = 0
    host_in_flight: Counter[str] = field(default_factory=Counter)
    host_max: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    headers: list[dict[str, str]] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    arrived: dict[str, float] = field(default_factory=dict)  # path -> epoch seconds, last time


class LoopbackAPI:
    """An aiohttp app with one route per behaviour a test needs, bound to one or more hosts."""

    def __init__(self, hosts: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.hosts = hosts
        self.log = Log()
        self.release = asyncio.Event()  # lets /hang answer
        self.failed_once: set[str] = set()  # /pages?fail=K: the pages that failed already
        self.page_hits: Counter[str] = Counter()  # /pages, by path and query
        self.job_asks: Counter[str] = Counter()  # /job, by path
        self.throttled_at = 0.0  # /pages?throttle=K: when the 429 was answered
        self.oauth_client = "app:s3cret-Pa55"
        self.oauth_lifetime = 1.0
        self.tokens: dict[str, float] = {}  # token -> when /private stops taking it
        self.token_headers: list[dict[str, str]] = []  # each token request's headers
        self.token_in_flight = self.token_max_in_flight = self.refused_tokens = 0
        self.keys: dict[str, str] = {}
        self.key_times: defaultdict[str, list[float]] = defaultdict(list)
        self.key_paused_at = 0.0
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.hold_seconds = 0.01
        self.hang_bound = BOUND  # /hang answers after this long if never released
        self.script: dict[str, list[int]] = {}  # id -> statuses to answer in turn
        self.orders: list[tuple[str, str, str | None]] = []  # /order: id, method, its key
        self.key_header = "Idempotency-Key"  # where /order reads the key
        self._arrivals = asyncio.Condition()

    async def wait_hits(self, n: int, within: float = BOUND) -> None:
        """Return once the server has seen ``n`` requests in all."""
        await self.wait_until(lambda log: sum(log.hits.values()) >= n, within)

    async def wait_until(self, ready: Callable[[Log], bool], within: float = BOUND) -> None:
        """Return once ``ready(log)`` holds; it is checked on each arrival."""
        async with self._arrivals:
            await asyncio.wait_for(self._arrivals.wait_for(lambda: ready(self.log)), within)

    async def wait_in_flight(self, n: int) -> None:
        """Return once ``n`` requests are in the server at the same time."""
        async with self._arrivals:
            await asyncio.wait_for(self._arrivals.wait_for(lambda: self.log.in_flight >= n), BOUND)

    def url(self, path: str, host: str | None = None) -> str:
        url = f"http://127.0.0.1:{self.port}{path}"
        return url if host is None else url.replace("127.0.0.1", loopback(host), 1)

    async def start(self) -> LoopbackAPI:
        app = web.Application(middlewares=[self._count])
        r = app.router
        r.add_route("*", "/ok/{id}", self._ok)
        r.add_get("/hold/{id}", self._hold)
        r.add_route("*", "/hang/{id}", self._hang)
        r.add_get("/status/{code}", self._status)
        r.add_get("/scripted/{id}", self._scripted)
        r.add_route("*", "/order/{id}", self._order)
        r.add_post("/graphql/{n}", self._graphql)
        r.add_get("/latin1", self._latin1)
        r.add_get("/gzip", self._gzip)
        r.add_get("/redirect", self._redirect)
        r.add_get("/redirect-to/{host}", self._redirect_to)
        r.add_get("/loop", self._loop)
        r.add_route("*", "/go/{code}", self._go)
        r.add_get("/binary", self._binary)
        r.add_get("/big/{size}", self._big)
        r.add_get("/notjson", self._notjson)
        r.add_route("*", "/echo", self._echo)
        r.add_get("/link/{to}", self._link)
        r.add_get("/item/{n}", self._item)
        r.add_get("/pages/{kind}/{n}", self._pages)
        r.add_get("/job/{id}", self._job)
        r.add_get("/login", self._login)
        r.add_post("/oauth/token", self._token)
        r.add_get("/private/{id}", self._private)
        r.add_get("/keyed/{id}", self._keyed)
        r.add_get("/llm/{id}", self._llm)
        r.add_get("/whoami", self._whoami)
        r.add_get("/pages/{kind}/{n}/{tag}", self._pages)  # the tag tells chains apart
        r.add_get("/tree/{level}/{name}", self._tree)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        first = web.TCPSite(self._runner, self.hosts[0], 0)
        await first.start()
        self.port = self._runner.addresses[0][1]
        for host in self.hosts[1:]:
            await web.TCPSite(self._runner, host, self.port).start()
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        log = self.log
        host = request.host.rsplit(":", 1)[0]
        log.in_flight += 1
        log.max_in_flight = max(log.max_in_flight, log.in_flight)
        log.host_in_flight[host] += 1
        log.host_max[host] = max(log.host_max[host], log.host_in_flight[host])
        log.hits[request.path] += 1
        log.times[request.path].append(asyncio.get_running_loop().time())
        log.arrived[request.path] = time.time()
        log.headers.append(dict(request.headers))
        async with self._arrivals:
            self._arrivals.notify_all()
        try:
            return await handler(request)
        finally:
            log.in_flight -= 1
            log.host_in_flight[host] -= 1

    async def _ok(self, request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"], "method": request.method})

    async def _hold(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.hold_seconds)  # simulated service time, so requests overlap
        return web.json_response({"id": request.match_info["id"]})

    async def _hang(self, request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self.release.wait(), self.hang_bound)
        except TimeoutError:
            pass
        return web.json_response({"late": True})

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.json_response({"status": code}, status=code)

    async def _scripted(self, request: web.Request) -> web.Response:
        statuses = self.script.get(request.match_info["id"], [200])
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return web.json_response({"status": status}, status=status)

    async def _order(self, request: web.Request) -> web.Response:
        """What a payment API sees: each request's Idempotency-Key; answers as ``script``
        says; ``?hold=1`` waits for ``release`` (a request in flight when a test kills)."""
        order = request.match_info["id"]
        self.orders.append((order, request.method, request.headers.get(self.key_header)))
        if request.query.get("hold"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), self.hang_bound)
        statuses = self.script.get(order, [200])
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return web.json_response({"order": order}, status=status)

    async def _graphql(self, request: web.Request) -> web.Response:
        """A GraphQL connection of N pages: the cursor comes in ``variables.after``, and the
        last page still names an ``endCursor`` but says ``hasNextPage: false``."""
        body = await request.json()
        after = (body.get("variables") or {}).get("after")
        page = 1 if after is None else int(str(after).removeprefix("c")) + 1
        last = int(request.match_info["n"])
        self.page_hits[f"{request.path}:{body.get('query')}:{page}"] += 1
        info = {"hasNextPage": page < last, "endCursor": f"c{page}"}
        nodes = [{"page": page, "of": body.get("query")}]
        return web.json_response({"data": {"search": {"nodes": nodes, "pageInfo": info}}})

    async def _latin1(self, request: web.Request) -> web.Response:
        return web.Response(
            body="café crème".encode("latin-1"),
            headers={"Content-Type": "text/plain; charset=iso-8859-1"},
        )

    async def _gzip(self, request: web.Request) -> web.Response:
        body = gzip.compress(orjson.dumps({"compressed": True, "n": list(range(50))}))
        return web.Response(
            body=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok/redirected")

    async def _redirect_to(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.url("/echo", host=request.match_info["host"]))

    async def _go(self, request: web.Request) -> web.Response:
        """Redirect with status CODE to the query's ``to`` (default: /echo on this host)."""
        await request.read()
        location = request.query.get("to", "/echo")
        return web.Response(status=int(request.match_info["code"]), headers={"Location": location})

    async def _loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.path_qs)  # forever: a redirect loop

    async def _binary(self, request: web.Request) -> web.Response:
        return web.Response(body=bytes(range(256)), content_type="application/octet-stream")

    async def _big(self, request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.match_info["size"]), content_type="text/plain")

    async def _notjson(self, request: web.Request) -> web.Response:
        return web.Response(body=b"<html>oops</html>", content_type="application/json")

    async def _item(self, request: web.Request) -> web.Response:
        """A JSON object with one field of each type, for --select and table outputs."""
        n = int(request.match_info["n"])
        return web.json_response(
            {"n": n, "name": f"item {n}", "price": n * 1.5, "active": n % 2 == 0,
             "tags": ["a", str(n)], "note": None, "big": "x" * 2000}
        )  # fmt: skip

    async def _token(self, request: web.Request) -> web.Response:
        """Client credentials: ``oauth_client`` (id:secret, by basic auth) gets a token that
        says it lives ``oauth_lifetime`` seconds and that /private refuses a little sooner."""
        self.token_headers.append(dict(request.headers))
        self.token_in_flight += 1
        self.token_max_in_flight = max(self.token_max_in_flight, self.token_in_flight)
        try:
            await asyncio.sleep(0.02)  # a token takes a moment: waiters pile up meanwhile
            wanted = "Basic " + base64.b64encode(self.oauth_client.encode()).decode()
            form = await request.post()
            if request.headers.get("Authorization") != wanted or form.get("grant_type") != (
                "client_credentials"
            ):
                return web.json_response({"error": "invalid_client"}, status=401)
            token = f"tok-{len(self.tokens)}"
            now = asyncio.get_running_loop().time()
            self.tokens[token] = now + self.oauth_lifetime * 0.8  # refused a little early
            return web.json_response(
                {"access_token": token, "token_type": "Bearer", "expires_in": self.oauth_lifetime}
            )
        finally:
            self.token_in_flight -= 1

    async def _private(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        until = self.tokens.get(given)
        if until is None or asyncio.get_running_loop().time() > until:
            self.refused_tokens += 1
            return web.json_response({"error": "invalid_token"}, status=401)
        await asyncio.sleep(self.hold_seconds)
        return web.json_response({"id": request.match_info["id"]})

    async def _llm(self, request: web.Request) -> web.Response:
        """An answer that says what it cost: ``usage.total_tokens`` from ``?used=N``."""
        used = int(request.query.get("used", "1"))
        return web.json_response({"text": "hi", "usage": {"total_tokens": used}})

    async def _keyed(self, request: web.Request) -> web.Response:
        """An API of keys: ``keys`` (key -> what it answers: "ok", "429 once", "refused");
        each key's arrival times kept in ``key_times``."""
        key = request.headers.get("X-Api-Key", "")
        kind = self.keys.get(key)
        self.key_times[key].append(asyncio.get_running_loop().time())
        if kind is None or kind == "refused":
            return web.json_response({"error": "bad key"}, status=401)
        if kind == "429 once":
            self.keys[key] = "ok"
            self.key_paused_at = asyncio.get_running_loop().time()
            return web.json_response({"error": "slow down"}, status=429,
                                     headers={"Retry-After": "1"})  # fmt: skip
        await asyncio.sleep(self.hold_seconds)
        return web.json_response({"id": request.match_info["id"]})

    async def _login(self, request: web.Request) -> web.Response:
        """Sets a session cookie and sends the client on to /whoami, as logins do."""
        response = web.Response(status=302, headers={"Location": "/whoami"})
        response.set_cookie("session", "token-42", path="/")
        return response

    async def _whoami(self, request: web.Request) -> web.Response:
        return web.json_response({"session": request.cookies.get("session")})

    async def _job(self, request: web.Request) -> web.Response:
        """200 with ``{"state": "pending"}`` for the first ``?pending=K`` asks (default 0),
        then ``{"state": "done", "value": ID}``; ``?pending=never`` stays pending."""
        asked = self.job_asks[request.path] = self.job_asks[request.path] + 1
        pending = request.query.get("pending", "0")
        if pending == "never" or asked <= int(pending):
            return web.json_response({"state": "pending"})
        return web.json_response({"state": "done", "value": int(request.match_info["id"])})

    async def _tree(self, request: web.Request) -> web.Response:
        """A three-level tree paged by Link: ``/tree/a/{n}`` (2 pages of 3 children,
        ``b{(n + 3 * page + i) % 40}``, so that roots share them), ``/tree/b/{name}`` (2
        pages of 2 children each its own) and ``/tree/c/{name}`` (a leaf). Each answer
        waits ``hold_seconds``; ``page_hits`` counts each path and query."""
        level, name = request.match_info["level"], request.match_info["name"]
        page = int(request.query.get("page", "1"))
        self.page_hits[request.path_qs] += 1
        await asyncio.sleep(self.hold_seconds)
        if level == "a":
            n = int(name)
            items = [{"name": f"b{(n + 3 * page + i) % 40}"} for i in range(3)]
        elif level == "b":
            items = [{"name": f"{name}-c{page}{i}"} for i in range(2)]
        else:
            return web.json_response({"leaf": name})
        headers = {"Link": f'<{request.path}?page={page + 1}>; rel="next"'} if page < 2 else {}
        return web.json_response({"items": items}, headers=headers)

    async def _pages(self, request: web.Request) -> web.Response:
        """A chain of ``n`` pages of 3 items, paged as ``kind`` says: link (a Link header),
        next (a URL in the body), cursor (a token in the body), page (?p=1..; an empty page
        after the last), page404 (a 404 after the last), offset (?o=0,3,..; the last short),
        loop (a Link back to page 1). ``/scripted``-style faults: ``?fail=K`` answers page K
        with a 503 the first time it is asked, ``?throttle=K`` with a 429 and Retry-After: 1."""
        kind, n, q = request.match_info["kind"], int(request.match_info["n"]), request.query
        self.page_hits[request.path_qs] += 1
        chain = request.path
        if kind in ("page", "page404"):
            k = int(q.get("p", "1"))
        elif kind == "offset":
            k = int(q.get("o", "0")) // 3 + 1
        elif kind == "cursor":
            k = int(q["c"].removeprefix("c")) if "c" in q else 1
        else:
            k = int(q.get("page", "1"))
        fail = f"{chain}?{k}"
        if q.get("fail") == str(k) and fail not in self.failed_once:
            self.failed_once.add(fail)
            return web.json_response({"error": "try again"}, status=503)
        if q.get("throttle") == str(k) and fail not in self.failed_once:
            self.failed_once.add(fail)
            self.throttled_at = asyncio.get_running_loop().time()
            headers = {"Retry-After": "1"}
            return web.json_response({"error": "slow down"}, status=429, headers=headers)
        if kind == "page404" and k > n:
            return web.json_response({"error": "no such page"}, status=404)
        count = 0 if k > n else 2 if kind == "offset" and k == n else 3
        body: dict[str, object] = {"page": k, "items": [f"{k}.{i}" for i in range(count)]}
        headers = {}
        extra = "".join(f"&{k}={q[k]}" for k in ("fail", "throttle") if k in q)
        if kind == "link" and k < n:
            headers["Link"] = (
                f'<{chain}?page={k + 1}{extra}>; rel="next", <{chain}?page=1>; rel="first"'
            )
        elif kind == "loop":
            headers["Link"] = f'<{chain}?page={1 if k == 2 else k + 1}>; rel="next"'
        elif kind == "next":
            body["links"] = {"next": f"{chain}?page={k + 1}{extra}" if k < n else None}
        elif kind == "cursor":
            body["cursor"] = f"c{k + 1}" if k < n else None
        return web.json_response(body, headers=headers)

    async def _link(self, request: web.Request) -> web.Response:
        """An empty page whose next link is ``to``, base64url-encoded in the path (so that
        neither the record's URL nor the body shows it)."""
        to = base64.urlsafe_b64decode(request.match_info["to"]).decode()
        return web.json_response({}, headers={"Link": f'<{to}>; rel="next"'})

    async def _echo(self, request: web.Request) -> web.Response:
        """What the request was; ``?link=URL`` adds ``Link: <URL>; rel="next"`` (a next page
        wherever a test wants it)."""
        body = await request.read()
        link = request.query.get("link")
        return web.json_response(
            {
                "method": request.method,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body.decode("utf-8", "replace"),
            },
            headers={"Link": f'<{link}>; rel="next"'} if link else None,
        )


class DroppingServer:
    """A raw TCP server that reads a request and closes the connection without answering."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> DroppingServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class ForwardProxy:
    """A small HTTP forward proxy on 127.0.0.1 (absolute-form requests, one per connection,
    and CONNECT tunnels for https) that counts what passed through it and, given
    ``credentials``, answers 407 to a request without the matching ``Proxy-Authorization``.
    It forwards to loopback only."""

    def __init__(self, credentials: str | None = None) -> None:
        self.credentials = credentials
        self.seen: list[str] = []  # the absolute URLs it forwarded
        self.asked: list[str] = []  # the absolute URLs it was asked for, forwarded or not
        self.refused = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self._forward(reader, writer), BOUND)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import base64
        from urllib.parse import urlsplit

        head = await reader.readuntil(b"\r\n\r\n")
        line, *fields = head.decode("latin-1").split("\r\n")[:-2]
        method, target, version = line.split(" ")
        headers = dict(f.split(": ", 1) for f in fields)
        if self.credentials is not None:
            wanted = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            if headers.get("Proxy-Authorization") != wanted:
                self.refused += 1
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")  # fmt: skip
                await writer.drain()
                return
        if method == "CONNECT":  # a tunnel, for https: bytes both ways, untouched
            await self._tunnel(target, reader, writer)
            return
        self.asked.append(target)
        parts = urlsplit(target)
        assert parts.hostname in ("127.0.0.1", "127.0.0.2", "localhost"), target
        self.seen.append(target)
        body = b""
        if "Content-Length" in headers:
            body = await reader.readexactly(int(headers["Content-Length"]))
        kept = {k: v for k, v in headers.items() if not k.lower().startswith("proxy-")}
        kept["Connection"] = "close"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        upstream_head = f"{method} {path or '/'} {version}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in kept.items()
        )
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        try:
            up_writer.write(upstream_head.encode("latin-1") + b"\r\n" + body)
            await up_writer.drain()
            answer = await up_reader.readuntil(b"\r\n\r\n")
            status, *answer_fields = answer.decode("latin-1").split("\r\n")[:-2]
            answer_fields = [f for f in answer_fields if not f.lower().startswith("connection:")]
            writer.write(("\r\n".join([status, *answer_fields, "Connection: close"]) +
                          "\r\n\r\n").encode("latin-1"))  # fmt: skip
            while chunk := await up_reader.read(65536):
                writer.write(chunk)
            await writer.drain()
        finally:
            up_writer.close()

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port = target.rpartition(":")
        assert host in ("127.0.0.1", "localhost"), target
        self.seen.append(f"CONNECT {target}")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class Socks5Proxy:
    """A small SOCKS5 proxy on 127.0.0.1 (CONNECT only; no auth, or username/password when
    ``credentials`` is given) that counts the connections it made. Loopback targets only."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.connected: list[tuple[str, int]] = []
        self.refused = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> Socks5Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self._serve(reader, writer), BOUND)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        wanted = 2 if self.credentials else 0
        if wanted not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(bytes([5, wanted]))
        if self.credentials:
            _, size = await reader.readexactly(2)
            user = (await reader.readexactly(size)).decode()
            size = (await reader.readexactly(1))[0]
            password = (await reader.readexactly(size)).decode()
            if (user, password) != self.credentials:
                self.refused += 1
                writer.write(b"\x01\x01")
                return
            writer.write(b"\x01\x00")
        _, command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = ".".join(str(b) for b in await reader.readexactly(4))
        elif kind == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        else:
            writer.write(b"\x05\x08\x00\x01" + bytes(6))
            return
        port = int.from_bytes(await reader.readexactly(2), "big")
        assert command == 1 and host in ("127.0.0.1", "127.0.0.2", "localhost"), host
        up_reader, up_writer = await asyncio.open_connection(host, port)
        self.connected.append((host, port))
        writer.write(b"\x05\x00\x00\x01" + bytes(6))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@asynccontextmanager
async def serve_routes(routes: dict[str, Handler]) -> AsyncIterator[str]:
    """A one-off aiohttp server on 127.0.0.1 answering GET ``path`` with ``routes[path]``
    (a path may hold ``{slots}``); yields its base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
