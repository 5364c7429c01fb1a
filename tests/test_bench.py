"""`fanfetch bench` runs the lesson end to end (quick mode) and shows both tables."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
async def test_bench_quick_shows_io_and_cpu_rows_with_speedups():
    result = await run_cli("bench", "--quick", timeout=120)
    assert result.status == 0, result.stderr
    text = result.stdout.decode()
    for row in ("one at a time", "threads", "processes", "asyncio: a task per URL", "fanfetch"):
        assert row in text
    assert "I/O-bound" in text and "CPU-bound" in text and "GIL" in text
