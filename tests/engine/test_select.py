"""--select: a JMESPath expression over each JSON body; the record keeps what it selects."""

from __future__ import annotations

import pytest

import fanfetch
from tests.conftest import read_records, run_cli


async def test_the_record_body_is_what_select_picks(tmp_path, api):
    (tmp_path / "in.txt").write_text("".join(api.url(f"/item/{n}") + "\n" for n in (1, 2)))
    out = tmp_path / "out.jsonl"
    result = await run_cli(
        "run", str(tmp_path / "in.txt"), "-o", str(out), "-q", "--select", "{n: n, name: name}"
    )
    assert result.status == 0, result.stderr
    bodies = {r["id"]: r["body"] for r in read_records(out)}
    assert bodies == {1: {"n": 1, "name": "item 1"}, 2: {"n": 2, "name": "item 2"}}


async def test_select_leaves_failures_and_non_json_bodies_whole(api):
    urls = [api.url("/status/404"), api.url("/notjson"), api.url("/item/3")]
    results = [r async for r in fanfetch.stream(urls, ordered=True, select="name", retries=0)]
    assert [r.ok for r in results] == [False, True, True]
    assert results[1].body == (await _plain(api)) and results[2].body == "item 3"


async def _plain(api) -> str:
    async with fanfetch.Fetcher() as f:
        return (await f.fetch(api.url("/notjson"))).text


async def test_a_selection_that_cannot_be_made_is_a_select_error_with_the_body_kept(api):
    results = [r async for r in fanfetch.stream([api.url("/item/4")], select="length(n)")]
    error = results[0].error
    assert error is not None and error.type == "select" and "length" in str(error)
    assert results[0].body["name"] == "item 4"  # the whole body, to look at


async def test_an_expression_that_is_not_jmespath_is_refused_before_any_request(tmp_path, api):
    with pytest.raises(fanfetch.ConfigError, match="not JMESPath"):
        fanfetch.Fetcher(select="{n: ")
    (tmp_path / "in.txt").write_text(api.url("/item/1") + "\n")
    result = await run_cli("run", str(tmp_path / "in.txt"), "--select", "{n: ")
    assert result.status == 2 and "--select" in result.stderr and "not JMESPath" in result.stderr
    assert sum(api.log.hits.values()) == 0
