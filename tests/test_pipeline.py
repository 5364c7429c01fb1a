"""One job pipeline behind every entry: the same job run through the command line, the
Python API, ``--workers 2`` and a local Ray writes the same records, for plain, paginated,
ordered and resumed jobs and every output format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import fanfetch
from fanfetch._io._formats import format_for
from tests.conftest import run_cli_blocking

TIMING = ("elapsed_ms", "started_at")  # when, not what: the only fields that may differ


@pytest.fixture
def base(api_in_thread: str) -> str:
    """A loopback API on a thread of its own (the API's calls block)."""
    return api_in_thread


def plain(base: str) -> list[str]:
    """Twelve requests, two of them answered 404 and one no request at all."""
    lines = [f"{base}/ok/{i}" for i in range(1, 11)]
    return [*lines[:4], f"{base}/status/404", "ftp://x/no", *lines[4:], f"{base}/status/404"]


def paged(base: str) -> list[str]:
    """Four chains of three pages each, followed through Link headers."""
    return [f"{base}/pages/link/3/chain{i}" for i in range(4)]


JOBS: dict[str, tuple[Any, dict[str, Any], str]] = {
    # name: (requests, options, output file name)
    "plain": (plain, {}, "out.jsonl"),
    "ordered": (plain, {"ordered": True}, "out.jsonl"),
    "csv": (plain, {}, "out.csv"),
    "sqlite": (plain, {}, "out.sqlite"),
    "parquet": (plain, {}, "out.parquet"),
    "duckdb": (plain, {}, "out.duckdb"),
    "paginated": (paged, {"paginate": "link"}, "out.jsonl"),
    "paginated ordered": (paged, {"paginate": "link", "ordered": True}, "out.jsonl"),
}
NEEDS = {"parquet": "pyarrow", "duckdb": "duckdb"}


def run_entry(entry: str, requests: list[str], options: dict[str, Any], out: Path) -> None:
    """The job through one entry; the records are in ``out``."""
    if entry == "api":
        fanfetch.run(requests, output=out, concurrency=4, **options)
        return
    source = out.parent / "in.txt"
    source.write_text("".join(line + "\n" for line in requests))
    flags = ["-c", "4", "-q"]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        flags += [flag] if value is True else [flag, str(value)]
    if entry == "workers":
        flags += ["--workers", "2"]
    elif entry == "ray":
        flags += ["--cluster", "ray", "--shards", "2"]
    done = run_cli_blocking("run", str(source), "-o", str(out), *flags)
    assert done.status in (0, 1), done.stderr  # 1: some records are not ok, as planned


def records(out: Path) -> list[dict[str, Any]]:
    """What ``out`` holds (a directory: its parts, in part order), without timings."""
    paths = sorted(out.glob("part-*.jsonl")) if out.is_dir() else [out]
    found = []
    for path in paths:
        for record in format_for(str(path)).read(str(path)):
            found.append({k: v for k, v in record.items() if k not in TIMING})
    return found


def key(record: dict[str, Any]) -> tuple[str, str]:
    return (str(record["id"]), str(record.get("page")))


def entries_for(job: str) -> list[str]:
    entries = ["cli", "api"]
    if "paginated" not in job:  # worker processes do not follow pages yet
        entries.append("workers")
    return entries


@pytest.mark.parametrize("job", list(JOBS))
def test_every_entry_writes_the_same_records(base: str, tmp_path: Path, job: str):
    make, options, name = JOBS[job]
    if job in NEEDS:
        pytest.importorskip(NEEDS[job])
    requests = make(base)
    written = {}
    for entry in entries_for(job):
        (tmp_path / entry).mkdir()
        out = tmp_path / entry / name
        run_entry(entry, requests, options, out)
        written[entry] = records(out)
    expected = 12 if "paginated" in job else 13
    for entry, found in written.items():
        assert len(found) == expected, (entry, found)
        assert len({key(r) for r in found}) == expected, entry  # each once
        if options.get("ordered"):
            assert found == written["cli"], entry  # the same records in the same order
        else:
            assert sorted(found, key=key) == sorted(written["cli"], key=key), entry


def cut(out: Path, keep: int) -> None:
    """``out`` as a process killed after its first ``keep`` records left it, the next one
    torn halfway."""
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:keep]) + lines[keep][: len(lines[keep]) // 2])


@pytest.mark.parametrize(
    "job", [pytest.param("plain", id="plain"), pytest.param("paginated", id="paginated")]
)
def test_every_entry_resumes_a_cut_output_to_the_same_records_each_once(
    base: str, tmp_path: Path, job: str
):
    make, options, name = JOBS[job]
    requests = make(base)
    (tmp_path / "whole").mkdir()
    run_entry("cli", requests, options, tmp_path / "whole" / name)
    whole = records(tmp_path / "whole" / name)
    for entry in entries_for(job):
        (tmp_path / entry).mkdir()
        out = tmp_path / entry / name
        out.write_bytes((tmp_path / "whole" / name).read_bytes())
        cut(out, keep=5)  # a paginated chain cut after its first page or two
        run_entry(entry, requests, {**options, "resume": True}, out)
        resumed = records(out)
        assert len(resumed) == len(whole), entry
        assert sorted(resumed, key=key) == sorted(whole, key=key), entry


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_local_ray_writes_the_same_records_and_resumes_a_cut_part(base: str, tmp_path: Path):
    pytest.importorskip("ray")
    requests = plain(base)
    (tmp_path / "cli").mkdir()
    run_entry("cli", requests, {}, tmp_path / "cli" / "out.jsonl")
    expected = sorted(records(tmp_path / "cli" / "out.jsonl"), key=key)
    run_entry("ray", requests, {}, tmp_path / "parts")
    assert sorted(records(tmp_path / "parts"), key=key) == expected
    first = sorted((tmp_path / "parts").glob("part-*.jsonl"))[0]
    cut(first, keep=2)
    for done in (tmp_path / "parts").glob("part-*.done"):
        if done.name.startswith(first.name.removesuffix(".jsonl")):
            done.unlink()  # that shard did not finish
    run_entry("ray", requests, {"resume": True}, tmp_path / "parts")
    assert sorted(records(tmp_path / "parts"), key=key) == expected


def test_the_python_api_takes_the_job_options_the_table_says_with_the_same_defaults():
    import inspect

    from fanfetch._cli._options import JOB_OPTIONS

    for function in (fanfetch.run, fanfetch.iter_results):
        parameters = inspect.signature(function).parameters
        for option in JOB_OPTIONS:
            assert (option.name in parameters) == option.api, (function, option.name)
            if option.api:
                assert parameters[option.name].default == option.default, option.name


def test_a_job_rule_is_said_in_the_language_of_the_caller(tmp_path: Path):
    with pytest.raises(fanfetch.ConfigError, match=r"invalid redo_failed=True\. HINT: goes "
                       r"with resume="):  # fmt: skip
        fanfetch.run([], output=tmp_path / "o.jsonl", redo_failed=True)
    done = run_cli_blocking("run", "-", "-o", str(tmp_path / "o.jsonl"), "--redo-failed")
    assert done.status == 2
    assert "--redo-failed goes with --resume" in done.stderr
    assert not (tmp_path / "o.jsonl").exists()  # refused before anything was opened
