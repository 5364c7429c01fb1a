"""The Python API: async stream and Fetcher, and the blocking run that works inside a loop."""

from __future__ import annotations

import asyncio

import pytest

import fanfetch
from fanfetch import Request, Result
from tests.servers import LoopbackAPI


async def test_stream_yields_one_result_per_request_of_any_accepted_shape(api: LoopbackAPI):
    requests: list[fanfetch.RequestLike] = [
        api.url("/ok/1"),
        {"url": api.url("/ok/2"), "id": "two"},
        Request(api.url("/ok/3"), id="three"),
        {"method": "GET"},
    ]
    results = [r async for r in fanfetch.stream(requests, concurrency=2)]
    assert sorted(str(r.id) for r in results) == ["1", "4", "three", "two"]
    by_id = {r.id: r for r in results}
    assert by_id["two"].json() == {"id": "2", "method": "GET"}
    assert by_id[4].error is not None and by_id[4].error.type == "invalid_request"


async def test_stream_reads_async_iterables_lazily_with_backpressure(api: LoopbackAPI):
    pulled = 0

    async def requests():
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield api.url(f"/ok/{i}")

    got = 0
    async with fanfetch.Fetcher(concurrency=5) as fetcher:
        stream = fetcher.stream(requests())
        async for _ in stream:
            got += 1
            if got == 20:
                break
        await stream.aclose()
    assert pulled < 100  # never read far ahead of what was consumed


async def test_fetcher_fetch_makes_one_call_through_limits_and_retries(api: LoopbackAPI):
    api.script["f"] = [503, 200]
    async with fanfetch.Fetcher(retries=2, backoff_base=0.0) as fetcher:
        result = await fetcher.fetch(api.url("/scripted/f"))
    assert result.ok and result.attempts == 2


async def test_ordered_stream_gives_input_order(api: LoopbackAPI):
    urls = [api.url(f"/hold/{i}") for i in range(30)]
    results = [r async for r in fanfetch.stream(urls, concurrency=8, ordered=True)]
    assert [r.id for r in results] == list(range(1, 31))


async def test_run_works_inside_a_running_loop_as_in_jupyter(api_in_thread: str):
    # the server runs on its own thread: this loop is blocked while run() waits, as in a notebook
    assert asyncio.get_running_loop().is_running()
    results = fanfetch.run([api_in_thread + f"/ok/{i}" for i in range(25)], concurrency=5)
    assert len(results) == 25 and all(r.ok for r in results)


def test_iter_results_can_be_left_early_and_cleans_up(api_in_thread: str):
    seen: list[Result] = []
    for result in fanfetch.iter_results(
        (api_in_thread + f"/ok/{i}" for i in range(5000)), concurrency=4
    ):
        seen.append(result)
        if len(seen) == 10:
            break
    assert len(seen) == 10


def test_run_from_plain_sync_code_and_on_result_sees_each(api_in_thread: str):
    calls: list[object] = []
    results = fanfetch.run([api_in_thread + f"/ok/{i}" for i in range(10)], on_result=calls.append)
    assert len(results) == 10 and len(calls) == 10


def test_options_are_validated_with_the_parameter_named():
    with pytest.raises(fanfetch.ConfigError, match="concurrency"):
        fanfetch.run([], concurrency=0)


def _reverse_order_transport(n: int) -> fanfetch.MockTransport:
    """Answers the last request first, then each one before it in turn."""
    events: dict[int, asyncio.Event] = {}

    async def handler(request: fanfetch.Request) -> fanfetch.Response:
        i = int(request.url.rsplit("/", 1)[1])
        if i < n - 1:
            await events.setdefault(i, asyncio.Event()).wait()
        if i > 0:
            events.setdefault(i - 1, asyncio.Event()).set()
        return fanfetch.Response(200, b'{"i": %d}' % i, content_type="application/json")

    return fanfetch.MockTransport(handler)


def test_run_returns_results_in_input_order_though_they_finish_in_reverse():
    n = 20
    urls = [f"http://127.0.0.1/items/{i}" for i in range(n)]
    finished: list[int] = []
    results = fanfetch.run(
        urls,
        transport=_reverse_order_transport(n),
        on_result=lambda r: finished.append(r.json()["i"]),
    )
    assert finished == list(reversed(range(n)))  # they did finish in reverse
    assert [r.json()["i"] for r in results] == list(range(n))


async def test_the_same_request_object_twice_gives_two_results_and_is_not_changed():
    request = fanfetch.Request("http://127.0.0.1/items/1")
    transport = fanfetch.MockTransport(lambda r: fanfetch.Response(200))
    results = [
        r async for r in fanfetch.stream([request, request], ordered=True, transport=transport)
    ]
    assert [r.id for r in results] == [1, 2] and all(r.ok for r in results)
    assert request.id is None and request.seq == 0 and request.target is None


def test_a_misspelt_option_is_a_config_error_that_names_the_nearest_one():
    with pytest.raises(fanfetch.ConfigError, match="did you mean concurrency"):
        fanfetch.run(["http://127.0.0.1/x"], concurency=5)  # type: ignore[call-arg]
    with pytest.raises(fanfetch.ConfigError, match=r"invalid timeout=-1"):
        fanfetch.run(["http://127.0.0.1/x"], timeout=-1)
    with pytest.raises(fanfetch.ConfigError, match=r"invalid shards=2.*cluster="):
        fanfetch.run(["http://127.0.0.1/x"], shards=2)
    with pytest.raises(fanfetch.ConfigError, match=r"invalid resume=True.*give output="):
        fanfetch.run(["http://127.0.0.1/x"], resume=True)


async def test_a_reorder_window_that_ends_holding_results_raises():
    from fanfetch._io._output import OrderedSink

    written: list[int] = []

    async def sink(result: fanfetch.Result) -> None:
        written.append(result.request.seq)

    window = OrderedSink(sink, window=8)
    request = fanfetch.Request("http://127.0.0.1/x", seq=3)  # 0, 1 and 2 never come
    await window.put(fanfetch.Result(request, status=200))
    with pytest.raises(RuntimeError, match="ended holding 1"):
        window.check_empty()
