"""``fanfetch.map``: one request per row of a pandas or Polars frame or an Arrow table, the
answers as columns beside the row's own, against the embedded API."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import fanfetch


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with fanfetch.MockAPI(latency_ms=1) as mock:
        yield mock.url


def test_a_pandas_frame_gets_its_answers_as_columns_in_row_order(api: str):
    frame = pd.DataFrame({"item": [3, 1, 2], "name": ["c", "a", "b"]})
    out = fanfetch.map(frame, f"{api}/items/{{item}}", select="{id: id, price: price, name: name}")
    assert isinstance(out, pd.DataFrame) and list(out["item"]) == [3, 1, 2]
    assert list(out.columns) == ["item", "name", "ok", "status", "error_type", "error_message",
                                 "elapsed_ms", "id", "price", "body_name"]  # fmt: skip
    assert list(out["id"]) == ["3", "1", "2"] and list(out["body_name"]) == ["item 3", "item 1",
                                                                            "item 2"]  # fmt: skip
    assert out["ok"].all() and list(out["status"]) == [200, 200, 200]


@pytest.mark.parametrize("kind", ["polars", "lazy", "arrow"])
def test_every_kind_of_frame_comes_back_as_its_own_kind(api: str, kind: str):
    data = {"code": [200, 404]}
    frame = {"polars": pl.DataFrame(data), "lazy": pl.DataFrame(data).lazy(),
             "arrow": pa.table(data)}[kind]  # fmt: skip
    out = fanfetch.map(frame, f"{api}/status/{{code}}", retries=0)
    expected = {"polars": pl.DataFrame, "lazy": pl.LazyFrame, "arrow": pa.Table}[kind]
    assert isinstance(out, expected)
    table = (
        out.collect().to_arrow() if kind == "lazy" else out if kind == "arrow" else out.to_arrow()
    )
    rows = table.select(["code", "ok", "status", "error_type"]).to_pylist()
    assert rows == [
        {"code": 200, "ok": True, "status": 200, "error_type": None},
        {"code": 404, "ok": False, "status": 404, "error_type": "http_status"},
    ]


def test_failed_rows_are_kept_dropped_or_raised(api: str):
    frame = pd.DataFrame({"code": [200, 500, 200, 404]})
    url = f"{api}/status/{{code}}"
    kept = fanfetch.map(frame, url, retries=0)
    assert list(kept["ok"]) == [True, False, True, False]
    dropped = fanfetch.map(frame, url, retries=0, on_error="drop")
    assert list(dropped["code"]) == [200, 200]
    with pytest.raises(fanfetch.MapError) as caught:
        fanfetch.map(frame, url, retries=0, on_error="raise")
    assert [(p, t) for p, t, _ in caught.value.failures] == [(1, "http_status"), (3, "http_status")]
    assert len(caught.value.frame) == 4  # the whole output, for a look at what failed


def test_a_json_template_sends_each_rows_values_as_they_are(api: str):
    frame = pd.DataFrame({"user": ["ann", "bob"], "n": [1, 2]})
    out = fanfetch.map(frame, f"{api}/echo", method="POST",
                       json={"who": "{user}", "count": "{n}", "note": "for {user}"},
                       select="{sent: body}")  # fmt: skip
    assert list(out["sent"]) == [{"who": "ann", "count": 1, "note": "for ann"},
                                 {"who": "bob", "count": 2, "note": "for bob"}]  # fmt: skip


def test_a_missing_column_is_refused_before_a_request_and_a_missing_value_fails_its_row(
    api: str,
):
    with pytest.raises(fanfetch.ConfigError, match="no column nope"):
        fanfetch.map(pd.DataFrame({"item": [1]}), f"{api}/items/{{nope}}")
    out = fanfetch.map(pa.table({"item": [1, None]}), f"{api}/items/{{item}}")
    assert out.column("ok").to_pylist() == [True, False]
    assert out.column("error_type").to_pylist() == [None, "invalid_request"]


def test_a_paginated_row_gives_a_row_per_page_in_order(api: str):
    frame = pl.DataFrame({"repo": ["a", "b"], "total": [6, 2]})
    out = fanfetch.map(frame, f"{api}/repos/{{repo}}/issues?per_page=4&total={{total}}",
                       paginate="link", select="items[].number")  # fmt: skip
    assert out.select(["repo", "page", "body"]).rows() == [
        ("a", 1, "[1,2,3,4]"),
        ("a", 2, "[5,6]"),
        ("b", 1, "[1,2]"),
    ]


async def test_amap_is_map_on_the_running_loop(api: str):
    out = await fanfetch.amap(pa.table({"item": [7, None, 8]}), f"{api}/items/{{item}}")
    assert out.column("status").to_pylist() == [200, None, 200]  # the row with no item fails


def test_a_frame_of_an_unknown_kind_is_a_one_line_error():
    with pytest.raises(fanfetch.ConfigError, match="pandas or Polars"):
        fanfetch.map([{"item": 1}], "http://127.0.0.1:9/{item}")


@pytest.mark.parametrize("as_", ["arrow", "pandas", "polars"])
def test_read_loads_an_output_as_the_table_export_writes(api: str, tmp_path, as_: str):
    from pathlib import Path

    out = Path(tmp_path) / "out.sqlite"
    fanfetch.run([f"{api}/items/{i}" for i in (1, 2)] + [f"{api}/status/404"], output=out,
                 retries=0)  # fmt: skip
    table = fanfetch.read(out, as_=as_)  # type: ignore[arg-type]
    arrow = table if as_ == "arrow" else pa.Table.from_pandas(table) if as_ == "pandas" else (
        table.to_arrow())  # fmt: skip
    assert {"id", "ok", "status", "error_type", "body"} <= set(arrow.column_names)
    assert sorted(arrow.column("status").to_pylist()) == [200, 200, 404]
    kind = {"arrow": pa.Table, "pandas": pd.DataFrame, "polars": pl.DataFrame}[as_]
    assert isinstance(table, kind)


async def test_a_parquet_input_is_read_as_rows_for_url_or_as_requests(tmp_path, api: str):
    from pathlib import Path

    import pyarrow.parquet as pq

    from tests.conftest import run_cli

    folder = Path(tmp_path)
    pq.write_table(pa.table({"item": [4, 5], "note": ["x", "y"]}), folder / "rows.parquet")
    pq.write_table(pa.table({"id": ["a"], "url": [f"{api}/items/6"]}), folder / "reqs.parquet")
    rows = await run_cli("run", str(folder / "rows.parquet"), "--url", f"{api}/items/{{item}}",
                         "-q")  # fmt: skip
    assert rows.status == 0 and [(r["id"], r["body"]["id"]) for r in rows.records] == [
        (1, "4"),
        (2, "5"),
    ]  # each row's position is its id, as a CSV row's line is
    requests = await run_cli("run", str(folder / "reqs.parquet"), "-q")
    assert [(r["id"], r["status"]) for r in requests.records] == [("a", 200)]
    (folder / "bad.parquet").write_text("not parquet\n")
    bad = await run_cli("run", str(folder / "bad.parquet"), "-q")
    assert bad.status == 2 and "as Parquet" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_large_frame_comes_back_whole_in_order_through_batches(api: str):
    frame = pa.table({"item": list(range(10_000))})  # more rows than one batch of 4,096
    out = fanfetch.map(frame, f"{api}/items/{{item}}", concurrency=200, select="{id: id}")
    assert out.num_rows == 10_000 and out.column("item").to_pylist() == list(range(10_000))
    assert out.column("id").to_pylist() == [str(n) for n in range(10_000)]


def test_a_map_with_an_output_resumes_and_gives_back_every_row(api: str, tmp_path):
    """The first run is cut short by a guard after 3 rows; resumed, only the other 3 are
    asked, and the frame has all 6, the first 3 read back from the output."""
    from pathlib import Path

    out = Path(tmp_path) / "map.jsonl"
    frame = pd.DataFrame({"item": [10, 11, 12, 13, 14, 15]})
    url = f"{api}/items/{{item}}"
    first = fanfetch.map(frame, url, output=out, limit=3, concurrency=1)
    assert len(first) == 3
    again = fanfetch.map(frame, url, output=out, resume=True, select="{id: id}")
    assert list(again["item"]) == [10, 11, 12, 13, 14, 15] and again["ok"].all()
    assert len(out.read_text().splitlines()) == 6  # each row recorded once


async def test_the_rows_of_a_duckdb_query_are_an_input(tmp_path, api: str):
    from pathlib import Path

    import pyarrow.parquet as pq

    from tests.conftest import run_cli

    folder = Path(tmp_path)
    pq.write_table(pa.table({"item": [3, 1, 2]}), folder / "rows.parquet")
    query = f"SELECT item FROM '{folder / 'rows.parquet'}' WHERE item > 1 ORDER BY item"
    done = await run_cli("run", "--sql", query, "--url", f"{api}/items/{{item}}", "-q")
    assert done.status == 0, done.stderr
    assert sorted((r["id"], r["body"]["id"]) for r in done.records) == [(1, "2"), (2, "3")]
    wrong = await run_cli("run", "--sql", "SELEC 1", "-q")
    assert wrong.status == 2 and "the --sql query failed" in wrong.stderr
    neither = await run_cli("run", "-q")
    assert neither.status == 2 and "--sql" in neither.stderr
