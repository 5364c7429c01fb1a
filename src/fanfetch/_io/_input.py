"""Reading requests lazily: URL lines or JSON lines, from a file, stdin or any iterable.

Nothing here holds more than one line at a time. A line that cannot become a request is not an
exception for the run: it becomes a ``Result`` carrying ``InvalidRequest`` and its line number,
so the rest of the input goes on and the output still has one record per line.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import itertools
import queue
import re
import string
import sys
import threading
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from typing import IO, Any, cast
from urllib.parse import urlencode

import orjson
from yarl import URL

from .._core._exceptions import InputError, InvalidRequest
from .._core._models import MAX_DEPTH, Request, Result, too_deep
from .._core._redact import redact, redact_url
from .._core._resume import IdSet, id_hash
from .._core._types import PLAIN_URL, Item
from .._core._urls import bad_name
from .._core._voice import speak

__all__ = [
    "MAX_LINE_BYTES",
    "Duplicates",
    "LineParser",
    "aiter_items",
    "checked",
    "coerce",
    "count_requests",
    "find_repeated_ids",
    "invalid_item",
    "invalid_request",
    "open_source",
    "parse_line",
    "read_items",
]

MAX_LINE_BYTES = 1024 * 1024
"""A longer input line is refused with ``invalid_request`` rather than parsed."""

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
FIELDS = frozenset(
    {"id", "method", "url", "headers", "params", "json", "data", "form", "timeout", "meta",
     "cost"}
)  # fmt: skip


def open_source(source: str, *, sql: str | None = None) -> IO[bytes]:
    """Open ``source`` for binary reading: a path, or ``-`` for stdin. A Parquet file, or
    the rows of the DuckDB query ``sql`` (then ``source`` is unused), reads as JSON lines,
    one object per row (``--url`` fills its template from them)."""
    if sql is not None:
        return _query_lines(sql)
    if source == "-":
        return sys.stdin.buffer
    try:
        if source.lower().endswith(".parquet"):
            return _parquet_lines(source)
        return open(source, "rb", buffering=1024 * 1024)
    except OSError as exc:
        raise InputError(f"cannot read input {source!r}: {exc.strerror or exc}") from exc


def _parquet_lines(path: str) -> IO[bytes]:
    """The rows of a Parquet file as a stream of JSON lines, a batch of rows at a time."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("a Parquet input needs pyarrow: pip install 'fanfetch[parquet]'") from None
    try:
        parquet = pq.ParquetFile(path)
    except OSError:
        raise  # no such file, no permission: said as for any input
    except Exception as exc:  # pyarrow's own errors: not Parquet, cut short
        raise InputError(f"cannot read input {path!r} as Parquet: {exc}") from None
    return io.BufferedReader(_RowLines(parquet), buffer_size=1024 * 1024)


def _query_lines(sql: str) -> IO[bytes]:
    """The rows of a DuckDB query as a stream of JSON lines, a batch of rows at a time."""
    try:
        import duckdb
    except ImportError:
        raise InputError("--sql needs DuckDB: pip install 'fanfetch[duckdb]'") from None
    connection = duckdb.connect()
    try:
        reader = connection.sql(sql).to_arrow_reader(4096)
    except duckdb.Error as exc:
        connection.close()
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"the --sql query failed: {message}") from None
    return io.BufferedReader(_RowLines(_Batches(connection, reader)), buffer_size=1024 * 1024)


class _Batches:
    """A query's record batches as a Parquet file's ``iter_batches`` and ``close``."""

    def __init__(self, connection: Any, reader: Any) -> None:
        self._connection, self._reader = connection, reader

    def iter_batches(self, batch_size: int) -> Iterator[Any]:
        return iter(self._reader)

    def close(self) -> None:
        self._reader.close()
        self._connection.close()


def _parquet_rows(path: str) -> int | None:
    try:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # no pyarrow, or no Parquet: the run itself says so
        return None


class _RowLines(io.RawIOBase):
    """A Parquet file's rows as the bytes of JSON lines, made as they are read."""

    def __init__(self, parquet: Any) -> None:
        self._parquet = parquet
        self._batches = parquet.iter_batches(batch_size=4096)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            batch = next(self._batches, None)
            if batch is None:
                return 0
            self._pending = b"".join(
                orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE, default=str)
                for row in batch.to_pylist()
            )
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        self._parquet.close()
        super().close()


class Duplicates:
    """Ids seen so far, to report the lines that repeat one (they make resume ambiguous):
    an id given twice, or a line without one whose line number (its id) another line gives.

    Only JSON lines that give an ``id`` are tracked, and the line numbers of the others only
    once some line has given one: a run of plain URL lines pays nothing.
    """

    def __init__(self) -> None:
        self._seen = IdSet()  # explicit ids, and the line numbers used as ids after the first
        self.first_given = 0  # the line of the first explicit id: lines before it had none
        self.lines: list[int] = []  # the first few repeating lines, for the warning
        self.count = 0

    def check(self, rid: Any, line: int) -> None:
        """Line ``line`` gives the id ``rid``."""
        if not self.first_given:
            self.first_given = line
        earlier_line = type(rid) is int and 0 < rid < self.first_given  # a line without an id
        if not self._seen.add(id_hash(rid)) or earlier_line:
            self._repeat(line)

    def numbered(self, line: int) -> None:
        """Line ``line`` gives no id (so its number is its id), after some line gave one."""
        if not self._seen.add(id_hash(line)):
            self._repeat(line)

    def _repeat(self, line: int) -> None:
        self.count += 1
        if len(self.lines) < 20:
            self.lines.append(line)

    def message(self) -> str | None:
        if not self.count:
            return None
        shown = ", ".join(map(str, self.lines)) + (", ..." if self.count > len(self.lines) else "")
        return speak(
            f"warning: {self.count:,} line(s) repeat an id given earlier, or the line number "
            f"that a line without an id takes as its id (lines {shown}); each still gets a "
            "record, but `resume` cannot tell them apart"
        )


_BOM = b"\xef\xbb\xbf"


class LineParser:
    """Numbers input lines and makes items of them, one line at a time.

    Blank lines are skipped but counted for line numbers. With ``done`` (the resume index),
    items whose id is in it are skipped, and ``seq`` counts only the items kept, so ordered
    output has no gaps to wait for.
    """

    __slots__ = ("_done", "_duplicates", "line", "seq")

    def __init__(
        self,
        *,
        start_seq: int = 0,
        start_line: int = 0,
        done: IdSet | None = None,
        duplicates: Duplicates | None = None,
    ) -> None:
        self.line = start_line  # lines before this part of the input (a cluster shard's)
        self.seq = start_seq
        self._done = done
        self._duplicates = duplicates

    def feed(self, raw: bytes) -> Item | None:
        self.line += 1
        if self.line == 1 and raw.startswith(_BOM):  # a UTF-8 byte order mark: no line of it
            raw = raw[len(_BOM) :]
        if not raw.strip():
            return None
        item = self.parse(raw, self.line, self.seq)
        if item is None:
            return None
        done = self._done
        if done is not None and id_hash(item.id) in done:
            return None
        duplicates = self._duplicates
        if duplicates is not None:
            rid = item.id
            if type(rid) is int and rid == self.line:  # a line number: none given
                if duplicates.first_given:
                    duplicates.numbered(self.line)
            elif raw.lstrip()[:1] == b"{" and b'"id"' in raw:
                duplicates.check(rid, self.line)  # only JSON lines can give an id
        self.seq += 1
        return item

    def parse(self, raw: bytes, line: int, seq: int) -> Item | None:
        """One non-blank line as an item (None: a line that makes no request)."""
        return parse_line(raw, line, seq)


def read_items(
    lines: Iterable[bytes],
    *,
    start_seq: int = 0,
    done: IdSet | None = None,
    duplicates: Duplicates | None = None,
    parser: LineParser | None = None,
) -> Iterator[Item]:
    """The items of ``lines``, lazily (see ``LineParser``; ``parser``: another, such as a
    ``RowParser`` for ``--url``)."""
    if parser is None:
        parser = LineParser(start_seq=start_seq, done=done, duplicates=duplicates)
    for raw in lines:
        item = parser.feed(raw)
        if item is not None:
            yield item


class _Overlong(bytes):
    """The start of an input line over ``MAX_LINE_BYTES``; the rest was read past, not kept."""

    size = 0


def bounded_lines(source: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of ``source``, none held whole when over ``limit`` bytes: such a line is
    read past in pieces and given as its first ``limit + 1`` bytes (``_Overlong``)."""
    readline = source.readline
    while line := readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        while (rest := readline(limit)) and not rest.endswith(b"\n"):
            size += len(rest)
        size += len(rest)
        overlong = _Overlong(line)
        overlong.size = size
        yield overlong


def parse_line(raw: bytes, lineno: int, seq: int = 0) -> Item:
    """One non-blank input line as a ``Request``, or as an ``invalid_request`` ``Result``."""
    if len(raw) > MAX_LINE_BYTES:
        size = raw.size if isinstance(raw, _Overlong) else len(raw)
        return invalid_item(lineno, seq, f"the line is {size:,} bytes, over {MAX_LINE_BYTES:,}")
    line = raw.strip()
    if line[:1] == b"{":
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return invalid_item(lineno, seq, f"malformed JSON: {exc}")
        if too_deep(line, obj):
            return invalid_item(
                lineno, seq, f"the line nests deeper than {MAX_DEPTH} levels, too deep to record"
            )
        return coerce(obj, seq=seq, line=lineno)
    try:
        url = line.decode("utf-8")
    except UnicodeDecodeError:
        return invalid_item(lineno, seq, "the line is neither a URL nor JSON (not UTF-8 text)")
    return _from_url(url, seq=seq, line=lineno)


def _from_url(url: str, *, seq: int, line: int) -> Item:
    request = Request(url, id=line or seq + 1, line=line, seq=seq)
    problem = _check_url(request)
    return _failed(request, problem) if problem else request


def coerce(item: object, *, seq: int = 0, line: int = 0) -> Item:
    """Make a request from a ``Request`` (copied: the caller's is never changed), a URL
    string or a dict of the JSON-line shape."""
    if isinstance(item, Request):
        return checked(item.copy(), seq=seq, line=line)
    if isinstance(item, str):
        return _from_url(item.strip(), seq=seq, line=line)
    if isinstance(item, Mapping):
        return _from_mapping(item, seq=seq, line=line)
    return invalid_item(line, seq, f"expected a URL, a JSON object or a Request, not {_kind(item)}")


def checked(request: Request, *, seq: int, line: int) -> Item:
    """``request`` numbered and checked (changed in place: it must be the caller's own)."""
    request.seq = seq
    if request.id is None:
        request.id = line or seq + 1
    problem = _check_url(request)
    if problem:
        return _failed(request, problem)
    return request


def _from_mapping(obj: Mapping[str, Any], *, seq: int, line: int) -> Item:
    rid = obj.get("id")
    if rid is None:
        rid = line or seq + 1
    elif not isinstance(rid, str | int) or isinstance(rid, bool):
        return invalid_item(line, seq, f"'id' must be a string or an integer, not {_kind(rid)}")
    url = obj.get("url")
    request = Request(
        url if isinstance(url, str) else "",
        id=rid,
        line=line,
        seq=seq,
        meta=obj.get("meta"),
    )
    unknown = set(obj) - FIELDS
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))
        valid = ", ".join(sorted(FIELDS))
        return _failed(request, f"unknown field(s) {names}; the fields are: {valid}")
    if url is None:
        return _failed(request, "no 'url' field; every request needs one")
    if not isinstance(url, str):
        return _failed(request, f"'url' must be a string, not {_kind(url)}")
    problem = _check_url(request)
    if problem:
        return _failed(request, problem)
    method = obj.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        allowed = ", ".join(sorted(METHODS))
        return _failed(request, f"unsupported method {method!r}; use one of {allowed}")
    request.method = method.upper()
    headers = obj.get("headers")
    if headers is not None:
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            return _failed(request, "'headers' must be an object of string names to string values")
        request.headers = headers
    params = obj.get("params")
    if params is not None:
        if not isinstance(params, Mapping) or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in params.values()
        ):
            return _failed(request, "'params' must be an object of names to strings or numbers")
        request.params = params
    if sum(name in obj for name in ("json", "data", "form")) > 1:
        return _failed(request, "give one of 'json', 'data' and 'form', not more")
    request.json = obj.get("json")
    data = obj.get("data")
    if data is not None and not isinstance(data, str):
        return _failed(request, f"'data' must be a string, not {_kind(data)}; use 'json' for JSON")
    form = obj.get("form")
    if form is not None:
        if not isinstance(form, Mapping) or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in form.values()
        ):
            return _failed(request, "'form' must be an object of names to strings or numbers")
        data = urlencode(form)  # an HTML form's body: name=value&...
        request.headers = {**(request.headers or {}),
                           "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    request.data = data
    timeout = obj.get("timeout")
    if timeout is not None:
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            return _failed(request, f"'timeout' must be seconds > 0, not {timeout!r}")
        request.timeout = float(timeout)
    cost = obj.get("cost")
    if cost is not None:
        if not isinstance(cost, int | float) or isinstance(cost, bool) or cost < 0:
            return _failed(request, f"'cost' must be a number >= 0, not {cost!r}")
        request.cost = float(cost)
    return request


_BAD_URL_CHARS = re.compile(r"[\s\x00]")


def _check_url(request: Request) -> str | None:
    """Why ``request.url`` cannot be requested, or None when it can.

    A plain URL (``PLAIN_URL``) is checked without parsing; any other, on success, is kept
    parsed in ``request.target``, which the transport is handed, so it is parsed once a run.
    """
    url = request.url
    plain = PLAIN_URL.match(url)
    if plain is not None:  # no parse needed (the transport checks the same way)
        rest = plain[1].partition("://")[2]
        host = rest if rest[-1] == "]" or ":" not in rest else rest.rpartition(":")[0]
        if _numeric_host(host) and _bad_ipv4(host):
            return f"the host {host!r} is not an IPv4 address (four parts, each 0 to 255)"
        if (reason := bad_name(host)) is not None:
            return reason
        # parsed after all: an explicit default port (it goes from the per-host key), or a
        # five-digit port over 65535 (yarl then says so)
        high = rest[-6:-5] == ":" and rest[-5:].isdigit() and int(rest[-5:]) > 65535
        if not high and not rest.endswith((":80", ":443")):
            return None
    if not url:
        return "the URL is empty"
    # (isprintable() is false for every \s but " " and for \x00, and twice as quick as the
    # search; it is also false for some harmless characters, which the search then lets by)
    if (" " in url or not url.isprintable()) and _BAD_URL_CHARS.search(url):
        return "the URL contains white space or control characters"
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        return f"the URL cannot be parsed: {exc}"
    if parsed.scheme not in ("http", "https"):
        if "://" not in url:
            return f"the URL has no scheme; write it as http://{redact_url(url)} (or https://)"
        shown = parsed.scheme or "none"
        return f"unsupported scheme {shown!r}; only http and https URLs can be fetched"
    host = parsed.raw_host  # the raw_ forms: the decoded ones cost twice as much
    if not host:
        return "the URL has no host"
    if _numeric_host(host) and _bad_ipv4(host):
        return f"the host {host!r} is not an IPv4 address (four parts, each 0 to 255)"
    if (reason := bad_name(host)) is not None:
        return reason
    if "@" in url and (parsed.raw_user is not None or parsed.raw_password is not None):
        return "the URL has a user:password part; pass credentials in headers instead"
    request.target = parsed
    return None


_IPV4_CHECKED: dict[str, bool] = {}  # a run meets few hosts, each many times


def _numeric_host(host: str) -> bool:
    """Whether a resolver (and a browser, by the WHATWG URL rules) reads ``host`` as an IPv4
    address: its last label is a number, in decimal or ``0x`` hex (``127.1``, ``0x7f.1``,
    ``2130706433``). Quick for the usual names: a last character that is no digit, and no
    ``0x``, settles it."""
    return host[-1].isdigit() or "0x" in host or "0X" in host


def _bad_ipv4(host: str) -> bool:
    """A host read as an IPv4 address (``_numeric_host``) but not written as one, four
    decimal parts of 0 to 255: ``127.1`` and ``0x7f.1`` alike (both mean 127.0.0.1)."""
    bad = _IPV4_CHECKED.get(host)
    if bad is None:
        last = host.rstrip(".").rpartition(".")[2]
        hexa = last[:2] in ("0x", "0X") and all(c in string.hexdigits for c in last[2:])
        bad = False
        if last.isdigit() or hexa:
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                bad = True
        if len(_IPV4_CHECKED) < 4096:
            _IPV4_CHECKED[host] = bad
    return bad


def _failed(request: Request, message: str) -> Result:
    message = redact(message)
    return Result(
        request,
        error=InvalidRequest(f"line {request.line}: {message}" if request.line else message),
        attempts=0,
        url=redact_url(request.url),
    )


def invalid_request(request: Request, message: str) -> Result:
    """The ``invalid_request`` record of ``request`` (a job's child whose item lacks what its
    URL needs)."""
    return _failed(request, message)


def invalid_item(line: int, seq: int, message: str) -> Result:
    """The ``invalid_request`` record of an input line that is no request at all."""
    return _failed(Request("", id=line or seq + 1, line=line, seq=seq), message)


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", float: "a number"}.get(
        type(value), type(value).__name__
    )


def find_repeated_ids(path: str) -> Duplicates:
    """The lines of the file ``path`` whose ids collide (``Duplicates``), read before a
    resume: there, a repeated id means a request that never gets a record."""
    duplicates = Duplicates()
    with open_source(path) as f:
        for line, raw in enumerate(bounded_lines(f), start=1):
            rid: Any = line
            if b'"id"' in raw and raw.lstrip()[:1] == b"{":
                try:
                    given = orjson.loads(raw).get("id")
                except (orjson.JSONDecodeError, AttributeError):
                    given = None  # an invalid line: its number is its id
                rid = line if given is None else given
            if type(rid) is int and rid == line:
                if duplicates.first_given and raw.strip():
                    duplicates.numbered(line)
            else:
                duplicates.check(rid, line)
    return duplicates


def count_requests(source: str) -> int | None:
    """Count the non-blank lines of a regular file (for a progress total); None for stdin."""
    if source == "-":
        return None
    count = 0
    try:
        if source.lower().endswith(".parquet"):
            return _parquet_rows(source)
        with open(source, "rb", buffering=1024 * 1024) as f:
            for raw in bounded_lines(f):
                if raw.strip():
                    count += 1
    except OSError:
        return None
    return count


class _BatchReader:
    """Reads raw lines in batches on a daemon thread, one batch ahead of the loop.

    The thread only reads (C code, quick to give the GIL back); lines are parsed on the loop,
    so the two threads do not fight over the GIL for every line.

    A daemon thread (not the loop's executor) so that a run stopped while stdin is idle can
    exit: an executor thread blocked on a read would be waited for at shutdown, forever.
    """

    def __init__(self, items: Iterator[bytes], size: int) -> None:
        self._items = items
        self._size = size
        self._loop = asyncio.get_running_loop()
        self._asks: queue.SimpleQueue[asyncio.Future[list[bytes]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="fanfetch-reader", daemon=True)
        self._thread.start()
        self._ahead = self._ask()

    def _ask(self) -> asyncio.Future[list[bytes]]:
        future: asyncio.Future[list[bytes]] = self._loop.create_future()
        self._asks.put(future)
        return future

    def _serve(self) -> None:
        while (future := self._asks.get()) is not None:
            try:
                batch = list(itertools.islice(self._items, self._size))
            except BaseException as exc:  # handed to the loop, raised there
                self._hand(future, None, exc)
                return
            self._hand(future, batch, None)

    def _hand(
        self,
        future: asyncio.Future[list[bytes]],
        batch: list[bytes] | None,
        exc: BaseException | None,
    ) -> None:
        def settle() -> None:
            if future.done():
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(batch or [])

        try:
            self._loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    async def next_batch(self) -> list[bytes]:
        batch = await self._ahead
        if batch:
            self._ahead = self._ask()
        return batch

    def close(self) -> None:
        self._ahead.cancel()
        self._asks.put(None)


async def aiter_items(
    lines: Iterable[bytes],
    *,
    batch: int = 4096,
    done: IdSet | None = None,
    duplicates: Duplicates | None = None,
    parser: LineParser | None = None,
) -> AsyncGenerator[Item, None]:
    """The items of ``lines`` (a file or stdin), read on a thread so the loop never blocks."""
    if parser is None:
        parser = LineParser(done=done, duplicates=duplicates)
    feed = parser.feed
    if isinstance(lines, io.IOBase):  # a file or stdin: no line held whole when over the limit
        reader = _BatchReader(bounded_lines(cast(IO[bytes], lines)), batch)
    else:
        reader = _BatchReader(iter(lines), batch)
    try:
        while raws := await reader.next_batch():
            for raw in raws:
                item = feed(raw)
                if item is not None:
                    yield item
    finally:
        reader.close()
