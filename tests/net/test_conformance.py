"""What every transport does with what a server may send: each test runs against each
transport (``TRANSPORTS``), on asyncio's loop and on uvloop (``conftest``), against
raw-socket servers that answer well, oddly or with hostility (``tests/hostile.py``).

The transport is under fanfetch's HTTP layer (``_http.HTTP``), as a run has it, so each
outcome is what a record would say: a response, or one of fanfetch's errors.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
import trustme

from fanfetch import Request, Response, make_config
from fanfetch._core._exceptions import (
    BodyTooLarge,
    ConnectError,
    InvalidRequest,
    RequestTimeout,
    TooManyRedirects,
)
from fanfetch._net._http import HTTP
from fanfetch._net._transports import TRANSPORTS, open_transport
from tests.hostile import Conn, RawServer, response

MAX_BODY = 1024 * 1024


@pytest.fixture(params=sorted(TRANSPORTS))
async def http(request: pytest.FixtureRequest) -> AsyncIterator[HTTP]:
    config = make_config(transport=request.param, max_body=MAX_BODY, max_redirects=5)
    transport = open_transport(config, pool_size=4)
    try:
        yield HTTP(config.http, transport)
    finally:
        await transport.aclose()


async def get(http: HTTP, url: str, timeout: float = 5, **kw: Any) -> Response:
    return await http.send(Request(url, **kw), timeout)


async def answer_each(conn: Conn, body: bytes) -> None:
    """Answer every request on the connection with ``body``."""
    while await conn.request() is not None:
        conn.write(body)


# -- bodies as servers send them ------------------------------------------------------------


async def test_content_length_chunked_and_close_delimited_bodies_are_read_whole(http: HTTP):
    async def answer(conn: Conn) -> None:
        while (seen := await conn.request()) is not None:
            await answer_one(conn, seen.line.split()[1])

    async def answer_one(conn: Conn, path: str) -> None:
        if path == "/length":
            conn.write(response(b"x" * 70_000))
        elif path == "/chunked":
            conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in (b"abc", b"d" * 5000, b"e"):
                conn.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await conn.drain()
            conn.write(b"0\r\n\r\n")
        else:  # HTTP/1.0: the body ends when the connection does
            conn.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
            await conn.drain()
            conn.write(b"the end")
            await conn.drain()
            conn.writer.close()

    async with RawServer(answer) as server:
        assert (await get(http, server.url("/length"))).content == b"x" * 70_000
        assert (await get(http, server.url("/chunked"))).content == b"abc" + b"d" * 5000 + b"e"
        assert (await get(http, server.url("/close"))).content == b"until the end"


async def test_a_kept_alive_connection_is_reused_and_connection_close_is_honoured(http: HTTP):
    async def answer(conn: Conn) -> None:
        while (seen := await conn.request()) is not None:
            if seen.line.split()[1] == "/close":
                conn.write(response(b"bye", "200 OK", "Connection: close"))
                return
            conn.write(response(b"again"))

    async with RawServer(answer) as server:
        for _ in range(3):
            assert (await get(http, server.url("/keep"))).content == b"again"
        assert server.connections == 1
        assert (await get(http, server.url("/close"))).content == b"bye"
        assert (await get(http, server.url("/keep"))).content == b"again"
        assert server.connections == 2 and len(server.seen) == 5


async def test_a_connection_the_server_closed_while_idle_is_not_written_to_again(http: HTTP):
    closed = asyncio.Event()

    async def answer(conn: Conn) -> None:
        if await conn.request() is not None:
            conn.write(response(b"once"))  # keep-alive by default, then closed all the same
            await conn.drain()
            conn.writer.close()
            closed.set()

    async with RawServer(answer) as server:
        assert (await get(http, server.url("/a"))).content == b"once"
        await closed.wait()
        await asyncio.sleep(0.05)  # the FIN reaches the client's loop (no event to wait on)
        assert (await get(http, server.url("/b"))).content == b"once"
        assert [s.line.split()[1] for s in server.seen] == ["/a", "/b"]  # each sent once


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_request_the_server_dropped_unread_on_a_kept_connection_is_sent_once_more(
    http: HTTP, method: str
):
    """The server closes a kept-alive connection just as the next request reaches it (its
    keep-alive ran out): no byte came back, so the request cannot have been processed. A
    method that may be repeated is sent once more on a new connection, whatever the retry
    policy says (1 run in 25 failed so with --retries 0); a POST is not. (Not http2 yet:
    pyreqwest gives no way to tell a kept-alive connection from a new one.)"""
    if "Http2" in type(http._transport).__name__:
        pytest.skip("pyreqwest does not say whether a connection was reused")

    async def answer(conn: Conn) -> None:
        first = conn.server.connections == 1
        if await conn.request() is None:
            return
        conn.write(response(b"first"))
        await conn.drain()
        if (seen := await conn.request()) is not None and first:
            conn.writer.close()  # the second request on this connection: dropped, unread
        elif seen is not None:
            conn.write(response(b"second"))

    async with RawServer(answer) as server:
        assert (await get(http, server.url("/a"))).content == b"first"
        if method == "GET":
            assert (await get(http, server.url("/b"))).content == b"first"  # a new connection
            assert [s.line.split()[1] for s in server.seen] == ["/a", "/b", "/b"]
        else:
            with pytest.raises(ConnectError):
                await get(http, server.url("/b"), method="POST", data="x")
            assert [s.line.split()[1] for s in server.seen] == ["/a", "/b"]


async def test_an_answer_nobody_asked_for_is_not_taken_for_the_next_one(http: HTTP):
    async def answer(conn: Conn) -> None:
        while (seen := await conn.request()) is not None:
            path = seen.line.split()[1].encode()
            conn.write(response(path) + response(b"unasked", "500 Oops"))  # two answers to one

    async with RawServer(answer) as server:
        assert (await get(http, server.url("/first"))).content == b"/first"
        second = await get(http, server.url("/second"))
        assert (second.status, second.content) == (200, b"/second")


async def test_interim_answers_are_skipped_and_head_and_204_have_no_body(http: HTTP):
    async def answer(conn: Conn) -> None:
        while (seen := await conn.request()) is not None:
            path = seen.line.split()[1]
            if path == "/early":
                conn.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
                conn.write(response(b"final"))
            elif path == "/head":
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
            else:
                conn.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    async with RawServer(answer) as server:
        assert (await get(http, server.url("/early"))).content == b"final"
        head = await get(http, server.url("/head"), method="HEAD")
        assert head.status == 200 and head.content == b""
        assert (await get(http, server.url("/none"))).status == 204
        assert (await get(http, server.url("/early"))).content == b"final"
        assert server.connections == 1  # the connection stayed good through all of them


async def test_uploads_are_sent_with_their_length_and_without_expect(http: HTTP):
    async with RawServer(lambda c: answer_each(c, response())) as server:
        await get(http, server.url("/j"), method="POST", json={"a": [1, 2]})
        await get(http, server.url("/d"), method="PUT", data="raw text é")
        await get(http, server.url("/e"), method="POST")
        j, d, e = server.seen
    assert orjson.loads(j.body) == {"a": [1, 2]}
    assert j.headers["content-type"] == "application/json"
    assert d.body == "raw text é".encode() and d.headers["content-length"] == str(len(d.body))
    assert e.body == b"" and e.headers.get("content-length", "0") == "0"
    assert not any("expect" in s.headers for s in server.seen)


async def test_the_request_line_and_host_are_as_the_url_says(http: HTTP):
    async with RawServer(lambda c: answer_each(c, response())) as server:
        await get(http, server.url("/a%20b/c?x=1&y=%C3%A9"))
        await get(http, server.url("/p"), params={"q": "a b"})
        await get(http, server.url("/frag#not-sent"))
        lines = [s.line for s in server.seen]
        hosts = {s.headers["host"] for s in server.seen}
    assert lines[0] == "GET /a%20b/c?x=1&y=%C3%A9 HTTP/1.1"
    assert lines[1] in ("GET /p?q=a+b HTTP/1.1", "GET /p?q=a%20b HTTP/1.1")
    assert lines[2] == "GET /frag HTTP/1.1"
    assert hosts == {f"127.0.0.1:{server.port}"}


async def test_a_name_is_resolved_and_each_of_its_addresses_tried(http: HTTP):
    async with RawServer(lambda c: answer_each(c, response(b"by name"))) as server:
        url = server.url("/").replace("127.0.0.1", "localhost")  # ::1 may come first: refused
        got = await asyncio.gather(*(get(http, url) for _ in range(5)))
        assert [g.content for g in got] == [b"by name"] * 5
        assert {s.headers["host"] for s in server.seen} == {f"localhost:{server.port}"}


async def test_ipv6_loopback_is_reached():
    try:
        socket.socket(socket.AF_INET6).close()
        probe = socket.create_server(("::1", 0), family=socket.AF_INET6)
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    for name in sorted(TRANSPORTS):
        config = make_config(transport=name)
        transport = open_transport(config)
        try:
            async with RawServer(lambda c: answer_each(c, response(b"six")), "::1") as server:
                got = await HTTP(config.http, transport).send(Request(server.url("/")), 5)
                assert got.content == b"six" and server.seen[0].headers["host"].startswith("[::1]")
        finally:
            await transport.aclose()


# -- hostile servers ------------------------------------------------------------------------

MALFORMED = {
    "status line": b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
    "not http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "header bytes": b"HTTP/1.1 200 OK\r\nX-Bad\x00Name: v\r\nContent-Length: 0\r\n\r\n",
    "header without colon": b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",
    "chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_answer_is_a_connection_error(http: HTTP, case: str):
    async def answer(conn: Conn) -> None:
        if await conn.request() is not None:
            conn.write(MALFORMED[case])
            await conn.drain()
            await conn.reader.read(1)  # hold the connection until the client drops it

    async with RawServer(answer) as server:
        with pytest.raises(ConnectError):
            await get(http, server.url("/"))
        assert len(server.seen) == 1


async def test_a_body_cut_short_and_a_reset_are_connection_errors(http: HTTP):
    async def answer(conn: Conn) -> None:
        seen = await conn.request()
        if seen is None:
            return
        if seen.line.split()[1] == "/short":
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
            await conn.drain()
            conn.writer.close()
        elif seen.line.split()[1] == "/reset":
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
            await conn.drain()
            conn.reset()
        else:  # half-closed: no more from the server, which still reads
            conn.writer.write_eof()
            await conn.reader.read(1)

    async with RawServer(answer) as server:
        for path in ("/short", "/reset", "/half"):
            with pytest.raises(ConnectError):
                await get(http, server.url(path))
        assert len(server.seen) == 3  # each sent once: nothing quietly sent again


async def test_slowloris_headers_end_with_the_timeout(http: HTTP):
    async def answer(conn: Conn) -> None:
        if await conn.request() is not None:
            conn.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(200):  # a header byte every 20 ms, for at most 4 s
                conn.write(b"X")
                await conn.drain()
                await asyncio.sleep(0.02)

    async with RawServer(answer) as server:
        with pytest.raises(RequestTimeout):
            await get(http, server.url("/"), timeout=0.5)


async def test_each_request_keeps_its_own_timeout_beside_longer_ones(http: HTTP):
    release = asyncio.Event()

    async def answer(conn: Conn) -> None:
        while (seen := await conn.request()) is not None:
            if seen.line.split()[1] == "/long":
                await release.wait()
            else:
                await asyncio.sleep(BOUND_SERVER)  # /short: never in time
            conn.write(response(b"late"))

    async with RawServer(answer) as server:
        long = asyncio.ensure_future(get(http, server.url("/long"), timeout=8))
        with pytest.raises(RequestTimeout):  # not held until the longer deadline
            await asyncio.wait_for(get(http, server.url("/short"), timeout=0.3), 4)
        release.set()
        assert (await long).content == b"late"


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A port whose listen queue is full: a connection attempt to it gets no answer at all."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filling = []
    for _ in range(4):
        client = socket.socket()
        client.setblocking(False)
        try:
            client.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        filling.append(client)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        for client in filling:
            client.close()
        server.close()


@pytest.mark.parametrize("name", sorted(TRANSPORTS))
async def test_the_connect_timeout_ends_a_connection_that_is_never_accepted(
    name: str, black_hole: str
):
    config = make_config(transport=name, timeout=60, connect_timeout=0.3)
    transport = open_transport(config)
    try:
        with pytest.raises(RequestTimeout):  # long before the attempt's 60 s
            await asyncio.wait_for(HTTP(config.http, transport).send(Request(black_hole), 60), 10)
    finally:
        await transport.aclose()


async def test_a_hundred_thousand_headers_are_refused_not_held(http: HTTP):
    async def answer(conn: Conn) -> None:
        if await conn.request() is not None:
            conn.write(b"HTTP/1.1 200 OK\r\n")
            for i in range(100):
                conn.write(b"".join(b"X-H%d: v\r\n" % (i * 1000 + j) for j in range(1000)))
                await conn.drain()
            conn.write(b"Content-Length: 0\r\n\r\n")

    async with RawServer(answer) as server:
        with pytest.raises(ConnectError):
            await get(http, server.url("/"))


async def test_an_endless_chunked_stream_stops_at_the_body_cap(http: HTTP):
    sent = 0

    async def answer(conn: Conn) -> None:
        nonlocal sent
        if await conn.request() is not None:
            conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
            while sent < 200 * MAX_BODY:  # bounded: 200 times the cap
                conn.write(piece)
                await conn.drain()
                sent += 65536

    async with RawServer(answer) as server:
        with pytest.raises(BodyTooLarge):
            await get(http, server.url("/"))
    assert sent < 50 * MAX_BODY  # the client stopped reading near the cap


async def test_a_gzip_bomb_stops_at_the_body_cap(http: HTTP):
    bomb = gzip.compress(b"\0" * (50 * MAX_BODY))

    async def answer(conn: Conn) -> None:
        if await conn.request() is not None:
            conn.write(response(bomb, "200 OK", "Content-Encoding: gzip"))

    async with RawServer(answer) as server:
        with pytest.raises(BodyTooLarge):
            await get(http, server.url("/"))


async def test_a_server_that_never_reads_an_upload_ends_with_the_timeout(http: HTTP):
    async def answer(conn: Conn) -> None:
        await asyncio.sleep(BOUND_SERVER)  # reads nothing; the client's timeout ends it

    async with RawServer(answer) as server:
        with pytest.raises(RequestTimeout):
            await get(http, server.url("/"), timeout=0.5, method="POST", data=b"u" * 8_000_000)


BOUND_SERVER = 5.0


async def test_a_redirect_loop_ends_after_max_redirects(http: HTTP):
    async def answer(conn: Conn) -> None:
        while (seen := await conn.request()) is not None:
            conn.write(response(b"", "302 Found", f"Location: {seen.line.split()[1]}"))

    async with RawServer(answer) as server:
        with pytest.raises(TooManyRedirects):
            await get(http, server.url("/again"))
        assert len(server.seen) == 6  # the first and the five --max-redirects allows


async def test_a_redirect_from_https_down_to_http_drops_the_user_headers(tmp_path):
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    async with RawServer(lambda c: answer_each(c, response(b"plain"))) as plain:

        async def answer(conn: Conn) -> None:
            while await conn.request() is not None:
                conn.write(response(b"", "301 Moved", f"Location: {plain.url('/down')}"))

        async with RawServer(answer, tls=server_tls) as secure:
            for name in sorted(TRANSPORTS):
                config = make_config(transport=name, cacert=str(ca_file))
                transport = open_transport(config)
                try:
                    got = await HTTP(config.http, transport).send(
                        Request(secure.url("/"), headers={"Authorization": "Bearer s3cret"}), 5
                    )
                finally:
                    await transport.aclose()
                assert got.content == b"plain" and got.redirects == 1
            assert all(s.headers.get("authorization") == "Bearer s3cret" for s in secure.seen)
            assert plain.seen and all("authorization" not in s.headers for s in plain.seen)


async def test_a_header_with_a_line_break_is_never_sent(http: HTTP):
    async with RawServer(lambda c: answer_each(c, response())) as server:
        with pytest.raises(InvalidRequest):
            await get(http, server.url("/"), headers={"X-A": "v\r\nX-Injected: 1"})
        assert not any("x-injected" in s.headers for s in server.seen)


async def test_a_field_sent_several_times_keeps_every_value(http: HTTP):
    """RFC 9110 section 5.3: several fields of one name are one list. A Link field of its
    own for rel="next" ended a chain early when only the first was kept."""
    from fanfetch._core._models import field_values, headers_record

    async def answer(conn: Conn) -> None:
        while await conn.request() is not None:
            conn.write(b"HTTP/1.1 200 OK\r\nLink: </first>; rel=\"first\"\r\n"
                       b"Link: </next>; rel=\"next\"\r\nSet-Cookie: a=1; Path=/\r\n"
                       b"Set-Cookie: b=2, c=3\r\nX-Many: one\r\nx-many: two\r\n"
                       b"Content-Length: 0\r\n\r\n")  # fmt: skip

    async with RawServer(answer) as server:
        headers = (await get(http, server.url("/"))).headers
    assert field_values(headers, "link") == ['</first>; rel="first"', '</next>; rel="next"']
    record = {k.lower(): v for k, v in headers_record(headers).items()}
    assert record["set-cookie"] == ["a=1; Path=/", "b=2, c=3"]
    assert record["x-many"] == "one, two"


async def test_headers_of_forty_kilobytes_are_accepted(http: HTTP):
    """Up to the 64 KiB every transport allows (--http2 stopped at about 16 KB)."""

    async def answer(conn: Conn) -> None:
        while await conn.request() is not None:
            fields = b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 500) for i in range(80))
            conn.write(b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nok")

    async with RawServer(answer) as server:
        response = await get(http, server.url("/"))
    assert response.content == b"ok" and len(response.headers.get("X-Big-79", "")) == 500
