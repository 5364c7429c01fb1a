"""Input and bodies built to break a run: every request still gets its one record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.conftest import read_records, run_cli

DEEP = b"[" * 300 + b"]" * 300  # orjson reads this (depth <= 1024) but cannot write it (254)


@pytest.fixture
async def deep_server() -> AsyncIterator[str]:
    async def deep(request: web.Request) -> web.Response:
        return web.Response(body=DEEP, content_type="application/json")

    async def deep_inside(request: web.Request) -> web.Response:  # a newline: parsed, not copied
        return web.Response(body=b'{"a": ' + DEEP + b',\n "b": 1}', content_type="application/json")

    app = web.Application()
    app.router.add_get("/deep/{id}", deep)
    app.router.add_get("/deep-inside/{id}", deep_inside)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


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
    assert records[1]["ok"] and isinstance(records[1]["body"], list)  # copied as it came
    assert records[2]["ok"] and isinstance(records[2]["body"], str)  # kept as its text
    assert records[2]["body"].startswith('{"a": [[[')
    again = await run_cli("run", str(src), "-o", str(out), "-q", "--resume")
    assert again.status == 0, again.stderr  # nothing left to do, and no crash on line 7
    assert len(read_records(out)) == 40


async def test_the_python_api_hands_back_a_too_deep_body_and_can_write_its_record(
    deep_server: str,
):
    import fanfetch
    from fanfetch._output import encode_result

    async with fanfetch.Fetcher() as f:
        result = await f.fetch(f"{deep_server}/deep-inside/1")
    assert result.ok
    line = encode_result(result)
    assert orjson.loads(line)["body"].startswith('{"a": [[[')
