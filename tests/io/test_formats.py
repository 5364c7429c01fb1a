"""Output formats: each read back by its own reader (csv, sqlite3, pyarrow, duckdb) with one
row per request and the right values; exactly once after kill -9 and --resume; --select keys
as typed columns; fanfetch export round trips; missing extras and mismatches as usage errors."""

from __future__ import annotations

import asyncio
import csv
import json
import random
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest

from tests.conftest import read_records, run_cli
from tests.servers import LoopbackAPI

FORMATS = ["jsonl", "csv", "sqlite", "parquet", "duckdb"]
SUFFIX = {"jsonl": ".jsonl", "csv": ".csv", "sqlite": ".db", "parquet": ".parquet",
          "duckdb": ".duckdb"}  # fmt: skip
SELECT = "{n: n, name: name, price: price, active: active, tags: tags}"


def native_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    """The rows as the format's own reader gives them (not fanfetch's)."""
    if fmt == "jsonl":
        return read_records(path)
    if fmt == "csv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    if fmt == "sqlite":
        conn = sqlite3.connect(path)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM records")]
        finally:
            conn.close()
    rows: list[dict[str, Any]]
    if fmt == "parquet":
        rows = pq.read_table(path).to_pylist()
        return rows
    with duckdb.connect(str(path)) as con:
        rows = con.sql("SELECT * FROM records").to_arrow_table().to_pylist()
    return rows


def ids(path: Path, fmt: str) -> list[Any]:
    rows = native_rows(path, fmt)
    return [r["id"] if fmt in ("jsonl", "sqlite") else _id(r["id"]) for r in rows]


def _id(text: str) -> Any:
    return int(text) if text.isdigit() else text


def inputs(api: LoopbackAPI, tmp_path: Path, n: int, *, bad: bool = True) -> Path:
    src = tmp_path / "in.txt"
    lines = [api.url(f"/item/{i}") for i in range(1, n + 1)]
    if bad:
        lines.append("ftp://127.0.0.1/not-http")  # an invalid line is a row too
    src.write_text("".join(line + "\n" for line in lines))
    return src


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
async def test_ten_thousand_requests_land_as_one_row_each_read_by_the_format_s_own_reader(
    api: LoopbackAPI, tmp_path: Path, fmt: str
):
    n = 10_000
    src = inputs(api, tmp_path, n)
    out = tmp_path / f"out{SUFFIX[fmt]}"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "-c", "50", timeout=120)
    assert result.status == 1, result.stderr  # the invalid line is not ok
    rows = native_rows(out, fmt)
    got = ids(out, fmt)
    assert len(rows) == len(set(got)) == n + 1 and set(got) == set(range(1, n + 2))
    by_id = dict(zip(got, rows, strict=True))
    row = by_id[17]
    body = row["body"] if fmt == "jsonl" else json.loads(row["body"])
    assert body["name"] == "item 17" and body["price"] == 25.5
    assert str(row["status"]) == "200" and str(row["ok"]).lower() in ("true", "1")
    bad = by_id[n + 1]
    kind = bad["error"]["type"] if fmt == "jsonl" else bad["error_type"]
    assert kind == "invalid_request"
    assert not out.with_name(out.name + ".journal").exists()  # moved in at the end


@pytest.mark.slow  # several runs each: make test runs it, test-fast not
async def test_each_format_holds_the_right_values_and_reads_back_as_the_records(
    api: LoopbackAPI, tmp_path: Path
):
    src = inputs(api, tmp_path, 30)
    base = tmp_path / "out.jsonl"
    assert (await run_cli("run", str(src), "-o", str(base), "-q")).status == 1
    expected = {r["id"]: r for r in read_records(base)}
    for fmt in FORMATS[1:]:
        out = tmp_path / f"out{SUFFIX[fmt]}"
        result = await run_cli("run", str(src), "-o", str(out), "-q")
        assert result.status == 1, result.stderr
        back = tmp_path / f"back-{fmt}.jsonl"
        assert (await run_cli("export", str(out), "-o", str(back), "-q")).status == 0
        got = {r["id"]: r for r in read_records(back)}
        assert got.keys() == expected.keys(), fmt
        for rid, record in expected.items():
            mine = dict(got[rid])
            assert mine.pop("elapsed_ms") >= 0  # each run its own times
            started = mine.pop("started_at")
            assert (started is None) == (record["started_at"] is None), (fmt, rid)
            want = {k: v for k, v in record.items() if k not in ("elapsed_ms", "started_at")}
            assert mine == want, (fmt, rid)


@pytest.mark.parametrize("fmt", ["csv", "sqlite", "parquet", "duckdb"])
async def test_select_object_keys_become_columns_typed_by_their_values(
    api: LoopbackAPI, tmp_path: Path, fmt: str
):
    src = inputs(api, tmp_path, 20)
    out = tmp_path / f"out{SUFFIX[fmt]}"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--select", SELECT)
    assert result.status == 1, result.stderr
    rows = {str(r["id"]): r for r in native_rows(out, fmt)}
    assert set(rows["3"]) >= {"n", "name", "price", "active", "tags", "body"}
    if fmt == "parquet":
        types = {f.name: str(f.type) for f in pq.read_schema(out)}
    elif fmt == "duckdb":
        with duckdb.connect(str(out)) as con:
            types = dict(con.sql("SELECT column_name, data_type FROM "
                                 "information_schema.columns").fetchall())  # fmt: skip
            types = {k: {"BIGINT": "int64", "DOUBLE": "double", "BOOLEAN": "bool",
                         "VARCHAR": "string"}[v] for k, v in types.items()}  # fmt: skip
    if fmt in ("parquet", "duckdb"):
        assert types["n"] == "int64" and types["price"] == "double"
        assert types["active"] == "bool" and types["name"] == "string"
        assert types["tags"] == "string"  # a list: JSON text
        assert rows["3"]["n"] == 3 and rows["3"]["price"] == 4.5 and rows["3"]["active"] is False
        assert json.loads(rows["3"]["tags"]) == ["a", "3"]
    elif fmt == "sqlite":
        assert (rows["3"]["n"], rows["3"]["price"], rows["3"]["active"]) == (3, 4.5, 0)
    else:
        assert (rows["3"]["n"], rows["3"]["price"], rows["3"]["active"]) == ("3", "4.5", "false")
    assert rows["21"]["n"] in (None, "")  # the invalid line has no body: empty columns


ROUNDS = 2


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(ROUNDS))
@pytest.mark.parametrize("fmt", ["csv", "sqlite", "parquet", "duckdb"])
async def test_kill_9_twice_then_resume_leaves_exactly_one_row_per_request(
    api: LoopbackAPI, tmp_path: Path, fmt: str, round_: int
):
    total, concurrency = 2000, 20
    api.hold_seconds = 0.002
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/hold/{i}") + "\n" for i in range(1, total + 1)))
    out = tmp_path / f"out{SUFFIX[fmt]}"
    chance = random.Random(f"{fmt}{round_}")
    first, second = sorted(chance.sample(range(50, total - 100), 2))
    for moment, resume in ((first, ()), (second, ("--resume",))):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(out), "-q",
            "-c", str(concurrency), *resume, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await api.wait_hits(moment)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    before = Counter(api.log.hits)
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--resume", "-c", "20")
    assert result.status == 0, result.stderr
    got = ids(out, fmt)
    assert len(got) == len(set(got)) == total  # nothing lost, nothing twice
    refetched = [p for p, n in api.log.hits.items() if n > 1]
    assert all(before[p] <= 2 for p in refetched)  # only requests of the killed runs again
    assert len(refetched) <= 2 * concurrency  # ...and only those in flight at the kills


@pytest.mark.slow  # several runs each: make test runs it, test-fast not
@pytest.mark.parametrize("fmt", ["parquet", "duckdb"])
async def test_a_journal_already_moved_in_is_not_moved_in_twice(
    api: LoopbackAPI, tmp_path: Path, fmt: str
):
    """The process died after the output took the journal's records but before the journal
    was removed: the next run finds both, and each record stays once."""
    src = inputs(api, tmp_path, 40, bad=False)
    out = tmp_path / f"out{SUFFIX[fmt]}"
    journal = out.with_name(out.name + ".journal")
    half = tmp_path / "half.txt"
    half.write_text("".join(src.read_text().splitlines(keepends=True)[:25]))
    assert (await run_cli("run", str(half), "-o", str(out), "-q")).status == 0
    journal.write_bytes(b"")
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--resume")
    assert result.status == 0 and not journal.exists()
    # put back what the second run's journal held: as if it had died before removing it
    assert (await run_cli("export", str(out), "-o", str(tmp_path / "all.jsonl"), "-q")).status == 0
    journal.write_bytes((tmp_path / "all.jsonl").read_bytes())
    hits = sum(api.log.hits.values())
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--resume")
    assert result.status == 0, result.stderr
    assert sum(api.log.hits.values()) == hits  # nothing asked again
    got = ids(out, fmt)
    assert len(got) == len(set(got)) == 40


@pytest.mark.slow  # several runs each: make test runs it, test-fast not
@pytest.mark.parametrize("fmt", ["csv", "sqlite", "parquet", "duckdb"])
async def test_redo_failed_asks_the_failed_again_and_keeps_one_row_each(
    api: LoopbackAPI, tmp_path: Path, fmt: str
):
    src = tmp_path / "in.jsonl"
    lines = [{"id": i, "url": api.url(f"/item/{i}")} for i in range(1, 11)]
    lines += [{"id": f"bad-{i}", "url": api.url("/status/404")} for i in range(3)]
    src.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / f"out{SUFFIX[fmt]}"
    assert (await run_cli("run", str(src), "-o", str(out), "-q")).status == 1
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--resume", "--redo-failed")
    assert result.status == 1, result.stderr
    assert api.log.hits["/status/404"] == 6 and api.log.hits["/item/1"] == 1
    got = [str(i) for i in ids(out, fmt)]
    assert len(got) == len(set(got)) == 13


@pytest.mark.slow  # several runs each: make test runs it, test-fast not
async def test_export_round_trips_through_every_format(api: LoopbackAPI, tmp_path: Path):
    src = inputs(api, tmp_path, 25)
    start = tmp_path / "start.jsonl"
    assert (await run_cli("run", str(src), "-o", str(start), "-q")).status == 1
    current = start
    for fmt in ["csv", "parquet", "sqlite", "duckdb", "jsonl"]:
        nxt = tmp_path / f"step{SUFFIX[fmt]}"
        result = await run_cli("export", str(current), "-o", str(nxt))
        assert result.status == 0 and "26 records" in result.stderr, result.stderr
        current = nxt
    assert sorted(read_records(current), key=str) == sorted(read_records(start), key=str)


async def test_export_with_select_makes_a_tidy_table_of_whole_bodies(
    api: LoopbackAPI, tmp_path: Path
):
    src = inputs(api, tmp_path, 5, bad=False)
    start = tmp_path / "start.jsonl"
    assert (await run_cli("run", str(src), "-o", str(start), "-q")).status == 0
    out = tmp_path / "items.parquet"
    assert (await run_cli("export", str(start), "-o", str(out), "--select", SELECT)).status == 0
    table = pq.read_table(out)
    assert sorted(table.column("n").to_pylist()) == [1, 2, 3, 4, 5]
    assert "big" not in orjson.loads(table.column("body")[0].as_py())


async def test_usage_errors_for_formats_are_one_line_and_exit_2(api: LoopbackAPI, tmp_path: Path):
    src = inputs(api, tmp_path, 3, bad=False)
    out = tmp_path / "out.csv"
    assert (await run_cli("run", str(src), "-o", str(out), "-q")).status == 0
    other = await run_cli("run", str(src), "-o", str(out), "--resume", "--select", SELECT)
    assert other.status == 2 and "other columns" in other.stderr, other.stderr
    stdout = await run_cli("run", str(src), "--format", "parquet")
    assert stdout.status == 2 and "needs a file" in stdout.stderr
    unknown = await run_cli("run", str(src), "--format", "xlsx")
    assert unknown.status == 2 and "xlsx" in unknown.stderr
    assert sum(api.log.hits.values()) == 3  # none of the refused runs sent a request
    missing = await run_cli("export", str(tmp_path / "nope.jsonl"), "-o", str(out))
    assert missing.status == 2 and "no such file" in missing.stderr
    for text in (other.stderr, stdout.stderr, unknown.stderr, missing.stderr):
        assert "Traceback" not in text


@pytest.mark.parametrize(("fmt", "module"), [("parquet", "pyarrow"), ("duckdb", "duckdb")])
async def test_a_missing_extra_is_a_one_line_error_naming_the_pip_install(
    tmp_path: Path, fmt: str, module: str
):
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from fanfetch._cli._main import main\n"
        f"main(['run', '-', '-o', {str(tmp_path / ('out' + SUFFIX[fmt]))!r}])"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        f"fanfetch: error: the {fmt} output needs {module}: pip install 'fanfetch[{fmt}]'"
    ]


def test_the_python_api_writes_the_output_and_resumes_from_it(api_in_thread: str, tmp_path: Path):
    import fanfetch

    out = tmp_path / "items.parquet"
    urls = [f"{api_in_thread}/item/{i}" for i in range(1, 31)]
    first = fanfetch.run(urls[:10], output=str(out), select="{n: n, price: price}")
    assert len(first) == 10 and pq.read_table(out).num_rows == 10
    rest = fanfetch.run(urls, output=str(out), resume=True, select="{n: n, price: price}")
    assert sorted(r.id for r in rest) == list(range(11, 31))  # the first ten were skipped
    table = pq.read_table(out)
    assert sorted(map(int, table.column("id").to_pylist())) == list(range(1, 31))
    assert table.schema.field("price").type == "double"


@pytest.mark.slow  # several runs each: make test runs it, test-fast not
@pytest.mark.parametrize("fmt", ["csv", "duckdb"])
async def test_workers_write_every_format_through_the_parent(
    api: LoopbackAPI, tmp_path: Path, fmt: str
):
    src = inputs(api, tmp_path, 300)
    out = tmp_path / f"out{SUFFIX[fmt]}"
    result = await run_cli(
        "run", str(src), "-o", str(out), "-q", "--workers", "2", "--select", SELECT, "--ordered"
    )
    assert result.status == 1, result.stderr
    got = ids(out, fmt)
    assert got == list(range(1, 302)) if fmt == "csv" else sorted(got) == list(range(1, 302))
    assert {str(r["n"]) for r in native_rows(out, fmt) if r["n"] not in (None, "")} == {
        str(i) for i in range(1, 301)
    }


async def test_a_csv_output_with_a_field_over_128_kib_resumes_exports_and_reports(
    api: LoopbackAPI, tmp_path: Path
):
    """The csv module refuses fields over 128 KiB by default: such an output could never be
    read back by fanfetch (a traceback from --resume, export and report)."""
    src = tmp_path / "in.txt"
    src.write_text(api.url("/big/300000") + "\n" + api.url("/ok/2") + "\n")
    out = tmp_path / "out.csv"
    first = await run_cli("run", str(src), "-o", str(out), "-q", "--max-body", "1000000")
    assert first.status == 0, first.stderr
    before = csv.field_size_limit()
    again = await run_cli("run", str(src), "-o", str(out), "-q", "--resume")
    assert again.status == 0 and "Traceback" not in again.stderr, again.stderr
    back = tmp_path / "back.jsonl"
    exported = await run_cli("export", str(out), "-o", str(back))
    assert exported.status == 0, exported.stderr
    assert sorted(len(r["body"] or "") for r in read_records(back))[-1] >= 300_000
    report = await run_cli("report", str(out), "-o", str(tmp_path / "r.html"))
    assert report.status == 0, report.stderr
    assert sum(api.log.hits.values()) == 2  # the resume asked nothing again
    assert csv.field_size_limit() == before


FORMULAS = ["=HYPERLINK(\"http://127.0.0.1/x\",\"click\")", "+1+1", "-2+3", "@SUM(A1)",
            "\tpad", "\rcr", "'quoted", "''twice", "-5", "+3.25", "plain"]  # fmt: skip


async def test_csv_cells_a_spreadsheet_would_run_get_a_leading_quote_and_read_back_whole(
    api: LoopbackAPI, tmp_path: Path
):
    """OWASP's CSV injection: = + - @ tab and CR first. A plain number is left alone, and
    fanfetch's own readers (resume, export) give every value back as it was."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"id{i}", "url": api.url("/echo"), "method": "POST",
                                       "data": text}) + "\n"
                           for i, text in enumerate(FORMULAS)))  # fmt: skip
    out = tmp_path / "out.csv"
    select = ["--select", "{sent: body}"]  # /echo gives back the text it was sent
    result = await run_cli("run", str(src), "-o", str(out), "-q", *select)
    assert result.status == 0, result.stderr
    cells = {row["id"]: row["sent"] for row in native_rows(out, "csv")}
    for i, text in enumerate(FORMULAS):
        left_alone = text in ("-5", "+3.25", "plain")
        assert cells[f"id{i}"] == (text if left_alone else "'" + text), text
    back = tmp_path / "back.jsonl"
    assert (await run_cli("export", str(out), "-o", str(back))).status == 0
    assert {r["id"]: r["body"]["sent"] for r in read_records(back)} == {
        f"id{i}": text for i, text in enumerate(FORMULAS)
    }
    again = await run_cli("run", str(src), "-o", str(out), "-q", "--resume", *select)
    assert again.status == 0 and sum(api.log.hits.values()) == len(FORMULAS)
    raw = tmp_path / "raw.csv"
    assert (await run_cli("run", str(src), "-o", str(raw), "-q", "--csv-raw", *select)).status == 0
    assert {row["sent"] for row in native_rows(raw, "csv")} == set(FORMULAS)


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("out.parquet", b"not a parquet file at all", "cannot read the records"),
        ("out.duckdb", b"not a duckdb file, not at all", "cannot read the records"),
        ("out.jsonl", b"id,url,method\n1,http://127.0.0.1:9/,GET\n", "holds csv records"),
        ("out.csv", b'{"id": 1, "url": "http://127.0.0.1:9/"}\n', "holds jsonl records"),
        ("out.sqlite", b'{"id": 1, "url": "http://127.0.0.1:9/"}\n', "holds jsonl records"),
    ],
)
async def test_resume_over_an_output_it_cannot_read_is_one_line_and_touches_nothing(
    api: LoopbackAPI, tmp_path: Path, name: str, content: bytes, says: str
):
    src = tmp_path / "in.txt"
    src.write_text(api.url("/ok/1") + "\n")
    out = tmp_path / name
    out.write_bytes(content)
    result = await run_cli("run", str(src), "-o", str(out), "--resume")
    assert result.status == 2, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == content and sum(api.log.hits.values()) == 0
    for command in (["export", str(out), "-o", str(tmp_path / "e.jsonl")],
                    ["report", str(out), "-o", str(tmp_path / "r.html")]):  # fmt: skip
        read = await run_cli(*command)
        assert read.status == 2 and says in read.stderr, read.stderr
        assert "Traceback" not in read.stderr


async def test_a_journal_line_that_is_no_record_is_one_line_on_resume(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.txt"
    src.write_text(api.url("/ok/1") + "\n" + api.url("/ok/2") + "\n")
    out = tmp_path / "out.parquet"
    assert (await run_cli("run", str(src), "-o", str(out), "-q")).status == 0
    (tmp_path / "out.parquet.journal").write_bytes(b"{not a record\n")
    result = await run_cli("run", str(src), "-o", str(out), "--resume")
    assert result.status == 2 and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("name", ["out.parquet", "out.duckdb"])
async def test_export_and_report_read_a_whole_file_format_output_while_its_run_goes(
    api: LoopbackAPI, tmp_path: Path, name: str
):
    pytest.importorskip("pyarrow" if name.endswith("parquet") else "duckdb")
    src = tmp_path / "in.txt"
    lines = [api.url(f"/ok/{i}") for i in range(5)] + [api.url("/hang/last")]
    src.write_text("".join(line + "\n" for line in lines))
    out = tmp_path / name
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(out), "-q",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await api.wait_hits(len(lines))
        journal = tmp_path / (name + ".journal")
        for _ in range(200):  # the five answered are in its journal: the file is not made yet
            if journal.exists() and len(journal.read_bytes().splitlines()) == 5:
                break
            await asyncio.sleep(0.05)
        if name.endswith(".parquet"):
            assert not out.exists()  # a Parquet file is made at the end
        exported = await run_cli("export", str(out), "-o", str(tmp_path / "so-far.jsonl"))
        assert exported.status == 0, exported.stderr
        assert sorted(r["id"] for r in read_records(tmp_path / "so-far.jsonl")) == [1, 2, 3, 4, 5]
        reported = await run_cli("report", str(out), "-o", str(tmp_path / "so-far.html"))
        assert reported.status == 0 and "5 records" in reported.stderr, reported.stderr
    finally:
        api.release.set()
        await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    finished = await run_cli("export", str(out), "-o", str(tmp_path / "all.jsonl"))
    assert finished.status == 0 and len(read_records(tmp_path / "all.jsonl")) == 6
