"""Job files: ``fanfetch run JOB.toml -o DIR`` and ``fanfetch.run_job``, a request graph
whose steps make their requests from the answers of the step before, against the embedded
API's tree of organisations, repositories and issues."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import fanfetch
from tests.conftest import run_cli

TREE = """\
[run]
concurrency = 8
paginate = "link"
retries = 3
backoff_base = 0.01

[[step]]
name = "orgs"
input = "orgs.txt"

[[step]]
name = "repos"
from = "orgs"
url = "{base}/repos/{{name}}/issues?per_page=4&total=6&org={{owner.login}}"
id = "name"

[[step]]
name = "issues"
from = "repos"
items = "items"
url = "{base}/items/{{title}}"

[[step]]
name = "none"
from = "orgs"
items = "[?name == 'nothing']"
url = "{base}/items/{{name}}"
"""


def tree_job(folder: Path, base: str, text: str = TREE) -> Path:
    orgs = ["o1", "o2", "faults", "empty"]
    (folder / "orgs.txt").write_text("".join(f"{base}/orgs/{org}/repos\n" for org in orgs))
    job = folder / "job.toml"
    job.write_text(text.format(base=base))
    return job


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_three_level_tree_is_one_job_with_each_request_made_once(tmp_path: Path):
    with fanfetch.MockAPI(latency_ms=1) as api:
        job = tree_job(tmp_path, api.url)
        counts = fanfetch.run_job(job, output=tmp_path / "out")
    out = tmp_path / "out"
    orgs, repos = records(out / "orgs.jsonl"), records(out / "repos.jsonl")
    issues = records(out / "issues.jsonl")
    # the organisations' pages: o1, o2 and faults list three repositories, two a page
    assert sorted((r["id"], r["page"]) for r in orgs) == sorted(
        [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (4, 1)]
    )
    # r2 and r3 are listed by o1 and o2 (their ids the same name, their URLs not): made once
    asked = Counter((r["id"], r["page"]) for r in repos if r["ok"])
    assert set(asked.values()) == {1} and len(asked) == 6 * 2  # r1..r4, flaky, busy: 2 pages
    assert counts["repos"]["duplicates"] == 2
    attempts = {r["url"].split("/")[4]: r["attempts"] for r in repos if r.get("page") == 1}
    assert attempts["flaky"] == 2 and attempts["busy"] == 2  # a 503, and a 429 with Retry-After
    # the entry with no name is an error record of its own, with its parent; the rest went on
    (nameless,) = [r for r in repos if not r["ok"]]
    assert nameless["error"]["type"] == "invalid_request" and "name" in nameless["error"]["message"]
    assert nameless["parent"] == 3
    # every issue of every repository, across both pages of each, once
    assert len(issues) == 6 * 6 and all(r["ok"] for r in issues)
    assert len({r["id"] for r in issues}) == 36
    repo_ids = {r["id"] for r in repos}
    assert all(r["parent"] in repo_ids for r in issues)
    assert all(r["parent"] in {1, 2, 3} for r in repos) and all("parent" not in r for r in orgs)
    assert (out / "none.jsonl").read_text() == ""  # a level with nothing in it: empty
    assert counts["none"] == {"records": 0, "ok": 0, "failed": 0, "duplicates": 0}


async def test_the_command_line_writes_what_the_python_api_writes_for_the_same_job(
    tmp_path: Path,
):
    def shape(path: Path) -> list[tuple[Any, ...]]:
        return sorted((r["id"], r.get("page"), r["status"], r.get("parent"),
                       json.dumps(r["body"], sort_keys=True)) for r in records(path))  # fmt: skip

    with fanfetch.MockAPI(latency_ms=1) as api:
        job = tree_job(tmp_path, api.url)
        fanfetch.run_job(job, output=tmp_path / "api")
        summary = tmp_path / "summary.json"
        done = await run_cli("run", str(job), "-o", str(tmp_path / "cli"), "-q",
                             "--summary-json", str(summary))  # fmt: skip
    assert done.status == 1, done.stderr  # one record not ok (the nameless repository)
    for step in ("orgs", "repos", "issues", "none"):
        assert shape(tmp_path / "cli" / f"{step}.jsonl") == shape(
            tmp_path / "api" / f"{step}.jsonl"
        )
    steps = json.loads(summary.read_text())["steps"]
    assert steps["repos"] == {"records": 13, "ok": 12, "failed": 1, "duplicates": 2}


async def test_flags_given_on_the_command_line_win_over_the_job_files_run_table(tmp_path: Path):
    with fanfetch.MockAPI(latency_ms=1) as api:
        job = tree_job(tmp_path, api.url, TREE.replace("concurrency = 8", "concurrency = 0"))
        refused = await run_cli("run", str(job), "-o", str(tmp_path / "a"), "-q")
        done = await run_cli("run", str(job), "-o", str(tmp_path / "b"), "-q", "-c", "2")
    assert refused.status == 2 and "--concurrency" in refused.stderr
    assert not (tmp_path / "a").exists()
    assert done.status == 1 and len(records(tmp_path / "b" / "issues.jsonl")) == 36


async def test_guards_and_idempotency_keys_in_a_job_file_behave_as_their_flags(
    api: Any, tmp_path: Path
):
    src = tmp_path / "orders.jsonl"
    src.write_text("".join(json.dumps({"id": f"o{i}", "url": api.url(f"/order/o{i}"),
                                       "method": "POST", "json": {"n": i}}) + "\n"
                           for i in range(6)))  # fmt: skip
    job = tmp_path / "job.toml"
    job.write_text('[run]\nconcurrency = 1\nlimit = 4\nidempotency_key = "auto"\n'
                   'idempotency_salt = "s"\n\n[[step]]\nname = "orders"\n'
                   'input = "orders.jsonl"\n')  # fmt: skip
    by_file = await run_cli("run", str(job), "-o", str(tmp_path / "out"), "-q")
    from_file = list(api.orders)
    api.orders.clear()
    by_flags = await run_cli("run", str(src), "-o", str(tmp_path / "flat.jsonl"), "-q", "-c", "1",
                             "--limit", "4", "--idempotency-key", "auto",
                             "--idempotency-salt", "s")  # fmt: skip
    assert by_file.status == by_flags.status == 3  # stopped by the limit, as the flag does
    assert len(records(tmp_path / "out" / "orders.jsonl")) == 4
    assert sorted(from_file) == sorted(api.orders) and len(from_file) == 4
    assert all(key for _, _, key in from_file)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[run]\nconcurency = 3\n[[step]]\nname = "a"\ninput = "in.txt"\n',
         "[run]: unknown key 'concurency' (did you mean 'concurrency'?)"),
        ('[[step]]\nname = "a"\ninput = "in.txt"\nurll = "x"\n',
         "step 'a': unknown key 'urll' (did you mean 'url'?)"),
        ('[[step]]\nname = "a"\ninput = "in.txt"\n[[step]]\nname = "b"\nfrom = "c"\nurl = "{x}"\n',
         "step 'b': 'from' names no step: 'c'"),
        ('[[step]]\nname = "a"\nfrom = "b"\nurl = "{x}"\n[[step]]\nname = "b"\nfrom = "a"\n'
         'url = "{x}"\n', "step 'a': its 'from' goes round in a cycle: a <- b <- a"),
        ('[[step]]\nname = "a"\n', "step 'a': give 'input' (a root step) or 'from'"),
        ('[[step]]\nname = "a"\ninput = "in.txt"\nexpect = "x"\n',
         "step 'a': 'expect' is not yet a step's own: put it in [run]"),
        ('[[step]]\nname = "a"\ninput = "rows.csv"\nurl = "http://127.0.0.1:9/{user}"\n',
         "step 'a': 'url' names user, which the header of"),
        ('[[step]]\nname = "a"\ninput = "nowhere.txt"\n', "'input'"),
        ('[[step]\nname = "a"\n', "not TOML"),
        ('[[step]]\nname = "a"\ninput = "in.txt"\n[[step]]\nname = "b"\nfrom = "a"\n'
         'items = "[?"\nurl = "{x}"\n', "step 'b': 'items' '[?': not JMESPath"),
    ],
)  # fmt: skip
async def test_a_bad_job_file_is_one_line_and_exit_2_with_nothing_written(
    text: str, says: str, tmp_path: Path
):
    (tmp_path / "in.txt").write_text("http://127.0.0.1:9/x\n")
    (tmp_path / "rows.csv").write_text("id,name\n1,a\n")
    job = tmp_path / "job.toml"
    job.write_text(text)
    done = await run_cli("run", str(job), "-o", str(tmp_path / "out"))
    assert done.status == 2 and says in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


async def test_what_a_job_file_does_not_take_yet_is_said_in_one_line(tmp_path: Path):
    (tmp_path / "in.txt").write_text("http://127.0.0.1:9/x\n")
    job = tmp_path / "job.toml"
    job.write_text('[[step]]\nname = "a"\ninput = "in.txt"\n')
    workers = await run_cli("run", str(job), "-o", str(tmp_path / "out"), "--workers", "2")
    to_stdout = await run_cli("run", str(job))
    assert workers.status == 2 and "--workers does not go with a job file" in workers.stderr
    assert to_stdout.status == 2 and "-o DIR" in to_stdout.stderr


KILLED = """\
[run]
concurrency = {c}
paginate = "link"

[[step]]
name = "a"
input = "roots.txt"

[[step]]
name = "b"
from = "a"
items = "items"
url = "{base}/tree/b/{{name}}"
id = "name"
rows = "items"

[[step]]
name = "c"
from = "b"
items = "items"
url = "{base}/tree/c/{{name}}"
"""


@pytest.mark.slow
@pytest.mark.parametrize("round_", [0, 1])
async def test_kill_9_at_random_moments_then_resume_records_every_step_id_and_page_once(
    api: Any, tmp_path: Path, round_: int
):
    """Three levels, pages at two, children shared by roots: killed three times, resumed
    after each, the job ends with each (step, id, page) recorded once, and only what was in
    flight at a kill asked again."""
    import asyncio
    import random
    import signal
    import sys

    concurrency, roots = 6, 30
    api.hold_seconds = 0.003
    (tmp_path / "roots.txt").write_text("".join(api.url(f"/tree/a/{n}") + "\n"
                                                for n in range(roots)))  # fmt: skip
    job = tmp_path / "job.toml"
    job.write_text(KILLED.format(c=concurrency, base=api.url("").rstrip("/")))
    out = tmp_path / "out"
    chance = random.Random(round_)
    kills = 3
    for _ in range(kills):
        moment = sum(api.log.hits.values()) + chance.randrange(10, 60)  # of 300 in all
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fanfetch", "run", str(job), "-o", str(out), "-q", "--resume",
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await api.wait_hits(moment)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    done = await run_cli("run", str(job), "-o", str(out), "-q", "--resume")
    assert done.status == 0, done.stderr
    a, b, c = (records(out / f"{step}.jsonl") for step in "abc")
    shared = {f"b{(n + 3 * p + i) % 40}" for n in range(roots) for p in (1, 2) for i in range(3)}
    for step, got, ids in (("a", a, set(range(1, roots + 1))), ("b", b, shared)):
        keys = [(r["id"], r["page"]) for r in got]
        assert len(keys) == len(set(keys)) == 2 * len(ids), step  # two pages each, once
        assert {r["id"] for r in got} == ids, step
    leaves = [r["id"] for r in c]
    assert len(leaves) == len(set(leaves)) == 4 * len(shared)  # 2 pages x 2 of each b
    rows = [(r["id"], r["page"], r["index"], r["name"]) for r in records(out / "b.rows.jsonl")]
    assert sorted(rows) == sorted(
        (b, p, i, f"{b}-c{p}{i}") for b in shared for p in (1, 2) for i in (0, 1)
    )  # every item of every page of b as one row, once, after every kill
    assert all(r["ok"] for r in a + b + c)
    again = sum(n - 1 for n in api.page_hits.values() if n > 1)
    assert again <= concurrency * kills  # only what was in flight at each kill


def test_a_step_has_its_own_pages_and_select_over_the_runs(tmp_path: Path):
    with fanfetch.MockAPI(latency_ms=1) as api:
        (tmp_path / "orgs.txt").write_text(f"{api.url}/orgs/o1/repos\n")
        job = {
            "run": {"concurrency": 4},  # no pages, no select: the steps say their own
            "step": [
                {"name": "orgs", "input": str(tmp_path / "orgs.txt"), "paginate": "link"},
                {"name": "repos", "from": "orgs", "id": "name", "paginate": "next:next",
                 "max_pages": 5, "select": "items[].number",
                 "url": f"{api.url}/repos/{{name}}/issues?per_page=4&total=6"},
            ],
        }  # fmt: skip
        fanfetch.run_job(job, output=tmp_path / "out")
    orgs, repos = (
        records(tmp_path / "out" / "orgs.jsonl"),
        records(tmp_path / "out" / "repos.jsonl"),
    )
    assert sorted(r["page"] for r in orgs) == [1, 2]  # o1's three repositories, two a page
    assert "items" not in repos[0]["body"]  # selected: the issue numbers alone
    pages = {(r["id"], r["page"]): r["body"] for r in repos}
    assert pages == {(f"r{n}", p): ([1, 2, 3, 4] if p == 1 else [5, 6])
                     for n in (1, 2, 3) for p in (1, 2)}  # fmt: skip


async def test_a_steps_own_option_that_is_wrong_is_one_line_naming_the_step(tmp_path: Path):
    (tmp_path / "in.txt").write_text("http://127.0.0.1:9/x\n")
    job = tmp_path / "job.toml"
    job.write_text('[[step]]\nname = "a"\ninput = "in.txt"\nhas_next = "more"\n')
    done = await run_cli("run", str(job), "-o", str(tmp_path / "out"))
    assert done.status == 2 and "step 'a': 'has_next' 'more'" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


async def test_the_demo_runs_a_three_step_job_file_against_the_embedded_tree(tmp_path: Path):
    done = await run_cli("demo", "--tree", "-n", "30", "--latency-ms", "0", "-q",
                         "-o", str(tmp_path / "tree"))  # fmt: skip
    assert done.status in (0, 1), done.stderr  # the demo's API fails some answers on purpose
    orgs, repos = (
        records(tmp_path / "tree" / "orgs.jsonl"),
        records(tmp_path / "tree" / "repos.jsonl"),
    )
    issues = records(tmp_path / "tree" / "issues.jsonl")
    assert len(orgs) == 3 * 2  # o0, o1, o2: three repositories each, two a page
    assert {r["id"] for r in repos} == {f"r{n}" for n in range(5)}  # r0..r4, each once
    assert issues and all(r["parent"] in {r["id"] for r in repos} for r in issues)


async def test_the_views_total_grows_as_children_are_found_and_ends_at_what_was_done(
    tmp_path: Path,
):
    from fanfetch._core._jobfile import load_job
    from fanfetch._engine._graph import Graph
    from fanfetch._observe._summary import Stats

    with fanfetch.MockAPI(latency_ms=1) as api:
        job = load_job(tree_job(tmp_path, api.url))
        stats = Stats()
        graph = Graph(job, fanfetch.make_config(**job.run), str(tmp_path), stats=stats)
        seen: list[tuple[int | None, int]] = []
        graph.engine._listeners += (lambda _: seen.append((stats.total, stats.done)),)
        try:
            await graph.run()
        finally:
            await graph.aclose()
    totals = [total for total, _ in seen if total is not None]
    assert totals and totals[-1] == stats.done == 7 + 13 + 36  # every record of every step
    assert all(total >= done for total, done in seen if total is not None)
    assert all(total is not None for total, done in seen if done)  # known once any is done
    assert max(totals) > totals[0]  # it grew as children were found


async def test_sigterm_stops_a_job_whole_and_resume_finishes_it_once(api: Any, tmp_path: Path):
    import asyncio
    import signal
    import sys

    api.hold_seconds = 0.003
    (tmp_path / "roots.txt").write_text("".join(api.url(f"/tree/a/{n}") + "\n"
                                                for n in range(10)))  # fmt: skip
    job = tmp_path / "job.toml"
    job.write_text(KILLED.format(c=4, base=api.url("").rstrip("/")))
    out = tmp_path / "out"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(job), "-o", str(out), "-q",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await api.wait_hits(40)
    proc.send_signal(signal.SIGTERM)
    _, stderr = await proc.communicate()
    assert proc.returncode == 143, stderr.decode()
    stopped = {step: records(out / f"{step}.jsonl") for step in "abc"}  # each line whole
    every = 20 + 2 * 15 + 4 * 15  # a: 10 x 2 pages; b3..b17: 2 pages; their c: 2 x 2 each
    assert 0 < sum(map(len, stopped.values())) < every  # stopped before the end
    done = await run_cli("run", str(job), "-o", str(out), "-q", "--resume")
    assert done.status == 0, done.stderr
    for step in "abc":
        keys = [(r["id"], r.get("page")) for r in records(out / f"{step}.jsonl")]
        assert len(keys) == len(set(keys)), step
    assert sum(len(records(out / f"{step}.jsonl")) for step in "abc") == every


async def test_redo_failed_makes_again_only_a_steps_failed_requests(api: Any, tmp_path: Path):
    (tmp_path / "roots.txt").write_text(api.url("/tree/a/0") + "\n")  # b3..b8 on two pages
    job = tmp_path / "job.toml"
    job.write_text('[run]\nretries = 0\npaginate = "link"\n\n[[step]]\nname = "a"\n'
                   'input = "roots.txt"\n\n[[step]]\nname = "b"\nfrom = "a"\nitems = "items"\n'
                   f'url = "{api.url("/scripted/")}{{name}}"\nmax_pages = 1\n')  # fmt: skip
    api.script["b4"] = [500, 200]
    out = tmp_path / "out"
    first = await run_cli("run", str(job), "-o", str(out), "-q")
    assert first.status == 1
    again = await run_cli("run", str(job), "-o", str(out), "-q", "--resume", "--redo-failed")
    assert again.status == 0, again.stderr
    b = records(out / "b.jsonl")
    assert sorted(r["id"].rsplit("/", 1)[1] for r in b) == [f"b{n}" for n in range(3, 9)]
    assert all(r["ok"] for r in b)
    asked = {path: n for path, n in api.log.hits.items() if path.startswith("/scripted/")}
    assert asked == {f"/scripted/b{n}": 2 if n == 4 else 1 for n in range(3, 9)}
    assert api.log.hits["/tree/a/0"] == 2  # its two pages, once each


async def test_a_job_file_has_the_dashboard_and_its_files_are_found_from_its_folder(
    api: Any, tmp_path: Path
):
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "roots.txt").write_text(api.url("/tree/a/0") + "\n")
    job = folder / "job.toml"
    job.write_text('[run]\nsave_dir = "bodies"\npaginate = "link"\n\n[[step]]\nname = "a"\n'
                   'input = "roots.txt"\n')  # fmt: skip
    done = await run_cli("run", str(job), "-o", str(tmp_path / "out"), "--dashboard",
                         cwd=tmp_path)  # fmt: skip
    assert done.status == 0, done.stderr
    assert "busiest hosts" in done.stderr  # not a terminal: the last view, once
    saved = [r["path"] for r in records(tmp_path / "out" / "a.jsonl")]
    assert len(set(saved)) == 2 and all(Path(p).parent == folder / "bodies" for p in saved)


def test_rows_are_the_items_of_each_answer_beside_the_records(tmp_path: Path):
    with fanfetch.MockAPI(latency_ms=1) as api:
        (tmp_path / "repos.txt").write_text(f"{api.url}/repos/a/issues?per_page=2&total=3\n")
        job = {"run": {"paginate": "link"},
               "step": [{"name": "issues", "input": str(tmp_path / "repos.txt"),
                         "rows": "items[].{number: number, id: title}"}]}  # fmt: skip
        fanfetch.run_job(job, output=tmp_path / "out")
    rows = records(tmp_path / "out" / "issues.rows.jsonl")
    assert rows == [
        {"id": 1, "page": 1, "index": 0, "number": 1, "item_id": "a issue 1"},
        {"id": 1, "page": 1, "index": 1, "number": 2, "item_id": "a issue 2"},
        {"id": 1, "page": 2, "index": 0, "number": 3, "item_id": "a issue 3"},
    ]


def test_a_resumed_job_makes_its_rows_again_from_its_records(tmp_path: Path):
    """As a kill between a record and its rows leaves them: the last rows gone and a torn
    line; resumed, the rows file is whole again, each row once."""
    with fanfetch.MockAPI(latency_ms=1) as api:
        (tmp_path / "repos.txt").write_text(f"{api.url}/repos/a/issues?per_page=2&total=5\n")
        job = {"run": {"paginate": "link"},
               "step": [{"name": "issues", "input": str(tmp_path / "repos.txt"),
                         "rows": "items[].{number: number}"}]}  # fmt: skip
        fanfetch.run_job(job, output=tmp_path / "out")
        rows = tmp_path / "out" / "issues.rows.jsonl"
        whole = rows.read_bytes()
        rows.write_bytes(b"".join(whole.splitlines(keepends=True)[:2]) + b'{"id": 1, "pa')
        fanfetch.run_job(job, output=tmp_path / "out", resume=True)
    assert rows.read_bytes() == whole
    assert [r["number"] for r in records(rows)] == [1, 2, 3, 4, 5]


async def test_parents_wait_when_their_children_pile_up(api: Any, tmp_path: Path):
    """Four roots of 60 pages each at -c 4: unchecked, every worker follows its root's
    pages while the children of up to 240 pages wait (232 seen); bounded, all workers but
    one wait once 4 x concurrency pages' children are waiting, so what waits is that bound
    and the pages of the one chain still going (73 seen), and every record is made."""
    from fanfetch._core._jobfile import load_job
    from fanfetch._engine._graph import Graph
    from fanfetch._observe._summary import Stats

    (tmp_path / "roots.txt").write_text("".join(api.url(f"/pages/link/60/{n}") + "\n"
                                                for n in range(4)))  # fmt: skip
    job = load_job({"run": {"concurrency": 4, "paginate": "link"},
                    "step": [{"name": "a", "input": str(tmp_path / "roots.txt")},
                             {"name": "b", "from": "a", "items": "items[].{n: @}",
                              "url": api.url("/ok/") + "{n}", "max_pages": 1}]})  # fmt: skip
    graph = Graph(job, fanfetch.make_config(**job.run), str(tmp_path), stats=Stats())
    try:
        await graph.run()
    finally:
        await graph.aclose()
    assert graph.counts["a"].records == 240 and graph.counts["b"].records == 180  # 3 items
    assert graph.most_pending <= 4 * 4 + 60 + 4, graph.most_pending


def test_a_step_sends_its_own_headers_and_timeout_under_a_lines_own(tmp_path: Path):
    with fanfetch.MockAPI(latency_ms=1) as api:
        (tmp_path / "in.jsonl").write_text(
            json.dumps({"url": f"{api.url}/echo", "method": "POST", "json": {"n": 1}}) + "\n"
            + json.dumps({"url": f"{api.url}/echo", "method": "POST", "json": {"n": 2},
                          "headers": {"X-Level": "the line's"}}) + "\n"
        )  # fmt: skip
        job = {"step": [
            {"name": "a", "input": str(tmp_path / "in.jsonl"), "timeout": 5,
             "headers": {"X-Level": "a", "X-Only-A": "yes"}},
            {"name": "b", "from": "a", "items": "body", "method": "POST", "id": "n",
             "url": f"{api.url}/echo?n={{n}}", "headers": {"X-Level": "b"}},
        ]}  # fmt: skip
        fanfetch.run_job(job, output=tmp_path / "out")
    a = {r["id"]: r["body"]["headers"] for r in records(tmp_path / "out" / "a.jsonl")}
    b = {r["id"]: r["body"]["headers"] for r in records(tmp_path / "out" / "b.jsonl")}
    assert a[1]["X-Level"] == "a" and a[2]["X-Level"] == "the line's" and a[1]["X-Only-A"]
    assert set(b) == {1, 2} and all(h["X-Level"] == "b" and "X-Only-A" not in h
                                    for h in b.values())  # fmt: skip


async def test_a_steps_headers_must_be_a_table_of_strings(tmp_path: Path):
    (tmp_path / "in.txt").write_text("http://127.0.0.1:9/x\n")
    job = tmp_path / "job.toml"
    job.write_text('[[step]]\nname = "a"\ninput = "in.txt"\nheaders = "Accept: x"\n')
    done = await run_cli("run", str(job), "-o", str(tmp_path / "out"))
    assert done.status == 2 and "'headers' must be a table of strings" in done.stderr


async def test_a_steps_timeout_bounds_its_attempts(api: Any, tmp_path: Path):
    (tmp_path / "in.txt").write_text(api.url("/hang/1") + "\n")
    job = tmp_path / "job.toml"
    job.write_text('[run]\nretries = 0\n\n[[step]]\nname = "a"\ninput = "in.txt"\n'
                   "timeout = 0.2\n")  # fmt: skip
    done = await run_cli("run", str(job), "-o", str(tmp_path / "out"), "-q")
    api.release.set()
    (record,) = records(tmp_path / "out" / "a.jsonl")
    assert done.status == 1 and record["error"]["type"] == "timeout"
