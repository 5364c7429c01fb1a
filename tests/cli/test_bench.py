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


def test_a_benchmark_client_that_failed_requests_gets_no_figure_and_is_no_reference():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).parent.parent.parent / "benchmarks" / "run.py"
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_run", path)
        assert spec is not None and spec.loader is not None
        bench = sys.modules["bench_run"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)  # its dataclasses look their module up by name
    finally:
        sys.path.remove(str(path.parent))
        sys.modules.pop("bench_run", None)
    fast_and_wrong = bench.Figure("s", "aiohttp_pool", 1000, 10, [bench.Run(0.01, 0.01, 30, 0)])
    honest = bench.Figure("s", "fanfetch_cli", 1000, 10, [bench.Run(1.0, 0.5, 40, 1000)])
    table = bench.report([fast_and_wrong, honest], 1)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.count("|") > 5}
    assert "failed" in rows["aiohttp_pool"] and "no figure" in rows["aiohttp_pool"]
    assert "100,000" not in rows["aiohttp_pool"]  # no rate for 0 ok
    assert "1,000" in rows["fanfetch_cli"] and "failed" not in rows["fanfetch_cli"]
