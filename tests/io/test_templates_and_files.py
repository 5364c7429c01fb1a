"""--url templates filled from rows (JSON or CSV), one-endpoint-many-bodies, and --save-dir."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from fanfetch import ConfigError
from fanfetch._core._files import safe_name
from fanfetch._io._template import UrlTemplate
from tests.conftest import run_cli
from tests.servers import LoopbackAPI


async def test_a_url_template_is_filled_from_json_rows_with_values_url_encoded(api: LoopbackAPI):
    rows = b'{"user": "ann", "q": "a b/c"}\n{"user": 7, "q": "x"}\n{"q": "no user"}\n'
    template = api.url("/echo") + "?user={user}&q={q}"
    result = await run_cli("run", "-", "-q", "--url", template, stdin=rows)
    records = {r["id"]: r for r in result.records}
    assert records[1]["body"]["query"] == {"user": "ann", "q": "a b/c"}
    assert records[1]["url"].endswith("?user=ann&q=a%20b%2Fc")
    assert records[2]["body"]["query"] == {"user": "7", "q": "x"}
    assert records[3]["error"]["type"] == "invalid_request"
    assert "no user for the URL" in records[3]["error"]["message"]


async def test_csv_rows_fill_the_template_and_ids_are_their_line_numbers(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "users.csv"
    src.write_text("id,name\nu1,ann\nu2,bob\n,carl\n")
    result = await run_cli("run", str(src), "-q", "--url", api.url("/ok/{name}"))
    records = {r["id"]: r for r in result.records}
    assert records["u1"]["body"]["id"] == "ann" and records["u2"]["body"]["id"] == "bob"
    assert records[""]["body"]["id"] == "carl"  # an empty id column is still the given id
    assert result.status == 0


async def test_a_csv_row_with_a_field_over_128_kib_is_read_not_a_crash(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "rows.csv"
    src.write_text(f"name,note\nann,{'x' * 200_000}\nbob,short\n")
    result = await run_cli("run", str(src), "-q", "--url", api.url("/ok/{name}"))
    assert result.status == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert sorted(r["body"]["id"] for r in result.records) == ["ann", "bob"]


async def test_one_endpoint_many_bodies_posts_each_row_as_json(api: LoopbackAPI):
    rows = b'{"id": "a", "prompt": "hi"}\n{"id": "b", "prompt": "yo"}\n'
    result = await run_cli("run", "-", "-q", "--url", api.url("/echo"), "--method", "POST",
                           stdin=rows)  # fmt: skip
    records = {r["id"]: r for r in result.records}
    assert records["a"]["body"]["method"] == "POST"
    assert orjson.loads(records["b"]["body"]["body"]) == {"id": "b", "prompt": "yo"}


def test_templates_refuse_unnamed_slots_and_unknown_methods():
    with pytest.raises(ConfigError, match="name each slot"):
        UrlTemplate("http://127.0.0.1/{}")
    with pytest.raises(ConfigError, match="method"):
        UrlTemplate("http://127.0.0.1/{x}", method="BREW")


@pytest.mark.parametrize(("rid", "expected"), [("report-7.json", "report-7.json"), (17, "17")])
def test_plain_ids_are_their_own_file_names(rid, expected):
    assert safe_name(rid) == expected


@pytest.mark.parametrize("rid", ["../../etc/passwd", "a/b", ".hidden", "", "x" * 300])
def test_tricky_ids_cannot_leave_the_directory_or_collide(rid):
    name = safe_name(rid)
    assert "/" not in name and not name.startswith(".") and len(name) <= 120
    assert name != safe_name(str(rid) + "!")


def test_ids_that_differ_get_names_that_differ_even_ignoring_case():
    ids: list[object] = [7, "7", -7, "-7", "x", "x.part", "a", "A", "a_b", "a/b", "a~b", True]
    names = [safe_name(rid).lower() for rid in ids]
    assert len(set(names)) == len(ids), dict(zip(map(repr, ids), names, strict=True))


async def test_save_dir_never_writes_through_a_link(api: LoopbackAPI, tmp_path: Path):
    out_dir = tmp_path / "bodies"
    out_dir.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    for planted in ("x", "x.part", ".x.part"):  # links where a careless saver would write
        (out_dir / planted).symlink_to(outside)
    line = orjson.dumps({"id": "x", "url": api.url("/big/100")}) + b"\n"
    result = await run_cli("run", "-", "-q", "--save-dir", str(out_dir), stdin=line)
    assert result.status == 0, result.stderr
    assert outside.read_text() == "keep me"
    saved = out_dir / "x"
    assert not saved.is_symlink() and saved.read_bytes() == b"x" * 100


async def test_every_record_s_sha256_matches_its_own_file_at_concurrency_50(
    api: LoopbackAPI, tmp_path: Path
):
    ids: list[object] = []
    for i in range(60):
        ids += [i, str(i), f"f{i}", f"F{i}", f"f{i}.part"]
    lines = b"".join(
        orjson.dumps({"id": rid, "url": api.url(f"/big/{100 + n}")}) + b"\n"
        for n, rid in enumerate(ids)
    )
    out_dir = tmp_path / "bodies"
    result = await run_cli("run", "-", "-q", "-c", "50", "--save-dir", str(out_dir), stdin=lines)
    assert result.status == 0, result.stderr
    records = result.records
    assert len(records) == len(ids) == len({r["path"] for r in records})
    for record in records:
        content = Path(record["path"]).read_bytes()
        assert hashlib.sha256(content).hexdigest() == record["sha256"]
        assert len(content) == record["bytes"]


async def test_save_dir_streams_bodies_to_files_with_size_and_sha256(
    api: LoopbackAPI, tmp_path: Path
):
    lines = (
        b"".join(
            orjson.dumps({"id": rid, "url": api.url("/big/5000")}) + b"\n"
            for rid in ("plain", "../escape")
        )
        + (api.url("/status/404") + "\n").encode()
    )
    out_dir = tmp_path / "bodies"
    result = await run_cli("run", "-", "-q", "--save-dir", str(out_dir), stdin=lines)
    records = {r["id"]: r for r in result.records}
    expected = hashlib.sha256(b"x" * 5000).hexdigest()
    for rid in ("plain", "../escape"):
        record = records[rid]
        assert "body" not in record and record["bytes"] == 5000 and record["sha256"] == expected
        path = Path(record["path"])
        assert path.parent == out_dir and path.read_bytes() == b"x" * 5000
    assert records[3]["body"] == {"status": 404}  # failures keep their (small) body inline
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".part")]


async def test_each_page_of_a_chain_is_saved_to_a_file_of_its_own(api: LoopbackAPI, tmp_path: Path):
    """The pages of a chain share their request's id: page 1 keeps the id's name, each
    later page gets ``~p`` and its number, so no page overwrites another."""
    lines = (api.url("/pages/link/3/x") + "\n" + api.url("/pages/link/2/y") + "\n").encode()
    out_dir = tmp_path / "bodies"
    result = await run_cli("run", "-", "-q", "--save-dir", str(out_dir), "--paginate", "link",
                           stdin=lines)  # fmt: skip
    names = sorted(Path(r["path"]).name for r in result.records)
    assert names == ["1", "1~p2", "1~p3", "2", "2~p2"]
    for record in result.records:
        content = Path(record["path"]).read_bytes()
        assert hashlib.sha256(content).hexdigest() == record["sha256"]
        assert orjson.loads(content)["page"] == record["page"]


async def test_saved_files_are_capped_by_max_file_not_by_max_body(api: LoopbackAPI, tmp_path: Path):
    lines = (api.url("/big/5000") + "\n").encode()
    out_dir = tmp_path / "bodies"
    roomy = await run_cli("run", "-", "-q", "--save-dir", str(out_dir), "--max-body", "1000",
                          stdin=lines)  # fmt: skip
    assert roomy.records[0]["bytes"] == 5000  # streamed to disk: --max-body does not apply
    capped = await run_cli("run", "-", "-q", "--save-dir", str(out_dir), "--max-file", "1000",
                           "--retries", "0", stdin=lines)  # fmt: skip
    record = capped.records[0]
    assert record["error"]["type"] == "too_large" and "--max-file" in record["error"]["message"]
    assert not list(out_dir.glob("*.part"))  # the cut-off file is not left half-written


@pytest.mark.parametrize("transport", ["lean", "aiohttp", "http2"])
async def test_a_template_value_of_dot_dot_cannot_climb_the_path(tmp_path: Path, transport: str):
    """A value is one segment: ``../admin`` is sent as ``..%2Fadmin``; a value of ``.`` or
    ``..`` is an invalid row, since every URL parser resolves it, quoted or not (aiohttp's
    yarl and pyreqwest sent GET /x). A raw server shows the request line as sent."""
    from tests.hostile import Conn, RawServer, response

    async def answer(conn: Conn) -> None:
        while await conn.request() is not None:
            conn.write(response(b"{}"))

    src = tmp_path / "rows.jsonl"
    src.write_text('{"name": ".."}\n{"name": "."}\n{"name": "../admin"}\n')
    async with RawServer(answer) as server:
        result = await run_cli("run", str(src), "-q", "--url", server.url("/ok/{name}/x"),
                               "--transport", transport)  # fmt: skip
    assert result.status == 1, result.stderr
    assert [s.line.split()[1] for s in server.seen] == ["/ok/..%2Fadmin/x"]  # one segment
    invalid = sorted(r["id"] for r in result.records if not r["ok"])
    assert invalid == [1, 2] and all(
        "would climb" in r["error"]["message"] for r in result.records if not r["ok"]
    )


async def test_a_byte_order_mark_on_the_first_line_is_no_invalid_line(api: LoopbackAPI, tmp_path):
    src = tmp_path / "urls.txt"
    src.write_bytes(b"\xef\xbb\xbf" + (api.url("/ok/1") + "\n" + api.url("/ok/2") + "\n").encode())
    csv_src = tmp_path / "rows.csv"
    csv_src.write_bytes(b"\xef\xbb\xbfname\nann\n")
    plain = await run_cli("run", str(src), "-q")
    rows = await run_cli("run", str(csv_src), "-q", "--url", api.url("/ok/{name}"))
    assert plain.status == 0 and rows.status == 0, plain.stderr + rows.stderr
    assert sorted(r["ok"] for r in plain.records + rows.records) == [True, True, True]


async def test_rows_are_each_item_of_each_answer_beside_the_records_once_after_a_resume(
    api: LoopbackAPI, tmp_path: Path
):
    src = tmp_path / "in.txt"
    src.write_text(api.url("/pages/link/2/x") + "\n" + api.url("/pages/link/1/y") + "\n")
    out = tmp_path / "out.jsonl"
    run = ["run", str(src), "-o", str(out), "-q", "--paginate", "link", "--rows", "items"]
    done = await run_cli(*run)
    assert done.status == 0, done.stderr
    rows_file = tmp_path / "out.rows.jsonl"
    rows = [orjson.loads(line) for line in rows_file.read_bytes().splitlines()]
    assert sorted((r["id"], r["page"], r["index"], r["value"]) for r in rows) == sorted(
        [(1, 1, i, f"1.{i}") for i in range(3)] + [(1, 2, i, f"2.{i}") for i in range(3)]
        + [(2, 1, i, f"1.{i}") for i in range(3)]
    )  # fmt: skip
    whole = sorted(rows_file.read_bytes().splitlines())
    rows_file.write_bytes(rows_file.read_bytes()[:40])  # a kill after the records, mid-rows
    again = await run_cli(*run, "--resume")
    assert again.status == 0 and sorted(rows_file.read_bytes().splitlines()) == whole


async def test_rows_want_a_json_lines_output(api: LoopbackAPI, tmp_path: Path):
    src = tmp_path / "in.txt"
    src.write_text(api.url("/ok/1") + "\n")
    done = await run_cli("run", str(src), "-o", str(tmp_path / "out.csv"), "--rows", "items")
    assert done.status == 2 and "--rows" in done.stderr and ".jsonl" in done.stderr
