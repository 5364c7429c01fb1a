"""Cursors in the JSON body, as GraphQL and POST search APIs take them:
``--paginate cursor:EXPR:json.PATH`` puts each page's cursor at PATH in the body, and
``--has-next EXPR`` ends a chain on the page that says it is the last (any mode); a chain
resumed after a cut goes on from its last recorded page, each page once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.conftest import read_records, run_cli
from tests.servers import LoopbackAPI

MODE = "cursor:data.search.pageInfo.endCursor:json.variables.after"
HAS_NEXT = "data.search.pageInfo.hasNextPage"


def _queries(api: LoopbackAPI, tmp_path: Path, n: int, pages: int) -> Path:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(
        json.dumps({"id": f"q{i}", "url": api.url(f"/graphql/{pages}"), "method": "POST",
                    "json": {"query": f"q{i}", "variables": {"first": 10}}}) + "\n"
        for i in range(n)
    ))  # fmt: skip
    return src


async def test_a_graphql_connection_is_followed_by_its_body_cursor_until_has_next_is_false(
    api: LoopbackAPI, tmp_path: Path
):
    src, out = _queries(api, tmp_path, 2, pages=3), tmp_path / "out.jsonl"
    done = await run_cli("run", str(src), "-o", str(out), "-q", "--paginate", MODE,
                         "--has-next", HAS_NEXT)  # fmt: skip
    assert done.status == 0, done.stderr
    records = read_records(out)
    assert sorted((r["id"], r["page"]) for r in records) == [
        (q, p) for q in ("q0", "q1") for p in (1, 2, 3)
    ]
    # the last page named a cursor too: only --has-next ended the chain, after page 3
    assert {r["next"] for r in records if r["page"] == 3} == {None}
    assert all(n == 1 for n in api.page_hits.values()) and len(api.page_hits) == 6
    assert {r["body"]["data"]["search"]["nodes"][0]["of"] for r in records} == {"q0", "q1"}


async def test_without_has_next_the_chain_would_ask_past_the_last_page(
    api: LoopbackAPI, tmp_path: Path
):
    src = _queries(api, tmp_path, 1, pages=3)
    done = await run_cli("run", str(src), "-q", "--paginate", MODE, "--max-pages", "5")
    assert done.status == 0, done.stderr
    assert len(done.records) == 5  # endCursor never runs out: max_pages ends it


async def test_a_cut_body_cursor_chain_resumes_from_its_last_page_each_page_once(
    api: LoopbackAPI, tmp_path: Path
):
    src, out = _queries(api, tmp_path, 3, pages=4), tmp_path / "out.jsonl"
    flags = ("-q", "-c", "1", "--paginate", MODE, "--has-next", HAS_NEXT)
    first = await run_cli("run", str(src), "-o", str(out), *flags, "--limit", "6")
    assert first.status == 3, first.stderr
    again = await run_cli("run", str(src), "-o", str(out), *flags, "--resume")
    assert again.status == 0, again.stderr
    pages = Counter((r["id"], r["page"]) for r in read_records(out))
    assert sorted(pages) == [(q, p) for q in ("q0", "q1", "q2") for p in (1, 2, 3, 4)]
    assert max(pages.values()) == 1 and all(n == 1 for n in api.page_hits.values())


async def test_has_next_without_paginate_is_a_usage_error(api: LoopbackAPI, tmp_path: Path):
    src = _queries(api, tmp_path, 1, pages=2)
    done = await run_cli("run", str(src), "--has-next", HAS_NEXT)
    assert done.status == 2 and "--has-next" in done.stderr and "--paginate" in done.stderr
