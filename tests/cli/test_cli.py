"""`fanfetch run` end to end: a real process against real loopback servers."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import read_records, run_cli
from tests.servers import DroppingServer, LoopbackAPI

RECORD_FIELDS = [
    "id",
    "url",
    "method",
    "ok",
    "status",
    "attempts",
    "elapsed_ms",
    "started_at",
    "body",
    "error",
    "meta",
]


async def test_every_line_gets_one_record_with_the_documented_fields(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.jsonl"
    src.write_text(
        f"{api.url('/ok/1')}\n"
        "\n"
        + orjson.dumps({"id": "b", "url": api.url("/ok/2"), "meta": {"k": [1]}}).decode()
        + "\n"
        + orjson.dumps({"url": api.url("/echo"), "method": "post", "json": {"x": 1}}).decode()
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q")
    assert result.status == 0, result.stderr
    records = {r["id"]: r for r in read_records(out)}
    assert set(records) == {1, "b", 4}  # ids: line numbers count the blank line too
    for record in records.values():
        assert list(record) == RECORD_FIELDS
        assert record["ok"] is True and record["status"] == 200 and record["attempts"] == 1
        assert record["error"] is None
        assert isinstance(record["elapsed_ms"], float)
    assert records[1]["body"] == {"id": "1", "method": "GET"}
    assert records["b"]["meta"] == {"k": [1]}
    echoed = records[4]["body"]
    assert isinstance(echoed, dict)
    assert echoed["method"] == "POST" and orjson.loads(echoed["body"]) == {"x": 1}
    assert echoed["headers"]["Content-Type"] == "application/json"


async def test_a_record_says_when_its_request_started_in_epoch_seconds(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/ok/{n}") + "\n" for n in range(20)))
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "-c", "4")
    assert result.status == 0, result.stderr
    for record in read_records(out):
        arrived = api.log.arrived[f"/ok/{record['id'] - 1}"]  # when the server saw it
        started, took = record["started_at"], record["elapsed_ms"] / 1000
        assert started - 0.001 <= arrived <= started + took + 0.001  # rounded to the ms


async def test_stdin_to_stdout_pipes_records_and_keeps_stderr_out_of_them(api: LoopbackAPI):
    lines = "".join(api.url(f"/ok/{i}") + "\n" for i in range(20)).encode()
    result = await run_cli("run", "-", stdin=lines)
    assert result.status == 0
    records = result.records
    assert sorted(r["id"] for r in records) == list(range(1, 21))
    assert "Summary" in result.stderr  # the summary goes to stderr, never into records


async def test_bad_lines_become_invalid_request_records_and_the_run_goes_on(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.txt"
    src.write_bytes(
        b"{not json\n"
        + api.url("/ok/2").encode()
        + b"\n"
        + b'{"method": "GET"}\n'
        + b"ftp://127.0.0.1/file\n"
        + b'{"url": "'
        + api.url("/ok/5").encode()
        + b'", "method": "FETCH"}\n'
        + b"\xff\xfe\x00garbage\n"
        + b"http:"
        b"//user:hunter2@127.0.0.1/x\n"  # refused before any request is made
        + api.url("/ok/8").encode()
        + b"\n"
        + b"http://127.0.0.1:99999/port\n"  # plain to look at, but no port is that high
        + b"http://127.0.0.300/x\n"
    )
    result = await run_cli("run", str(src), "-q")
    assert result.status == 1
    records = {r["id"]: r for r in result.records}
    assert sorted(records) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert records[2]["ok"] and records[8]["ok"]
    for line in (1, 3, 4, 5, 6, 7, 9, 10):
        error = records[line]["error"]
        assert isinstance(error, dict)
        assert error["type"] == "invalid_request"
        assert error["message"].startswith(f"line {line}: ")
        assert records[line]["attempts"] == 0
    assert "hunter2" not in result.stdout.decode()  # credentials are never echoed


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [(["/ok/1", "/ok/2"], 0), (["/ok/1", "/status/404"], 1)],
)
async def test_exit_status_is_0_when_all_ok_and_1_when_any_is_not(api, statuses, expected):
    lines = "".join(api.url(p) + "\n" for p in statuses).encode()
    result = await run_cli("run", "-", "-q", stdin=lines)
    assert result.status == expected
    failed = [r for r in result.records if not r["ok"]]
    for record in failed:
        assert record["status"] == 404
        assert record["error"] == {"type": "http_status", "message": "HTTP 404 Not Found"}
        assert record["attempts"] == 1  # a 404 is final at once


@pytest.mark.parametrize(
    "args",
    [
        ["run", "in.txt", "--concurrency", "0"],
        ["run", "in.txt", "--rate", "fast"],
        ["run", "in.txt", "--header", "no colon"],
        ["run", "in.txt", "--no-such-flag"],
        ["run", "missing.txt"],
        ["run", "in.txt", "--resume"],
    ],
)
async def test_usage_errors_exit_2_with_one_line_and_no_traceback(tmp_path: Path, args):
    (tmp_path / "in.txt").write_text("http://127.0.0.1:9/\n")
    result = await run_cli(*args, cwd=tmp_path)
    assert result.status == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("fanfetch: error: ")


async def test_help_shows_every_flag_with_examples_and_version_prints():
    result = await run_cli("run", "--help")
    assert result.status == 0
    text = result.stdout.decode()
    for flag in (
        "--output", "--concurrency", "--per-host", "--timeout", "--retries", "--rate",
        "--resume", "--ordered", "--include-headers", "--header", "--quiet", "Examples",
    ):  # fmt: skip
        assert flag in text
    version = await run_cli("--version")
    assert version.status == 0 and version.stdout.decode().startswith("fanfetch ")


async def test_the_concurrency_limit_is_never_exceeded(api: LoopbackAPI):
    lines = "".join(api.url(f"/hold/{i}") + "\n" for i in range(200)).encode()
    result = await run_cli("run", "-", "-q", "-c", "7", stdin=lines)
    assert result.status == 0
    assert len(result.records) == 200
    assert api.log.max_in_flight == 7  # reached, never passed


async def test_the_per_host_limit_holds_on_each_host(two_host_api: LoopbackAPI):
    api = two_host_api
    lines = "".join(
        api.url(f"/hold/{i}", host=("127.0.0.1", "127.0.0.2")[i % 2]) + "\n" for i in range(120)
    ).encode()
    result = await run_cli("run", "-", "-q", "-c", "50", "--per-host", "3", stdin=lines)
    assert result.status == 0
    assert len(result.records) == 120
    assert api.log.host_max["127.0.0.1"] == 3
    assert api.log.host_max["127.0.0.2"] == 3
    assert api.log.max_in_flight == 6


async def test_a_slow_answer_is_a_timeout_record(api: LoopbackAPI):
    lines = (api.url("/hang/1") + "\n").encode()
    result = await run_cli("run", "-", "-q", "--timeout", "0.2", "--retries", "0", stdin=lines)
    assert result.status == 1
    [record] = result.records
    assert record["status"] is None
    assert record["error"]["type"] == "timeout"


async def test_a_dropped_connection_is_a_connection_record(dropping: DroppingServer):
    lines = (dropping.url("/x") + "\n").encode()
    result = await run_cli("run", "-", "-q", "--retries", "0", stdin=lines)
    assert result.status == 1
    [record] = result.records
    assert record["error"]["type"] == "connection"
    assert dropping.connections == 1


async def test_bodies_are_decoded_by_charset_encoding_and_type(api: LoopbackAPI):
    paths = ["/latin1", "/gzip", "/redirect", "/binary", "/notjson"]
    lines = "".join(api.url(p) + "\n" for p in paths).encode()
    result = await run_cli("run", "-", "-q", stdin=lines)
    records = {r["id"]: r for r in result.records}
    assert records[1]["body"] == "café crème"
    assert records[2]["body"] == {"compressed": True, "n": list(range(50))}
    assert records[3]["body"] == {"id": "redirected", "method": "GET"}
    assert records[4]["body_encoding"] == "base64"
    assert records[5]["body"] == "<html>oops</html>"  # says JSON, is not: kept as text
    assert all(r["ok"] for r in records.values())


async def test_include_headers_adds_response_headers_and_header_flag_is_sent(api: LoopbackAPI):
    lines = (api.url("/ok/1") + "\n").encode()
    result = await run_cli(
        "run", "-", "-q", "--include-headers", "--header", "X-Token: s3cret", stdin=lines
    )
    [record] = result.records
    assert isinstance(record["headers"], dict)
    assert record["headers"]["Content-Type"].startswith("application/json")
    assert api.log.headers[-1]["X-Token"] == "s3cret"
    assert "s3cret" not in result.stdout.decode() + result.stderr


async def test_ordered_writes_records_in_input_order(api: LoopbackAPI):
    lines = "".join(api.url(f"/hold/{i}") + "\n" for i in range(100)).encode()
    result = await run_cli("run", "-", "-q", "--ordered", "-c", "20", stdin=lines)
    assert [r["id"] for r in result.records] == list(range(1, 101))


async def test_summary_json_has_counts_statuses_and_latency(api: LoopbackAPI, tmp_path: Path):
    lines = (api.url("/ok/1") + "\n" + api.url("/status/404") + "\n").encode()
    summary = tmp_path / "summary.json"
    result = await run_cli("run", "-", "--summary-json", str(summary), stdin=lines)
    assert result.status == 1
    data = orjson.loads(summary.read_bytes())
    assert data["requests"] == 2 and data["ok"] == 1 and data["failed"] == 1
    assert data["errors"] == {"http_status": 1}
    assert data["statuses"] == {"200": 1, "404": 1}
    assert set(data["latency_ms"]) == {"p50", "p90", "p99", "max"}


@pytest.mark.parametrize(("sig", "expected"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_a_signal_stops_the_run_with_whole_records_and_exit_130_or_143(
    api: LoopbackAPI, tmp_path: Path, sig: signal.Signals, expected: int
):
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/hang/{i}") + "\n" for i in range(1000)))
    out = tmp_path / "out.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(out), "-c", "5",
        "--timeout", "30", stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await api.wait_in_flight(5)
    proc.send_signal(sig)
    assert proc.stderr is not None
    said = await asyncio.wait_for(proc.stderr.readuntil(b"stopping"), 30)  # it has stopped taking
    api.release.set()  # now the requests in flight may finish, within the grace period
    _, rest = await asyncio.wait_for(proc.communicate(), 30)
    err = said + rest
    assert proc.returncode == expected, err.decode()
    records = read_records(out)  # every line whole
    assert len(records) == 5, err.decode()
    assert all(r["ok"] for r in records)


async def test_credentials_are_dropped_when_a_redirect_leaves_the_host(two_host_api: LoopbackAPI):
    api = two_host_api
    lines = (
        api.url("/redirect-to/127.0.0.2") + "\n" + api.url("/redirect-to/127.0.0.1") + "\n"
    ).encode()
    result = await run_cli(
        "run", "-", "-q", "--header", "Authorization: Bearer s3cret", "--header", "Cookie: c=1",
        stdin=lines,
    )  # fmt: skip
    assert result.status == 0
    records = {r["id"]: r for r in result.records}
    other_host = records[1]["body"]["headers"]
    same_host = records[2]["body"]["headers"]
    assert "Authorization" not in other_host and "Cookie" not in other_host
    assert same_host["Authorization"] == "Bearer s3cret" and same_host["Cookie"] == "c=1"


async def test_a_full_disk_stops_the_run_with_a_clear_message_and_exit_1(api: LoopbackAPI):
    lines = "".join(api.url(f"/ok/{i}") + "\n" for i in range(50)).encode()
    result = await run_cli("run", "-", "-o", "/dev/full", "-q", stdin=lines)
    assert result.status == 1
    assert "cannot write the output: No space left on device" in result.stderr
    assert "Traceback" not in result.stderr


async def test_secret_query_values_are_masked_in_messages(api: LoopbackAPI):
    # the too-many-redirects message quotes the last URL: the token must not come through
    lines = (api.url("/loop?token=zzz999&page=2") + "\n").encode()
    result = await run_cli("run", "-", "--retries", "0", "--max-redirects", "2", stdin=lines)
    [record] = result.records
    message = record["error"]["message"]
    assert "more than 2 redirects" in message and "token=***" in message and "page=2" in message
    assert "zzz999" not in message + result.stderr


async def test_a_second_ctrl_c_cuts_the_grace_period_short(api: LoopbackAPI, tmp_path: Path):
    api.hold_seconds = 3.0  # well inside the 5 s grace: one Ctrl-C would let these finish
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/hold/{i}") + "\n" for i in range(100)))
    out = tmp_path / "out.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(out), "-c", "5",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await api.wait_in_flight(5)
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    await asyncio.wait_for(proc.stderr.readuntil(b"stopping"), 30)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    assert read_records(out) == []  # cancelled, not waited for: --resume asks them again


async def test_an_output_that_is_the_input_is_refused_before_anything_is_written(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "urls.txt"
    text = "".join(api.url(f"/ok/{i}") + "\n" for i in range(3))
    src.write_text(text)
    link = tmp_path / "link.txt"
    link.symlink_to(src)
    for args, stdin in (
        (("run", str(src), "-o", str(src)), None),
        (("run", str(src), "-o", str(link)), None),
        (("run", str(src), "-o", str(src), "--resume"), None),
        (("run", "-", "-o", str(src)), src),
        (("run", str(src), "--summary-json", str(src)), None),
        (("run", str(src), "--summary-json", str(link)), None),
    ):
        if stdin is None:
            result = await run_cli(*args)
        else:
            result = await _run_with_stdin_file(args, stdin)
        assert result.status == 2, (args, result.stderr)
        assert "is the input" in result.stderr and "Traceback" not in result.stderr
        assert src.read_text() == text, args
    assert sum(api.log.hits.values()) == 0


@pytest.mark.parametrize("side", [".journal", "-wal", "-shm", "-journal", ".wal"])
@pytest.mark.parametrize("output", ["out.parquet", "out.sqlite", "out.duckdb"])
async def test_an_input_named_like_a_file_the_output_writes_beside_it_is_refused(
    api: LoopbackAPI, tmp_path: Path, output: str, side: str
):
    """-o X.sqlite deleted an input named X.sqlite-wal (SQLite's own), -o X.parquet one
    named X.parquet.journal (fanfetch's): every path a run writes or removes is checked."""
    src = tmp_path / (output + side)
    text = api.url("/ok/1") + "\n"
    src.write_text(text)
    result = await run_cli("run", str(src), "-o", str(tmp_path / output))
    assert result.status == 2 and "is the input" in result.stderr, result.stderr
    assert src.read_text() == text and sum(api.log.hits.values()) == 0


async def test_a_save_dir_that_holds_the_input_or_the_output_is_refused(
    api: LoopbackAPI, tmp_path: Path
):
    """A line whose id is the input's (or the output's) name would have replaced it."""
    src = tmp_path / "in.jsonl"
    text = orjson.dumps({"id": "in.jsonl", "url": api.url("/ok/1")}).decode() + "\n"
    src.write_text(text)
    away = tmp_path / "away"
    away.mkdir()
    for args in (
        ["--save-dir", str(tmp_path)],
        ["--save-dir", str(away), "-o", str(away / "out.jsonl")],
    ):
        result = await run_cli("run", str(src), *args)
        assert result.status == 2 and "a folder of its own" in result.stderr, result.stderr
    assert src.read_text() == text and sum(api.log.hits.values()) == 0


async def _run_with_stdin_file(args: tuple[str, ...], path: Path):
    from tests.conftest import CLIResult

    with path.open("rb") as f:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fanfetch", *args, stdin=f,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return CLIResult(proc.returncode, out, err.decode())


async def test_usage_mistakes_are_one_line_errors_with_exit_2(tmp_path: Path):
    src = tmp_path / "in.txt"
    src.write_text("http://127.0.0.1:9/x\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cases = [
        (("run", str(src), "--save-dir", str(a_file)), "--save-dir"),
        (("run", str(src), "--summary-json", str(tmp_path / "no" / "s.json")), "--summary-json"),
    ]
    for args, named in cases:
        result = await run_cli(*args, "-q")
        assert result.status == 2, result.stderr
        assert "Traceback" not in result.stderr and named in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


async def test_mock_api_on_a_port_in_use_is_a_one_line_error():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await run_cli("mock-api", "--port", str(port))
    finally:
        server.close()
        await server.wait_closed()
    assert result.status == 2, result.stderr
    assert "cannot listen on" in result.stderr and "Traceback" not in result.stderr


async def test_a_url_without_a_scheme_is_told_to_add_one_and_a_bad_ipv4_is_an_invalid_line(
    tmp_path: Path,
):
    src = tmp_path / "in.txt"
    src.write_text("127.0.0.1:8080/items/1\nhttp://127.0.0.300/\n")
    result = await run_cli("run", str(src), "-q")
    records = {r["id"]: r for r in result.records}
    assert "no scheme" in records[1]["error"]["message"]
    assert "http://127.0.0.1:8080/items/1" in records[1]["error"]["message"]
    assert records[2]["error"]["type"] == "invalid_request"
    assert records[2]["error"]["message"].startswith("line 2: ")
    assert records[2]["attempts"] == 0


@pytest.mark.slow  # thousands of sockets: make test runs it, test-fast not
async def test_a_concurrency_over_the_open_file_limit_raises_it_or_says_so(
    api: LoopbackAPI, tmp_path: Path
):
    import resource

    api.hold_seconds = 0.2  # so that many are in flight at once
    src = tmp_path / "in.txt"
    src.write_text("".join(api.url(f"/hold/{i}") + "\n" for i in range(300)))

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 4096))

    result = await run_cli("run", str(src), "-c", "300", "-q", preexec_fn=low_soft_limit)
    assert result.status == 0, result.stderr  # raised to what -c needs: no "Too many open files"
    assert len(result.records) == 300 and all(r["ok"] for r in result.records)
    assert api.log.max_in_flight > 64

    def low_hard_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    capped = await run_cli("run", str(src), "-c", "300", "-q", preexec_fn=low_hard_limit)
    assert "needs about 364 open files, but the limit is 128" in capped.stderr


def test_run_help_lists_the_flags_under_the_headings_of_docs_flags_md():
    import re

    from fanfetch._cli._main import HELP_HEADINGS
    from fanfetch._cli._options import JOB_OPTIONS
    from fanfetch._core._config import OPTIONS

    by_flag = {part: o.name for o in (*OPTIONS, *JOB_OPTIONS) for f in o.flags
               for part in f.split("/")}  # fmt: skip
    docs: dict[str, list[str]] = {}
    title = ""
    for line in (
        (Path(__file__).parent.parent.parent / "docs" / "flags.md").read_text().splitlines()
    ):
        if line.startswith("## "):
            title = line[3:].strip()
            docs[title] = []
        elif line.startswith("| `-") and title:
            cell = line.replace("\\|", "/").split("|")[1]  # \| is a | inside the cell
            docs[title] += [by_flag[f] for f in re.findall(r"--?[a-z][a-z0-9-]*", cell)
                            if f in by_flag and by_flag[f] not in docs[title]]  # fmt: skip
    sections: dict[str, set[str]] = {heading: set() for heading in HELP_HEADINGS}
    for option in (*OPTIONS, *JOB_OPTIONS):
        if option.flags:
            assert option.section in sections, f"{option.name} has no heading"
            sections[option.section].add(option.name)
    assert list(sections) == list(docs)
    for heading, names in docs.items():
        assert set(names) == sections[heading], heading
    shown = subprocess.run([sys.executable, "-m", "fanfetch", "run", "--help"],
                           capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    headings = [line[:-1] for line in shown.splitlines() if line.endswith(":") and line[0] != " "]
    assert headings == [*sections, "Other"]


async def test_a_dry_run_checks_the_whole_input_says_what_it_would_send_and_sends_nothing(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.jsonl"
    src.write_text(
        api.url("/ok/1?api_key=s3cret-value") + "\n"
        + '{"url": "' + api.url("/ok/2") + '", "headers": {"Authorization": "Bearer t0ken"}}\n'
        + "{not json\n"
        + "".join(api.url(f"/ok/{i}") + "\n" for i in range(3, 10))
    )  # fmt: skip
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "--dry-run")
    said = result.stdout.decode()
    assert result.status == 1, result.stderr  # one line is no request
    assert "9 request(s)" in said and "1 line(s) that are no request" in said
    assert f"9  127.0.0.1:{api.port}" in said
    assert "api_key=***" in said and "headers Authorization" in said
    assert "s3cret-value" not in said and "t0ken" not in said
    assert "line 3: malformed JSON" in said
    assert sum(api.log.hits.values()) == 0 and not out.exists()  # nothing sent, nothing written
