"""Redirects: followed with the method rules of browsers and curl -L, counted in the record,
ended (not retried) when they loop, and never carrying the user's headers to another origin."""

from __future__ import annotations

from urllib.parse import quote

import orjson

from tests.conftest import run_cli
from tests.servers import LoopbackAPI


async def test_a_redirect_loop_is_too_many_redirects_and_is_not_retried(api: LoopbackAPI):
    result = await run_cli("run", "-", "-q", stdin=(api.url("/loop") + "\n").encode())
    assert result.status == 1
    [record] = result.records
    assert record["error"]["type"] == "too_many_redirects"
    assert record["attempts"] == 1 and record["status"] == 302
    assert api.log.hits["/loop"] == 11  # the first request and the 10 redirects followed


async def test_a_record_says_where_the_body_came_from_and_how_many_redirects_led_there(
    api: LoopbackAPI,
):
    lines = f"{api.url('/redirect')}\n{api.url('/ok/plain')}\n".encode()
    result = await run_cli("run", "-", "-q", stdin=lines)
    assert result.status == 0, result.stderr
    records = {r["id"]: r for r in result.records}
    assert records[1]["url"] == api.url("/redirect")
    assert records[1]["redirects"] == 1 and records[1]["final_url"] == api.url("/ok/redirected")
    assert records[1]["body"] == {"id": "redirected", "method": "GET"}
    assert "redirects" not in records[2] and "final_url" not in records[2]


async def test_303_turns_a_post_into_a_get_and_307_repeats_it_with_its_body(api: LoopbackAPI):
    lines = b"".join(
        orjson.dumps(
            {"id": code, "method": "POST", "url": api.url(f"/go/{code}"), "json": {"a": 1}}
        )
        + b"\n"
        for code in (301, 302, 303, 307, 308)
    )
    result = await run_cli("run", "-", "-q", stdin=lines)
    assert result.status == 0, result.stderr
    echoed = {r["id"]: r["body"] for r in result.records}
    for code in (301, 302, 303):
        assert echoed[code]["method"] == "GET" and echoed[code]["body"] == "", code
        assert "Content-Type" not in echoed[code]["headers"], code
    for code in (307, 308):
        assert echoed[code]["method"] == "POST" and orjson.loads(echoed[code]["body"]) == {"a": 1}


async def test_every_header_the_user_gave_stays_with_its_origin(two_host_api: LoopbackAPI):
    api = two_host_api
    away = api.url("/redirect-to/127.0.0.2")
    home = api.url("/go/302?to=" + quote("/echo"))
    lines = b"".join(
        orjson.dumps({"id": rid, "url": url, "headers": {"X-Request-Key": "req-secret"}}) + b"\n"
        for rid, url in (("away", away), ("home", home))
    )
    result = await run_cli(
        "run", "-", "-q", "--header", "X-Api-Key: flag-secret", "--header", "Authorization: B x",
        stdin=lines,
    )  # fmt: skip
    assert result.status == 0, result.stderr
    records = {r["id"]: r for r in result.records}
    away_headers = records["away"]["body"]["headers"]
    home_headers = records["home"]["body"]["headers"]
    for name in ("X-Api-Key", "X-Request-Key", "Authorization"):
        assert name not in away_headers, name
        assert name in home_headers, name
    assert away_headers["User-Agent"].startswith("fanfetch/")  # fanfetch's own still go


async def test_a_redirect_to_another_port_of_the_same_host_is_another_origin(
    api: LoopbackAPI,
):
    second = await LoopbackAPI().start()
    try:
        away = api.url("/go/307?to=" + quote(second.url("/echo")))
        result = await run_cli(
            "run", "-", "-q", "--header", "X-Api-Key: k", stdin=(away + "\n").encode()
        )
        assert result.status == 0, result.stderr
        [record] = result.records
        assert record["final_url"] == second.url("/echo")
        assert "X-Api-Key" not in record["body"]["headers"]
    finally:
        await second.stop()


async def test_a_json_body_sent_on_to_another_origin_keeps_its_type_but_not_the_user_headers(
    two_host_api: LoopbackAPI,
):
    api = two_host_api
    away = api.url("/go/307?to=" + quote(api.url("/echo", host="127.0.0.2")))
    line = orjson.dumps(
        {"url": away, "method": "POST", "json": {"a": 1}, "headers": {"X-Key": "secret"}}
    )
    result = await run_cli("run", "-", "-q", stdin=line + b"\n")
    assert result.status == 0, result.stderr
    echoed = result.records[0]["body"]
    assert echoed["method"] == "POST" and orjson.loads(echoed["body"]) == {"a": 1}
    assert echoed["headers"]["Content-Type"] == "application/json"
    assert "X-Key" not in echoed["headers"]
