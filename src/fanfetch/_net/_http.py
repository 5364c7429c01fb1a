"""HTTP over any transport: redirects, bodies (decoded, capped, saved), one attempt at a time.

What fanfetch itself decides about a request lives here, once, above the transport seam
(``_transports._base``): which redirects to follow and what they may carry (the headers a
user gave go only to the origin they were given for), undoing ``Content-Encoding`` a piece
at a time under ``--max-body``, how many big bodies are read at once, and ``--save-dir``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from yarl import URL

from .._core._config import Http
from .._core._exceptions import (
    BodyTooLarge,
    DecodeError,
    InvalidRequest,
    RequestTimeout,
    SaveError,
    TooManyRedirects,
)
from .._core._files import save_stream
from .._core._models import Request
from .._core._redact import redact
from .._core._types import is_success
from .._core._urls import RefusedURL, derived_url
from .._core._urls import origin_of as _origin
from ._decoding import IDENTITY, Decoder, UnknownEncoding, decoder_for
from ._transports._base import Exchange, Response, Transport

__all__ = ["HTTP", "Response"]  # Response: what send() answers (declared with the seam)

_JSON_HEADERS = {"Content-Type": "application/json"}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PIECE = 1024 * 1024  # decoded at a time for --save-dir
# A body is read freely up to this size; past it, the reader needs one of the run's few
# places for big bodies, so that a hundred bodies near --max-body (or a hundred gzip bombs
# expanding to it) are never all held at once.
_SMALL_BODY = 256 * 1024
_BIG_BODIES_BYTES = 128 * 1024 * 1024


def _content_type(raw: str) -> tuple[str, str | None]:
    """``"application/json; charset=UTF-8"`` as ``("application/json", "UTF-8")``."""
    kind, _, params = raw.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return kind.strip().lower(), charset


def _decoder(resp: Exchange) -> Decoder | None:
    encoding = resp.headers.get("Content-Encoding")
    if encoding is None:
        return None
    try:
        return decoder_for(encoding)
    except UnknownEncoding as exc:
        raise DecodeError(
            f"the body's Content-Encoding is not one fanfetch can undo: {exc}",
            status=resp.status,
        ) from None


def _decode(decoder: Decoder, data: bytes, room: int, resp: Exchange) -> bytes:
    """``data`` decoded, at most ``room + 1`` bytes of it (one more than fits: too large)."""
    try:
        return decoder.decode(data, room + 1)
    except ValueError as exc:
        encoding = resp.headers.get("Content-Encoding", "")
        raise DecodeError(
            f"the body cannot be decoded (Content-Encoding: {encoding}): {exc}",
            status=resp.status,
        ) from None


async def _decoded(resp: Exchange, decoder: Decoder, limit: int | None) -> AsyncIterator[bytes]:
    """A saved body's pieces decoded; at most one byte over ``limit`` (the saver refuses it)."""
    size = 0
    async for raw in resp.chunks():
        while True:  # a megabyte at a time: a bomb is written out, never held
            room = _PIECE if limit is None else min(_PIECE, limit - size)
            chunk = _decode(decoder, raw, room, resp)
            raw = b""
            size += len(chunk)
            if chunk:
                yield chunk
            if (limit is not None and size > limit) or not decoder.pending:
                break


class _Redirect:
    """A 3xx with a ``Location``, still to follow."""

    __slots__ = ("location", "status", "url")

    def __init__(self, status: int, location: str, url: URL) -> None:
        self.status = status
        self.location = location
        self.url = url


class HTTP:
    """Makes one attempt of a request over ``transport``: what ``_attempt`` calls."""

    def __init__(self, http: Http, transport: Transport) -> None:
        self._transport = transport
        self._max_body = http.max_body
        # Content-Type header -> (type, charset): an API sends the same one or two values all
        # run long, so each is parsed once, not per response.
        self._ctypes: dict[str, tuple[str, str | None]] = {}
        self._max_redirects = http.max_redirects
        self._link_local = http.allow_link_local
        self._save_dir = http.save_dir
        self._max_file = http.max_file
        self._headers: dict[str, str] | None = dict(http.headers) or None
        self._big_bodies: asyncio.Semaphore | None = None

    async def send(
        self,
        request: Request,
        timeout: float | None,
        auth: dict[str, str] | None = None,
        *,
        bare: bool = False,
    ) -> Response:
        """One attempt of ``request``, redirects followed, its body read and decoded (or
        saved), within ``timeout`` seconds in all. ``auth`` (a token's header) goes with the
        user's headers: never on to another origin. ``bare``: without the run's headers
        (``--header``, ``--user``), for a request fanfetch makes itself (an OAuth2 token)."""
        headers: Any = None if bare else self._headers
        if request.headers is not None:
            headers = dict(request.headers) if headers is None else {**headers, **request.headers}
        if auth is not None:
            headers = auth if headers is None else {**headers, **auth}
        if request.auth_origin is not None and request.auth_origin != _origin(
            request.target or URL(request.url)
        ):  # made from an answer, for another origin: none of the user's credentials go
            headers = None
        data: Any = request.data
        if request.json is not None:
            data = orjson.dumps(request.json)
            headers = _JSON_HEADERS if headers is None else {**_JSON_HEADERS, **headers}
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            # The first request under the transport's own timeout: most are not redirected,
            # and a task-level timeout around every one would cost more.
            first = await self._send_once(
                request, request.target or request.url, request.method, headers,
                request.params, data, timeout, 0,
            )  # fmt: skip
            if type(first) is Response:
                return first
            assert isinstance(first, _Redirect)
            left = None if timeout is None else timeout - (loop.time() - started)
            async with asyncio.timeout(left):  # the rest of the chain, within the same time
                return await self._follow(request, first, headers, data)
        except TimeoutError as exc:  # the chain's own timer (a transport maps its own)
            raise RequestTimeout("the request timed out (redirects included)") from exc

    async def _follow(
        self,
        request: Request,
        redirect: _Redirect,
        headers: Any,
        data: Any,
    ) -> Response:
        """Follow ``redirect`` and those after it, as browsers and curl -L do: 303 (and 301
        or 302 after a POST) become a GET without a body; 307 and 308 repeat the request as
        it was. Leaving the origin the user's headers were given for drops every one of them;
        a Location is followed only as ``_urls.derived_url`` allows."""
        origin = request.auth_origin or _origin(redirect.url)
        method = request.method
        for hop in range(1, self._max_redirects + 2):
            location = redirect.location
            if hop > self._max_redirects:
                raise TooManyRedirects(
                    f"more than {self._max_redirects} redirects (last to "
                    f"{redact(location)}); raise `max_redirects` if that is expected",
                    status=redirect.status,
                )
            try:
                url = derived_url(
                    redirect.url, location, "a redirect", allow_link_local=self._link_local
                )
            except RefusedURL as exc:
                raise InvalidRequest(str(exc), status=redirect.status) from None
            to_get = redirect.status == 303 and method != "HEAD"
            if to_get or (redirect.status in (301, 302) and method == "POST"):
                method, data = "GET", None
                if headers is _JSON_HEADERS:
                    headers = None
                elif headers is not None:
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            if headers is not None and _origin(url) != origin:
                # the user's headers were given for the first origin only; a JSON body that
                # goes on (307, 308) keeps its type
                headers = _JSON_HEADERS if data is not None and request.json is not None else None
            # params: None, the Location is the whole next URL, query included
            response = await self._send_once(request, url, method, headers, None, data, None, hop)
            if type(response) is Response:
                return response
            assert isinstance(response, _Redirect)
            redirect = response
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _send_once(
        self,
        request: Request,
        url: Any,
        method: str,
        headers: Any,
        params: Any,
        data: Any,
        timeout: float | None,
        hop: int,
    ) -> Response | _Redirect:
        exchange = await self._transport.open(
            method, url, headers=headers, params=params, data=data, timeout=timeout
        )
        try:
            status = exchange.status
            if status in _REDIRECTS and self._max_redirects:
                location = exchange.headers.get("Location")
                if location:
                    return _Redirect(status, location, exchange.url)
            if self._save_dir is not None and is_success(status):
                response = await self._save(exchange, request)
            else:
                response = await self._read(exchange)
            if hop:
                response.url = str(exchange.url)
                response.redirects = hop
            return response
        finally:
            await exchange.close()

    async def _read(self, resp: Exchange) -> Response:
        length = resp.content_length
        status = resp.status
        decoder = _decoder(resp)
        if decoder is None and length is not None and length > self._max_body:
            message = f"the body is {length:,} bytes, over {self._max_body:,}"
            raise BodyTooLarge(message, status=status)
        if decoder is None and length is not None and length <= _SMALL_BODY:
            content = await resp.read()
        else:
            content = await self._read_capped(resp, decoder or IDENTITY)
        rheaders = resp.headers
        raw_type = rheaders.get("Content-Type")
        if raw_type is None:
            ctype, charset = "", None
        elif (known := self._ctypes.get(raw_type)) is not None:
            ctype, charset = known
        else:
            ctype, charset = _content_type(raw_type)
            if len(self._ctypes) < 64:
                self._ctypes[raw_type] = (ctype, charset)
        return Response(
            status,
            content,
            headers=rheaders,
            content_type=ctype,
            charset=charset,
            reason=resp.reason,
        )

    async def _save(self, resp: Exchange, request: Request) -> Response:
        """Stream a 2xx body to a file (``--save-dir``) instead of into memory."""
        assert self._save_dir is not None
        length = resp.content_length
        limit = self._max_file  # not --max-body: a file is streamed, never held in memory
        decoder = _decoder(resp)
        if decoder is None and length is not None and limit is not None and length > limit:
            raise BodyTooLarge(
                f"the body is {length:,} bytes, over `max_file={limit}`", status=resp.status
            )
        chunks = _decoded(resp, decoder or IDENTITY, limit)
        try:
            saved = await save_stream(chunks, self._save_dir, request.id, limit=limit,
                                      page=request.page)  # fmt: skip
        except OverflowError:
            raise BodyTooLarge(
                f"the body is over `max_file={limit}` bytes", status=resp.status
            ) from None
        except OSError as exc:
            raise SaveError(f"cannot save the body: {exc.strerror or exc}") from exc
        response = Response(resp.status, b"", headers=resp.headers, reason=resp.reason)
        response.saved = saved
        return response

    async def _read_capped(self, resp: Exchange, decoder: Decoder) -> bytes:
        """Read a body of unknown, compressed or large size, stopping as soon as it (decoded)
        is too large; past ``_SMALL_BODY`` only a few bodies are read at once."""
        chunks: list[bytes] = []
        size = 0
        big: asyncio.Semaphore | None = None
        cap = self._max_body
        try:
            async for raw in resp.chunks():
                while True:  # decoded a piece at a time: no more than fits before a place
                    limit = cap if big is not None or cap <= _SMALL_BODY else _SMALL_BODY
                    chunk = _decode(decoder, raw, limit - size, resp)
                    raw = b""
                    size += len(chunk)
                    if size > cap:
                        raise BodyTooLarge(f"the body is over {cap:,} bytes", status=resp.status)
                    chunks.append(chunk)
                    if big is None and size > _SMALL_BODY:
                        big = await self._big_body_place()
                    if not decoder.pending:
                        break
            return b"".join(chunks)
        finally:
            if big is not None:
                big.release()

    async def _big_body_place(self) -> asyncio.Semaphore:
        """Wait for one of the run's places for a body past ``_SMALL_BODY``; the caller
        releases it."""
        if self._big_bodies is None:
            places = max(2, _BIG_BODIES_BYTES // max(self._max_body, 1))
            self._big_bodies = asyncio.Semaphore(places)
        await self._big_bodies.acquire()
        return self._big_bodies

    def __repr__(self) -> str:
        return f"<HTTP over {self._transport!r}>"
