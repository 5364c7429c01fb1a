"""An embedded JSON API on loopback, for ``fanfetch demo``, the tests, the benchmarks, and users.

It behaves like a real API on a bad day, within knobs: a latency with jitter, a share of
500/503 answers, and a share of 429s carrying ``Retry-After``. Routes:

- ``GET|POST /items/{id}``: a small JSON object about item ``id``;
- ``POST /echo``: the method, query, headers and JSON body it was sent;
- ``GET /repos/{repo}/issues``: a paginated list (``per_page``, 10 by default, of a number of
  issues fixed by the name, or ``?total=N``), paged every way ``--paginate`` follows: a
  ``Link`` header, ``next`` (a URL) and ``next_cursor`` in the body, and the query parameters
  ``page`` (from 1), ``cursor`` and ``offset``;
- ``GET /orgs/{org}/repos``: an organisation's repositories, two a page by ``Link`` (a
  tree with the issues above): ``o{n}`` has ``r{n}``, ``r{n+1}`` and ``r{n+2}``, so that
  neighbours share two; ``empty`` has none; ``faults`` has ``flaky`` (its issues answer 503
  the first time), ``busy`` (429 with ``Retry-After: 1`` the first time) and one entry with
  no ``name``. Each repository is ``{"name", "full_name", "owner": {"login"}}``;
- ``GET /status/{code}``: an empty answer with that status;
- ``GET|POST /limited/{form}/{id}``: an item behind a fixed window of ``?limit=`` requests
  (60 by default) per ``?window=`` seconds (1), advertised in the header ``form``: ``x``
  (``X-RateLimit-*``, Reset in seconds), ``x-epoch`` (Reset a Unix time), ``ietf``
  (``RateLimit-Limit/Remaining/Reset``), ``dict`` (``RateLimit: limit=, remaining=,
  reset=``), ``draft`` (``RateLimit-Policy`` and ``RateLimit``, revision 07 on) or ``openai``
  (``x-ratelimit-*-requests``, a window of 60 s, and ``-tokens`` with ``?tokens=`` a
  request and ``?token_limit=`` a window); over it, 429 with ``Retry-After``.
  ``GET /limited/stats``: what each window let through and refused, its tokens, and when
  the first and the last it let through came;
- ``GET /health``: ``{"ok": true}``, never delayed or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from aiohttp import web

from ._core._exceptions import FanfetchError, UsageError

__all__ = ["MockAPI", "MockAPIConfig", "create_app", "mock_api_process", "serve"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MockAPIConfig:
    latency_ms: float = 20.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    retry_after: float = 1.0
    seed: int | None = None


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def create_app(config: MockAPIConfig | None = None) -> web.Application:
    """The mock API as an ``aiohttp.web`` application, to run in tests or with ``serve``."""
    cfg = config or MockAPIConfig()
    rng = random.Random(cfg.seed)
    app = web.Application()

    async def delay() -> None:
        seconds = (cfg.latency_ms + (rng.uniform(-1, 1) * cfg.jitter_ms)) / 1000.0
        if seconds > 0:
            await asyncio.sleep(seconds)

    def misbehave() -> web.Response | None:
        roll = rng.random()
        if roll < cfg.throttle_rate:
            headers = {"Retry-After": f"{cfg.retry_after:g}"}
            return web.json_response({"error": "slow down"}, status=429, headers=headers)
        if roll < cfg.throttle_rate + cfg.error_rate:
            status = 500 if rng.random() < 0.5 else 503
            return web.json_response({"error": "server trouble"}, status=status)
        return None

    async def item(request: web.Request) -> web.Response:
        await delay()
        failure = misbehave()
        if failure is not None:
            return failure
        item_id = request.match_info["id"]
        return _json({"id": item_id, "name": f"item {item_id}", "price": len(item_id) * 1.5})

    async def echo(request: web.Request) -> web.Response:
        await delay()
        body = await request.read()
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = body.decode("utf-8", "replace")
        return _json(
            {
                "method": request.method,
                "query": {str(k): v for k, v in request.query.items()},
                # header names are multidict.istr, a str subclass that orjson refuses as a key
                "headers": {str(k): v for k, v in request.headers.items()},
                "body": parsed,
            }
        )

    first_asked: set[str] = set()  # the tree's faults: answered once, then all is well

    async def repos(request: web.Request) -> web.Response:
        await delay()
        org = request.match_info["org"]
        if org == "empty":
            names: list[str | None] = []
        elif org == "faults":
            names = ["flaky", "busy", None]
        else:
            n = int(org.removeprefix("o")) if org.removeprefix("o").isdigit() else 0
            names = [f"r{n + k}" for k in range(3)]
        page = max(1, int(request.query.get("page", 1)))
        listed = [{"full_name": f"{org}/{name}", "owner": {"login": org}}
                  | ({"name": name} if name is not None else {})
                  for name in names[2 * (page - 1): 2 * page]]  # fmt: skip
        headers = {}
        if 2 * page < len(names):
            headers["Link"] = f'<{request.path}?page={page + 1}>; rel="next"'
        return web.Response(body=orjson.dumps(listed), content_type="application/json",
                            headers=headers)  # fmt: skip

    async def issues(request: web.Request) -> web.Response:
        await delay()
        failure = misbehave()
        if failure is not None:
            return failure
        repo, q = request.match_info["repo"], request.query
        if repo in ("flaky", "busy") and repo not in first_asked:
            first_asked.add(repo)
            if repo == "flaky":
                return web.json_response({"error": "try again"}, status=503)
            return web.json_response({"error": "slow down"}, status=429,
                                     headers={"Retry-After": "1"})  # fmt: skip
        total = int(q.get("total", 10 + sum(repo.encode()) % 41))
        size = max(1, int(q.get("per_page", 10)))
        if "offset" in q:
            start = int(q["offset"])
        elif "cursor" in q:
            start = int(q["cursor"].removeprefix("after-"))
        else:
            start = (int(q.get("page", 1)) - 1) * size
        numbers = range(start + 1, min(total, start + size) + 1)
        issues = [{"number": n, "title": f"{repo} issue {n}", "open": n % 3 != 0} for n in numbers]
        more = start + size < total
        page = start // size + 1
        keep = "&".join(f"{k}={v}" for k, v in q.items() if k in ("per_page", "total"))
        base = f"{request.path}?{keep + '&' if keep else ''}page="
        body = {
            "items": issues,
            "next": f"{base}{page + 1}" if more else None,
            "next_cursor": f"after-{start + size}" if more else None,
        }
        headers = {"Link": f'<{base}{page + 1}>; rel="next"'} if more else {}
        return web.Response(
            body=orjson.dumps(body), content_type="application/json", headers=headers
        )

    # (form, window start): requests let through, refused, tokens let through, first, last
    windows: dict[tuple[str, float], list[float]] = {}

    async def limited(request: web.Request) -> web.Response:
        form, q = request.match_info["form"], request.query
        limit = int(q.get("limit", 60))
        window = float(q.get("window", 60 if form == "openai" else 1))
        tokens, token_limit = float(q.get("tokens", 0)), float(q.get("token_limit", 0) or "inf")
        now = time.time()
        start = now - now % window
        spent = windows.setdefault((form, start), [0, 0, 0.0, now, now])
        over = spent[0] >= limit or spent[2] + tokens > token_limit
        if over:
            spent[1] += 1
        else:
            spent[0] += 1
            spent[2] += tokens
            if spent[0] == 1:
                spent[3] = now  # the first let through (a refused one may have come before)
            spent[4] = now
        left = start + window - now
        headers = _advertised(form, limit, window, limit - int(spent[0]), left, start + window)
        if form == "openai" and token_limit != float("inf"):
            headers |= {"x-ratelimit-limit-tokens": f"{token_limit:g}",
                        "x-ratelimit-remaining-tokens": f"{token_limit - spent[2]:g}",
                        "x-ratelimit-reset-tokens": f"{left:.3f}s"}  # fmt: skip
        if over:
            headers["Retry-After"] = str(math.ceil(left))
            return web.json_response({"error": "over the limit"}, status=429, headers=headers)
        await delay()
        item_id = request.match_info["id"]
        return web.Response(body=orjson.dumps({"id": item_id}), content_type="application/json",
                            headers=headers)  # fmt: skip

    async def limited_stats(request: web.Request) -> web.Response:
        return _json([{"form": form, "start": start, "ok": ok, "refused": refused,
                       "tokens": tokens, "first": first, "last": last}
                      for (form, start), (ok, refused, tokens, first, last)
                      in sorted(windows.items())])  # fmt: skip

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    async def health(request: web.Request) -> web.Response:
        return _json({"ok": True})

    app.router.add_route("*", "/items/{id}", item)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/repos/{repo}/issues", issues)
    app.router.add_get("/orgs/{org}/repos", repos)
    app.router.add_get(r"/status/{code:\d{3}}", status)
    app.router.add_get("/limited/stats", limited_stats)
    app.router.add_route("*", "/limited/{form}/{id}", limited)
    app.router.add_get("/health", health)
    return app


def _advertised(
    form: str, limit: int, window: float, remaining: int, left: float, end: float
) -> dict[str, str]:
    """A fixed window's state in the rate-limit headers of ``form``."""
    t = math.ceil(left)  # whole seconds, as most APIs write them
    if form == "x":
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(t)}  # fmt: skip
    if form == "x-epoch":
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(math.ceil(end))}  # fmt: skip
    if form == "ietf":
        return {"RateLimit-Limit": str(limit), "RateLimit-Remaining": str(remaining),
                "RateLimit-Reset": str(t)}  # fmt: skip
    if form == "dict":
        return {"RateLimit": f"limit={limit}, remaining={remaining}, reset={t}"}
    if form == "draft":
        return {"RateLimit-Policy": f'"default";q={limit};w={window:g}',
                "RateLimit": f'"default";r={remaining};t={t}'}  # fmt: skip
    if form == "openai":
        return {"x-ratelimit-limit-requests": str(limit),
                "x-ratelimit-remaining-requests": str(remaining),
                "x-ratelimit-reset-requests": f"{left:.3f}s"}  # fmt: skip
    return {}


async def serve(config: MockAPIConfig, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until SIGINT or SIGTERM; print ``listening on URL`` (the port may be 0: any free)."""
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:  # the port is taken, or the address is not this machine's
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound = runner.addresses[0][1] if runner.addresses else port
        print(f"listening on http://{host}:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    print("mock API stopped", file=sys.stderr)


class MockAPI:
    """The mock API on its own thread and loop, for scripts, notebooks and examples.

    ::

        with fanfetch.MockAPI(latency_ms=5) as api:
            results = fanfetch.run([f"{api.url}/items/{i}" for i in range(100)])
    """

    def __init__(self, *, port: int = 0, **options: float | int | None) -> None:
        self.config = MockAPIConfig(**options)  # type: ignore[arg-type]
        self._port = port
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MockAPI:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve_here() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            runner = web.AppRunner(create_app(self.config), access_log=None)
            try:
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", self._port)
                loop.run_until_complete(site.start())
                self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=serve_here, name="fanfetch-mock-api", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> MockAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<MockAPI {self.url or 'not started'}>"


@contextlib.contextmanager
def mock_api_process(*args: str) -> Iterator[str]:
    """The mock API in a process of its own (so it has its own core); yields its base URL.

    ``args`` are ``fanfetch mock-api`` flags; the port is chosen free. The demo and
    ``fanfetch bench`` use this, so the client they measure has its process to itself.
    """
    server = subprocess.Popen(
        [sys.executable, "-m", "fanfetch", "mock-api", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise FanfetchError("the mock API did not start")
        yield line.removeprefix("listening on ")
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()
