"""--cluster ray: a local Ray cluster runs the job in shards; a killed worker loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

import fanfetch
from fanfetch._scale._cluster import plan_shards, shard_lines
from tests.conftest import read_records, run_cli
from tests.servers import LoopbackAPI
from tests.test_resilience import max_in_window

ray = pytest.importorskip("ray", reason="the cluster tests need Ray (pip install 'fanfetch[ray]')")

# one Ray at a time: the cluster tests run in turn on one xdist worker (make test)
pytestmark = pytest.mark.xdist_group("ray")


def test_shards_cover_every_line_once_whatever_the_cut(tmp_path: Path):
    src = tmp_path / "in.txt"
    lines = [f"http://127.0.0.1/{i}{'x' * (i % 13)}\n".encode() for i in range(500)]
    src.write_bytes(b"".join(lines))
    for shards in (1, 3, 7, 64):
        got = [
            line for s, e in plan_shards(str(src), shards) for line in shard_lines(str(src), s, e)
        ]
        assert got == lines


@pytest.mark.slow
async def test_a_job_on_a_local_ray_cluster_is_exactly_once_and_holds_the_rate(
    api: LoopbackAPI, tmp_path: Path
):
    total, rate = 20_000, 5_000
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(1, total + 1)))
    out = tmp_path / "out"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(out), "--cluster", "ray",
        "--shards", "6", "--rate", f"{rate}/s", "-c", "40",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    await api.wait_hits(total // 4, within=60)  # well under way (Ray started): kill a worker
    pids = [int(p.read_text()) for p in out.glob("part-*.pid") if p.read_text().strip()]
    assert pids, "a shard is running"
    os.kill(pids[0], signal.SIGKILL)
    _, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()[-3000:]

    parts = sorted(out.glob("part-*.jsonl"))
    assert len(parts) == 6 and len(list(out.glob("part-*.done"))) == 6
    ids = [r["id"] for part in parts for r in read_records(part)]
    assert len(ids) == len(set(ids)) == total  # nothing lost, nothing twice, after the kill
    assert sorted(ids) == list(range(1, total + 1))  # ids are global line numbers
    repeated = sum(1 for n in Counter(api.log.hits).values() if n > 1)
    assert repeated <= 40  # only what was in flight in the killed worker was asked again
    arrivals = [t for times in api.log.times.values() for t in times]
    # server-side stamps bunch under load (see test_resilience): 2% of slack; unlimited, this
    # job runs well above 5,500/s
    assert max_in_window(arrivals, 1.0) <= rate * 1.02


@pytest.mark.slow
async def test_a_local_ray_that_fanfetch_starts_listens_on_loopback_only(
    api: LoopbackAPI, tmp_path: Path
):
    """Ray before 2.59 has no authentication by default: whoever reaches its ports runs
    code as the user (CVE-2023-48022). Every socket of every process of the run, the driver,
    GCS, raylet, runtime-env agent, board actor and shard workers, listens on 127.0.0.1."""
    import psutil

    api.hang_bound = 100.0  # held until released, however long Ray takes to start here
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/hang/{i}") + "\n" for i in range(1, 5)))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(tmp_path / "out"),
        "--cluster", "ray", "--shards", "2", "-q",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        # a shard is sending: the driver, GCS, raylet, agents and workers are up (Ray may
        # take long to start on a loaded 2-core machine)
        await api.wait_until(lambda log: log.in_flight >= 1, within=120)
        run = psutil.Process(proc.pid)
        processes = [run, *run.children(recursive=True)]
        listening = []
        for p in processes:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                listening += [(p.name(), c.laddr) for c in p.net_connections("inet")
                              if c.status == psutil.CONN_LISTEN]  # fmt: skip
        names = {name for name, _ in listening}
        assert {"gcs_server", "raylet"} <= names, names
        assert len(processes) >= 5  # the driver, GCS, raylet, an agent, workers
        loopback = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
        assert [(n, a) for n, a in listening if a.ip not in loopback] == []
    finally:
        api.release.set()
        _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]


@pytest.mark.slow
async def test_when_a_shard_finishes_the_others_take_on_its_share_of_the_limits(
    api: LoopbackAPI, tmp_path: Path
):
    # two shards of equal bytes: ten quick requests, then ten that the server holds
    src = tmp_path / "in.txt"
    quick = [api.url(f"/ok/{i:06d}") for i in range(10)]
    held = [api.url(f"/hang/{i:04d}") for i in range(10)]
    src.write_text("".join(url + "\n" for url in quick + held))
    out = tmp_path / "out"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(out), "--cluster", "ray",
        "--shards", "2", "-c", "8", "--progress",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip

    def held_in_server(log) -> int:  # /hang answers only when released: each hit is in flight
        return sum(n for path, n in log.hits.items() if path.startswith("/hang/"))

    api.hang_bound = 100.0  # a slow machine must not see held requests answered on their own
    try:
        await api.wait_until(lambda log: held_in_server(log) >= 1, within=60)  # Ray is up
        # the quick shard finishes; the held one's share grows from 4 to all 8
        await api.wait_until(lambda log: held_in_server(log) >= 8, within=45)
    finally:
        api.release.set()
        _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert api.log.max_in_flight <= 8  # the job's -c 8, shared out, never exceeded
    assert "20/20" in err.decode()  # the driver's progress bar added up both shards
    assert "requests   20" in err.decode()


@pytest.mark.slow
def test_the_python_api_runs_a_job_on_ray_and_gives_back_every_result(
    api_in_thread: str, tmp_path: Path
):
    requests = [{"url": f"{api_in_thread}/ok/{i}", "meta": {"n": i}} for i in range(1, 301)]
    requests.append({"url": "ftp://nope"})  # bad input is a record here too, not an exception
    seen: list[int] = []
    results = fanfetch.run(
        requests, cluster="ray", output=tmp_path / "out", shards=3, concurrency=8,
        on_result=lambda r: seen.append(r.id),
    )  # fmt: skip
    assert sorted(r.id for r in results) == list(range(1, 302)) == sorted(seen)
    by_id = {r.id: r for r in results}
    assert all(
        by_id[i].ok and by_id[i].json() == {"id": str(i), "method": "GET"} for i in range(1, 301)
    )
    assert by_id[5].meta == {"n": 5}
    assert by_id[301].error is not None and by_id[301].error.type == "invalid_request"
    assert len(list((tmp_path / "out").glob("part-*.jsonl"))) == 3


def test_a_cluster_job_from_python_needs_an_output_directory():
    with pytest.raises(fanfetch.ConfigError, match="output"):
        fanfetch.run(["http://127.0.0.1:9/"], cluster="ray")
    with pytest.raises(fanfetch.ConfigError, match="ray://HOST:PORT"):
        fanfetch.run(["http://127.0.0.1:9/"], cluster="dask", output="out")


def test_a_cluster_job_from_python_refuses_paginate_as_the_command_line_does(tmp_path: Path):
    with pytest.raises(fanfetch.ConfigError, match="does not follow pages yet"):
        list(fanfetch.iter_results(["http://127.0.0.1:9/"], cluster="ray",
                                   output=tmp_path / "o", paginate="link"))  # fmt: skip
    assert not (tmp_path / "o").exists()  # refused before anything was written


@pytest.mark.slow
async def test_csv_rows_fill_a_url_template_on_the_cluster_with_the_header_given_to_each_shard(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "users.csv"
    src.write_text("user_id,name\n" + "".join(f"u{i},name {i}\n" for i in range(1, 121)))
    out = tmp_path / "out"
    result = await run_cli(
        "run", str(src), "-o", str(out), "--cluster", "ray", "--shards", "4", "-q",
        "--url", api.url("/ok/{user_id}"), timeout=120,
    )  # fmt: skip
    assert result.status == 0, result.stderr
    records = [r for part in sorted(out.glob("part-*.jsonl")) for r in read_records(part)]
    assert sorted(r["id"] for r in records) == list(range(2, 122))  # line numbers, header is 1
    assert {r["body"]["id"] for r in records} == {f"u{i}" for i in range(1, 121)}


async def test_cluster_refuses_flags_it_cannot_honour(tmp_path: Path):
    src = tmp_path / "in.txt"
    src.write_text("http://127.0.0.1:9/\n")
    for flags, says in [
        (["--ordered"], "--ordered does not go with --cluster"),
        (["--workers", "2"], "does not go with --cluster"),
        (["--cluster", "dask"], "ray://HOST:PORT"),
        (["--paginate", "link"], "does not follow pages yet"),
    ]:
        cluster = [] if "--cluster" in flags else ["--cluster", "ray"]
        result = await run_cli("run", str(src), "-o", str(tmp_path / "o"), *cluster, *flags)
        assert result.status == 2 and says in result.stderr


@pytest.mark.slow
async def test_resume_of_a_whole_job_skips_finished_shards_and_finishes_a_partial_one(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(1, 201)))
    out = tmp_path / "out"
    args = ("run", str(src), "-o", str(out), "--cluster", "ray", "--shards", "4")
    first = await run_cli(*args, "-q", timeout=120)
    assert first.status == 0, first.stderr
    # as if the job had died part-way through shard 2: no .done, half its records
    part = out / "part-00002.jsonl"
    lines = part.read_bytes().splitlines(keepends=True)
    part.write_bytes(b"".join(lines[:10]))
    (out / "part-00002.done").unlink()
    before = sum(api.log.hits.values())

    again = await run_cli(*args, "--resume", timeout=120)
    assert again.status == 0, again.stderr
    assert sum(api.log.hits.values()) - before == len(lines) - 10  # only what was missing
    ids = [r["id"] for p in sorted(out.glob("part-*.jsonl")) for r in read_records(p)]
    assert sorted(ids) == list(range(1, 201))
    assert "requests   200" in again.stderr  # the summary covers the whole job
    assert "ok         200" in again.stderr  # the 10 records kept from before count as ok


async def test_a_cluster_job_with_unreadable_input_or_output_says_so_before_ray_starts(
    tmp_path: Path,
):
    src = tmp_path / "in.txt"
    src.write_text("http://127.0.0.1:9/\n")
    missing = await run_cli("run", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "o"),
                            "--cluster", "ray")  # fmt: skip
    assert missing.status == 2 and "cannot read input" in missing.stderr
    assert "Traceback" not in missing.stderr
    clash = await run_cli("run", str(src), "-o", str(src), "--cluster", "ray")
    assert clash.status == 2 and "cannot write parts" in clash.stderr


@pytest.mark.slow
async def test_a_per_host_limit_smaller_than_the_cluster_holds_for_the_whole_job(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/hold/{i}") + "\n" for i in range(40)))
    result = await run_cli(
        "run", str(src), "-o", str(tmp_path / "out"), "--cluster", "ray", "--shards", "4",
        "--per-host", "1", "-q", timeout=120,
    )  # fmt: skip
    assert result.status == 0, result.stderr
    assert sum(api.log.hits.values()) == 40
    assert api.log.max_in_flight == 1  # one slot cannot be cut in two: one shard at a time


def test_the_board_divisor_only_falls_and_a_shard_run_again_is_counted_once():
    from fanfetch._scale._cluster import Board

    board = Board(shards=5, slots=2, finished={})
    assert board.report(0, None) == 2  # five to go, two at a time
    board.report(0, {"done": 10, "ok": 9, "retries": 1})
    board.report(0, {"done": 30, "ok": 29, "retries": 1})  # the same shard again: replaced
    assert board.progress().done == 30
    done = {"done": 50, "ok": 50, "retries": 2}  # a finished shard's Stats.counts() (part)
    for shard in range(4):
        board.finish(shard, done)
        board.finish(shard, done)  # Ray ran it again after its worker died: still one
    assert board.report(4, None) == 1  # one left: it gets every limit
    assert board.progress().done == 4 * 50
