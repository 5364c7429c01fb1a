"""--dashboard, rendered into an in-memory terminal on a clock the test moves."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from fanfetch._engine._limits import HostGate
from fanfetch._observe._dashboard import Dashboard, sparkline
from fanfetch._observe._summary import Stats
from tests.conftest import run_cli
from tests.servers import LoopbackAPI


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def a_run(clock: Clock) -> tuple[Stats, HostGate, Dashboard, io.StringIO]:
    """Five seconds of a run: 100, 200, ... 500 ok requests a second (10 ms each, then 20 ms
    in the last second), then two 429s and three timeouts; one host with three attempts in
    flight, one resting after a 429."""
    stats = Stats(clock=clock)
    stats.total = 2000
    gate = HostGate(4, clock=clock)
    out = io.StringIO()
    console = Console(file=out, width=120, height=40, force_terminal=True, color_system=None)
    view = Dashboard(stats, in_flight=lambda: 3, hosts=gate.busiest, queued=lambda: 7,
                     console=console, clock=clock)  # fmt: skip
    view.sample()
    for second in range(5):
        for _ in range(100 * (second + 1)):
            stats.count(True, 200, None, 1, 20.0 if second == 4 else 10.0)
        clock.now += 1.0
        view.sample()
    for _ in range(2):
        stats.count(False, 429, "http_status", 2, 900.0)
    for _ in range(3):
        stats.count(False, None, "timeout", 4, 3000.0)
    stats.retries = 11
    for _ in range(3):
        assert gate.try_acquire("127.0.0.1:8080")
    gate.throttled("127.0.0.1:9090", 5.0, "HTTP 429")
    return stats, gate, view, out


def test_the_dashboard_shows_progress_rate_latency_mix_and_busiest_hosts():
    clock = Clock()
    _, _, view, out = a_run(clock)
    view._console.print(view.render())
    screen = out.getvalue()
    assert "1,505/2,000" in screen and "in flight 3" in screen and "queued 7" in screen
    assert "now 500/s   peak 500/s   last 5 s" in screen  # the last second's rate and the best
    spark = [line for line in screen.splitlines() if "█" in line.split("│ │")[0]]
    assert len(spark) >= 6  # a chart several rows tall: the 500/s second fills every row
    p50 = re.search(r"all\s+([\d.,]+)\s+([\d.,]+)\s+([\d.,]+)\s+([\d.,]+)", screen)
    assert p50 is not None
    assert float(p50.group(1)) < 11 and float(p50.group(4).replace(",", "")) == 3000.0
    assert re.search(r"≤\s+[\d.,]+ ms █+\s+1,500", screen)  # the ok requests' band
    assert re.search(r"2xx\s+1,500\s+99\.7%", screen)
    assert re.search(r"429\s+2\s+0\.1%", screen) and re.search(r"timeout\s+3\s+0\.2%", screen)
    assert re.search(r"retries\s+11", screen)
    assert re.search(r"127\.0\.0\.1:8080\s+3\s+0\s+-\s+-", screen)  # 3 in flight, not resting
    assert re.search(r"127\.0\.0\.1:9090\s+0\s+0\s+1\.0\s+for 5\.0 s: HTTP 429", screen)


def test_the_last_ten_seconds_of_latency_leave_older_requests_out():
    clock = Clock()
    stats, _, view, out = a_run(clock)
    for _ in range(12):  # twelve quiet seconds, then requests of 50 ms
        clock.now += 1.0
        view.sample()
    for _ in range(100):
        stats.count(True, 200, None, 1, 50.0)
    view._console.print(view.render())
    screen = out.getvalue()
    recent = re.search(r"last 10 s\s+([\d.,]+)\s+([\d.,]+)", screen)
    overall = re.search(r"all\s+([\d.,]+)", screen)
    assert recent is not None and overall is not None
    assert 49 < float(recent.group(1)) <= 51 and float(overall.group(1)) < 21


def test_a_small_terminal_gets_the_progress_line_alone():
    clock = Clock()
    stats, gate, _, _ = a_run(clock)
    out = io.StringIO()
    small = Console(file=out, width=70, height=12, force_terminal=True, color_system=None)
    view = Dashboard(stats, in_flight=lambda: 3, hosts=gate.busiest, console=small, clock=clock)
    small.print(view.render())
    screen = out.getvalue()
    assert "busiest hosts" not in screen and "latency" not in screen
    assert "1,505/2,000" in screen and "2xx 1,500" in screen


def test_a_sparkline_scales_to_its_largest_value_in_eighths_of_a_row():
    assert sparkline([0, 4, 8], 10) == [" ▄█"]
    assert sparkline([1, 16], 10, height=2) == [" █", "▁█"]  # above zero shows at least 1/8
    assert sparkline([5, 1, 2, 3], 3) == ["▃▆█"]  # the last ``width`` values


async def test_run_dashboard_leaves_its_last_view_with_the_real_host(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{n}") + "\n" for n in range(30)))
    result = await run_cli("run", str(src), "-o", str(tmp_path / "out.jsonl"), "--dashboard",
                           env={"LINES": "40"})  # fmt: skip
    assert result.status == 0, result.stderr
    assert "requests per second" in result.stderr and "busiest hosts" in result.stderr
    assert "30/30" in result.stderr and re.search(r"2xx\s+30\s+100\.0%", result.stderr)
    assert "Summary" in result.stderr  # and the summary after it


def render_at(width: int, height: int = 24) -> list[str]:
    """A run's dashboard in a terminal ``width`` columns wide, with hosts whose names are
    long and whose ports matter."""
    from rich.cells import cell_len

    from fanfetch._core._types import HostView

    clock = Clock()
    stats, _, _, _ = a_run(clock)
    hosts = [HostView("127.0.0.1:48213", 12, 3, None, 0.0, 0, ""),
             HostView("api.a-rather-long-host-name.example.com:8443", 4, 0, 2.5, 1.2, 3, "429"),
             HostView("[::1]:49152", 1, 0, None, 0.0, 0, ""),
             HostView("[::1]:49153", 2, 9, None, 0.0, 2, "HTTP 429", learned=1940.0)]  # fmt: skip
    out = io.StringIO()
    console = Console(file=out, width=width, height=height, force_terminal=True,
                      color_system=None)  # fmt: skip
    view = Dashboard(stats, in_flight=lambda: 16, hosts=lambda n: hosts[:n], console=console,
                     clock=clock)  # fmt: skip
    console.print(view.render())
    lines = out.getvalue().splitlines()
    assert all(cell_len(line) <= width for line in lines)
    return lines


def test_the_dashboard_lays_out_for_every_width_from_80_without_wrapping_or_cutting_a_port():
    for width in (80, 90, 100, 110, 120, 140, 160):
        lines = render_at(width)
        screen = "\n".join(lines)
        assert len(lines) <= 24, width  # a 24-line terminal holds it
        header = [line for line in lines if "p50" in line]
        assert len(header) == 1 and "max" in header[0], width  # the latency columns unwrapped
        assert sum("≤" in line and " ms " in line for line in lines) >= 2, width
        assert ":48213" in screen and "[::1]:49152" in screen and ":8443 " in screen, width
        assert not re.search(r":\d*…", screen), width  # a host is cut in its name, not its port
        busiest = [line for line in lines if "busiest hosts" in line]
        assert len(busiest) == 1 and "status and errors" in busiest[0], width  # side by side
        learned = [line for line in lines if "[::1]:49153" in line]
        assert len(learned) == 1, width
        wide = "window" in screen  # room for each host's window, and for why it rests
        assert ("paced 1,940.0/s, 2x" if wide else " 1940/s ") in learned[0], width


async def test_in_a_real_terminal_of_80_100_120_and_160_columns_the_panels_hold_together(
    api: LoopbackAPI, tmp_path: Path
):
    import asyncio
    import shutil
    import subprocess
    import sys

    import pytest

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (.ci/run installs it)")
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{n}") + "\n" for n in range(20)) + api.url("/hang/x\n"))
    socket = f"fanfetch-test-{id(tmp_path)}"

    async def tmux(*args: str) -> str:
        done = await asyncio.to_thread(
            subprocess.run,
            ["tmux", "-L", socket, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout  # fmt: skip

    try:
        for width in (80, 100, 120, 160):
            out = tmp_path / f"out-{width}.jsonl"
            command = f"{sys.executable} -m fanfetch run {src} -o {out} --dashboard; sleep 60"
            await tmux(
                "new-session", "-d", "-s", f"w{width}", "-x", str(width), "-y", "30", command
            )
            screen = ""
            for _ in range(200):  # until the view shows the twenty answered
                screen = await tmux("capture-pane", "-p", "-t", f"w{width}")
                if "20/21" in screen and "busiest hosts" in screen:
                    break
                await asyncio.sleep(0.05)
            lines = screen.splitlines()
            assert "busiest hosts" in screen, screen
            boxed = [line.rstrip() for line in lines if line.startswith("│")]
            broken = [line for line in boxed if not line.endswith(("│", "╯", "╮"))]
            assert boxed and not broken, (width, broken)
            assert sum("p50" in line and "max" in line for line in lines) == 1, (width, screen)
            assert f"127.0.0.1:{api.port}" in screen, (width, screen)  # the host, port whole
            await tmux("kill-session", "-t", f"w{width}")
    finally:
        api.release.set()
        await asyncio.to_thread(
            subprocess.run, ["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30
        )
