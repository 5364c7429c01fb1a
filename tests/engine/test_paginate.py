"""--paginate: every page of each request, a record each (``page``, ``next``), chains
concurrent and pages in turn, through the same retries; --resume goes on from the last page."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from fanfetch import Request, Result
from tests.conftest import read_records, run_cli
from tests.servers import LoopbackAPI

MODES = {
    "link": ("link", []),
    "next": ("next:links.next", []),
    "cursor": ("cursor:cursor:c", []),
    "page": ("page:p", ["--items", "items"]),
    "page404": ("page:p", ["--items", "items"]),
    "offset": ("offset:o", ["--items", "items", "--page-size", "3"]),
}


def chains_input(
    api: LoopbackAPI, tmp_path: Path, kind: str, sizes: list[int], query: str = ""
) -> Path:
    src = tmp_path / "in.txt"
    urls = [api.url(f"/pages/{kind}/{n}/{i}") + query for i, n in enumerate(sizes)]
    src.write_text("".join(url + "\n" for url in urls))
    return src


def pages_by_id(records: list[dict[str, Any]]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = defaultdict(list)
    for r in records:
        found[r["id"]].append(r["page"])
    return found


@pytest.mark.parametrize("kind", MODES)
async def test_every_page_of_every_chain_is_a_record_of_its_own(
    api: LoopbackAPI, tmp_path: Path, kind: str
):
    sizes = [1, 2, 7, 50]
    mode, flags = MODES[kind]
    src = chains_input(api, tmp_path, kind, sizes)
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--paginate", mode, *flags)
    assert result.status == 0, result.stderr
    records = read_records(out)
    extra = 1 if kind == "page" else 0  # page: the empty page after the last is a page too
    assert {i: sorted(p) for i, p in pages_by_id(records).items()} == {
        i + 1: list(range(1, n + 1 + extra)) for i, n in enumerate(sizes)
    }
    assert all(r["ok"] for r in records)
    last = {r["id"]: r for r in records if r["next"] is None}
    if kind == "page404":  # the 404 after the last page ends the chain, a record of none
        assert last == {} and sum(api.log.hits.values()) == sum(sizes) + len(sizes)
    else:
        assert len(last) == len(sizes)  # each chain ends once, on its last page
    if kind in ("link", "next", "cursor", "offset"):
        assert sum(api.log.hits.values()) == sum(sizes)  # no page asked twice, none past the end


@pytest.mark.parametrize("kind", MODES)
async def test_each_page_s_record_names_the_url_it_fetched(
    api: LoopbackAPI, tmp_path: Path, kind: str
):
    mode, flags = MODES[kind]
    src = chains_input(api, tmp_path, kind, [4], query="?tag=x")
    result = await run_cli("run", str(src), "-q", "--paginate", mode, *flags)
    assert result.status == 0, result.stderr
    fetched = [r["url"].removeprefix(api.url("")) for r in result.records]
    assert len(set(fetched)) == len(fetched) >= 4
    assert set(fetched) <= set(api.page_hits)  # what the server was asked, page by page
    assert len(api.page_hits) - len(fetched) == (1 if kind == "page404" else 0)  # past the end
    if kind not in ("link", "next"):  # the URL's own query goes on (a link is the server's)
        assert all("tag=x" in url for url in fetched)


async def test_a_503_mid_chain_is_retried_and_the_chain_goes_on(api: LoopbackAPI, tmp_path: Path):
    src = chains_input(api, tmp_path, "link", [6], query="?fail=3")
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--paginate", "link",
                           "--backoff-base", "0")  # fmt: skip
    assert result.status == 0, result.stderr
    records = read_records(out)
    assert sorted(r["page"] for r in records) == [1, 2, 3, 4, 5, 6]
    assert [r["attempts"] for r in records if r["page"] == 3] == [2]


@pytest.mark.slow
async def test_a_429_with_retry_after_in_a_chain_pauses_the_host_and_the_chain_goes_on(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.txt"
    urls = [api.url("/pages/link/4/slow") + "?throttle=2"]
    urls += [api.url(f"/pages/link/40/{i}") for i in range(4)]
    src.write_text("".join(u + "\n" for u in urls))
    api.hold_seconds = 0.005
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "-c", "5", "--paginate", "link",
                           "--backoff-base", "0.01")  # fmt: skip
    assert result.status == 0, result.stderr
    records = read_records(out)
    assert len(records) == 4 + 4 * 40
    assert [r["attempts"] for r in records if r["id"] == 1 and r["page"] == 2] == [2]
    at = api.throttled_at
    arrivals = [t for times in api.log.times.values() for t in times]
    # requests already on the wire when the 429 left may still arrive in the first moments
    assert [t for t in arrivals if at + 0.05 < t < at + 0.95] == []
    assert len([t for t in arrivals if t >= at + 0.95]) > 10  # and the chains went on after


async def test_a_next_link_that_loops_ends_the_chain_with_an_error_record(
    api: LoopbackAPI, tmp_path: Path
):
    src = chains_input(api, tmp_path, "loop", [5])
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--paginate", "link")
    assert result.status == 1
    records = sorted(read_records(out), key=lambda r: r["page"])
    # page 2 links to ?page=1: page 1 again under another URL, fetched once; its link
    # (?page=2) is one the chain fetched already, so page 4 is the error
    assert [r["page"] for r in records] == [1, 2, 3, 4]
    error = records[-1]["error"]
    assert error["type"] == "pagination" and "again" in error["message"]
    assert sum(api.log.hits.values()) == 3  # nothing was asked twice


async def test_max_pages_caps_each_chain(api: LoopbackAPI, tmp_path: Path):
    src = chains_input(api, tmp_path, "cursor", [10, 2])
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--paginate", "cursor:cursor:c",
                           "--max-pages", "4")  # fmt: skip
    assert result.status == 0, result.stderr
    assert {i: sorted(p) for i, p in pages_by_id(read_records(out)).items()} == {
        1: [1, 2, 3, 4],
        2: [1, 2],
    }
    assert "1 chain(s) stopped at --max-pages 4 while their last page named another" in (
        result.stderr
    )


def test_a_chain_has_a_page_limit_unless_none_is_asked_for():
    """An endless chain of ever-new cursors (about 220 bytes a page) must end by itself."""
    from fanfetch import Config, make_config
    from fanfetch._core._config import DEFAULT_MAX_PAGES

    assert Config().pages.max_pages == DEFAULT_MAX_PAGES == 10_000
    assert make_config(max_pages=None).pages.max_pages is None


async def test_select_keeps_what_it_picks_while_the_next_link_is_read_from_the_whole_body(
    api: LoopbackAPI, tmp_path: Path
):
    src = chains_input(api, tmp_path, "next", [3])
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--paginate", "next:links.next",
                           "--select", "items")  # fmt: skip
    assert result.status == 0, result.stderr
    bodies = {r["page"]: r["body"] for r in read_records(out)}
    assert bodies == {k: [f"{k}.0", f"{k}.1", f"{k}.2"] for k in (1, 2, 3)}


async def test_paginate_refuses_what_it_does_not_go_with_yet(api: LoopbackAPI, tmp_path: Path):
    src = chains_input(api, tmp_path, "link", [2])
    for flags in (["--workers", "2"], ["--paginate", "pages:p"]):
        mode = [] if "--paginate" in flags else ["--paginate", "link"]
        result = await run_cli("run", str(src), *mode, *flags)
        assert result.status == 2 and "Traceback" not in result.stderr, result.stderr
    assert sum(api.log.hits.values()) == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "round_"), [("link", 0), ("link", 1), ("next", 0), ("cursor", 0), ("page", 0),
                         ("offset", 0)],
)  # fmt: skip
async def test_kill_9_then_resume_fetches_no_recorded_page_again(
    api: LoopbackAPI, tmp_path: Path, kind: str, round_: int
):
    chains, pages, concurrency = 60, 20, 10
    mode, flags = MODES[kind]
    api.hold_seconds = 0.002
    src = chains_input(api, tmp_path, kind, [pages] * chains)
    out = tmp_path / "out.jsonl"
    moment = random.Random(f"{kind}{round_}").randrange(50, chains * pages - 100)
    run = ["-o", str(out), "-q", "-c", str(concurrency), "--paginate", mode, *flags]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), *run,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await api.wait_hits(moment)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    result = await run_cli("run", str(src), *run, "--resume")
    assert result.status == 0, result.stderr
    records = read_records(out)
    keys = [(r["id"], r["page"]) for r in records]
    per_chain = pages + (1 if kind == "page" else 0)  # page: the empty page after the last
    assert len(keys) == len(set(keys)) == chains * per_chain  # every (id, page) exactly once
    again = sum(n - 1 for n in api.page_hits.values() if n > 1)
    assert again <= concurrency  # only pages in flight at the kill were fetched again


@pytest.mark.parametrize(
    ("mode", "extra"),
    [
        ("link", {}),
        ("next:next", {}),
        ("cursor:next_cursor:cursor", {}),
        ("page:page", {"items": "items"}),
        ("offset:offset", {"items": "items", "page_size": 10}),
    ],
)
def test_the_embedded_api_pages_every_way_paginate_follows(mode: str, extra: dict[str, Any]):
    """What the recipes run against: 23 issues in pages of 10, every mode, every issue once."""
    import fanfetch

    with fanfetch.MockAPI(latency_ms=0) as api:
        urls = [f"{api.url}/repos/{name}/issues?total={n}" for name, n in (("a", 23), ("b", 10))]
        results = fanfetch.run(urls, paginate=mode, select="items[].number", **extra)
    numbers: dict[int, list[int]] = defaultdict(list)
    for r in results:
        assert r.ok, r.error
        numbers[r.id].extend(r.json())
    assert {k: sorted(v) for k, v in numbers.items()} == {
        1: list(range(1, 24)),
        2: list(range(1, 11)),
    }


@pytest.mark.slow  # several runs each: make test runs it, test-fast not
@pytest.mark.parametrize("suffix", [".csv", ".sqlite", ".parquet", ".duckdb"])
async def test_every_page_lands_in_a_table_output_too(
    api: LoopbackAPI, tmp_path: Path, suffix: str
):
    src = chains_input(api, tmp_path, "link", [3, 5])
    out = tmp_path / f"out{suffix}"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--paginate", "link")
    assert result.status == 0, result.stderr
    back = tmp_path / "back.jsonl"
    assert (await run_cli("export", str(out), "-o", str(back), "-q")).status == 0
    assert {i: sorted(p) for i, p in pages_by_id(read_records(back)).items()} == {
        1: [1, 2, 3],
        2: [1, 2, 3, 4, 5],
    }


@pytest.mark.parametrize("kind", ["link", "page404"])
async def test_ordered_writes_requests_in_input_order_and_each_chain_s_pages_in_order(
    api: LoopbackAPI, tmp_path: Path, kind: str
):
    """Long chains first, so later chains finish first and must wait; a bad line between
    them has its place too; page404 chains end without a record saying so."""
    mode, flags = MODES[kind]
    sizes = [30, 1, 12, 3, 25, 2, 8, 1]
    src = chains_input(api, tmp_path, kind, sizes)
    lines = src.read_text().splitlines()
    lines.insert(3, "ftp://127.0.0.1/not-http")
    src.write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--ordered", "-c", "8",
                           "--paginate", mode, *flags)  # fmt: skip
    assert result.status == 1, result.stderr  # the bad line
    got = [(r["id"], r.get("page")) for r in read_records(out)]
    ids = [i + 1 if i < 3 else i + 2 for i in range(len(sizes))]
    expected: list[tuple[int, int | None]] = [
        (rid, p) for rid, n in zip(ids, sizes, strict=True) for p in range(1, n + 1)
    ]
    expected.insert(sum(sizes[:3]), (4, None))
    assert got == expected


def test_the_python_api_orders_pages_too(api_in_thread: str):
    import fanfetch

    urls = [f"{api_in_thread}/pages/cursor/{n}/{i}" for i, n in enumerate([9, 1, 4])]
    results = list(fanfetch.iter_results(urls, ordered=True, paginate="cursor:cursor:c"))
    assert [(r.id, r.extra["page"]) for r in results if r.extra] == [
        (1, p) for p in range(1, 10)
    ] + [(2, 1)] + [(3, p) for p in range(1, 5)]


@pytest.mark.parametrize("how", ["cli", "api"])
def test_resume_goes_on_with_a_chain_whose_first_page_alone_was_recorded(
    api_in_thread: str, tmp_path: Path, how: str
):
    """As after a kill -9 between pages 1 and 2: the CLI and the Python API both write
    pages 2 to 5 and fetch page 1 no more."""
    import subprocess

    import fanfetch

    url = f"{api_in_thread}/pages/link/5/0"
    out = tmp_path / "out.jsonl"
    fanfetch.run([url], paginate="link", output=out, max_pages=1)
    [first] = read_records(out)  # max_pages=1 ended the chain: open it again, as a kill would
    assert first["page"] == 1 and first["next"] is None
    out.write_text(json.dumps({**first, "next": url + "?page=2"}) + "\n")
    if how == "api":
        fanfetch.run([url], paginate="link", output=out, resume=True)
    else:
        src = tmp_path / "in.txt"
        src.write_text(url + "\n")
        cli = [sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(out), "-q",
               "--paginate", "link", "--resume"]  # fmt: skip
        assert subprocess.run(cli, timeout=60).returncode == 0
    assert [r["page"] for r in read_records(out)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("header", "target"),
    [
        ('<a>; rel="next"', "a"),
        ('<a>; rel="prev", <b>; rel="next"', "b"),
        ("<a>; rel=next", "a"),
        ('<a>; rel="prev next"', "a"),
        ('<a>; rel="first"', None),
        ('<a?x=1,2>; title="next one"; rel="last"', None),
        (
            '<https://127.0.0.1/?page=2>; rel="next", <https://127.0.0.1/?page=9>; rel="last"',
            "https://127.0.0.1/?page=2",
        ),
    ],
)
def test_the_next_link_is_read_as_rfc_8288_writes_it(header: str, target: str | None):
    from fanfetch._engine._paginate import next_link

    assert next_link({"Link": header}) == target


@pytest.mark.slow  # several runs each: make test runs it, test-fast not
async def test_the_demo_shows_a_paginated_job(tmp_path: Path):
    out = tmp_path / "demo.jsonl"
    result = await run_cli("demo", "-n", "50", "--paginate", "--latency-ms", "0", "-q",
                           "-o", str(out))  # fmt: skip
    assert result.status == 0, result.stderr
    assert {i: sorted(p) for i, p in pages_by_id(read_records(out)).items()} == {
        i: list(range(1, 11)) for i in range(1, 6)
    }


async def test_the_input_s_meta_is_carried_on_every_page(api: LoopbackAPI, tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "r", "url": api.url("/pages/link/4/m"), "meta": {"k": 1}}))
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--paginate", "link")
    assert result.status == 0, result.stderr
    records = read_records(out)
    assert [(r["id"], r["page"], r["meta"]) for r in records] == [
        ("r", p, {"k": 1}) for p in range(1, 5)
    ]


@pytest.mark.parametrize("transport", ["lean", "aiohttp", "http2"])
async def test_a_next_link_in_a_link_field_of_its_own_is_followed(tmp_path: Path, transport: str):
    """Servers send rel="first" and rel="next" as two Link fields: the chain went on only
    when next came first. The record's headers keep both, joined as RFC 9110 allows."""
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        n = int(request.query.get("page", "1"))
        response = web.json_response({"page": n})
        response.headers.add("Link", '</p?page=1>; rel="first"')
        if n < 3:
            response.headers.add("Link", f'</p?page={n + 1}>; rel="next"')
        return response

    from tests.servers import serve_routes

    async with serve_routes({"/p": page}) as base:
        result = await run_cli("run", "-", "-q", "--paginate", "link", "--include-headers",
                               "--transport", transport, stdin=f"{base}/p\n".encode())  # fmt: skip
    assert result.status == 0, result.stderr
    records = sorted(result.records, key=lambda r: r["page"])
    assert [r["body"]["page"] for r in records] == [1, 2, 3]
    link = {k.lower(): v for k, v in records[0]["headers"].items()}["link"]
    assert link == '</p?page=1>; rel="first", </p?page=2>; rel="next"'


def test_a_page_number_that_is_no_number_ends_the_chain_with_an_error():
    """A resumed chain whose recorded next is "abc" asked for ?p=abc; counting on from it
    raised ValueError out of the run."""
    from fanfetch._core._exceptions import PaginationError
    from fanfetch._engine._paginate import Paginator

    pager = Paginator("page:p", items="items")
    fetched = Request("http://127.0.0.1:9/list?p=abc")
    page = Result(fetched, status=200, content=b'{"items": [1]}', content_type="application/json")
    with pytest.raises(PaginationError, match="not a number"):
        pager.after(fetched, page, 2)


async def test_redo_failed_asks_again_only_the_failed_page_and_what_follows_it(
    api: LoopbackAPI, tmp_path: Path
):
    """Chain 0's second page fails once (a 503, no retries); the other chains' pages share
    their ids with their first pages, and none of them is dropped and asked again."""
    src = tmp_path / "in.txt"
    urls = [api.url("/pages/link/3/0?fail=2")] + [api.url(f"/pages/link/3/{i}") for i in (1, 2)]
    src.write_text("".join(url + "\n" for url in urls))
    out = tmp_path / "out.jsonl"
    run = ["-o", str(out), "-q", "--paginate", "link", "--retries", "0"]
    first = await run_cli("run", str(src), *run)
    assert first.status == 1
    again = await run_cli("run", str(src), *run, "--resume", "--redo-failed")
    assert again.status == 0, again.stderr
    assert pages_by_id(read_records(out)) == {1: [1, 2, 3], 2: [1, 2, 3], 3: [1, 2, 3]}
    asked_twice = [path for path, n in api.page_hits.items() if n > 1]
    assert asked_twice == ["/pages/link/3/0?page=2&fail=2"]  # the 503, then its answer
