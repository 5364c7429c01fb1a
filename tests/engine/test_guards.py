"""Guards: ``--limit``, ``--deadline`` and ``--stop-if`` stop a run as a first Ctrl-C does
(in flight finish, output whole, exit status 3, ``--resume`` does the rest exactly once);
``--fail-if`` sets exit status 3 at the end; a condition is a small language, checked
before anything runs."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

import fanfetch
from fanfetch._core._conditions import Condition
from tests.conftest import read_records, run_cli
from tests.servers import LoopbackAPI


def _input(api: LoopbackAPI, tmp_path: Path, paths: list[str]) -> Path:
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(path) + "\n" for path in paths))
    return src


async def test_limit_stops_after_n_requests_and_resume_does_the_rest_exactly_once(
    api: LoopbackAPI, tmp_path: Path
):
    src = _input(api, tmp_path, [f"/ok/{i}" for i in range(1, 21)])
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    first = await run_cli("run", str(src), "-o", str(out), "-c", "3", "--limit", "7",
                          "--summary-json", str(summary))  # fmt: skip
    assert first.status == 3, first.stderr
    assert sum(api.log.hits.values()) == 7  # what the server saw
    assert len(read_records(out)) == 7
    assert json.loads(summary.read_text())["stopped_by"] == "limit 7"
    assert "stopped    by limit 7" in first.stderr
    again = await run_cli("run", str(src), "-o", str(out), "-q", "-c", "3", "--resume")
    assert again.status == 0, again.stderr
    ids = Counter(r["id"] for r in read_records(out))
    assert sorted(ids) == list(range(1, 21)) and max(ids.values()) == 1
    assert sum(api.log.hits.values()) == 20  # nothing asked twice


async def test_limit_counts_pages_and_a_resumed_chain_goes_on_from_its_last_page(
    api: LoopbackAPI, tmp_path: Path
):
    src = _input(api, tmp_path, [f"/pages/link/5/c{i}" for i in range(2)])  # 2 chains x 5
    out = tmp_path / "out.jsonl"
    first = await run_cli("run", str(src), "-o", str(out), "-q", "-c", "1", "--paginate",
                          "link", "--limit", "3")  # fmt: skip
    assert first.status == 3, first.stderr
    assert len(read_records(out)) == 3
    again = await run_cli("run", str(src), "-o", str(out), "-q", "-c", "1", "--paginate",
                          "link", "--resume")  # fmt: skip
    assert again.status == 0, again.stderr
    pages = Counter((r["id"], r["page"]) for r in read_records(out))
    assert sorted(pages) == [(i, p) for i in (1, 2) for p in range(1, 6)]
    assert max(pages.values()) == 1  # each page once, across the two runs


async def test_stop_if_stops_when_the_counters_say_so(api: LoopbackAPI, tmp_path: Path):
    src = _input(api, tmp_path, [f"/status/404?n={i}" for i in range(40)])
    out = tmp_path / "out.jsonl"
    done = await run_cli("run", str(src), "-o", str(out), "-c", "1",
                         "--stop-if", "consecutive_errors >= 5")  # fmt: skip
    assert done.status == 3, done.stderr
    assert len(read_records(out)) == 5  # one at a time: the fifth error stopped it
    assert "by stop_if consecutive_errors >= 5" in done.stderr


async def test_deadline_takes_no_new_request_after_it(api: LoopbackAPI, tmp_path: Path):
    src = _input(api, tmp_path, [f"/ok/{i}" for i in range(1, 201)])
    out = tmp_path / "out.jsonl"
    done = await run_cli("run", str(src), "-o", str(out), "-q", "-c", "1", "--rate", "20/s",
                         "--deadline", "0.5s")  # fmt: skip
    assert done.status == 3, done.stderr
    assert 0 < len(read_records(out)) < 200  # 200 at 20/s take 10 s: it stopped long before


@pytest.mark.parametrize(
    ("condition", "status"), [("failed > 1", 3), ("failed > 2", 1), ("p99_ms < 0", 1)]
)
async def test_fail_if_sets_exit_status_3_and_the_summary_names_it(
    api: LoopbackAPI, tmp_path: Path, condition: str, status: int
):
    src = _input(api, tmp_path, ["/ok/1", "/status/500", "/status/404", "/ok/2"])
    done = await run_cli("run", str(src), "--retries", "0", "--fail-if", condition,
                         "--fail-if", "done > 100")  # fmt: skip
    assert done.status == status, done.stderr  # 1: a record not ok, and no condition held
    assert (f"fail_if    {condition}" in done.stderr) == (status == 3)
    assert "done > 100" not in done.stderr


@pytest.mark.parametrize(
    "bad", ["__import__('os').system('true')", "done + 1 > 2", "errors > 1", "done >", "(" * 200]
)
async def test_a_condition_that_is_not_one_is_a_usage_error_before_anything_is_sent(
    api: LoopbackAPI, tmp_path: Path, bad: str
):
    src = _input(api, tmp_path, ["/ok/1"])
    done = await run_cli("run", str(src), "--stop-if", bad)
    assert done.status == 2 and "--stop-if" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sum(api.log.hits.values()) == 0
    with pytest.raises(fanfetch.ConfigError):
        fanfetch.make_config(fail_if=[bad])


def test_a_condition_reads_the_counters_and_nothing_else():
    counters = dict(done=300, ok=100, failed=200, error_rate=2 / 3, status_4xx=0, status_429=0,
                    status_5xx=200, consecutive_errors=3, elapsed_s=9.0, p99_ms=120.0)  # fmt: skip
    assert Condition("error_rate > 0.5 and done >= 200").holds(counters)
    assert not Condition("not (status_5xx > 0) or p99_ms > 500").holds(counters)
    assert Condition("0 < consecutive_errors <= 3").holds(counters)


def test_the_api_takes_the_guards_and_refuses_them_on_a_cluster(
    api_in_thread: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.INFO, logger="fanfetch"):
        results = fanfetch.run([f"{api_in_thread}/ok/{i}" for i in range(10)], concurrency=1,
                               limit=4)  # fmt: skip
    assert len(results) == 4
    assert [r.getMessage() for r in caplog.records] == ["stopped by limit 4: no new request starts"]
    with pytest.raises(fanfetch.ConfigError, match="guards"):
        fanfetch.run([f"{api_in_thread}/ok/1"], limit=4, cluster="ray", output=tmp_path / "o")


def _costly(api: LoopbackAPI, tmp_path: Path, paths: list[str], cost: float) -> Path:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"url": api.url(p), "cost": cost}) + "\n" for p in paths))
    return src


async def test_max_cost_stops_before_an_attempt_would_go_over_and_resume_finishes(
    api: LoopbackAPI, tmp_path: Path
):
    src = _costly(api, tmp_path, [f"/ok/{i}" for i in range(1, 21)], 10)
    out = tmp_path / "out.jsonl"
    first = await run_cli("run", str(src), "-o", str(out), "-c", "1", "--max-cost", "55")
    assert first.status == 3, first.stderr
    assert sum(api.log.hits.values()) == 5  # 50 spent: a sixth would make 60
    assert "by max_cost 55" in first.stderr
    again = await run_cli("run", str(src), "-o", str(out), "-q", "--resume")
    assert again.status == 0, again.stderr
    ids = Counter(r["id"] for r in read_records(out))
    assert sorted(ids) == list(range(1, 21)) and max(ids.values()) == 1


async def test_max_cost_charges_each_attempt_and_usage_corrects_the_total(
    api: LoopbackAPI, tmp_path: Path
):
    api.script = {"a": [503, 503, 200]}
    src = _costly(api, tmp_path, ["/scripted/a"], 10)
    retried = await run_cli("run", str(src), "-q", "--max-cost", "25", "--backoff-base", "0")
    assert retried.status == 3, retried.stderr  # a third attempt would have made 30
    [record] = retried.records
    assert (record["status"], record["attempts"]) == (503, 2)
    # each answer says it cost 1, not the 10 charged: 30 fit in 40 (without --usage, 4 would)
    src = _costly(api, tmp_path, [f"/llm/{i}?used=1" for i in range(30)], 10)
    used = await run_cli("run", str(src), "-q", "-c", "1", "--max-cost", "40",
                         "--usage", "usage.total_tokens")  # fmt: skip
    assert used.status == 0, used.stderr
    assert len(used.records) == 30
    charged = await run_cli("run", str(src), "-q", "-c", "1", "--max-cost", "40")
    assert charged.status == 3 and len(charged.records) == 4


def test_from_python_a_crossed_fail_if_raises_after_the_run_with_its_results(
    api_in_thread: str,
):
    urls = [f"{api_in_thread}/ok/1", f"{api_in_thread}/status/404", f"{api_in_thread}/ok/2"]
    with pytest.raises(fanfetch.ThresholdCrossed) as caught:
        fanfetch.run(urls, fail_if=["failed >= 1", "done > 10"])
    assert caught.value.crossed == ["failed >= 1"]
    assert [r.status for r in caught.value.results] == [200, 404, 200]  # in input order
    assert str(caught.value) == "a fail_if= condition held at the end of the run: 'failed >= 1'"
    with pytest.raises(fanfetch.ThresholdCrossed):
        list(fanfetch.iter_results(urls, fail_if="failed >= 1"))
    assert len(fanfetch.run(urls, fail_if=["failed > 1"])) == 3  # not crossed: no raise


async def test_the_async_face_raises_a_crossed_fail_if_once_its_results_are_out(
    api: LoopbackAPI,
):
    urls = [api.url("/ok/1"), api.url("/status/404")]
    seen: list[int | None] = []
    with pytest.raises(fanfetch.ThresholdCrossed) as caught:
        async for result in fanfetch.stream(urls, fail_if=["status_4xx >= 1"]):
            seen.append(result.status)
    assert sorted(seen, key=str) == [200, 404] and caught.value.crossed == ["status_4xx >= 1"]


async def test_a_fetcher_says_which_guard_stopped_it(api: LoopbackAPI):
    async with fanfetch.Fetcher(concurrency=1, stop_if="status_4xx >= 2") as fetcher:
        assert fetcher.stopped_by is None
        urls = [api.url(f"/status/404?n={i}") for i in range(10)]
        seen = [result async for result in fetcher.stream(urls)]
    assert len(seen) == 2 and fetcher.stopped_by == "stop_if status_4xx >= 2"


@pytest.mark.parametrize(
    "guard", [("--limit", "5"), ("--max-cost", "5"), ("--fail-if", "done > 1")]
)
async def test_every_guard_is_refused_with_worker_processes(
    api: LoopbackAPI, tmp_path: Path, guard: tuple[str, str]
):
    src = _input(api, tmp_path, ["/ok/1"])
    done = await run_cli("run", str(src), "-o", str(tmp_path / "o.jsonl"), "--workers", "2", *guard)
    assert done.status == 2 and "--workers" in done.stderr, done.stderr
    assert sum(api.log.hits.values()) == 0  # each process would count alone: refused first
