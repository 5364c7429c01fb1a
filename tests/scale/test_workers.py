"""--workers N: N processes with their own loops share the limits; one writer, one record each."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from fanfetch import Config, Limits, Rate, make_config
from fanfetch._scale._workers import max_parts, share
from tests.conftest import read_records, run_cli
from tests.servers import LoopbackAPI


def test_each_worker_gets_its_share_of_every_limit():
    config = make_config(
        concurrency=100, per_host=10, rate="90/s", rate_per_host="30/min", budget="9000/min"
    )
    part = share(config, 3)
    assert part.limits.concurrency == 33 and part.limits.per_host == 3  # 3 x 33 <= 100
    assert part.limits.rate == Rate(count=30)
    assert part.limits.rate_per_host == Rate(count=10, period=60.0)
    assert part.costs.budget == Rate(count=3000, period=60.0)


def test_a_learned_rate_is_cut_into_shares_of_what_each_host_advertises():
    from fanfetch import Auto

    part = share(make_config(rate="auto", budget="auto"), 4)
    assert part.limits.rate == Auto(share=0.25) and part.costs.budget == Auto(share=0.25)


def test_limits_are_cut_into_no_more_parts_than_they_have_slots():
    assert max_parts(Config(limits=Limits(concurrency=100))) == 100
    assert max_parts(Config(limits=Limits(concurrency=100, per_host=3))) == 3
    config = Config(limits=Limits(concurrency=5, per_host=3))
    n = max_parts(config)
    parts = [share(config, n).limits] * n
    assert sum(p.concurrency for p in parts) <= 5 and sum(p.per_host or 0 for p in parts) <= 3


@pytest.mark.slow
async def test_two_workers_write_one_record_per_line_and_hold_the_concurrency_limit(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/hold/{i}") + "\n" for i in range(400)) + "{bad json\n")
    out = tmp_path / "out.jsonl"
    summary = tmp_path / "summary.json"
    result = await run_cli(
        "run", str(src), "-o", str(out), "--workers", "2", "-c", "8",
        "--summary-json", str(summary),
    )  # fmt: skip
    assert result.status == 1, result.stderr  # the bad line
    records = read_records(out)
    ids = [r["id"] for r in records]
    assert sorted(ids) == list(range(1, 402))
    assert sum(r["ok"] for r in records) == 400
    assert api.log.max_in_flight <= 8  # 4 per worker
    assert "requests   401" in result.stderr


async def test_workers_sending_big_records_at_once_lose_none_and_never_seem_dead(
    api: LoopbackAPI, tmp_path: Path
):
    """Batches of big records take long to send up the pipe: two sends at once from one
    worker once interleaved their bytes, and the parent took the worker for dead."""
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/big/150000?n={i}") + "\n" for i in range(600)))
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "--workers", "2", "-c", "100")
    assert result.status == 0, result.stderr[-2000:]
    assert "died" not in result.stderr
    records = read_records(out)
    assert sorted(r["id"] for r in records) == list(range(1, 601))
    assert all(r["ok"] and len(r["body"]) == 150000 for r in records)


@pytest.mark.slow
async def test_resume_works_the_same_with_workers(api: LoopbackAPI, tmp_path: Path):
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(1, 51)))
    out = tmp_path / "out.jsonl"
    out.write_text("".join(f'{{"id": {i}, "ok": true}}\n' for i in range(1, 31)))
    result = await run_cli("run", str(src), "-o", str(out), "--resume", "--workers", "2", "-q")
    assert result.status == 0, result.stderr
    assert sorted(r["id"] for r in read_records(out)) == list(range(1, 51))
    assert sum(api.log.hits.values()) == 20


@pytest.mark.slow
async def test_ordered_output_with_workers_is_in_input_order_bad_lines_included(
    api: LoopbackAPI, tmp_path: Path
):
    lines = [api.url(f"/hold/{i}") for i in range(1500)]
    for at in (3, 700, 1400):
        lines[at] = "{bad json"
    src = tmp_path / "in.txt"
    src.write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "--workers", "2", "-c", "8",
                           "--ordered", "-q")  # fmt: skip
    assert result.status == 1, result.stderr  # the bad lines
    records = read_records(out)
    assert [r["id"] for r in records] == list(range(1, 1501))
    assert [r["id"] for r in records if not r["ok"]] == [4, 701, 1401]


@pytest.mark.slow
async def test_workers_end_when_no_request_reaches_them(api: LoopbackAPI, tmp_path: Path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    invalid = tmp_path / "invalid.txt"
    invalid.write_text("{bad\nftp://127.0.0.1/x\n")
    for src, status, records in ((empty, 0, 0), (invalid, 1, 2)):
        out = tmp_path / f"{src.stem}.jsonl"
        result = await run_cli("run", str(src), "-o", str(out), "--workers", "2", "-q")
        assert result.status == status, result.stderr
        assert len(read_records(out)) == records
    done = tmp_path / "done.txt"
    done.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(5)))
    out = tmp_path / "done.jsonl"
    first = await run_cli("run", str(done), "-o", str(out), "--workers", "2", "-q")
    assert first.status == 0, first.stderr
    again = await run_cli("run", str(done), "-o", str(out), "--workers", "2", "-q", "--resume")
    assert again.status == 0, again.stderr
    assert len(read_records(out)) == 5


@pytest.mark.slow
async def test_small_runs_with_workers_always_end(api: LoopbackAPI, tmp_path: Path):
    # the end of input used to be noticed only between batches of results: a race at the end
    for n in range(1, 13):
        src = tmp_path / f"in{n}.txt"
        src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(n)))
        result = await run_cli("run", str(src), "--workers", "2", "-q", timeout=30)
        assert result.status == 0, result.stderr
        assert sorted(r["id"] for r in result.records) == list(range(1, n + 1))


def _worker_pids(parent: int) -> list[int]:
    """The worker processes of a ``fanfetch run`` (multiprocessing's spawned children)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    pids = []
    for pid in map(int, children):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            pids.append(pid)
    return pids


async def _start_with_two_workers(
    api: LoopbackAPI, tmp_path: Path, *, n: int, hold: float, concurrency: int
) -> tuple[asyncio.subprocess.Process, Path, Path]:
    """``fanfetch run`` of ``n`` requests (each held ``hold`` s) with ``--workers 2``."""
    api.hold_seconds = hold
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/hold/{i}") + "\n" for i in range(n)))
    out = tmp_path / "out.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(out), "--workers", "2",
        "-c", str(concurrency), "-q", stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return proc, src, out


@pytest.mark.slow
async def test_a_worker_killed_mid_run_is_replaced_and_no_record_is_lost_or_doubled(
    api: LoopbackAPI, tmp_path: Path
):
    n = 3000
    proc, _, out = await _start_with_two_workers(api, tmp_path, n=n, hold=0.005, concurrency=20)
    await api.wait_hits(300, within=60)  # the workers are busy
    pids = _worker_pids(proc.pid)
    assert len(pids) == 2, pids
    os.kill(pids[0], signal.SIGKILL)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert "died (signal 9)" in err.decode()
    ids = [r["id"] for r in read_records(out)]
    assert sorted(ids) == list(range(1, n + 1))  # every one, none twice


@pytest.mark.slow
async def test_workers_that_keep_dying_stop_the_run_with_exit_1_and_resume_finishes_it(
    api: LoopbackAPI, tmp_path: Path
):
    n = 1000
    proc, src, out = await _start_with_two_workers(api, tmp_path, n=n, hold=0.02, concurrency=4)
    await api.wait_hits(1, within=60)
    killed: set[int] = set()
    for _ in range(2000):  # bounded: each new worker is killed as soon as it shows
        if proc.returncode is not None:
            break
        try:
            for pid in set(_worker_pids(proc.pid)) - killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        except (OSError, ValueError):
            pass  # the process is ending
        await asyncio.sleep(0.01)  # no event tells us a worker was spawned: look again soon
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, err.decode()
    assert "run again with --resume" in err.decode() and "Traceback" not in err.decode()
    first = read_records(out)
    assert len({r["id"] for r in first}) == len(first) < n  # whole lines, none twice
    again = await run_cli("run", str(src), "-o", str(out), "--workers", "2", "-q", "--resume")
    assert again.status == 0, again.stderr
    assert sorted(r["id"] for r in read_records(out)) == list(range(1, n + 1))


@pytest.mark.slow
async def test_the_summary_with_workers_counts_as_one_process_does(
    api: LoopbackAPI, tmp_path: Path
):
    import orjson

    for i in range(0, 60, 3):  # every third answers 503 twice, then 200: two retries each
        api.script[str(i)] = [503, 503, 200]
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/scripted/{i}") + "\n" for i in range(60)))
    summaries = {}
    for workers in ("1", "2"):
        summary = tmp_path / f"summary-{workers}.json"
        for i in range(0, 60, 3):
            api.script[str(i)] = [503, 503, 200]
        result = await run_cli(
            "run", str(src), "-q", "--workers", workers, "--backoff-base", "0",
            "--summary-json", str(summary),
        )  # fmt: skip
        assert result.status == 0, result.stderr
        summaries[workers] = orjson.loads(summary.read_bytes())
    for key in ("requests", "ok", "failed", "errors", "statuses", "retries"):
        assert summaries["1"][key] == summaries["2"][key], key
    assert summaries["2"]["retries"] == 40 and summaries["2"]["statuses"] == {"200": 60}


BREAK_A_WORKER = """
import os, sys
if "spawn_main" in " ".join(getattr(sys, "orig_argv", [])):
    import fanfetch._engine._scheduler as scheduler
    real = scheduler.Engine.run

    async def run(self, items, sink):  # the first worker to start breaks on its first batch
        try:
            os.close(os.open(os.environ["BREAK_MARK"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return await real(self, items, sink)
        async for _ in items:
            raise RuntimeError("a worker broken on purpose")

    scheduler.Engine.run = run
"""


@pytest.mark.slow
async def test_a_worker_that_dies_of_an_exception_has_its_requests_dealt_again(
    api: LoopbackAPI, tmp_path: Path
):
    """It used to say it was done on its way out, so its requests were lost and the run
    exited 0 (804 records of 1,000). The fault is put in with a sitecustomize that only the
    worker processes act on."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BREAK_A_WORKER)
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(1, 501)))
    out = tmp_path / "out.jsonl"
    mark = tmp_path / "broke"
    result = await run_cli(
        "run", str(src), "-o", str(out), "--workers", "2", "-q",
        env={"PYTHONPATH": str(tmp_path / "site"), "BREAK_MARK": str(mark)}, timeout=120,
    )  # fmt: skip
    assert mark.exists()  # a worker did break
    assert result.status == 0, result.stderr[-3000:]
    assert "died" in result.stderr
    assert sorted(r["id"] for r in read_records(out)) == list(range(1, 501))


@pytest.mark.slow
async def test_workers_whose_parent_is_killed_end_without_a_traceback(
    api: LoopbackAPI, tmp_path: Path
):
    proc, _, _ = await _start_with_two_workers(api, tmp_path, n=3000, hold=0.005, concurrency=20)
    await api.wait_hits(200, within=60)
    pids = _worker_pids(proc.pid)
    assert len(pids) == 2, pids
    os.kill(proc.pid, signal.SIGKILL)
    _, err = await asyncio.wait_for(proc.communicate(), 60)  # the workers hold stderr open
    for pid in pids:  # they have ended (their pipe to the parent broke)
        assert not Path(f"/proc/{pid}").exists() or b"zombie" in Path(
            f"/proc/{pid}/status"
        ).read_bytes().lower()  # fmt: skip
    assert "Traceback" not in err.decode() and "BrokenPipe" not in err.decode(), err.decode()
