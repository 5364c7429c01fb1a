"""--metrics-port: a Prometheus endpoint read during a real run; its counters match the records."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import read_records
from tests.servers import LoopbackAPI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def scrape(port: int) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_the_metrics_endpoint_counts_what_the_records_hold_while_the_run_goes(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.txt"
    lines = [api.url(f"/ok/{i}") for i in range(20)] + [api.url("/status/404")] * 3
    lines.append(api.url("/hang/last"))  # holds the run open until the test has looked
    src.write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "out.jsonl"
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(out), "-q",
        "--metrics-port", str(port), "--metrics-linger", "0", stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await api.wait_hits(len(lines))
        for _ in range(200):  # the records of all but the hanging request, then a scrape
            try:
                seen = await scrape(port)
            except aiohttp.ClientError:
                seen = {}
            if seen.get("fanfetch_requests_total{error_type=none,status_class=2xx}") == 20 and (
                seen.get("fanfetch_requests_total{error_type=http_status,status_class=4xx}") == 3
            ):
                break
            await asyncio.sleep(0.05)
        records = read_records(out)
        assert len(records) == 23 and sum(r["ok"] for r in records) == 20
        assert seen["fanfetch_requests_total{error_type=none,status_class=2xx}"] == 20
        assert seen["fanfetch_requests_total{error_type=http_status,status_class=4xx}"] == 3
        assert seen["fanfetch_in_flight"] == 1  # the hanging one
        assert seen["fanfetch_request_duration_seconds_count"] == 23
        assert seen["fanfetch_retries_total"] == 0
    finally:
        api.release.set()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1, err.decode()  # the 404s
    assert len(read_records(out)) == 24


async def test_a_port_in_use_is_a_usage_error(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fanfetch", "run", "-", "--metrics-port", str(port),
            stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and "--metrics-port" in err.decode()
    assert "Traceback" not in err.decode()


async def test_the_endpoint_serves_the_final_counts_after_the_run_until_scraped_once_more(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(12)))
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(tmp_path / "out.jsonl"),
        "--no-progress", "--metrics-port", str(port), "--metrics-linger", "60",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    told = []
    try:
        while line := await asyncio.wait_for(proc.stderr.readline(), 30):  # the run is over
            told.append(line.decode())
            if "final counts are served" in told[-1]:
                break
        assert "final counts are served" in told[-1], told
        seen = await scrape(port)  # after the run: the last scrape sees every request
        assert seen["fanfetch_requests_total{error_type=none,status_class=2xx}"] == 12
        assert seen["fanfetch_in_flight"] == 0
        await asyncio.wait_for(proc.wait(), 30)  # scraped: it goes, without its 60 s
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert any(line.split() == ["ok", "12"] for line in told), told  # the summary came first
