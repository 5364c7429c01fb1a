"""``fanfetch report``: one self-contained HTML page about a run, from its records."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

import orjson
import pytest

from fanfetch._cli._report import KINDS, Tally, kind_of, render
from tests.conftest import read_records, run_cli
from tests.servers import LoopbackAPI


def page_data(page: str) -> dict[str, Any]:
    """The figures the page carries as JSON."""
    found = re.search(r'<script type="application/json" id="fanfetch-data">(.*?)</script>', page)
    assert found is not None
    data: dict[str, Any] = orjson.loads(found.group(1))
    return data


async def a_mixed_run(api: LoopbackAPI, tmp_path: Path) -> Path:
    """A run whose records hold every kind: ok, 404, 429, 500 (retried), a refused
    connection and an invalid line."""
    lines = [api.url(f"/ok/{n}") for n in range(40)]
    lines += [api.url("/status/404")] * 5 + [api.url("/status/500")] * 3
    lines += [api.url("/status/429")] * 2 + ["http://127.0.0.1:1/refused", "{not json"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    result = await run_cli(
        "run", str(src), "-o", str(out), "-q", "--retries", "1", "--backoff-base", "0.01",
        "--retry-on", "500",
    )  # fmt: skip
    assert result.status == 1, result.stderr
    return out


async def test_the_report_shows_what_the_records_hold(api: LoopbackAPI, tmp_path: Path):
    out = await a_mixed_run(api, tmp_path)
    page_file = tmp_path / "report.html"
    result = await run_cli("report", str(out), "-o", str(page_file))
    assert result.status == 0, result.stderr
    assert f"report on 52 records written to {page_file}" in result.stderr
    page = page_file.read_text()
    data = page_data(page)
    records = read_records(out)
    assert data["requests"] == len(records) == 52
    assert data["ok"] == sum(r["ok"] for r in records) == 40
    assert data["kinds"] == {"2xx": 40, "4xx": 5, "429": 2, "5xx": 3, "error": 2}
    assert data["statuses"] == {"200": 40, "404": 5, "429": 2, "500": 3}
    assert data["retries"] == sum(max(0, r["attempts"] - 1) for r in records) > 0
    messages = Counter((r["error"]["type"], r["error"]["message"]) for r in records if r["error"])
    assert {(m["type"], m["message"]): m["count"] for m in data["messages"]} == messages
    for (kind, message), count in messages.items():  # each distinct message, with its count
        row = f'<td class="n">{count}</td><td>{escape(kind)}</td><td class="u">{escape(message)}'
        assert row in page
    slowest = sorted((r for r in records if r["attempts"]), key=lambda r: -r["elapsed_ms"])
    assert [s["elapsed_ms"] for s in data["slowest"]] == [r["elapsed_ms"] for r in slowest[:20]]
    assert {s["id"] for s in data["slowest"]} <= {r["id"] for r in slowest[:25]}  # ties aside
    host = f"127.0.0.1:{api.port}"
    by_host = {h["host"]: h for h in data["hosts"]}
    assert by_host[host]["requests"] == 50 and by_host[host]["ok"] == 40
    assert by_host["127.0.0.1:1"]["kinds"] == {"error": 1}
    assert data["started_at"] == min(r["started_at"] for r in records if r["started_at"])
    for section in ("mix", "throughput", "latency-time", "latency", "slowest", "errors", "hosts"):
        assert f'<section id="{section}">' in page
    assert page.count("<svg") == 4 and page.count('data-kind="5xx"') >= 2
    for value, name in (("52", "requests"), ("40", "ok"), ("12", "failed")):  # counts as counts
        assert f'<div class="card"><b>{value}</b><span>{name}</span></div>' in page, name


@pytest.mark.slow  # several runs: make test runs it, test-fast not
async def test_every_output_format_gives_the_same_report(api: LoopbackAPI, tmp_path: Path):
    out = await a_mixed_run(api, tmp_path)
    assert (await run_cli("report", str(out), "-o", str(tmp_path / "a.html"), "-q")).status == 0
    want = page_data((tmp_path / "a.html").read_text())
    for suffix in (".csv", ".sqlite"):
        table = tmp_path / f"out{suffix}"
        assert (await run_cli("export", str(out), "-o", str(table), "-q")).status == 0
        page = tmp_path / f"b{suffix}.html"
        result = await run_cli("report", str(table), "-o", str(page), "-q")
        assert result.status == 0, result.stderr
        assert page_data(page.read_text()) == want, suffix


async def test_a_partial_output_is_reported_and_its_torn_line_named(
    api: LoopbackAPI, tmp_path: Path
):
    out = await a_mixed_run(api, tmp_path)
    with out.open("ab") as f:
        f.write(b'{"id": 99, "url": "http://127.0.0.1/x", "ok": tr')  # killed mid-write
    page_file = tmp_path / "r.html"
    result = await run_cli("report", str(out), "-o", str(page_file), "-q")
    assert result.status == 0, result.stderr
    page = page_file.read_text()
    assert page_data(page)["requests"] == 52 and page_data(page)["skipped_lines"] == 1
    assert "1 line(s) were not records" in page


async def test_a_folder_of_parts_is_one_report(api: LoopbackAPI, tmp_path: Path):
    out = await a_mixed_run(api, tmp_path)
    parts = tmp_path / "parts"
    parts.mkdir()
    lines = out.read_bytes().splitlines(keepends=True)
    (parts / "part-00000.jsonl").write_bytes(b"".join(lines[:20]))
    (parts / "part-00001.jsonl").write_bytes(b"".join(lines[20:]))
    page_file = tmp_path / "r.html"
    assert (await run_cli("report", str(parts), "-o", str(page_file), "-q")).status == 0
    assert page_data(page_file.read_text())["requests"] == 52


async def test_bad_report_arguments_are_one_line_and_touch_nothing(tmp_path: Path):
    missing = await run_cli("report", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "r"))
    assert missing.status == 2 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr and len(missing.stderr.splitlines()) == 1
    records = tmp_path / "out.jsonl"
    records.write_bytes(b'{"id": 1, "url": "http://127.0.0.1/", "ok": true}\n')
    same = await run_cli("report", str(records), "-o", str(records))
    assert same.status == 2 and "replace its input" in same.stderr
    assert records.read_bytes() == b'{"id": 1, "url": "http://127.0.0.1/", "ok": true}\n'
    assert not (tmp_path / "r").exists()


def test_the_tally_stays_bounded_however_many_hosts_messages_and_seconds():
    tally = Tally(bins=64, hosts=10, messages=20, slowest=5)
    for n in range(20_000):
        tally.add({
            "id": n, "url": f"http://127.0.0.{n % 250}:{n}/x", "ok": False, "status": None,
            "attempts": 1, "elapsed_ms": float(n % 97), "started_at": 1_700_000_000 + n * 0.37,
            "error": {"type": "connection", "message": f"refused #{n}"},
        })  # fmt: skip
    assert len(tally.hosts) == 10 and len(tally.messages) == 20 and len(tally.bins) <= 64
    assert len(tally.slowest) == 5
    data = tally.data()
    assert sum(m["count"] for m in data["messages"]) == 20_000  # the rest counted together
    assert data["messages"][-1]["message"] == "(other messages)"
    assert sum(h["requests"] for h in data["hosts"]) == 20_000
    width, series = tally.series(most=120)
    assert len(series) <= 120 and sum(sum(row[: len(KINDS)]) for _, row in series) == 20_000
    assert width >= 20_000 * 0.37 / 120


def test_text_from_the_records_cannot_become_markup():
    tally = Tally()
    tally.add({
        "id": "<b>x</b>", "url": "http://127.0.0.1/<script>alert(1)</script>", "ok": False,
        "status": 500, "attempts": 1, "elapsed_ms": 5.0, "started_at": 1_700_000_000.0,
        "error": {"type": "http_status", "message": "</script><script>alert(2)</script>"},
    })  # fmt: skip
    page = render(tally, title="<i>t</i>")
    assert "<script>alert" not in page and "<b>x</b>" not in page and "<i>t</i>" not in page
    assert page_data(page)["messages"][0]["message"] == "</script><script>alert(2)</script>"


@pytest.mark.parametrize(
    ("record", "kind"),
    [
        ({"ok": True, "status": 200}, "2xx"),
        ({"ok": False, "status": 304, "error": {"type": "http_status"}}, "3xx"),
        ({"ok": False, "status": 404, "error": {"type": "http_status"}}, "4xx"),
        ({"ok": False, "status": 429, "error": {"type": "http_status"}}, "429"),
        ({"ok": False, "status": 503, "error": {"type": "http_status"}}, "5xx"),
        ({"ok": False, "status": 200, "error": {"type": "invalid_response"}}, "error"),
        ({"ok": False, "status": None, "error": {"type": "timeout"}}, "error"),
    ],
)
def test_each_record_has_one_kind(record: dict[str, Any], kind: str):
    assert kind_of(record) == kind


# ---- in a real browser ---------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("FANFETCH_REQUIRE_CHROMIUM"),
    reason="no chromium here (.ci/run installs it)",
)


@needs_chromium
@pytest.mark.slow  # a browser
async def test_the_page_draws_its_charts_in_chromium_and_asks_the_network_for_nothing(
    api: LoopbackAPI, tmp_path: Path
):
    from PIL import Image, ImageStat
    from playwright.async_api import async_playwright

    out = await a_mixed_run(api, tmp_path)
    # a loopback run's latencies may all fall in one or two bands: add records that span
    # three orders of magnitude, so the histogram has several bars to draw
    ok = next(r for r in read_records(out) if r["ok"])
    with out.open("ab") as f:
        for i, ms in enumerate([1.5, 4.0, 12.0, 40.0, 130.0, 400.0] * 3):
            f.write(orjson.dumps({**ok, "id": f"spread-{i}", "elapsed_ms": ms}) + b"\n")
    page_file = tmp_path / "report.html"
    assert (await run_cli("report", str(out), "-o", str(page_file), "-q")).status == 0
    url = page_file.as_uri()
    requested: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda request: requested.append(request.url))
            await page.goto(url, wait_until="load")
            drawn = await page.evaluate(
                """() => [...document.querySelectorAll('section svg')].map(svg => {
                    const box = svg.getBoundingClientRect();
                    const marks = [...svg.querySelectorAll('rect, path')].filter(m => {
                        const b = m.getBBox(); return b.width > 0 && b.height > 0; });
                    return {id: svg.closest('section').id, width: box.width,
                            height: box.height, marks: marks.length};
                })"""
            )
            shot = tmp_path / "shot.png"
            await page.screenshot(path=str(shot), full_page=True)
        finally:
            await browser.close()
    assert requested == [url]  # the page itself, and nothing else
    charts = {d["id"]: d for d in drawn}
    assert set(charts) == {"mix", "throughput", "latency-time", "latency"}
    for chart in charts.values():
        assert chart["width"] > 500 and chart["height"] > 30 and chart["marks"] > 0, chart
    assert charts["throughput"]["marks"] >= 2 and charts["latency"]["marks"] >= 3
    with Image.open(shot) as image:
        stats = ImageStat.Stat(image.convert("L"))
        colors = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert stats.stddev[0] > 10  # not one flat colour
    assert colors is None or len(colors) > 50  # text, bars and lines in many shades
