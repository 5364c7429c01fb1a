"""--http2: requests go over HTTP/2 to a real HTTP/2 server (hypercorn, TLS with a test CA),
many at once on one connection, and the records are the same as over HTTP/1.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config as HypercornConfig

from tests.conftest import run_cli


@dataclass
class H2Server:
    url: str
    ca_file: str
    versions: list[str] = field(default_factory=list)
    clients: set[tuple[str, int]] = field(default_factory=set)  # one per connection
    in_flight: int = 0
    most_in_flight: int = 0


@pytest.fixture
async def h2(tmp_path: Path) -> AsyncIterator[H2Server]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = H2Server("", str(tmp_path / "ca.pem"))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        server.versions.append(scope["http_version"])
        server.clients.add(tuple(scope["client"]))
        server.in_flight += 1
        server.most_in_flight = max(server.most_in_flight, server.in_flight)
        try:
            await asyncio.sleep(0.02)  # long enough for requests to overlap
            body = orjson.dumps({"path": scope["path"], "version": scope["http_version"]})
            headers = [(b"content-type", b"application/json")]
            if scope["path"].startswith("/big-headers"):  # 40 KB of them
                headers += [(b"x-big-%d" % i, b"v" * 500) for i in range(80)]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            server.in_flight -= 1

    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.certfile = config.keyfile = str(tmp_path / "server.pem")
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = config.errorlog = None
    sockets = config.create_sockets()
    listening = sockets.secure_sockets[0]
    listening.listen(128)  # connections queue from now on, before hypercorn's loop accepts
    server.url = f"https://127.0.0.1:{listening.getsockname()[1]}"
    stop = asyncio.Event()
    task = asyncio.create_task(
        worker_serve(
            ASGIWrapper(app),  # type: ignore[arg-type]
            config,
            sockets=sockets,
            shutdown_trigger=stop.wait,
        )
    )
    try:
        yield server
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_http2_carries_many_requests_on_one_connection_with_the_same_records(h2):
    lines = "".join(f"{h2.url}/items/{i}\n" for i in range(40)).encode()
    over2 = await run_cli("run", "-", "-c", "20", "--http2", "--cacert", h2.ca_file, stdin=lines)
    assert over2.status == 0, over2.stderr
    assert set(h2.versions) == {"2"} and len(h2.versions) == 40
    assert len(h2.clients) == 1  # one connection...
    assert h2.most_in_flight > 1  # ...with requests at once on it
    records2 = sorted(over2.records, key=lambda r: r["id"])

    h2.versions.clear()
    over1 = await run_cli("run", "-", "-c", "20", "--cacert", h2.ca_file, stdin=lines)
    assert over1.status == 0, over1.stderr
    assert set(h2.versions) == {"1.1"}
    records1 = sorted(over1.records, key=lambda r: r["id"])
    assert [r["body"]["path"] for r in records2] == [f"/items/{i}" for i in range(40)]
    same = ("id", "url", "status", "ok", "attempts", "error")
    assert [{k: r.get(k) for k in same} for r in records2] == [
        {k: r.get(k) for k in same} for r in records1
    ]


async def test_http2_verifies_the_certificate_and_says_how_to_trust_it(h2):
    result = await run_cli("run", "-", "--http2", "--retries", "0", stdin=f"{h2.url}/\n".encode())
    assert result.status == 1
    [record] = result.records
    assert record["error"]["type"] == "tls" and "--cacert" in record["error"]["message"]
    insecure = await run_cli("run", "-", "-q", "--http2", "--insecure",
                             stdin=f"{h2.url}/\n".encode())  # fmt: skip
    assert insecure.status == 0, insecure.stderr
    assert insecure.records[0]["body"]["version"] == "2"


async def test_http2_with_another_transport_is_a_usage_error():
    result = await run_cli("run", "-", "--http2", "--transport", "aiohttp",
                           stdin=b"https://127.0.0.1:9/\n")  # fmt: skip
    assert result.status == 2 and "--http2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_http2_takes_the_headers_the_other_transports_take(h2: H2Server):
    """40 KB of headers, under the 64 KiB the others allow: pyreqwest stopped at ~16 KB."""
    stdin = f"{h2.url}/big-headers\n".encode()
    result = await run_cli("run", "-", "-q", "--http2", "--cacert", h2.ca_file,
                           "--include-headers", stdin=stdin)  # fmt: skip
    assert result.status == 0, result.stderr
    [record] = result.records
    assert record["body"]["version"] == "2" and len(record["headers"]) >= 80
