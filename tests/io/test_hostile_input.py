"""Input and bodies built to break a run: every request still gets its one record."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.conftest import read_records, run_cli
from tests.servers import serve_routes

DEEP = b"[" * 300 + b"]" * 300  # orjson reads this (depth <= 1024) but cannot write it (254)


@pytest.fixture
async def deep_server() -> AsyncIterator[str]:
    async def deep(request: web.Request) -> web.Response:
        return web.Response(body=DEEP, content_type="application/json")

    async def deep_inside(request: web.Request) -> web.Response:  # a newline: parsed, not copied
        return web.Response(body=b'{"a": ' + DEEP + b',\n "b": 1}', content_type="application/json")

    async with serve_routes({"/deep/{id}": deep, "/deep-inside/{id}": deep_inside}) as base:
        yield base


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_json_nested_too_deep_to_write_loses_no_record(
    deep_server: str, tmp_path: Path, workers: str
):
    lines = []
    for i in range(1, 41):
        if i == 7:
            lines.append(b'{"url": "' + deep_server.encode() + b'/deep/7", "meta": ' + DEEP + b"}")
        else:
            kind = "deep" if i % 2 else "deep-inside"
            lines.append(f"{deep_server}/{kind}/{i}".encode())
    src = tmp_path / "in.txt"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--workers", workers)
    assert result.status == 1, result.stderr  # line 7 is invalid: exit 1, not a crash
    assert "Traceback" not in result.stderr
    records = {r["id"]: r for r in read_records(out)}
    assert sorted(records) == list(range(1, 41))
    assert records[7]["error"]["type"] == "invalid_request"
    assert "deeper than 254" in records[7]["error"]["message"]
    assert records[1]["ok"] and isinstance(records[1]["body"], str)  # too deep: its text
    assert records[1]["body"] == DEEP.decode()
    assert records[2]["ok"] and isinstance(records[2]["body"], str)  # kept as its text
    assert records[2]["body"].startswith('{"a": [[[')
    again = await run_cli("run", str(src), "-o", str(out), "-q", "--resume")
    assert again.status == 0, again.stderr  # nothing left to do, and no crash on line 7
    assert len(read_records(out)) == 40


@pytest.mark.slow  # 16 runs of three commands each
@pytest.mark.parametrize("depth", [253, 254, 255, 1024])
@pytest.mark.parametrize("how", ["jsonl", "select", "schema", "csv", "parquet"])
async def test_a_body_nested_around_every_depth_limit_is_a_record_that_can_be_read_back(
    tmp_path: Path, depth: int, how: str
):
    """orjson writes 254 levels and reads 1024, the record adds one, and a recursive schema
    meets Python's stack: at each limit the run ends with its record and resumes cleanly."""
    body = b"[" * depth + b"]" * depth

    async def deep(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async with serve_routes({"/deep": deep}) as base:
        src = tmp_path / "in.txt"
        src.write_text(f"{base}/deep\n")
        schema = tmp_path / "schema.json"
        schema.write_text('{"$defs": {"a": {"type": "array", "items": {"$ref": "#/$defs/a"}}},'
                          ' "$ref": "#/$defs/a"}')  # fmt: skip
        out = tmp_path / ("out." + ("jsonl" if how in ("jsonl", "select", "schema") else how))
        flags = {"select": ["--select", "@"], "schema": ["--schema", str(schema)]}.get(how, [])
        run = ["run", str(src), "-o", str(out), "-q", "--retries", "0", *flags]
        result = await run_cli(*run)
        assert "Traceback" not in result.stderr, result.stderr
        again = await run_cli(*run, "--resume")
        assert again.status == 0 and "Traceback" not in again.stderr, again.stderr
        back = tmp_path / "back.jsonl"
        exported = await run_cli("export", str(out), "-o", str(back))
        assert exported.status == 0, exported.stderr
        [record] = read_records(back)
        if record["ok"]:  # the body as it came, parsed, or as its text when too deep
            assert record["body"] == (orjson.loads(body) if depth <= 253 else body.decode())
        else:
            assert "too deep" in record["error"]["message"]


async def test_the_python_api_hands_back_a_too_deep_body_and_can_write_its_record(
    deep_server: str,
):
    import fanfetch
    from fanfetch._io._records import encode_result

    async with fanfetch.Fetcher() as f:
        result = await f.fetch(f"{deep_server}/deep-inside/1")
    assert result.ok
    line = encode_result(result)
    assert orjson.loads(line)["body"].startswith('{"a": [[[')


def _peak_rss_mb(*args: str) -> tuple[int, float]:
    """Run fanfetch's command line; its exit status and peak memory (MB)."""
    import subprocess
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".mb") as peak:
        done = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).parent.parent / "peak_memory.py"),
                peak.name,
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        return done.returncode, float(peak.read())


@pytest.mark.slow
async def test_an_overlong_input_line_is_refused_without_being_held(tmp_path: Path):
    import asyncio

    src = tmp_path / "in.txt"
    with src.open("wb") as f:  # written in pieces: this test process never holds it
        f.write(b'{"url": "http://127.0.0.1:9/')
        for _ in range(300):
            f.write(b"a" * 1_000_000)
        f.write(b'"}\n{bad\n')
    out = tmp_path / "out.jsonl"
    status, peak = await asyncio.to_thread(_peak_rss_mb, "run", str(src), "-o", str(out), "-q")
    assert status == 1
    records = {r["id"]: r for r in read_records(out)}
    assert "is 300,000,031 bytes, over 1,048,576" in records[1]["error"]["message"]
    assert records[2]["error"]["type"] == "invalid_request"  # the line after it is read too
    assert peak < 150, f"peak {peak:.0f} MB for a 300 MB line"


@pytest.mark.slow
async def test_a_hundred_gzip_bombs_at_once_cost_no_more_than_a_few_bodies(tmp_path: Path):
    import asyncio
    import gzip

    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 KB that expands to 50 MB

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb,
            headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
        )

    app = web.Application()
    app.router.add_get("/bomb/{id}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        src = tmp_path / "in.txt"
        src.write_text("".join(f"{base}/bomb/{i}\n" for i in range(300)))
        out = tmp_path / "out.jsonl"
        status, peak = await asyncio.to_thread(
            _peak_rss_mb, "run", str(src), "-o", str(out), "-q", "-c", "100"
        )
    finally:
        await runner.cleanup()
    records = read_records(out)
    assert status == 1 and len(records) == 300
    assert all(r["error"]["type"] == "too_large" and r["status"] == 200 for r in records)
    # 100 bodies at the 10 MiB cap would be 1,000 MB (a test run measured 3,400 MB before)
    assert peak < 400, f"peak {peak:.0f} MB"


PAYLOADS = (b"\x1bc", b"\x1b]0;pwned\x07", "\u009b2J".encode())  # a reset, a title, a C1 CSI


async def _control_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Server text full of terminal commands: in a reason phrase, a Location, a Link and a
    body (the run follows pages and redirects, so each of them reaches a record)."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        writer.close()
        return
    path, junk = head.split(b" ")[1], b"".join(PAYLOADS)
    if path.startswith(b"/reason"):
        answer = b"HTTP/1.1 500 Bad " + junk + b"\r\nContent-Length: 0\r\n\r\n"
    elif path.startswith(b"/loc"):
        answer = b"HTTP/1.1 302 Found\r\nLocation: /x" + junk + b"\r\nContent-Length: 0\r\n\r\n"
    else:
        body = orjson.dumps({"text": junk.decode()})
        answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLink: </" + junk +
                  b'>; rel="next"\r\nContent-Length: ' + str(len(body)).encode() + b"\r\n\r\n" +
                  body)  # fmt: skip
    writer.write(answer)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


@pytest.mark.parametrize("view", ["--dashboard", "--progress", "-q"])
async def test_no_server_text_reaches_the_terminal_as_a_command(tmp_path: Path, view: str):
    """The run on a real terminal (a pty): records on stdout, the live view and messages on
    stderr; the server's control characters show escaped, never as the bytes themselves."""
    import os
    import pty

    server = await asyncio.start_server(_control_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    src = tmp_path / "in.txt"
    src.write_text("".join(f"http://127.0.0.1:{port}/{p}/{i}\n" for p in ("reason", "loc", "body")
                           for i in range(3)))  # fmt: skip
    controller, terminal = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fanfetch", "run", str(src), view, "--paginate", "link",
            "--retries", "0", stdin=asyncio.subprocess.DEVNULL, stdout=terminal,
            stderr=terminal,
        )  # fmt: skip
        os.close(terminal)
        seen = bytearray()
        loop = asyncio.get_running_loop()
        while True:  # read the terminal until the run ends (the pty then reads EIO)
            try:
                chunk = await asyncio.wait_for(loop.run_in_executor(None, os.read, controller,
                                                                    65536), 60)  # fmt: skip
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        assert await asyncio.wait_for(proc.wait(), 60) == 1
    finally:
        os.close(controller)
        server.close()
        await server.wait_closed()
    assert b'"type":"http_status"' in seen and b"Bad " in seen  # the records were drawn
    for payload in PAYLOADS:
        assert payload not in seen, payload


def test_what_is_drawn_on_a_terminal_shows_control_characters_escaped():
    from fanfetch._core._types import printable

    assert printable("host\x1bc\u009b2J\x07\x7f\tok\n") == "host\\x1bc\\x9b2J\\x07\\x7f\tok\n"
    assert printable("plain text, é and ✓") == "plain text, é and ✓"
