"""--cluster ray on a Ray cluster of several nodes, every one bound to 127.0.0.1 (Ray's
``cluster_utils.Cluster``): the job is joined with ``RAY_ADDRESS``, a node is lost mid-job,
and the job still ends with exactly one record per request."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import read_records, run_cli
from tests.servers import LoopbackAPI
from tests.test_resilience import max_in_window

ray = pytest.importorskip("ray", reason="the cluster tests need Ray (pip install 'fanfetch[ray]')")

pytestmark = [
    pytest.mark.slow,  # a Ray cluster each: make test runs them, test-fast not
    pytest.mark.xdist_group("ray"),  # one Ray at a time, on one xdist worker (make test)
    # Ray leaves its client server's log files open for the collector to close (Ray's
    # node.py, start_ray_client_server): those, and only those, are not this suite's leaks
    pytest.mark.filterwarnings(
        r"ignore:Exception ignored in. <_io\.(FileIO|TextIOWrapper) name='/tmp/ray/session_"
        r"[^']*/logs/ray_client_server\.(out|err)':pytest.PytestUnraisableExceptionWarning"
    ),
]


@pytest.fixture
def two_nodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, int]]:
    """A head node (with a Ray Client server) and a worker node of one CPU each, both on
    loopback."""
    from ray.cluster_utils import Cluster

    client_port = free_port()
    with monkeypatch.context() as m:
        # the cluster's own processes keep loopback addresses loopback (Ray Client's server
        # joins the cluster as a driver does); fanfetch's jobs are not given this
        m.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                            "ray_client_server_port": client_port},
        )  # fmt: skip
    try:
        worker = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        yield cluster, worker, client_port
    finally:
        cluster.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def hold_input(api: LoopbackAPI, tmp_path: Path, total: int) -> Path:
    """An input of ``total`` requests that each take the server 10 ms, ids 1..total."""
    api.hold_seconds = 0.01
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/hold/{i}") + "\n" for i in range(1, total + 1)))
    return src


def job_env(cluster: Any) -> dict[str, str]:
    return {"RAY_ADDRESS": cluster.address, "RAY_USAGE_STATS_ENABLED": "0"}


async def start_job(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )  # fmt: skip


async def test_a_job_joins_a_cluster_through_ray_address(
    api: LoopbackAPI, tmp_path: Path, two_nodes: tuple[Any, Any, int]
):
    cluster, _, _ = two_nodes
    total = 400
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(1, total + 1)))
    result = await run_cli("run", str(src), "-o", str(tmp_path / "out"), "--cluster", "ray",
                           "--shards", "4", env=job_env(cluster), timeout=120)  # fmt: skip
    assert result.status == 0, result.stderr[-3000:]
    ids = [r["id"] for part in (tmp_path / "out").glob("part-*.jsonl") for r in read_records(part)]
    assert sorted(ids) == list(range(1, total + 1))


async def test_a_job_joins_a_cluster_through_ray_client(
    api: LoopbackAPI, tmp_path: Path, two_nodes: tuple[Any, Any, int]
):
    _, _, port = two_nodes
    total = 300
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(1, total + 1)))
    args = ("run", str(src), "-o", str(tmp_path / "out"), "--cluster",
            f"ray://127.0.0.1:{port}", "--shards", "3")  # fmt: skip
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    result = await run_cli(*args, env=env, timeout=120)
    assert result.status == 0, result.stderr[-3000:]
    ids = [r["id"] for part in (tmp_path / "out").glob("part-*.jsonl") for r in read_records(part)]
    assert sorted(ids) == list(range(1, total + 1))
    assert f"requests   {total}" in result.stderr  # one summary, as on one machine


async def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path: Path):
    src = tmp_path / "in.txt"
    src.write_text("http://127.0.0.1:9/1\n")
    port = free_port()  # nothing listens there
    for how, env in (
        (f"ray://127.0.0.1:{port}", {}),
        ("ray", {"RAY_ADDRESS": f"127.0.0.1:{port}"}),
    ):
        result = await run_cli("run", str(src), "-o", str(tmp_path / "out"), "--cluster", how,
                               env=env, timeout=60)  # fmt: skip
        assert result.status == 2 and "cannot reach the Ray cluster" in result.stderr, how
        assert len(result.stderr.splitlines()) == 1


async def test_a_node_lost_mid_job_loses_no_request_and_repeats_none_it_recorded(
    api: LoopbackAPI, tmp_path: Path, two_nodes: tuple[Any, Any, int]
):
    cluster, worker, _ = two_nodes
    total = 4000
    src = hold_input(api, tmp_path, total)
    out = tmp_path / "out"
    started = time.monotonic()
    proc = await start_job(str(src), "-o", str(out), "--cluster", "ray", "--shards", "8",
                           "-c", "20", env=job_env(cluster))  # fmt: skip
    await api.wait_hits(total // 4, within=90)  # both nodes busy: take the second one away
    lost_at = time.monotonic()
    await asyncio.to_thread(cluster.remove_node, worker)
    _, err = await asyncio.wait_for(proc.communicate(), 240)
    ended = time.monotonic()
    assert proc.returncode == 0, err.decode()[-3000:]

    records = [r for part in sorted(out.glob("part-*.jsonl")) for r in read_records(part)]
    ids = Counter(r["id"] for r in records)
    assert sorted(ids) == list(range(1, total + 1)) and max(ids.values()) == 1  # exactly once
    assert all(r["ok"] for r in records)
    hits = sum(n for path, n in api.log.hits.items() if path.startswith("/hold/"))
    refetched = hits - total
    # asked again: only what was in flight on the lost node: -c 20, a little over while the
    # board moves shares (a shard gives back slots only as its requests end: Engine.resize)
    assert 0 <= refetched <= 20 + 8
    print(f"\nnode lost after {lost_at - started:.1f} s; job ended {ended - lost_at:.1f} s "
          f"later; {len(records)} records, 0 duplicates, {refetched} refetched")  # fmt: skip


async def test_rates_and_per_host_limits_hold_for_the_whole_job_across_nodes(
    api: LoopbackAPI, tmp_path: Path, two_nodes: tuple[Any, Any, int]
):
    cluster, _, _ = two_nodes
    total, rate, per_host = 3000, 1000, 6
    src = hold_input(api, tmp_path, total)
    result = await run_cli(
        "run", str(src), "-o", str(tmp_path / "out"), "--cluster", "ray", "--shards", "6",
        "--rate", f"{rate}/s", "--per-host", str(per_host), env=job_env(cluster), timeout=180,
    )  # fmt: skip
    assert result.status == 0, result.stderr[-3000:]
    ids = [r["id"] for part in (tmp_path / "out").glob("part-*.jsonl") for r in read_records(part)]
    assert sorted(ids) == list(range(1, total + 1))
    assert api.log.host_max["127.0.0.1"] <= per_host  # both nodes' shards together
    arrivals = [t for path, times in api.log.times.items() if path.startswith("/hold/")
                for t in times]  # fmt: skip
    assert max_in_window(arrivals, 1.0) <= rate * 1.02  # server-side stamps bunch: 2% slack


async def test_the_driver_lost_mid_job_is_continued_by_resume_exactly_once(
    api: LoopbackAPI, tmp_path: Path, two_nodes: tuple[Any, Any, int]
):
    cluster, _, _ = two_nodes
    total = 4000
    src = hold_input(api, tmp_path, total)
    out = tmp_path / "out"
    args = (str(src), "-o", str(out), "--cluster", "ray", "--shards", "8", "-c", "20")
    proc = await start_job(*args, env=job_env(cluster))
    await api.wait_hits(total // 4, within=90)
    pids = [int(p.read_text()) for p in out.glob("part-*.pid") if p.read_text().strip()]
    proc.kill()  # the driver, and with it the job's board, is gone
    await proc.wait()
    await asyncio.to_thread(wait_gone, pids)  # Ray ends the shards of a job whose driver died
    again = await run_cli("run", *args, "--resume", env=job_env(cluster), timeout=180)
    assert again.status == 0, again.stderr[-3000:]
    ids = Counter(r["id"] for part in out.glob("part-*.jsonl") for r in read_records(part))
    assert sorted(ids) == list(range(1, total + 1)) and max(ids.values()) == 1
    hits = sum(n for path, n in api.log.hits.items() if path.startswith("/hold/"))
    # asked again: what was in flight when the driver died: -c 20, a little over while the
    # board moves shares (a shard gives back slots only as its requests end: Engine.resize)
    assert hits - total <= 20 + 8


def wait_gone(pids: list[int], within: float = 60.0) -> None:
    """Return once none of ``pids`` is alive (checked ten times a second, for ``within``)."""
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"shard processes {pids} still alive"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def one_node() -> Iterator[Any]:
    """A head node of one CPU, on loopback: nodes are added by the test."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    )
    try:
        yield cluster
    finally:
        cluster.shutdown()


async def test_a_node_added_mid_job_runs_shards_and_the_limits_still_hold_as_totals(
    api: LoopbackAPI, tmp_path: Path, one_node: Any
):
    total, per_host = 6000, 8
    src = hold_input(api, tmp_path, total)
    out = tmp_path / "out"
    proc = await start_job(str(src), "-o", str(out), "--cluster", "ray", "--shards", "12",
                           "-c", "16", "--per-host", str(per_host),
                           env=job_env(one_node))  # fmt: skip
    await api.wait_hits(total // 6, within=90)  # one node at work: add a second
    # on this thread (Ray sets signal handlers), holding the test's server a second or two
    added = one_node.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    _, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()[-3000:]
    ids = Counter(r["id"] for part in out.glob("part-*.jsonl") for r in read_records(part))
    assert sorted(ids) == list(range(1, total + 1)) and max(ids.values()) == 1
    nodes = Counter(orjson.loads(done.read_bytes())["node"] for done in out.glob("part-*.done"))
    assert nodes[added.node_id] > 0, nodes  # the new node ran shards of the job
    assert api.log.host_max["127.0.0.1"] <= per_host  # through the change, as a total


async def test_cluster_ray_without_ray_address_starts_its_own_ray_beside_a_running_one(
    api: LoopbackAPI, tmp_path: Path, one_node: Any
):
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(1, 101)))
    out = tmp_path / "out"
    result = await run_cli("run", str(src), "-o", str(out), "--cluster", "ray", "--shards", "2",
                           env={"RAY_USAGE_STATS_ENABLED": "0"}, timeout=120)  # fmt: skip
    assert result.status == 0, result.stderr[-3000:]
    nodes = {orjson.loads(done.read_bytes())["node"] for done in out.glob("part-*.done")}
    assert nodes and one_node.head_node.node_id not in nodes  # not the cluster running here
