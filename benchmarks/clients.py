"""The ways people make many HTTP calls, each as a whole process, for the benchmark suite.

    python benchmarks/clients.py NAME URLS_FILE CONCURRENCY

Every client reads the URLs from the file, makes one GET per URL, reads and parses every JSON
body, counts the successes and prints ``ok=N``. Nothing else is measured here: ``run.py``
times the whole process from outside (wall, CPU, peak memory).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import orjson


def read_urls(path: str) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def iter_urls(path: str) -> Any:
    with open(path) as f:
        for line in f:
            if line.strip():
                yield line.strip()


# -- blocking clients ---------------------------------------------------------------------------


def requests_serial(path: str, concurrency: int) -> int:
    import requests

    ok = 0
    with requests.Session() as session:
        for url in iter_urls(path):
            response = session.get(url, timeout=30)
            if response.ok:
                orjson.loads(response.content)
                ok += 1
    return ok


_thread_local = threading.local()


def _threaded_get(url: str) -> bool:
    import requests

    local = _thread_local
    if not hasattr(local, "session"):
        local.session = requests.Session()  # one session (connection pool) per thread
    response = local.session.get(url, timeout=30)
    if response.ok:
        orjson.loads(response.content)
        return True
    return False


def requests_threads(path: str, concurrency: int) -> int:
    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(_threaded_get, read_urls(path)))


def _process_chunk(urls: list[str]) -> int:
    import requests

    ok = 0
    with requests.Session() as session:
        for url in urls:
            response = session.get(url, timeout=30)
            if response.ok:
                orjson.loads(response.content)
                ok += 1
    return ok


def requests_processes(path: str, concurrency: int) -> int:
    import os

    urls = read_urls(path)
    workers = min(concurrency, (os.cpu_count() or 2) * 8)
    chunks = [urls[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        return sum(pool.map(_process_chunk, chunks))


# -- asyncio clients ----------------------------------------------------------------------------


def _uvloop_run(main: Any) -> Any:
    import uvloop

    return uvloop.run(main)


async def _aiohttp_get(session: Any, url: str) -> bool:
    async with session.get(url) as response:
        body = await response.read()
        if response.status == 200:
            orjson.loads(body)
            return True
        return False


def aiohttp_naive(path: str, concurrency: int) -> int:
    """The pattern fanfetch replaces: a task per URL, then gather them all."""
    import aiohttp

    async def main() -> int:
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(_aiohttp_get(session, u)) for u in read_urls(path)]
            return sum(await asyncio.gather(*tasks))

    return asyncio.run(main())


def aiohttp_semaphore(path: str, concurrency: int) -> int:
    import aiohttp

    async def main() -> int:
        sem = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(url: str) -> bool:
                async with sem:
                    return await _aiohttp_get(session, url)

            return sum(await asyncio.gather(*(one(u) for u in read_urls(path))))

    return asyncio.run(main())


def aiohttp_pool(path: str, concurrency: int) -> int:
    """The best hand-written loop: a fixed pool of workers on a bounded queue, on uvloop."""
    import aiohttp

    async def main() -> int:
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=concurrency * 2)
        ok = 0
        connector = aiohttp.TCPConnector(limit=concurrency, ttl_dns_cache=300)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                nonlocal ok
                while (url := await queue.get()) is not None:
                    try:
                        good = await _aiohttp_get(session, url)  # not `ok += await`: that
                    except (aiohttp.ClientError, TimeoutError):  # reads ok before awaiting
                        continue
                    ok += good

            async def feed() -> None:
                for url in iter_urls(path):
                    await queue.put(url)
                for _ in range(concurrency):
                    await queue.put(None)

            async with asyncio.TaskGroup() as tg:
                tg.create_task(feed())
                for _ in range(concurrency):
                    tg.create_task(worker())
        return ok

    return int(_uvloop_run(main()))


def httpx_async(path: str, concurrency: int) -> int:
    import httpx

    async def main() -> int:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        sem = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def one(url: str) -> bool:
                async with sem:
                    response = await client.get(url)
                    if response.status_code == 200:
                        orjson.loads(response.content)
                        return True
                    return False

            return sum(await asyncio.gather(*(one(u) for u in read_urls(path))))

    return asyncio.run(main())


def aiometer_httpx(path: str, concurrency: int) -> int:
    import aiometer
    import httpx

    async def main() -> int:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        ok = 0
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def one(url: str) -> bool:
                response = await client.get(url)
                if response.status_code == 200:
                    orjson.loads(response.content)
                    return True
                return False

            async with aiometer.amap(one, read_urls(path), max_at_once=concurrency) as results:
                async for good in results:
                    ok += good
        return ok

    return asyncio.run(main())


def fanfetch_api(path: str, concurrency: int, transport: str = "auto") -> int:
    import fanfetch

    async def main() -> int:
        ok = 0
        with open(path, "rb") as f:  # noqa: ASYNC230 - as a user would, a lazy file read
            lines = (line.decode().strip() for line in f if line.strip())
            async for result in fanfetch.stream(
                lines, concurrency=concurrency, transport=transport
            ):
                if result.ok:
                    result.json()
                    ok += 1
        return ok

    return int(_uvloop_run(main()))


def fanfetch_api_aiohttp(path: str, concurrency: int) -> int:
    return fanfetch_api(path, concurrency, transport="aiohttp")


# -- peers: other fast clients, each in the same worker pool ----------------------------------
# FANFETCH_BENCH_CA names the CA that signed the https server's certificate: each client is
# told to trust it in its own way.

CA = os.environ.get("FANFETCH_BENCH_CA")


def _pool(path: str, concurrency: int, get: Callable[[str], Any]) -> int:
    """``concurrency`` workers on uvloop, taking URLs in turn; ``get(url)`` says ok or not."""

    async def main() -> int:
        urls = iter_urls(path)
        ok = 0

        async def worker() -> None:
            nonlocal ok
            for url in urls:
                try:
                    good = await get(url)
                except Exception:
                    continue
                ok += good

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok

    return int(_uvloop_run(main()))


def pyreqwest_async(path: str, concurrency: int, http2: bool = False) -> int:
    from pyreqwest.client import ClientBuilder

    client: Any = None
    pem = open(CA, "rb").read() if CA else None  # noqa: SIM115 - a script: closed at exit

    async def get(url: str) -> bool:
        nonlocal client
        if client is None:  # built inside the loop, as pyreqwest wants
            builder = ClientBuilder().max_connections(concurrency).http2(http2)
            if pem:
                builder = builder.add_root_certificate_pem(pem)
            client = builder.build()
        response = await client.get(url).build().send()
        if response.status == 200:
            orjson.loads(bytes(await response.bytes()))
            return True
        return False

    return _pool(path, concurrency, get)


def pyreqwest_http2(path: str, concurrency: int) -> int:
    return pyreqwest_async(path, concurrency, http2=True)


def httpx_http2(path: str, concurrency: int) -> int:
    import ssl

    import httpx

    verify: Any = ssl.create_default_context(cafile=CA) if CA else True
    client = httpx.AsyncClient(
        http2=True, verify=verify, limits=httpx.Limits(max_connections=concurrency)
    )

    async def get(url: str) -> bool:
        response = await client.get(url)
        if response.status_code == 200:
            orjson.loads(response.content)
            return True
        return False

    return _pool(path, concurrency, get)


def rnet_async(path: str, concurrency: int) -> int:
    import rnet

    client = rnet.Client(verify=CA) if CA else rnet.Client()

    async def get(url: str) -> bool:
        response = await client.get(url)
        if response.status == 200:
            orjson.loads(await response.bytes())
            return True
        return False

    return _pool(path, concurrency, get)


def aiosonic_async(path: str, concurrency: int) -> int:
    import ssl

    import aiosonic
    from aiosonic.pools import PoolConfig

    pools = {":default": PoolConfig(size=concurrency, max_conn_requests=None)}
    connector = aiosonic.TCPConnector(pool_configs=pools)
    client = aiosonic.HTTPClient(connector)
    context = ssl.create_default_context(cafile=CA) if CA else None

    async def get(url: str) -> bool:
        response = await (client.get(url, ssl=context) if context else client.get(url))
        body = await response.content()
        if response.status_code == 200:
            orjson.loads(body)
            return True
        return False

    return _pool(path, concurrency, get)


def curl_cffi_async(path: str, concurrency: int) -> int:
    from curl_cffi.requests import AsyncSession

    session: Any = None

    async def get(url: str) -> bool:
        nonlocal session
        if session is None:
            session = AsyncSession(max_clients=concurrency, verify=CA or True)
        response = await session.get(url)
        if response.status_code == 200:
            orjson.loads(response.content)
            return True
        return False

    return _pool(path, concurrency, get)


def pycurl_multi(path: str, concurrency: int) -> int:
    """pycurl's multi interface, its own loop (not asyncio): the C floor for Python."""
    from io import BytesIO

    import pycurl

    multi = pycurl.CurlMulti()
    handles = []
    for _ in range(concurrency):
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        if CA:
            handle.setopt(pycurl.CAINFO, CA)
        handles.append(handle)
    free = list(handles)
    urls = iter_urls(path)
    ok = 0
    exhausted = False
    while not (exhausted and len(free) == len(handles)):
        while free and not exhausted:
            url = next(urls, None)
            if url is None:
                exhausted = True
                break
            handle = free.pop()
            handle.buffer = BytesIO()  # type: ignore[attr-defined]
            handle.setopt(pycurl.URL, url)
            handle.setopt(pycurl.WRITEDATA, handle.buffer)  # type: ignore[attr-defined]
            multi.add_handle(handle)
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        _, done, failed = multi.info_read()
        for handle in done:
            if handle.getinfo(pycurl.RESPONSE_CODE) == 200:
                orjson.loads(handle.buffer.getvalue())  # type: ignore[attr-defined]
                ok += 1
            multi.remove_handle(handle)
            free.append(handle)
        for handle, _, _ in failed:
            multi.remove_handle(handle)
            free.append(handle)
        if len(free) < len(handles):
            multi.select(1.0)
    return ok


CLIENTS: dict[str, Callable[[str, int], int]] = {
    f.__name__: f
    for f in (
        requests_serial, requests_threads, requests_processes, aiohttp_naive, aiohttp_semaphore,
        aiohttp_pool, httpx_async, aiometer_httpx, fanfetch_api, fanfetch_api_aiohttp,
        pyreqwest_async, pyreqwest_http2, httpx_http2, rnet_async, aiosonic_async,
        curl_cffi_async, pycurl_multi,
    )
}  # fmt: skip


if __name__ == "__main__":
    name, urls, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(f"ok={CLIENTS[name](urls, concurrency)}")
