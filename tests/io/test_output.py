"""Writing records: whole lines, batched, ordered within a bounded window, errors surfaced."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson
import pytest

from fanfetch import OutputError, Request, Result
from fanfetch._io._output import OrderedSink, RecordWriter
from fanfetch._io._records import encode_record
from fanfetch._io._reorder import Reorder
from tests.conftest import run_cli
from tests.servers import LoopbackAPI


def result(seq: int) -> Result:
    return Result(Request(f"http://127.0.0.1/{seq}", id=seq + 1, seq=seq), status=200)


def test_records_are_written_as_whole_lines_when_the_buffer_fills_and_on_close(tmp_path: Path):
    path = tmp_path / "out.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    writer = RecordWriter(fd, buffer_bytes=500)
    for seq in range(10):
        writer.write(result(seq))
    written = path.read_bytes()
    assert written and written.endswith(b"\n")  # some flushed already, each line whole
    writer.close()
    os.close(fd)
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == list(range(1, 11))


def test_a_closed_pipe_raises_output_error_not_a_silent_drop():
    read_end, write_end = os.pipe()
    os.close(read_end)
    writer = RecordWriter(write_end)
    writer.write(result(0))
    with pytest.raises(OutputError, match="cannot write the output"):
        writer.flush()
    os.close(write_end)


def test_meta_that_json_cannot_hold_is_written_as_text_not_a_crash():
    record = {"id": 1, "meta": {1: object()}}
    assert orjson.loads(encode_record(record))["meta"]["1"].startswith("<object")


async def test_ordered_sink_restores_input_order_and_holds_at_most_the_window():
    out: list[int] = []
    peak = 0

    async def inner(r: Result) -> None:
        out.append(r.request.seq)

    sink = OrderedSink(inner, window=4)

    async def put(seq: int) -> None:
        nonlocal peak
        await sink.put(result(seq))
        peak = max(peak, sink.held)

    # seq 0 comes last: 1, 2, 3 wait in the window, 4 and 5 must wait for it to move
    late = [asyncio.ensure_future(put(s)) for s in (1, 2, 3, 4, 5)]
    await asyncio.sleep(0)
    assert out == [] and sum(t.done() for t in late) == 3
    await put(0)
    await asyncio.gather(*late)
    assert out == [0, 1, 2, 3, 4, 5]
    assert peak <= 4


@pytest.mark.parametrize("tail", [b"", b"\n", b"\r\n", b"  \n"])
def test_a_json_body_is_written_as_its_own_bytes_even_with_a_trailing_newline(tail: bytes):
    body = b'{"b": 1, "a": [2, 3]}'  # spaces and key order that re-encoding would change
    result = Result(
        Request("http://127.0.0.1/1", id=1), status=200, content=body + tail,
        content_type="application/json",
    )  # fmt: skip
    line = encode_record(result.to_dict(for_writing=True))
    assert b'"body":' + body + b"," in line and line.count(b"\n") == 1
    assert orjson.loads(line)["body"] == {"b": 1, "a": [2, 3]}


def test_a_pretty_printed_json_body_is_re_encoded_onto_one_line():
    result = Result(
        Request("http://127.0.0.1/1", id=1), status=200, content=b'{\n  "a": 1\n}\n',
        content_type="application/json",
    )  # fmt: skip
    line = encode_record(result.to_dict(for_writing=True))
    assert line.count(b"\n") == 1 and orjson.loads(line)["body"] == {"a": 1}


async def test_the_reorder_window_hands_out_in_seq_order_and_holds_back_what_runs_ahead():
    ordered = Reorder[bytes](window=3)
    ordered.add(2, b"c")
    ordered.add(1, b"b")
    assert ordered.take_due() == [] and ordered.holds(3) and not ordered.holds(2)
    waiting = asyncio.ensure_future(ordered.admitted(3))
    await asyncio.sleep(0)
    assert not waiting.done()
    ordered.add(0, b"a")
    assert ordered.take_due() == [b"a", b"b", b"c"]
    await asyncio.wait_for(waiting, 1)  # the window moved on: seq 3 may be dealt now
    ordered.check_empty()
    ordered.add(5, b"f")
    with pytest.raises(RuntimeError, match="ended holding 1"):
        ordered.check_empty()


async def test_a_full_disk_leaves_only_whole_lines_and_resume_finishes_the_job(tmp_path):
    import resource

    from tests.conftest import read_records, run_cli
    from tests.servers import LoopbackAPI

    api = await LoopbackAPI().start()
    try:
        src = tmp_path / "in.txt"
        src.write_text("".join(api.url(f"/ok/{i}") + "\n" for i in range(300)))
        out = tmp_path / "out.jsonl"

        def small_disk() -> None:  # writes past 20,000 bytes fail (EFBIG) part way, as ENOSPC
            resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

        full = await run_cli("run", str(src), "-o", str(out), "-q", preexec_fn=small_disk)
        assert full.status == 1 and "cannot write the output" in full.stderr
        data = out.read_bytes()
        assert 0 < len(data) <= 20_000 and data.endswith(b"\n")  # no torn last line
        kept = read_records(out)  # every line whole
        again = await run_cli("run", str(src), "-o", str(out), "-q", "--resume")
        assert again.status == 0, again.stderr
        ids = [r["id"] for r in read_records(out)]
        assert sorted(ids) == list(range(1, 301)) and len(kept) < 300
    finally:
        await api.stop()


async def test_a_body_that_cannot_be_saved_is_a_save_error(api: LoopbackAPI, tmp_path: Path):
    """A full disk under --save-dir was an undocumented error type "error"."""
    import resource

    def small_disk() -> None:  # a file past 10,000 bytes fails (EFBIG), as ENOSPC would
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))

    lines = f"{api.url('/big/50000')}\n{api.url('/ok/2')}\n".encode()
    saved = str(tmp_path / "bodies")
    result = await run_cli("run", "-", "-q", "--retries", "0", "--save-dir", saved,
                           stdin=lines, preexec_fn=small_disk)  # fmt: skip
    records = sorted(result.records, key=lambda r: r["id"])
    assert records[0]["error"]["type"] == "save", records[0]
    assert "cannot save the body" in records[0]["error"]["message"]
    assert records[1]["ok"] and records[1]["bytes"] > 0


async def test_temporary_files_a_killed_run_left_are_cleaned_by_the_next_run(
    api: LoopbackAPI, tmp_path: Path
):
    """A kill -9 during a Parquet move or a --save-dir write left them for ever."""
    src = tmp_path / "in.txt"
    src.write_text(api.url("/ok/1") + "\n")
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    left = [tmp_path / ".out.parquet.fanfetch-k1x2.parquet", bodies / ".7.0123456789ab.part",
            tmp_path / ".out.jsonl.fanfetch-abc.tmp"]  # fmt: skip
    kept = [tmp_path / ".other.parquet.fanfetch-k1x2.parquet", bodies / "keep.part"]
    for path in left + kept:
        path.write_bytes(b"half")
    for args in (["-o", str(tmp_path / "out.parquet"), "--save-dir", str(bodies)],
                 ["-o", str(tmp_path / "out.jsonl"), "--resume"]):  # fmt: skip
        result = await run_cli("run", str(src), "-q", *args)
        assert result.status == 0, result.stderr
    assert [p for p in left if p.exists()] == [] and all(p.exists() for p in kept)
