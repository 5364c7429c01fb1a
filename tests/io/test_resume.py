"""Resume: the index of recorded ids, torn-line repair, --redo-failed, and kill -9 then resume."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson
import pytest

from fanfetch._core._resume import IdSet, id_hash
from fanfetch._io._formats._jsonl import JSON_LINES
from tests.conftest import read_records, run_cli
from tests.servers import LoopbackAPI


def test_idset_holds_what_was_added_and_nothing_else_in_about_12_bytes_an_id():
    ids = IdSet(100_000)
    for i in range(100_000):
        assert ids.add(id_hash(i))
    assert not ids.add(id_hash(5))
    assert all(id_hash(i) in ids for i in range(0, 100_000, 7))
    assert id_hash("5") not in ids and id_hash(100_001) not in ids
    assert ids.nbytes / len(ids) < 12


def test_idset_grows_and_keeps_its_members():
    ids = IdSet()
    for i in range(5000):
        ids.add(id_hash(f"k{i}"))
    assert len(ids) == 5000 and all(id_hash(f"k{i}") in ids for i in range(5000))


def write_records(path: Path, records: Sequence[Mapping[str, object]], tail: bytes = b"") -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + tail)


def test_a_torn_last_line_is_cut_and_its_id_is_not_counted_done(tmp_path: Path):
    out = tmp_path / "out.jsonl"
    write_records(out, [{"id": 1, "ok": True}, {"id": 2, "ok": True}], tail=b'{"id": 3, "ok": tr')
    warnings: list[str] = []
    state = JSON_LINES.recover(str(out), warn=warnings.append)
    assert state.records == 2 and state.torn_bytes == len(b'{"id": 3, "ok": tr')
    assert id_hash(1) in state.done and id_hash(3) not in state.done
    assert out.read_bytes().endswith(b"}\n") and "torn" in warnings[0]


def test_redo_failed_rewrites_the_file_keeping_one_ok_record_per_id(tmp_path: Path):
    out = tmp_path / "out.jsonl"
    write_records(
        out,
        [
            {"id": 1, "ok": True},
            {"id": 2, "ok": False},
            {"id": 1, "ok": True},
            {"id": 3, "ok": True},
        ],
    )
    state = JSON_LINES.recover(str(out), redo_failed=True)
    assert state.dropped_failed == 1 and state.records == 2
    assert [r["id"] for r in read_records(out)] == [1, 3]
    assert id_hash(2) not in state.done
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fanfetch-")]


async def test_resume_skips_recorded_ids_and_appends_the_rest(api: LoopbackAPI, tmp_path: Path):
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(1, 11)))
    out = tmp_path / "out.jsonl"
    write_records(out, [{"id": i, "ok": True} for i in (1, 2, 3)] + [{"id": 4, "ok": False}])
    result = await run_cli("run", str(src), "-o", str(out), "--resume")
    assert result.status == 0, result.stderr
    assert "resuming: 4 requests already recorded" in result.stderr
    assert sorted(r["id"] for r in read_records(out)) == list(range(1, 11))
    assert sum(api.log.hits.values()) == 6

    again = await run_cli("run", str(src), "-o", str(out), "--resume", "--redo-failed", "-q")
    assert again.status == 0
    records = read_records(out)
    assert sorted(r["id"] for r in records) == list(range(1, 11)) and all(r["ok"] for r in records)
    assert api.log.hits["/ok/4"] == 1  # only the failed one was asked again


async def test_resume_with_ordered_output_has_no_gaps_to_wait_for(api: LoopbackAPI, tmp_path: Path):
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(1, 21)))
    out = tmp_path / "out.jsonl"
    write_records(out, [{"id": i, "ok": True} for i in range(1, 21, 2)])
    result = await run_cli("run", str(src), "-o", str(out), "--resume", "--ordered", "-q")
    assert result.status == 0
    assert [r["id"] for r in read_records(out)][10:] == list(range(2, 21, 2))


async def test_repeated_explicit_ids_are_reported_with_their_line_numbers(api: LoopbackAPI):
    lines = b"".join(
        orjson.dumps({"id": rid, "url": api.url("/ok/1")}) + b"\n"
        for rid in ("a", "b", "a", "c", "b")
    )
    result = await run_cli("run", "-", stdin=lines)
    assert len(result.records) == 5
    assert "2 line(s) repeat an id given earlier" in result.stderr
    assert "(lines 3, 5)" in result.stderr


ROUNDS = int(os.environ.get("FANFETCH_KILL_ROUNDS", "3"))


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_kill_9_at_a_random_moment_then_resume_is_exactly_once(
    api: LoopbackAPI, tmp_path: Path, round_: int
):
    total, concurrency = 3000, 20
    api.hold_seconds = 0.002
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/hold/{i}") + "\n" for i in range(1, total + 1)))
    out = tmp_path / "out.jsonl"
    moment = random.Random(round_).randrange(50, total - 200)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(out), "-q",
        "-c", str(concurrency), stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await api.wait_hits(moment)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    before = Counter(api.log.hits)

    result = await run_cli(
        "run", str(src), "-o", str(out), "-q", "--resume", "-c", str(concurrency)
    )
    assert result.status == 0, result.stderr
    ids = [r["id"] for r in read_records(out)]
    assert len(ids) == len(set(ids)) == total  # nothing lost, nothing twice
    refetched = [p for p, n in api.log.hits.items() if n > 1]
    assert all(before[p] == 1 for p in refetched)  # only the first run's requests were repeated
    assert len(refetched) <= concurrency  # ...and only those in flight at the kill
    print(f"kill at {moment}: lost 0, duplicated 0, refetched {len(refetched)} (<= {concurrency})")
