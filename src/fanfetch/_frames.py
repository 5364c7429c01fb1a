"""DataFrames in, DataFrames out: ``fanfetch.map`` makes one request per row of a pandas or
Polars DataFrame (or LazyFrame) or a PyArrow Table, and gives back the same kind of frame
with the answers as columns beside the row's own.

Every frame goes through Arrow: its rows are read a batch at a time and made into requests
as the run takes them (the URL, ``json`` and ``params`` templates filled from the row's
columns), the run is ``fanfetch.iter_results`` in input order (a paginated row gives one
row per page), and the output is the input's rows taken by position, with the result
columns added. pandas and Polars are imported only when a frame of theirs comes in; a
missing one is named with its ``pip install``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, Unpack

import orjson

from ._core._config import Options, select_columns
from ._core._exceptions import ConfigError, MapError, UsageError
from ._core._models import Request, Result
from ._io._template import ItemTemplate

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["MapError", "amap", "map", "read"]

RESULT_COLUMNS = ("ok", "status", "error_type", "error_message", "elapsed_ms")
_BATCH = 4096  # rows read from the frame at a time


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """How each row becomes a request, and what the output keeps of each answer."""

    url: ItemTemplate
    method: str
    json: Any
    params: Mapping[str, Any] | None
    columns: tuple[str, ...]  # a multiselect's keys: the answer's own columns
    id_column: str | None


def map(
    frame: Any,
    url: str,
    *,
    method: str = "GET",
    json: Any = None,
    params: Mapping[str, Any] | None = None,
    on_error: Literal["keep", "drop", "raise"] = "keep",
    id: str | None = None,
    **options: Unpack[Options],
) -> Any:
    """One request per row of ``frame``; the same kind of frame back, one row per input row
    in input order (a paginated row: one per page), with ``ok``, ``status``,
    ``error_type``, ``error_message``, ``elapsed_ms`` and either ``body`` (JSON text) or
    the columns of a ``select`` multiselect (``body_`` before a name the input has).

    ``url``, and the string values of ``json`` and ``params``, are templates over the row's
    columns: ``"{user_id}"`` alone is the row's value as it is, inside a longer string its
    text. Every option of ``fanfetch.run`` applies (``headers``, ``select``, limits,
    retries, ``paginate``...). ``on_error``: ``"keep"`` failed rows
    (with nulls), ``"drop"`` them, or ``"raise"`` ``fanfetch.MapError`` after the run.
    """
    from ._sync import iter_results

    table, kind = _as_arrow(frame)
    plan = _plan(table, url, method, json, params, options.get("select"), id)
    requests: Iterator[Any] = _requests(table, plan)  # a row that makes none: its Result
    results = list(iter_results(requests, ordered=True, **options))
    return _output(table, kind, plan, results, on_error)


async def amap(
    frame: Any,
    url: str,
    *,
    method: str = "GET",
    json: Any = None,
    params: Mapping[str, Any] | None = None,
    on_error: Literal["keep", "drop", "raise"] = "keep",
    id: str | None = None,
    **options: Unpack[Options],
) -> Any:
    """``fanfetch.map`` on the running loop (``await fanfetch.amap(frame, url)``)."""
    from ._client import stream

    table, kind = _as_arrow(frame)
    plan = _plan(table, url, method, json, params, options.get("select"), id)
    requests: AsyncIterator[Any] = _arequests(table, plan)
    results = [r async for r in stream(requests, ordered=True, **options)]
    return _output(table, kind, plan, results, on_error)


def read(
    path: str | os.PathLike[str],
    *,
    as_: Literal["arrow", "pandas", "polars"] = "arrow",
    format: str | None = None,
) -> Any:
    """Any fanfetch output (every format; a job's step, ``out/issues.jsonl``) as one table
    with the columns ``fanfetch export`` writes to Parquet: an Arrow table, or
    ``as_="pandas"`` or ``"polars"``."""
    import tempfile

    from ._io._export import export

    if as_ not in ("arrow", "pandas", "polars"):
        raise ConfigError("as_", as_, "give 'arrow', 'pandas' or 'polars'")
    pq = _needs("pyarrow.parquet", "parquet")
    if as_ != "arrow":
        _needs(as_, as_)
    with tempfile.TemporaryDirectory(prefix="fanfetch-read-") as folder:
        parquet = os.path.join(folder, "records.parquet")
        export(os.fspath(path), parquet, source_format=format)
        table = pq.read_table(parquet)
    return _as_kind(table, as_)


# -- frames in ----------------------------------------------------------------------------


def _needs(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"this needs {module}: pip install 'fanfetch[{extra}]'") from None


def _as_arrow(frame: Any) -> tuple[pa.Table, str]:
    """``frame`` as an Arrow table, and what kind of frame it came as."""
    pa = _needs("pyarrow", "parquet")
    origin = type(frame).__module__.split(".")[0]
    if isinstance(frame, pa.Table):
        return frame, "arrow"
    if isinstance(frame, pa.RecordBatchReader):
        return frame.read_all(), "arrow"
    if origin == "pandas":
        _needs("pandas", "pandas")
        return pa.Table.from_pandas(frame, preserve_index=False), "pandas"
    if origin == "polars":
        _needs("polars", "polars")
        if type(frame).__name__ == "LazyFrame":
            return frame.collect().to_arrow(), "polars-lazy"
        return frame.to_arrow(), "polars"
    raise ConfigError("frame", type(frame).__name__, "give a pandas or Polars DataFrame (or "
                      "LazyFrame), or a PyArrow Table or RecordBatchReader")  # fmt: skip


def _plan(
    table: pa.Table,
    url: str,
    method: str,
    json: Any,
    params: Mapping[str, Any] | None,
    select: str | None,
    id_column: str | None,
) -> _Plan:
    template = ItemTemplate(url, step="map")
    names = set(table.column_names)
    wanted = [*template.names, *_slots(json), *_slots(params)]
    lacking = sorted({name.split(".")[0] for name in wanted} - names)
    if lacking:
        raise ConfigError("url", url, f"the frame has no column {', '.join(lacking)} (it has "
                          f"{', '.join(table.column_names)})")  # fmt: skip
    if id_column is not None and id_column not in names:
        raise ConfigError("id", id_column, "name a column of the frame")
    columns = select_columns(select) if select is not None else ()
    return _Plan(template, method.upper(), json, params, columns, id_column)


def _slots(template: Any) -> list[str]:
    if isinstance(template, str):
        return ItemTemplate(template, step="map").names
    if isinstance(template, Mapping):
        return [name for value in template.values() for name in _slots(value)]
    if isinstance(template, list):
        return [name for value in template for name in _slots(value)]
    return []


def _rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    for batch in table.to_batches(max_chunksize=_BATCH):
        yield from batch.to_pylist()


def _requests(table: pa.Table, plan: _Plan) -> Iterator[Request | Result]:
    for position, row in enumerate(_rows(table)):
        yield _request(position, row, plan)


async def _arequests(table: pa.Table, plan: _Plan) -> AsyncIterator[Request | Result]:
    for item in _requests(table, plan):
        yield item


def _request(position: int, row: dict[str, Any], plan: _Plan) -> Request | Result:
    from ._core._exceptions import InvalidRequest

    rid = row.get(plan.id_column) if plan.id_column is not None else position
    url, missing = plan.url.fill(row)
    request = Request(url or "", method=plan.method, id=rid, json=_filled(plan.json, row),
                      params=_filled(plan.params, row), meta=position)  # fmt: skip
    if url is None:
        message = f"row {position} has no value for {', '.join(missing)} in its URL"
        return Result(request, error=InvalidRequest(message), attempts=0)
    return request


def _filled(template: Any, row: dict[str, Any]) -> Any:
    """``template`` with each ``{column}`` filled: a whole ``"{x}"`` as the value itself."""
    if isinstance(template, str):
        names = ItemTemplate(template, step="map").names
        if len(names) == 1 and template == "{" + names[0] + "}":
            return _value(row, names[0])
        out = template
        for name in names:
            out = out.replace("{" + name + "}", str(_value(row, name)))
        return out
    if isinstance(template, Mapping):
        return {key: _filled(value, row) for key, value in template.items()}
    if isinstance(template, list):
        return [_filled(value, row) for value in template]
    return template


def _value(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# -- frames out ---------------------------------------------------------------------------


def _output(
    table: pa.Table,
    kind: str,
    plan: _Plan,
    results: list[Result],
    on_error: str,
) -> Any:
    import pyarrow as pa

    if on_error not in ("keep", "drop", "raise"):
        raise ConfigError("on_error", on_error, "give 'keep', 'drop' or 'raise'")
    kept = [r for r in results if r.ok or on_error != "drop"]
    positions = [r.request.meta for r in kept]
    out = table.take(pa.array(positions, type=pa.int64()))
    taken = set(out.column_names)
    errors = [r.error for r in kept]
    columns: dict[str, Any] = {
        "ok": pa.array([r.ok for r in kept], type=pa.bool_()),
        "status": pa.array([r.status for r in kept], type=pa.int64()),
        "error_type": pa.array([None if e is None else e.type for e in errors], pa.string()),
        "error_message": pa.array([None if e is None else str(e) for e in errors], pa.string()),
        "elapsed_ms": pa.array([r.elapsed_ms for r in kept], type=pa.float64()),
    }
    if any(r.page is not None for r in kept):
        columns["page"] = pa.array([r.page for r in kept], type=pa.int64())
    bodies = [_body(r) for r in kept]
    if plan.columns:
        for key in plan.columns:
            values = [b.get(key) if isinstance(b, dict) else None for b in bodies]
            columns[key] = pa.array(values)
    else:
        columns["body"] = pa.array(
            [None if b is None else orjson.dumps(b).decode() for b in bodies], pa.string()
        )
    for name, column in columns.items():
        out = out.append_column(f"body_{name}" if name in taken else name, column)
    frame = _as_kind(out, kind)
    failures = [(r.request.meta, r.error.type, str(r.error)) for r in results
                if r.error is not None]  # fmt: skip
    if on_error == "raise" and failures:
        raise MapError(failures, frame)
    return frame


def _body(result: Result) -> Any:
    if not result.ok:
        return None
    try:
        return result.body
    except Exception:
        return None


def _as_kind(table: pa.Table, kind: str) -> Any:
    if kind == "pandas":
        return table.to_pandas()
    if kind.startswith("polars"):
        import polars as pl

        frame = pl.DataFrame(table)
        return frame.lazy() if kind == "polars-lazy" else frame
    return table
