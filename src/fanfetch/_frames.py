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
import functools
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, Unpack

import orjson

from ._core._config import Options, select_columns
from ._core._exceptions import ConfigError, MapError, UsageError
from ._core._models import Request, Result
from ._io._rows import body_of
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
    output: str | os.PathLike[str] | None = None,
    resume: bool = False,
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
    collect = _Collector(table, plan, on_error, paged=options.get("paginate") is not None)
    done = _recorded(output) if resume else {}
    requests: Iterator[Any] = _requests(table, plan)  # a row that makes none: its Result
    fresh = iter_results(requests, ordered=True, output=output, resume=resume, **options)
    for result in _merged(done, fresh, table.num_rows):
        collect.add(result)
    return collect.finish(kind)


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
    collect = _Collector(table, plan, on_error, paged=options.get("paginate") is not None)
    requests: AsyncIterator[Any] = _arequests(table, plan)
    async for result in stream(requests, ordered=True, **options):
        collect.add(result)
    return collect.finish(kind)


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


@functools.lru_cache(maxsize=256)
def _names(template: str) -> tuple[str, ...]:
    """The ``{column}`` slots of one template string, parsed once (not once a row)."""
    return tuple(ItemTemplate(template, step="map").names)


def _slots(template: Any) -> list[str]:
    if isinstance(template, str):
        return list(_names(template))
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
        names = _names(template)
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


class _Collector:
    """Results into the output table a batch at a time: the input's rows taken by position,
    the result columns beside them, each batch made Arrow as it fills, so what is held in
    Python is one batch."""

    def __init__(self, table: pa.Table, plan: _Plan, on_error: str, *, paged: bool) -> None:
        if on_error not in ("keep", "drop", "raise"):
            raise ConfigError("on_error", on_error, "give 'keep', 'drop' or 'raise'")
        self._table, self._plan, self._on_error, self._paged = table, plan, on_error, paged
        self._rows: list[tuple[Any, ...]] = []
        self._parts: list[pa.Table] = []
        self.failures: list[tuple[int, str, str]] = []

    def add(self, result: Result) -> None:
        error = result.error
        if error is not None:
            self.failures.append((result.request.meta, error.type, str(error)))
            if self._on_error == "drop":
                return
        body = body_of(result) if result.ok else None
        if not self._plan.columns:
            body = None if body is None else orjson.dumps(body).decode()
        self._rows.append((result.request.meta, result.ok, result.status,
                           None if error is None else error.type,
                           None if error is None else str(error), result.elapsed_ms,
                           result.page, body))  # fmt: skip
        if len(self._rows) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        rows, self._rows = self._rows, []
        columns = list(zip(*rows, strict=True)) if rows else [()] * 8
        out = self._table.take(pa.array(columns[0], type=pa.int64()))
        taken = set(out.column_names)
        added: dict[str, Any] = {
            "ok": pa.array(columns[1], type=pa.bool_()),
            "status": pa.array(columns[2], type=pa.int64()),
            "error_type": pa.array(columns[3], type=pa.string()),
            "error_message": pa.array(columns[4], type=pa.string()),
            "elapsed_ms": pa.array(columns[5], type=pa.float64()),
        }
        if self._paged:
            added["page"] = pa.array(columns[6], type=pa.int64())
        if self._plan.columns:
            for key in self._plan.columns:
                added[key] = pa.array([b.get(key) if isinstance(b, dict) else None
                                       for b in columns[7]])  # fmt: skip
        else:
            added["body"] = pa.array(columns[7], type=pa.string())
        for name, column in added.items():
            out = out.append_column(f"body_{name}" if name in taken else name, column)
        self._parts.append(out)

    def finish(self, kind: str) -> Any:
        import pyarrow as pa

        if self._rows or not self._parts:
            self._flush()
        table = pa.concat_tables(self._parts, promote_options="default")
        frame = _as_kind(table.combine_chunks(), kind)
        if self._on_error == "raise" and self.failures:
            raise MapError(self.failures, frame)
        return frame


def _recorded(output: str | os.PathLike[str] | None) -> dict[int, list[Result]]:
    """A resumed map's results already in ``output``, by row position (each row's ``meta``),
    pages in order: what it will not ask again, for the frame it gives back."""
    if output is None or not os.path.exists(output):
        return {}
    from ._io._formats import format_for

    done: dict[int, list[Result]] = {}
    for record in format_for(os.fspath(output)).read(os.fspath(output)):
        position = record.get("meta")
        if isinstance(position, int):  # ok or not: a resume asks neither again
            done.setdefault(position, []).append(Result.from_record(record))
    for pages in done.values():
        pages.sort(key=lambda r: r.page or 0)
    return done


def _merged(done: dict[int, list[Result]], fresh: Iterator[Result], rows: int) -> Iterator[Result]:
    """The results recorded before and those made now, in row order."""
    if not done:
        yield from fresh
        return
    waiting: Result | None = next(fresh, None)
    for position in range(rows):
        yield from done.get(position, ())  # a chain's recorded pages, then the rest of it
        while waiting is not None and waiting.request.meta == position:
            yield waiting
            waiting = next(fresh, None)
    while waiting is not None:
        yield waiting
        waiting = next(fresh, None)


def _as_kind(table: pa.Table, kind: str) -> Any:
    if kind == "pandas":
        return table.to_pandas()
    if kind.startswith("polars"):
        import polars as pl

        frame = pl.DataFrame(table)
        return frame.lazy() if kind == "polars-lazy" else frame
    return table
