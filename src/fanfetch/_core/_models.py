"""``Request`` and ``Result``, and how each maps to and from one JSON line.

These are plain slotted classes rather than frozen dataclasses: one of each is made per request
on the hot path, and a frozen dataclass's ``__init__`` costs several times more.
"""

from __future__ import annotations

import base64
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from yarl import URL

from ._exceptions import HTTPStatusError, RequestError, error_from_record
from ._files import SavedBody
from ._redact import mask_query
from ._types import JSONValue, is_success

__all__ = [
    "MAX_DEPTH",
    "UNSET",
    "Attempt",
    "JSONValue",
    "Request",
    "Result",
    "decode_body",
    "field_values",
    "headers_record",
    "too_deep",
]


class _Unset:
    """``Result.transformed`` when no ``--transform`` ran (its value may be None)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"  # one object, in every process a result is pickled to


UNSET: Any = _Unset()


def field_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of the header field ``name`` (a server may send a field several times:
    RFC 9110 section 5.3), from any transport's headers; a plain dict has one."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    value = headers.get(name) or headers.get(name.lower())
    return [] if value is None else [value]


def headers_record(headers: Mapping[str, str]) -> dict[str, Any]:
    """Response headers as a record holds them: each field once, its repeats joined with
    ``", "`` as RFC 9110 allows, but ``Set-Cookie`` (which no comma can join) as a list."""
    record: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # a field's name as first sent: names are case-blind
    for name, value in headers.items():
        name = spelled.setdefault(name.lower(), name)
        known = record.get(name)
        if name.lower() == "set-cookie":
            record[name] = [*(known or []), *(value if isinstance(value, list) else [value])]
        else:
            record[name] = value if known is None else f"{known}, {value}"
    return record


_TEXT_TYPES = (
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/xhtml+xml",
    "application/ecmascript",
)


_DERIVED = ("target", "auth_origin", "page")  # worked out from the fields, so not compared


class Request:
    """One HTTP call to make. Only ``url`` is required; ``id`` defaults to the line number.

    ``line`` is the 1-based input line (0 when not from a file); ``seq`` is the position among
    the requests of this run, which ``ordered`` output follows.
    """

    __slots__ = (
        "auth_origin",
        "cost",
        "data",
        "headers",
        "id",
        "json",
        "line",
        "meta",
        "method",
        "page",
        "params",
        "parent",
        "seq",
        "target",
        "timeout",
        "url",
    )

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        id: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: JSONValue = None,
        data: str | bytes | None = None,
        timeout: float | None = None,
        meta: JSONValue = None,
        cost: float | None = None,
        line: int = 0,
        seq: int = 0,
    ) -> None:
        self.url = url
        self.method = method
        self.id = id
        self.headers = headers
        self.params = params
        self.json = json
        self.data = data
        self.timeout = timeout
        self.meta = meta
        self.cost = cost
        self.line = line
        self.seq = seq
        self.target: URL | None = None  # the parsed URL, once the input has checked it
        # A request made from an answer (a next page): the origin its credentials were given
        # for, which _http sends them to and nowhere else. None: the request as the user gave it.
        self.auth_origin: tuple[str, str | None, int | None] | None = None
        self.parent: Any = None  # a job's child request: the id of the record it came from
        self.page: int | None = None  # a chain's page past the first: its number

    def copy(self) -> Request:
        """A request of its own with the same fields (the API never changes a caller's)."""
        clone = Request.__new__(Request)  # field by field: each page of a chain is a copy
        clone.url, clone.method, clone.id, clone.headers = (
            self.url,
            self.method,
            self.id,
            self.headers,
        )
        clone.params, clone.json, clone.data, clone.timeout = (
            self.params,
            self.json,
            self.data,
            self.timeout,
        )
        clone.meta, clone.cost, clone.line, clone.seq = self.meta, self.cost, self.line, self.seq
        clone.target, clone.auth_origin = self.target, self.auth_origin
        clone.parent, clone.page = self.parent, self.page
        return clone

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url!r}, id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__ if n not in _DERIVED
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-line shape of this request (fields left at their defaults are omitted)."""
        out: dict[str, Any] = {"id": self.id, "method": self.method, "url": self.url}
        for name in ("headers", "params", "json", "data", "timeout", "meta", "cost"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def _utf8(charset: str | None) -> bool:
    """Whether a body in ``charset`` is UTF-8 (JSON's default when none is given)."""
    return charset is None or charset.lower().replace("-", "") == "utf8"


MAX_DEPTH = 254  # orjson reads JSON nested up to 1024 deep, but writes it only up to this


_BODY_DEPTH = MAX_DEPTH - 1  # a record holds its body one level down


def too_deep(raw: bytes, value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` (parsed from ``raw``) nests more than ``limit`` levels, past which
    orjson cannot write it (inside a record, a body has one level less): such a body is kept
    as its text in every format, so that every record can be written and read back."""
    if raw.count(b"[") + raw.count(b"{") <= limit:  # memchr-quick, and almost always so
        return False
    for _ in range(MAX_DEPTH - limit):  # as deep inside as it will be written
        value = [value]
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return True
    return False


def decode_body(content: bytes, content_type: str, charset: str | None) -> tuple[Any, str | None]:
    """Turn a body into what a record holds: ``(value, body_encoding)``.

    JSON when the response says JSON and it parses (and nests no deeper than ``MAX_DEPTH``);
    else text when the type is textual (or absent) and it decodes in its charset; else
    base64 with ``body_encoding="base64"``.
    """
    if not content:
        return None, None
    ctype = content_type.lower()
    if ctype.endswith("json"):  # application/json, application/problem+json, text/json
        try:
            if _utf8(charset):
                value = orjson.loads(content)
            else:
                value = orjson.loads(content.decode(charset or "utf-8"))
            if not too_deep(content, value, _BODY_DEPTH):
                return value, None
        except (orjson.JSONDecodeError, UnicodeDecodeError, LookupError):
            pass  # says JSON, is not: fall through to text
    if (
        not ctype
        or ctype.startswith("text/")
        or ctype.endswith(("+xml", "json"))
        or (ctype in _TEXT_TYPES)
    ):
        try:
            return content.decode(charset or "utf-8"), None
        except (UnicodeDecodeError, LookupError):
            pass
    return base64.b64encode(content).decode("ascii"), "base64"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a request, as ``--include-attempts`` records it: its number, the status
    or the error type, how long it took, and the wait after it (None: it was the last)."""

    attempt: int
    status: int | None
    error: str | None
    ms: float
    wait_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "status": self.status,
            "error": self.error,
            "ms": self.ms,
            "wait_ms": self.wait_ms,
        }


class Result:
    """The outcome of one request: its final response, or its final error.

    ``ok`` is true for a final 2xx response. ``content`` is the raw body; ``body`` is the
    decoded form that records carry (see ``decode_body``), computed when first asked for.
    A result is a value: every field is given when it is made, and nothing changes it after
    (``replace`` makes a changed copy). It is not frozen by force, which would cost a
    microsecond per result; ``tests/core/test_models.py`` checks that no module assigns to one.
    """

    __slots__ = (
        "_body",
        "_more",
        "attempt_ms",
        "attempts",
        "charset",
        "content",
        "content_type",
        "elapsed_ms",
        "error",
        "final_url",
        "headers",
        "history",
        "redirects",
        "request",
        "started_at",
        "status",
        "url",
    )

    def __init__(
        self,
        request: Request,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        content_type: str = "",
        charset: str | None = None,
        error: RequestError | None = None,
        attempts: int = 1,
        elapsed_ms: float = 0.0,
        url: str | None = None,
        redirects: int = 0,
        final_url: str | None = None,
        history: tuple[Attempt, ...] | None = None,
        started_at: float | None = None,
        saved: SavedBody | None = None,
        key_index: int | None = None,
        page: int | None = None,
        next: Any = None,
        transformed: Any = UNSET,
        attempt_ms: float | None = None,
    ) -> None:
        self.request = request
        self.status = status
        self.headers = headers
        self.content = content
        self.content_type = content_type
        self.charset = charset
        self.error = error
        self.attempts = attempts
        self.elapsed_ms = elapsed_ms
        self.url = request.url if url is None else url
        self.redirects = redirects  # redirects followed to the final response
        self.final_url = final_url  # where that response came from, when redirected
        self.history = history
        self.started_at = started_at  # epoch seconds of the first send; None if never sent
        self.attempt_ms = attempt_ms  # the last attempt's own time (the summary's latency)
        # what some runs add (most have none: one slot, not five, to set and to look at)
        if saved is None and key_index is None and page is None and transformed is UNSET:
            self._more: _More | None = None
        else:
            self._more = _More(saved, key_index, page, next, transformed)
        self._body: tuple[Any, str | None] | None = None

    def replace(self, **changes: Any) -> Result:
        """A copy with ``changes`` made (the fields ``__init__`` takes)."""
        unknown = changes.keys() - _RESULT_FIELDS
        if unknown:
            raise TypeError(f"Result has no field {sorted(unknown)[0]!r}")
        get = changes.get  # field by field: a page of a chain is copied, so kept quick
        copy = object.__new__(Result)
        copy.request = get("request", self.request)
        copy.status = get("status", self.status)
        copy.headers = get("headers", self.headers)
        copy.content = get("content", self.content)
        copy.content_type = get("content_type", self.content_type)
        copy.charset = get("charset", self.charset)
        copy.error = get("error", self.error)
        copy.attempts = get("attempts", self.attempts)
        copy.elapsed_ms = get("elapsed_ms", self.elapsed_ms)
        copy.url = get("url", self.url)
        copy.redirects = get("redirects", self.redirects)
        copy.final_url = get("final_url", self.final_url)
        copy.history = get("history", self.history)
        copy.started_at = get("started_at", self.started_at)
        copy.attempt_ms = get("attempt_ms", self.attempt_ms)
        more = self._more
        if _MORE_FIELDS.isdisjoint(changes):
            copy._more = more
        else:
            old = more or _NO_MORE
            copy._more = _More(get("saved", old.saved), get("key_index", old.key_index),
                               get("page", old.page), get("next", old.next),
                               get("transformed", old.transformed))  # fmt: skip
        body = {"content", "content_type", "charset"} & changes.keys()
        copy._body = None if body else self._body
        return copy

    @property
    def saved(self) -> SavedBody | None:
        """With ``--save-dir``: the file the body went to (the record says where)."""
        return None if self._more is None else self._more.saved

    @property
    def key_index(self) -> int | None:
        """With ``--key-pool``: which key answered (never the key itself)."""
        return None if self._more is None else self._more.key_index

    @property
    def page(self) -> int | None:
        """With ``--paginate``: this page's number in its chain, from 1."""
        return None if self._more is None else self._more.page

    @property
    def next(self) -> Any:
        """With ``--paginate``: what the next page is (a URL, a cursor; None: the end)."""
        return None if self._more is None else self._more.next

    @property
    def transformed(self) -> Any:
        """With ``--transform``: its value (``UNSET`` when none ran)."""
        return UNSET if self._more is None else self._more.transformed

    @property
    def extra(self) -> dict[str, Any] | None:
        """The record's fields beyond the common ones (saved file, key, page, transform), as
        the record holds them; None when there are none."""
        extra: dict[str, Any] = {}
        if self._more is not None:
            self._more.add_to(extra)
        return extra or None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and is_success(self.status)

    @property
    def id(self) -> Any:
        return self.request.id

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def meta(self) -> JSONValue:
        return self.request.meta

    @property
    def body(self) -> JSONValue:
        """The body as a record holds it: parsed JSON, text, or base64 text."""
        return self._decoded()[0]

    @property
    def body_encoding(self) -> str | None:
        return self._decoded()[1]

    @property
    def text(self) -> str:
        """The body as text, decoded in its charset (undecodable bytes replaced)."""
        if not self.content:
            return ""
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> JSONValue:
        """The body parsed as JSON, whatever the content type says; raises if it is not JSON."""
        return orjson.loads(self.content or b"")

    def raise_for_error(self) -> Result:
        """Raise this result's error, if any; return ``self`` so calls can chain."""
        if self.error is not None:
            raise self.error
        return self

    def _raw_json(self) -> tuple[Any, str | None]:
        """The body for a record about to be encoded: a JSON body as its own (checked) bytes."""
        if self._body is not None:
            return self._body
        content = self.content
        if not content:
            return None, None
        charset = self.charset
        if self.content_type.lower().endswith("json") and _utf8(charset):
            body = content.rstrip(b" \t\r\n")  # many APIs end the body with a newline
            # The record must stay on one line. (Testing for the byte values 10 and 13 is
            # memchr; testing for b"\n" and b"\r" costs six times as much.)
            if 10 not in body and 13 not in body:
                try:
                    value = orjson.loads(body)  # it must be JSON; the objects are dropped soon
                except orjson.JSONDecodeError:
                    pass
                else:
                    if not too_deep(body, value, _BODY_DEPTH):
                        return orjson.Fragment(body), None
        return decode_body(content, self.content_type, charset)  # not cached: forgotten

    def _decoded(self) -> tuple[Any, str | None]:
        if self._body is None:
            if self.content is None:
                self._body = (None, None)
            else:
                self._body = decode_body(self.content, self.content_type, self.charset)
        return self._body

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Result:
        """A result back from its record (a line of fanfetch's output, such as a cluster
        job's part files): what the record holds, with the body as the record kept it."""
        request = Request(
            record["url"], method=record.get("method", "GET"), id=record.get("id"),
            meta=record.get("meta"),
        )  # fmt: skip
        body, encoding = record.get("body"), record.get("body_encoding")
        if body is None:
            content, content_type = None, ""
        elif encoding == "base64":
            content, content_type = base64.b64decode(body), "application/octet-stream"
        elif isinstance(body, str):
            content, content_type = body.encode(), "text/plain"
        else:
            content, content_type = orjson.dumps(body), "application/json"
        error = record.get("error")
        history = record.get("history")
        path = record.get("path")
        saved = None if path is None else SavedBody(path, record["bytes"], record["sha256"])
        result = cls(
            request,
            status=record.get("status"),
            headers=record.get("headers"),
            content=content,
            content_type=content_type,
            error=error_from_record(error) if isinstance(error, Mapping) else None,
            attempts=record.get("attempts", 1),
            elapsed_ms=record.get("elapsed_ms", 0.0),
            redirects=record.get("redirects", 0),
            final_url=record.get("final_url"),
            history=None if history is None else tuple(Attempt(**h) for h in history),
            started_at=record.get("started_at"),
            saved=saved,
            key_index=record.get("key_index"),
            page=record.get("page"),
            next=record.get("next"),
            transformed=record.get("transformed", UNSET),
        )
        result._body = (body, encoding)  # the body exactly as the record kept it
        return result

    def to_dict(
        self, *, include_headers: bool = False, for_writing: bool = False
    ) -> dict[str, Any]:
        """The record: the JSON-line shape of this result, fields in their documented order.

        ``for_writing`` is for a writer that encodes the record at once and forgets it: a JSON
        body is then checked (parsed) but put in as its own bytes (``orjson.Fragment``), not
        parsed into objects, kept, and encoded again. On big bodies that matters: with a
        hundred 140 KB bodies in flight, their parsed objects kept Python's garbage
        collector busy for most of the run.
        """
        request = self.request
        error = self.error
        started = self.started_at
        record: dict[str, Any] = {
            "id": request.id,
            "url": mask_query(self.url),  # ?api_key=*** (the default names; see _redact)
            "method": request.method,
            "ok": self.ok,
            "status": self.status,
            "attempts": self.attempts,
            "elapsed_ms": round(self.elapsed_ms, 3),
            # to the ms; int() and a division are a third of round(x, 3)'s cost, per record
            "started_at": None if started is None else int(started * 1000.0 + 0.5) / 1000.0,
        }
        if self.redirects:
            record["redirects"] = self.redirects
            record["final_url"] = mask_query(self.final_url or "") or None
        if include_headers:
            record["headers"] = None if self.headers is None else headers_record(self.headers)
        more = self._more
        if more is None or more.saved is None:  # with --save-dir the body is in a file
            body, encoding = self._raw_json() if for_writing else self._decoded()
            record["body"] = body
            if encoding is not None:
                record["body_encoding"] = encoding
        record["error"] = None if error is None else {"type": error.type, "message": str(error)}
        record["meta"] = request.meta
        if request.parent is not None:
            record["parent"] = request.parent
        if self.history is not None:
            record["history"] = [attempt.to_dict() for attempt in self.history]
        if more is not None:
            more.add_to(record)
        return record

    def __repr__(self) -> str:
        what = f"status={self.status}" if self.error is None else f"error={self.error.type}"
        return f"<Result id={self.request.id!r} {what} attempts={self.attempts}>"


class _More:
    """The fields of a result that only some runs give it (see ``Result``)."""

    __slots__ = ("key_index", "next", "page", "saved", "transformed")

    def __init__(
        self, saved: SavedBody | None, key_index: int | None, page: int | None, next: Any,
        transformed: Any,
    ) -> None:  # fmt: skip
        self.saved = saved
        self.key_index = key_index
        self.page = page
        self.next = next
        self.transformed = transformed

    def add_to(self, record: dict[str, Any]) -> None:
        saved = self.saved
        if saved is not None:
            record["path"], record["bytes"], record["sha256"] = saved.path, saved.size, saved.sha256
        if self.key_index is not None:
            record["key_index"] = self.key_index
        if self.page is not None:
            record["page"], record["next"] = self.page, self.next
        if self.transformed is not UNSET:
            record["transformed"] = self.transformed


_NO_MORE = _More(None, None, None, None, UNSET)
_MORE_FIELDS = frozenset(_More.__slots__)
_RESULT_FIELDS = frozenset(tuple(inspect.signature(Result.__init__).parameters)[1:])


def status_error(status: int, reason: str | None) -> HTTPStatusError:
    """The error a final non-2xx response gives its record."""
    return HTTPStatusError(f"HTTP {status} {reason or ''}".rstrip())
