"""Stress: the scenario of a stall once seen (one run in 16 of ``fanfetch.stream`` at
concurrency 500 against a 50 ms server never ended), repeated enough times to catch it."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import fanfetch

ROOT = Path(__file__).resolve().parent.parent
RUNS = 48  # a stall in 1 run of 16 shows in 48 runs 19 times in 20
REQUESTS = 5000
BOUND = 60.0  # one run takes about a second; a stalled one never ends


@pytest.fixture
async def slow_server() -> AsyncIterator[str]:
    """The benchmarks' fixed-delay server (50 ms) in a process of its own."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "benchmarks" / "latency_server.py"), "0", "50",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    try:
        yield line.decode().split()[-1]
    finally:
        proc.kill()
        await proc.wait()


def _where_everything_waits() -> str:
    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=8, file=out)
    return out.getvalue()[-20_000:]


@pytest.mark.slow
@pytest.mark.timeout(RUNS * BOUND)
async def test_streams_at_concurrency_500_against_a_50_ms_server_always_end(slow_server: str):
    urls = [f"{slow_server}/items/{i}" for i in range(REQUESTS)]

    async def one_run() -> int:
        count = 0
        async for result in fanfetch.stream(urls, concurrency=500):
            assert result.ok, result.error
            count += 1
        return count

    for run in range(RUNS):
        task = asyncio.ensure_future(one_run())
        done, _ = await asyncio.wait({task}, timeout=BOUND)
        if not done:
            stacks = _where_everything_waits()
            task.cancel()
            raise AssertionError(f"run {run} did not end within {BOUND} s; tasks:\n{stacks}")
        assert task.result() == REQUESTS
