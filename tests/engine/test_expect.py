"""--expect and --schema: a 2xx is a success only when its body passes; a body that fails is
an attempt that failed (invalid_response), retried like a 5xx; the record keeps the last body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import read_records, run_cli
from tests.servers import LoopbackAPI

SCHEMA = {
    "type": "object",
    "required": ["state", "value"],
    "properties": {"state": {"const": "done"}, "value": {"type": "integer"}},
}


def jobs(api: LoopbackAPI, tmp_path: Path, pending: dict[int, str]) -> Path:
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/job/{i}?pending={p}") + "\n" for i, p in pending.items()))
    return src


async def _run(tmp_path: Path, src: Path, *flags: str) -> tuple[int, dict[int, dict[str, Any]]]:
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--backoff-base", "0",
                           "--retries", "2", *flags)  # fmt: skip
    return result.status, {r["id"]: r for r in read_records(out)}


async def test_expect_retries_a_body_that_fails_and_keeps_the_last_one(
    api: LoopbackAPI, tmp_path: Path
):
    src = jobs(api, tmp_path, {1: "0", 2: "1", 3: "never"})
    status, records = await _run(tmp_path, src, "--expect", "state == 'done'")
    assert status == 1
    assert (records[1]["ok"], records[1]["attempts"]) == (True, 1)  # passes at once
    assert (records[2]["ok"], records[2]["attempts"]) == (True, 2)  # fails once, then passes
    assert records[2]["body"] == {"state": "done", "value": 2}
    bad = records[3]  # always fails: every attempt spent, the last body kept
    assert (bad["ok"], bad["attempts"], bad["status"]) == (False, 3, 200)
    assert bad["error"]["type"] == "invalid_response" and "--expect" in bad["error"]["message"]
    assert bad["body"] == {"state": "pending"}
    assert api.job_asks == {"/job/1": 1, "/job/2": 2, "/job/3": 3}


async def test_schema_retries_a_body_that_does_not_follow_it(api: LoopbackAPI, tmp_path: Path):
    schema = tmp_path / "job.schema.json"
    schema.write_text(json.dumps(SCHEMA))
    src = jobs(api, tmp_path, {1: "0", 2: "2", 3: "never"})
    status, records = await _run(tmp_path, src, "--schema", str(schema), "--include-attempts")
    assert status == 1
    assert [records[i]["attempts"] for i in (1, 2, 3)] == [1, 3, 3]
    assert records[2]["ok"] and not records[3]["ok"]
    message = records[3]["error"]["message"]
    assert message.startswith("--schema:") and "value" in message
    assert [h["error"] for h in records[3]["history"]] == ["invalid_response"] * 3


async def test_a_bad_expression_or_schema_is_refused_before_any_request(
    api: LoopbackAPI, tmp_path: Path
):
    src = jobs(api, tmp_path, {1: "0"})
    (tmp_path / "bad.json").write_text('{"type": 12}')
    for flags, hint in (
        (["--expect", "state =="], "not JMESPath"),
        (["--schema", str(tmp_path / "missing.json")], "cannot read it"),
        (["--schema", str(tmp_path / "bad.json")], "not a JSON Schema"),
    ):
        result = await run_cli("run", str(src), *flags)
        assert result.status == 2 and hint in result.stderr, result.stderr
        assert flags[0] in result.stderr and "Traceback" not in result.stderr
    assert sum(api.log.hits.values()) == 0
