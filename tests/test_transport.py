"""The aiohttp transport against real loopback servers: errors mapped, limits honoured."""

from __future__ import annotations

import aiohttp
import pytest

from fanfetch import Config, Request
from fanfetch._exceptions import (
    BodyTooLarge,
    ConnectError,
    RequestTimeout,
    map_transport_error,
)
from fanfetch._transports import AiohttpTransport
from tests.servers import DroppingServer, LoopbackAPI


@pytest.fixture
async def transport():
    t = AiohttpTransport(Config(max_body=1000))
    try:
        yield t
    finally:
        await t.aclose()


async def test_the_total_timeout_surfaces_as_our_timeout(api: LoopbackAPI, transport):
    with pytest.raises(RequestTimeout):
        await transport.send(Request(api.url("/hang/1")), 0.1)


def test_both_kinds_of_aiohttp_timeout_map_to_timeout():
    assert map_transport_error(TimeoutError()).type == "timeout"
    assert map_transport_error(aiohttp.ServerTimeoutError()).type == "timeout"
    assert map_transport_error(aiohttp.ClientConnectionError("x")).type == "connection"


async def test_a_body_over_max_body_ends_with_too_large_without_reading_it(api, transport):
    with pytest.raises(BodyTooLarge):
        await transport.send(Request(api.url("/big/5000")), 5)
    response = await transport.send(Request(api.url("/big/1000")), 5)
    assert len(response.content) == 1000


async def test_a_refused_connection_is_a_connection_error(transport, dropping: DroppingServer):
    await dropping.stop()
    with pytest.raises(ConnectError):
        await transport.send(Request(dropping.url("/")), 5)


async def test_aiohttp_does_not_quietly_resend_on_a_dropped_kept_alive_connection(
    dropping: DroppingServer, transport
):
    with pytest.raises(ConnectError):
        await transport.send(Request(dropping.url("/")), 5)
    assert dropping.connections == 1  # one attempt, as the record will say


async def test_params_headers_and_data_are_sent(api: LoopbackAPI, transport):
    request = Request(
        api.url("/echo"),
        method="POST",
        params={"q": "a b", "n": 2},
        headers={"X-A": "1"},
        data="raw",
    )
    response = await transport.send(request, 5)
    import orjson

    echoed = orjson.loads(response.content)
    assert echoed["query"] == {"q": "a b", "n": "2"}
    assert echoed["headers"]["X-A"] == "1" and echoed["body"] == "raw"
    assert echoed["headers"]["User-Agent"].startswith("fanfetch/")
