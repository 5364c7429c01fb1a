"""``--paginate MODE``: each input request is the first page of a chain; the worker that
fetched a page fetches the next, so pages of one chain are sequential while chains run
concurrently, and every page goes through the same limits, rates and retries.

MODE is ``link`` (the ``Link: <url>; rel="next"`` header), ``next:EXPR`` (a JMESPath
expression over the body giving the next URL), ``cursor:EXPR:PARAM`` (the expression gives a
cursor, sent as query parameter PARAM), ``page:PARAM`` (1, 2, 3, ... from ``page_start``;
ends at an empty page or a 404) or ``offset:PARAM`` (0, N, 2N, ... for ``page_size`` N;
ends at a page with fewer than N items). ``items`` (JMESPath) finds a page's items.

Each page's record carries ``page`` (from 1) and ``next`` (what the following page needs: a
URL, a cursor or a number; null at the end), so ``--resume`` continues a chain from its last
recorded page (``ChainState``) without fetching a recorded page again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from yarl import URL

from .._core._config import DEFAULT_MAX_PAGES, compile_select
from .._core._exceptions import ConfigError, PaginationError
from .._core._models import Request, Result, field_values
from .._core._resume import IdSet, ResumeState, id_hash
from .._core._urls import derived_url, origin_of
from .._io._records import RecordFormat

__all__ = ["ChainState", "Paginator", "chain_states", "resume_from"]

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")


@dataclass(frozen=True, slots=True)
class ChainState:
    """Where a chain stood in the output: its last recorded page and what comes next."""

    page: int
    next: Any  # None: the chain ended


def chain_states(records: Iterable[Mapping[str, Any]]) -> tuple[IdSet, dict[int, ChainState]]:
    """From an output's records: the ids whose chain ended, and where each other chain
    stands (its last recorded page, and what comes after it)."""
    last: dict[int, ChainState] = {}
    for record in records:
        key, page = id_hash(record["id"]), record.get("page") or 1
        known = last.get(key)
        if known is None or page > known.page:
            last[key] = ChainState(page, record.get("next"))
    done = IdSet(len(last))
    going = {}
    for key, state in last.items():
        if state.next is None:
            done.add(key)
        else:
            going[key] = state
    return done, going


def resume_from(
    record_format: RecordFormat,
    path: str,
    *,
    paginated: bool,
    redo_failed: bool = False,
    warn: Callable[[str], None] = lambda _: None,
) -> tuple[ResumeState, IdSet, dict[int, ChainState]]:
    """What a resumed job skips, for every way in (the command line, the Python API): the
    output repaired and indexed, the ids that need no request, and where each paginated
    chain stands (a chain is done only when its last page says so)."""
    from .._io._formats import check_holds, read_errors, unreadable

    check_holds(record_format, path)  # a .jsonl holding CSV is refused, not appended to
    try:
        state = record_format.recover(path, redo_failed=redo_failed, warn=warn)
        if not paginated:
            return state, state.done, {}
        done, chains = chain_states(record_format.read(path))
    except read_errors() as exc:  # corrupt, cut short, or a bad journal line
        raise unreadable(path, exc) from None
    return state, done, chains


def next_link(headers: Mapping[str, str] | None) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header (RFC 8288), if any."""
    if not headers:
        return None
    value = ", ".join(field_values(headers, "Link"))  # rel="next" may be in a field of its own
    if not value or "next" not in value.lower():
        return None
    for match in _LINK.finditer(value):
        for param in match.group(2).split(";"):
            name, _, rel = param.partition("=")
            if name.strip().lower() == "rel" and "next" in rel.strip(' "').lower().split():
                return match.group(1)
    return None


class Paginator:
    """The rule of one ``--paginate`` mode: what comes after a page."""

    def __init__(
        self,
        mode: str,
        *,
        items: str | None = None,
        page_start: int = 1,
        page_size: int | None = None,
        max_pages: int | None = DEFAULT_MAX_PAGES,
        allow_link_local: bool = False,
        has_next: str | None = None,
    ) -> None:
        kind, _, rest = mode.partition(":")
        self._has_next = compile_select(has_next, "has_next") if has_next else None
        self.kind = kind
        self.max_pages = max_pages
        self.capped = 0  # chains ended by max_pages with a next page named
        self._link_local = allow_link_local
        self._items = compile_select(items) if items else None
        self._expr: Any = None
        self._param = ""
        self._start = page_start
        self._size = page_size
        self._path: tuple[str, ...] = ()  # cursor:EXPR:json.PATH: where the cursor goes
        if kind == "link" and not rest:
            pass
        elif kind == "next" and rest:
            self._expr = compile_select(rest)
        elif kind == "cursor" and rest.count(":") >= 1:
            expr, _, param = rest.rpartition(":")
            self._expr, self._param = compile_select(expr), param
            if param.startswith("json."):  # a cursor in the JSON body: GraphQL, search_after
                self._path = tuple(param.split(".")[1:])
                if not all(self._path):
                    raise ConfigError("paginate", mode, "write the body's path as json.A.B")
        elif kind == "page" and rest:
            self._param = rest
        elif kind == "offset" and rest:
            if not page_size or page_size < 1:
                raise ConfigError(
                    "page_size",
                    page_size,
                    "offset:PARAM needs `page_size`, the items a full page has",
                )
            self._param = rest
        else:
            raise ConfigError(
                "paginate", mode,
                "give link, next:EXPR, cursor:EXPR:PARAM, page:PARAM or offset:PARAM",
            )  # fmt: skip

    def first(self, request: Request, resume: ChainState | None) -> tuple[Request, int]:
        """The first page to fetch for ``request`` (a resumed chain: the one after its last
        recorded page), and its number."""
        if resume is not None:
            return self.following(request, resume.next), resume.page + 1
        if self.kind == "page":
            return self._with_param(request, self._start), 1
        if self.kind == "offset":
            return self._with_param(request, 0), 1
        return request, 1

    def after(self, fetched: Request, result: Result, page: int) -> Any:
        """What the page after ``result`` (page ``page`` of the chain, asked as ``fetched``)
        needs, or None when the chain ends there."""
        if not result.ok:
            return None
        if self._has_next is not None and not _truthy(self._has_next.search(_json(result))):
            return None  # --has-next: the page says it is the last
        value = self._next(fetched, result)
        if value is not None and self.max_pages is not None and page >= self.max_pages:
            self.capped += 1  # more pages were there: the summary says how many chains
            return None
        return value

    def _next(self, fetched: Request, result: Result) -> Any:
        if self.kind == "link":
            link = next_link(result.headers)
            return self._absolute(result, link) if link else None
        body = _json(result)
        if self.kind in ("next", "cursor"):
            value = self._expr.search(body) if body is not None else None
            if value in (None, "", [], {}):
                return None
            if self.kind == "next":
                return self._absolute(result, str(value))
            return value
        items = self._items.search(body) if self._items is not None else body
        count = len(items) if isinstance(items, list) else 0
        if self.kind == "page":
            return None if count == 0 else self._number(fetched) + 1
        assert self._size is not None
        return None if count < self._size else self._number(fetched) + self._size

    def body_of(self, request: Request) -> str:
        """What tells two pages apart in the body (a cursor at ``json.PATH``), else ""."""
        return repr(request.json) if self._path else ""

    def ends_quietly(self, result: Result) -> bool:
        """A page past the last one that some APIs answer with 404 (``page:`` mode)."""
        return self.kind == "page" and result.status == 404

    def following(self, origin: Request, value: Any) -> Request:
        """The request for the page ``value`` (an ``after``) names, made from the chain's
        first request."""
        if self.kind in ("link", "next"):
            nxt = origin.copy()
            url = value.url if isinstance(value, _Link) else URL(str(value))  # parsed once
            nxt.url, nxt.params, nxt.target = str(value), None, url
            # the server chose this URL: the user's credentials go only where they were given
            nxt.auth_origin = origin.auth_origin or origin_of(origin.target or URL(origin.url))
            return nxt
        return self._with_param(origin, value)

    def _with_param(self, request: Request, value: Any) -> Request:
        """``request`` with the page's parameter in its URL's query, so that the page's
        record names the URL it fetched (the line's own ``params`` still go as they are);
        or, for a cursor at ``json.PATH``, with the cursor at PATH in its JSON body."""
        nxt = request.copy()
        if self._path:
            nxt.json = _with_path(request.json, self._path, value)
            return nxt
        url = (request.target or URL(request.url)).update_query({self._param: str(value)})
        nxt.url, nxt.target = str(url), url
        if request.params and self._param in request.params:
            nxt.params = {k: v for k, v in request.params.items() if k != self._param} or None
        return nxt

    def _absolute(self, result: Result, link: str) -> str:
        """``link`` resolved against the page's URL, if ``_urls.derived_url`` lets it be
        followed; else the chain ends with an error."""
        target = result.request.target
        try:
            base = (
                target
                if target is not None and result.final_url is None
                else URL(result.final_url or result.url)
            )
            url = derived_url(base, link, "the next page", allow_link_local=self._link_local)
        except ValueError as exc:  # RefusedURL, or a base that does not parse
            raise PaginationError(str(exc)) from None
        return _Link(url)

    def _number(self, request: Request) -> int:
        value = (request.target or URL(request.url)).query.get(self._param, self._start)
        try:
            return int(value)
        except ValueError:  # a resumed chain's recorded next, say, that is no number
            raise PaginationError(
                f"the page's {self._param}={value!r} is not a number to count on from"
            ) from None


class _Link(str):
    """A next page's URL as the record writes it (text), with its parsed form kept."""

    url: URL

    def __new__(cls, url: URL) -> _Link:
        link = super().__new__(cls, str(url))
        link.url = url
        return link


def _truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, "", [] and {} are false (so is an absent field)."""
    return value not in (None, False, "", [], {})


def _with_path(body: Any, path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``body`` (a JSON object, or none) with ``value`` at ``path``; the objects
    on the way are copied, made where missing, the rest shared."""
    top: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
    node = top
    for name in path[:-1]:
        inner = node.get(name)
        node[name] = dict(inner) if isinstance(inner, dict) else {}
        node = node[name]
    node[path[-1]] = value
    return top


def _json(result: Result) -> Any:
    if not result.content:
        return None
    try:
        return orjson.loads(result.content)
    except orjson.JSONDecodeError:
        return None
