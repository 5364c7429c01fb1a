"""--transform: a user function on each ok record, in a process pool, errors as records."""

from __future__ import annotations

import os

import fanfetch
from tests.conftest import run_cli
from tests.servers import LoopbackAPI
from tests.transform_funcs import summarize


async def test_transform_runs_in_other_processes_and_fills_transformed(api: LoopbackAPI):
    lines = "".join(api.url(f"/ok/{i}") + "\n" for i in range(12)).encode()
    result = await run_cli(
        "run", "-", "-q", "--transform", "tests.transform_funcs:summarize",
        "--transform-workers", "2", stdin=lines,
    )  # fmt: skip
    assert result.status == 0, result.stderr
    records = result.records
    assert len(records) == 12
    for record in records:
        assert record["transformed"]["id_twice"] == record["body"]["id"] * 2
        # run by a child of the fanfetch process, not by fanfetch itself (whose parent is us)
        assert record["transformed"]["ppid"] != os.getpid()


async def test_a_raising_transform_makes_that_record_a_transform_error(api: LoopbackAPI):
    lines = (api.url("/ok/1") + "\n" + api.url("/status/404") + "\n").encode()
    result = await run_cli(
        "run", "-", "-q", "--transform", "tests.transform_funcs:explode", stdin=lines
    )
    records = {r["id"]: r for r in result.records}
    assert records[1]["ok"] is False and records[1]["status"] == 200
    assert records[1]["error"] == {"type": "transform", "message": "ValueError: cannot handle 1"}
    assert records[2]["error"]["type"] == "http_status"  # not ok: never transformed
    assert "transformed" not in records[2]


async def test_a_transform_that_cannot_be_imported_is_a_usage_error():
    result = await run_cli("run", "-", "--transform", "no_such_module:f", stdin=b"")
    assert result.status == 2 and "cannot import" in result.stderr


def test_the_api_takes_a_function_and_runs_it_off_the_engine_process(api_in_thread: str):
    results = fanfetch.run(
        [api_in_thread + f"/ok/{i}" for i in range(6)], transform=summarize, transform_workers=2
    )
    pids = {r.to_dict()["transformed"]["pid"] for r in results}
    assert all(r.ok for r in results) and os.getpid() not in pids


async def test_a_transform_process_that_dies_fails_only_its_own_record(api: LoopbackAPI):
    lines = "".join(api.url(f"/ok/{i}") + "\n" for i in range(1, 41)).encode()
    result = await run_cli(
        "run", "-", "-q", "--transform", "tests.transform_funcs:die_on_three",
        "--transform-workers", "2", stdin=lines,
    )  # fmt: skip
    records = {r["id"]: r for r in result.records}
    assert sorted(records) == list(range(1, 41))
    assert records[3]["error"]["type"] == "transform"
    assert "died" in records[3]["error"]["message"]
    others = [r for i, r in records.items() if i != 3]
    assert all(r["ok"] and r["transformed"] == "fine" for r in others), [
        r["error"] for r in others if not r["ok"]
    ]
