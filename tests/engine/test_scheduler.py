"""The engine, above the socket: a MockTransport stands in for the network."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
from collections import Counter

import pytest

from fanfetch import (
    Config,
    Limits,
    MockTransport,
    Request,
    Response,
    Result,
    RetryPolicy,
    make_config,
)
from fanfetch._core._events import Finished, Retrying, RunEnded, RunStarted
from fanfetch._core._exceptions import ConnectError
from fanfetch._engine._scheduler import Engine
from fanfetch._io._input import coerce


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def config(concurrency: int = 10, retries: int = 3) -> Config:
    return Config(limits=Limits(concurrency=concurrency), retry=RetryPolicy(retries=retries))


async def collect(engine: Engine, items) -> list[Result]:
    results: list[Result] = []

    async def sink(result: Result) -> None:
        results.append(result)

    await engine.run(items, sink)
    return results


async def test_every_item_gives_exactly_one_result_and_invalid_ones_pass_through():
    transport = MockTransport(lambda r: Response(200, b"{}", content_type="application/json"))
    engine = Engine(config(), transport=transport)
    items = [coerce(f"http://127.0.0.1/{i}", seq=i) for i in range(50)] + [coerce("nope", seq=50)]
    results = await collect(engine, items)
    assert sorted(r.request.seq for r in results) == list(range(51))
    assert sum(r.ok for r in results) == 50 and transport.calls == 50


class Peak:
    """A transport handler that answers 200 after a turn of the loop, and counts the most
    requests it ever had in hand at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    async def __call__(self, request: Request) -> Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0)
        self.now -= 1
        return Response(200)


async def test_the_pool_never_runs_more_than_concurrency_at_once():
    handler = Peak()
    await collect(Engine(config(concurrency=4), transport=MockTransport(handler)), [
        coerce(f"http://127.0.0.1/{i}", seq=i) for i in range(100)
    ])  # fmt: skip
    assert handler.peak == 4


async def test_the_per_host_limit_counts_one_host_however_its_url_spells_it():
    handler = Peak()
    spellings = ["http://127.0.0.1/a", "http://127.0.0.1:80/b", "HTTP://127.0.0.1/c"]
    engine = Engine(
        Config(limits=Limits(concurrency=6, per_host=1)), transport=MockTransport(handler)
    )
    results = await collect(engine, [coerce(spellings[i % 3], seq=i) for i in range(30)])
    assert all(r.ok for r in results) and handler.peak == 1


async def test_retryable_failures_are_retried_until_success_and_attempts_counted():
    seen: Counter[str] = Counter()

    def handler(request: Request) -> Response:
        seen[request.url] += 1
        if request.url.endswith("flaky") and seen[request.url] < 3:
            return Response(503)
        if request.url.endswith("broken"):
            raise ConnectError("reset")
        return Response(200)

    events: list[object] = []
    engine = Engine(
        config(retries=3),
        transport=MockTransport(handler),
        listeners=[events.append],
        sleep=no_sleep,
    )
    results = {
        r.url.rsplit("/", 1)[1]: r
        for r in await collect(
            engine,
            [coerce("http://127.0.0.1/flaky", seq=0), coerce("http://127.0.0.1/broken", seq=1)],
        )
    }
    assert results["flaky"].ok and results["flaky"].attempts == 3
    assert results["broken"].attempts == 4 and results["broken"].error is not None
    assert results["broken"].error.type == "connection"
    kinds = Counter(type(e).__name__ for e in events)
    assert kinds == {"RunStarted": 1, "Retrying": 5, "Finished": 2, "RunEnded": 1}
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunEnded)
    assert all(isinstance(e, Retrying | Finished) for e in events[1:-1])


async def test_stop_takes_no_new_items_and_lets_those_in_flight_finish():
    gate = asyncio.Event()
    all_started = asyncio.Event()
    started = 0

    async def handler(request: Request) -> Response:
        nonlocal started
        started += 1
        if started == 3:
            all_started.set()
        await gate.wait()
        return Response(200)

    engine = Engine(config(concurrency=3), transport=MockTransport(handler))
    results: list[Result] = []

    async def sink(result: Result) -> None:
        results.append(result)

    async def items():
        for i in range(1000):
            yield coerce(f"http://127.0.0.1/{i}", seq=i)

    run = asyncio.ensure_future(engine.run(items(), sink))
    await all_started.wait()
    engine.stop(grace=5)
    gate.set()
    await run
    assert len(results) == 3 and engine.interrupted


async def test_a_run_stopped_before_it_starts_returns_at_once_with_no_results():
    transport = MockTransport(lambda r: Response(200))
    engine = Engine(config(), transport=transport)
    engine.stop(grace=0)
    results = await collect(engine, [coerce("http://127.0.0.1/1", seq=0)])
    assert results == [] and transport.calls == 0


async def test_a_running_engine_resized_to_more_workers_runs_more_at_once():
    release = asyncio.Event()
    reached: dict[int, asyncio.Event] = {2: asyncio.Event(), 5: asyncio.Event()}
    now = 0
    peak = 0

    async def handler(request: Request) -> Response:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        if now in reached:
            reached[now].set()
        await release.wait()
        now -= 1
        return Response(200)

    engine = Engine(config(concurrency=2), transport=MockTransport(handler))
    items = [coerce(f"http://127.0.0.1/{i}", seq=i) for i in range(40)]
    running = asyncio.ensure_future(collect(engine, items))
    await asyncio.wait_for(reached[2].wait(), 5)
    engine.resize(config(concurrency=5))  # a sibling shard finished: this one's share grew
    await asyncio.wait_for(reached[5].wait(), 5)
    release.set()
    results = await asyncio.wait_for(running, 5)
    assert peak == 5
    assert sorted(r.request.seq for r in results) == list(range(40))


async def test_a_running_engine_resized_to_fewer_workers_lets_its_requests_finish_then_runs_fewer():
    release = asyncio.Event()
    five = asyncio.Event()
    now = 0
    after: list[int] = []  # how many were in flight as each request started, after the resize

    async def handler(request: Request) -> Response:
        nonlocal now
        now += 1
        if release.is_set():
            after.append(now)
        if now == 5:
            five.set()
        if not release.is_set():
            await release.wait()
        await asyncio.sleep(0)
        now -= 1
        return Response(200)

    engine = Engine(config(concurrency=5), transport=MockTransport(handler))
    items = [coerce(f"http://127.0.0.1/{i}", seq=i) for i in range(60)]
    running = asyncio.ensure_future(collect(engine, items))
    await asyncio.wait_for(five.wait(), 5)
    engine.resize(config(concurrency=2))  # a node joined: this shard's share shrank
    assert not engine.fits()  # five in flight, none taken away mid-request
    release.set()
    results = await asyncio.wait_for(running, 5)
    assert sorted(r.request.seq for r in results) == list(range(60))  # nothing lost
    assert max(after[-40:]) <= 2  # once the five had finished, two at a time
    assert engine.fits()


async def test_resizing_an_engine_that_is_not_running_changes_its_limits_and_starts_nothing():
    engine = Engine(config(concurrency=2), transport=MockTransport(lambda r: Response(200)))
    results = await collect(engine, [coerce("http://127.0.0.1/1", seq=1)])
    engine.resize(config(concurrency=8))
    assert len(results) == 1 and engine.config.limits.concurrency == 8
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no worker was made


async def test_a_run_through_the_library_leaves_the_garbage_collector_alone():
    before = gc.get_threshold()
    during: list[tuple[int, int, int]] = []

    async def sink(result: Result) -> None:
        during.append(gc.get_threshold())

    engine = Engine(config(), transport=MockTransport(lambda r: Response(200)))
    await engine.run([coerce(f"http://127.0.0.1/{i}", seq=i) for i in range(20)], sink)
    assert set(during) == {before} and gc.get_threshold() == before


def test_fanfetch_s_own_processes_collect_young_garbage_rarely_unless_told_otherwise():
    from fanfetch._core._tuning import YOUNG_THRESHOLD, collect_young_rarely

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        collect_young_rarely()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        gc.set_threshold(0, 10, 10)  # collection off: left off
        collect_young_rarely()
        assert gc.get_threshold() == (0, 10, 10)
        gc.set_threshold(90_000, 10, 10)  # already higher: left so
        collect_young_rarely()
        assert gc.get_threshold() == (90_000, 10, 10)
    finally:
        gc.set_threshold(*before)


async def test_the_hot_path_leaves_no_reference_cycles_for_the_collector(tmp_path):
    from fanfetch._io._output import RecordWriter
    from fanfetch._observe._summary import Stats

    body = b'{"id": 1, "tags": ["a"]}\n'
    transport = MockTransport(lambda r: Response(200, body, content_type="application/json"))
    fd = os.open(tmp_path / "out.jsonl", os.O_WRONLY | os.O_CREAT)
    writer = RecordWriter(fd)
    engine = Engine(config(concurrency=50), transport=transport, listeners=[Stats()])
    items = [coerce(f"http://127.0.0.1/{i}", seq=i) for i in range(2_000)]
    gc.collect()
    gc.disable()
    try:
        await engine.run(items, writer.put)
        found = gc.collect()
    finally:
        gc.enable()
        writer.close()
        os.close(fd)
    assert found < 200  # what the loop itself leaves; a cycle per request would be 2,000+


async def test_the_pool_never_starts_more_workers_than_the_requests_can_use():
    tasks_seen = 0

    def handler(request: Request) -> Response:
        nonlocal tasks_seen
        tasks_seen = max(tasks_seen, len(asyncio.all_tasks()))
        return Response(200)

    engine = Engine(config(concurrency=100_000_000), transport=MockTransport(handler))
    items = [coerce(f"http://127.0.0.1/{i}", seq=i) for i in range(2)]
    results = await collect(engine, items)
    assert len(results) == 2
    assert tasks_seen <= 4  # this test, the feeder and a worker for each of the two requests


class FakeClock:
    """Time that moves only when the engine sleeps (a rate's wait, a retry's backoff)."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_started_at_is_the_first_send_and_waits_for_a_rate_before_it_are_not_elapsed():
    from fanfetch import Rate
    from fanfetch._observe._summary import Stats

    clock, stats = FakeClock(), Stats()
    engine = Engine(
        Config(limits=Limits(concurrency=1, rate=Rate(count=2.0))),
        transport=MockTransport(lambda request: Response(200)),
        listeners=[stats], clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    results = await collect(engine, [coerce(f"http://127.0.0.1/{i}", seq=i) for i in range(5)])
    starts = sorted(r.started_at for r in results if r.started_at is not None)
    assert len(starts) == 5
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([0.5] * 4, abs=0.006)  # GCRA may wake a start 5 ms early
    assert [r.elapsed_ms for r in results] == [0.0] * 5  # a 2/s rate's waits are before the send
    assert stats.latency.quantile(0.5) == 0.0


async def test_elapsed_covers_every_attempt_and_backoff_while_latency_counts_each_attempt():
    from fanfetch._observe._summary import Stats

    clock, stats, seen = FakeClock(), Stats(), Counter[str]()

    def handler(request: Request) -> Response:
        seen[request.url] += 1
        clock.now += 0.010  # each attempt takes 10 ms
        return Response(500 if seen[request.url] == 1 else 200)

    engine = Engine(
        Config(limits=Limits(concurrency=1),
               retry=RetryPolicy(retries=1, retry_on=frozenset({500}), backoff_base=0.001)),
        transport=MockTransport(handler), listeners=[stats], clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    (result,) = await collect(engine, [coerce("http://127.0.0.1/flaky", seq=0)])
    assert result.ok and result.attempts == 2
    assert 20.0 <= result.elapsed_ms <= 21.0  # two attempts of 10 ms, the backoff (<1 ms) between
    assert stats.latency.count == 2 and (stats.latency.quantile(0.99) or 0.0) < 11.0  # per attempt


def pages(request: Request) -> Response:
    """Chains of pages: /link/N/... follows Link headers for N pages; /page/N/... answers
    ?p=1..N and then a 404, past the end, which is no page of its own."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(request.url)
    kind, n = parts.path.split("/")[1], int(parts.path.split("/")[2])
    query = {**parse_qs(parts.query), **{k: [str(v)] for k, v in (request.params or {}).items()}}
    k = int(query.get("page", query.get("p", ["1"]))[0])
    if kind == "page" and k > n:
        return Response(404)
    headers = {"Content-Type": "application/json"}
    if kind == "link" and k < n:
        headers["Link"] = f'<http://127.0.0.1{parts.path}?page={k + 1}>; rel="next"'
    return Response(200, b'{"items": [1]}', headers=headers, content_type="application/json")


@pytest.mark.parametrize("mode", ["link", "page:p"])
async def test_progress_counts_requests_against_a_total_that_grows_as_pages_are_found(mode: str):
    from fanfetch._observe._progress import ProgressBar
    from fanfetch._observe._summary import Stats

    kind = mode.split(":")[0]
    urls = [f"http://127.0.0.1/{kind}/{n}/c{n}" for n in (1, 3, 5)]
    stats = Stats()
    stats.total = len(urls)  # what the command line counts: the lines read
    seen: list[tuple[int, int | None]] = []
    engine = Engine(
        make_config(concurrency=2, paginate=mode, items="items"),
        transport=MockTransport(pages),
        listeners=[stats, lambda event: seen.append((stats.done, stats.total))],
    )  # fmt: skip
    results = await collect(engine, [coerce(url, seq=i) for i, url in enumerate(urls)])
    assert len(results) == 9  # 1 + 3 + 5 pages (page: mode's 404s past the end are no pages)
    assert all(total is not None and done <= total for done, total in seen)  # never over 100%
    assert (stats.done, stats.total, stats.chains_done, stats.chains) == (9, 9, 3, 3)
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    bar = ProgressBar(stats, in_flight=lambda: 0, console=Console(file=out, width=160))
    bar.start()
    bar.refresh()
    bar.stop()
    assert "9/9" in out.getvalue() and "chains 3/3" in out.getvalue()
