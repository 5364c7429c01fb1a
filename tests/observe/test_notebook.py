"""fanfetch.run in a real Jupyter kernel (nbclient): live progress in place, then the summary."""

from __future__ import annotations

import asyncio
import io
import sys
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from rich.console import Console

import fanfetch
from fanfetch._observe._progress import CalledProgressBar
from fanfetch._observe._summary import Stats
from tests.servers import LoopbackAPI


class WatchingClient(NotebookClient):
    """Runs the notebook; keeps every progress update the kernel sent while a cell ran, and
    lets the server answer once the display has shown the first half done."""

    def __init__(self, nb: Any, api: LoopbackAPI, halfway: str) -> None:
        super().__init__(nb, timeout=120, kernel_name="python3")
        self.api = api
        self.halfway = halfway
        self.updates: list[str] = []

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        if msg["msg_type"] in ("display_data", "update_display_data"):
            text = msg["content"]["data"].get("text/plain", "")
            if text.startswith("fanfetch "):
                self.updates.append(text)
                if self.halfway in text:
                    self.api.release.set()  # the run was seen part-way: let it finish
        return super().process_message(msg, cell, cell_index)


@pytest.mark.slow  # starts a kernel: a few seconds
async def test_run_in_a_notebook_shows_live_progress_then_the_summary_table(api: LoopbackAPI):
    urls = [api.url(f"/ok/{n}") for n in range(10)] + [api.url(f"/hang/{n}") for n in range(10)]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import fanfetch\nurls = {urls!r}"),
        nbformat.v4.new_code_cell("results = fanfetch.run(urls, concurrency=10)"),
        nbformat.v4.new_code_cell("print(sum(r.ok for r in results), 'ok')"),
    ]
    client = WatchingClient(nb, api, halfway="10/20")
    await asyncio.wait_for(client.async_execute(), 120)
    assert any("10/20 (50%)" in u for u in client.updates)  # seen live, before the end
    outputs = nb.cells[1].outputs
    progress, summary = outputs[0], outputs[-1]
    assert progress.output_type == "display_data"  # one output, updated in place
    assert progress.data["text/plain"].startswith("fanfetch 20/20 (100%)")
    assert '<progress value="20" max="20"' in progress.data["text/html"]
    assert "2xx 20" in progress.data["text/plain"]
    assert "<table" in summary.data["text/html"] and "<th" in summary.data["text/html"]
    assert "requests   20" in summary.data["text/plain"]
    assert not any(o.output_type == "error" for o in outputs)
    assert nb.cells[2].outputs[0].text == "20 ok\n"


async def test_progress_true_in_a_script_draws_the_bar_and_the_summary_on_stderr(
    api: LoopbackAPI, monkeypatch: pytest.MonkeyPatch
):
    out = io.StringIO()
    shown: list[CalledProgressBar] = []

    def bar(stats: Stats, *, in_flight: Any) -> CalledProgressBar:
        console = Console(file=out, force_terminal=True, width=160, color_system=None)
        shown.append(CalledProgressBar(stats, in_flight=in_flight, console=console))
        return shown[0]

    monkeypatch.setattr(sys.modules["fanfetch._sync"], "_progress_view", bar)
    urls = [api.url(f"/ok/{n}") for n in range(12)]
    results = await asyncio.to_thread(fanfetch.run, urls, progress=True)
    assert len(results) == 12 and shown
    screen = out.getvalue()
    assert "12/12" in screen and "2xx 12" in screen
    assert "Summary" in screen and "requests   12" in screen


async def test_outside_a_notebook_progress_is_off_unless_asked(
    api: LoopbackAPI, capfd: pytest.CaptureFixture[str]
):
    results = await asyncio.to_thread(fanfetch.run, [api.url("/ok/1")])
    assert results[0].ok
    assert capfd.readouterr().err == ""
