"""One HTTP/1.1 connection as an ``asyncio.Protocol``, and the exchange on it: httptools'
callbacks fill in the response, the exchange waits for each next step, and a body is read
no faster than the layer above takes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ...._core._exceptions import ConnectError, RequestError, RequestTimeout

if TYPE_CHECKING:
    from ._origin import Origin
    from ._pool import LeanTransport

__all__ = ["Connection", "Exchange"]

_MAX_HEAD = 64 * 1024  # bytes of status line and headers
_MAX_HEADERS = 256  # header fields in one response
_PAUSE_AT = 1024 * 1024  # body bytes held before reading pauses
_NO_BODY_STATUS = frozenset({204, 304})


class Connection(asyncio.Protocol):
    """One connection and the one exchange on it at a time: httptools' callbacks fill in
    the response; the exchange waits on ``_waiter`` for the next step."""

    def __init__(self, pool: LeanTransport, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self.deadline: float | None = None  # when this exchange times out (loop time)
        self._reset()

    def _reset(self) -> None:
        self.busy = False
        self.error: RequestError | None = None
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.until_close = False
        self.no_body = False
        self.reason: str | None = None
        self.fields: list[tuple[str, str]] = []
        self.head_size = 0
        self.body: list[bytes] = []
        self.held = 0
        self.paused = False

    # -- the loop's side ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.pool._open += 1

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes nobody asked for: the connection cannot be trusted
            self._close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ConnectError("the server switched protocols, which fanfetch does not"))
        except httptools.HttpParserError as exc:
            self._fail(ConnectError(f"the server's answer is not valid HTTP/1.1: {exc}"))
        if not self.head_done:
            self.head_size += len(data)
            if self.head_size > _MAX_HEAD and self.error is None:
                self._fail(ConnectError(f"the server's headers are over {_MAX_HEAD:,} bytes"))

    def eof_received(self) -> bool | None:
        return None  # close: a half-closed connection is not kept

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._lost(self)
        if not self.busy or self.complete:
            return
        if self.head_done and self.until_close and exc is None:
            self.complete = True  # an HTTP/1.0 (or length-less) body ends with the connection
            self.keep_alive = False
        elif self.error is None:
            self.error = ConnectError(
                "the body was cut short: the server closed the connection"
                if self.head_done
                else "the server closed the connection without answering"
            )
        self._wake()

    def pause_writing(self) -> None:  # a server that does not read: the timeout ends it
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools' callbacks -------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        if self.complete:  # a second answer to one request: this connection is not kept
            self.keep_alive = False
            return
        self.reason = reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        fields = self.fields
        fields.append((name.decode("latin-1"), value.decode("utf-8", "replace")))
        if len(fields) > _MAX_HEADERS:
            raise ValueError(f"over {_MAX_HEADERS} header fields")  # httptools: a parse error

    def on_headers_complete(self) -> None:
        if self.complete:
            self.keep_alive = False
            return
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the answer is still to come
            self.fields = []
            self.reason = None
            return
        self.status = status
        self.head_done = True
        headers = self.headers = CIMultiDictProxy(CIMultiDict(self.fields))
        length = headers.get("Content-Length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        if self.no_body or status in _NO_BODY_STATUS:
            self.complete = True  # the parser is left waiting for a body: a new one next time
            self.keep_alive = self.parser.should_keep_alive()
            self.parser = httptools.HttpResponseParser(self)
        elif length is None and "Transfer-Encoding" not in headers:
            self.until_close = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.body.append(body)
        self.held += len(body)
        if self.held > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done or self.complete:
            return  # an interim (1xx) answer's end, or a HEAD's parser left behind
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # -- the exchange's side --------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: RequestError) -> None:
        if self.error is None:
            self.error = error
        self._close()
        self._wake()

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def timed_out(self) -> None:
        self.pool._busy.discard(self)
        self._fail(RequestTimeout("the request timed out"))

    async def wait(self) -> None:
        """Until the parser has more (or the connection failed)."""
        if self.error is not None:
            raise self.error
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        waiter = self._waiter = self.pool.loop.create_future()
        await waiter
        if self.error is not None:
            raise self.error

    def send(self, head: bytes, deadline: float | None, no_body: bool) -> None:
        assert self.transport is not None
        self.busy = True
        self.no_body = no_body
        if deadline is not None:
            self.pool._watch(self, deadline)
        self.transport.write(head)

    def done(self) -> None:
        """The exchange is over: back to the pool when it ended cleanly, else closed."""
        if self.deadline is not None:
            self.deadline = None
            self.pool._busy.discard(self)
        if self.complete and self.keep_alive and self.error is None and not self.closed:
            if self.paused and self.transport is not None:
                self.transport.resume_reading()
            self._reset()
            self.pool._release(self)
        else:
            self.busy = False
            self._close()


class Exchange:
    """One response on a ``Connection``, read through it."""

    __slots__ = ("_conn", "_url", "content_length", "headers", "reason", "status", "url_text")

    def __init__(self, conn: Connection, url: URL | None, url_text: str | None) -> None:
        self._conn = conn
        self._url = url
        self.url_text = url_text
        self.status: int = conn.status
        self.reason = conn.reason
        self.headers: Mapping[str, str] = conn.headers
        self.content_length: int | None = conn.content_length

    @property
    def url(self) -> URL:
        if self._url is None:
            assert self.url_text is not None
            self._url = URL(self.url_text, encoded=True)
        return self._url

    async def read(self) -> bytes:
        conn = self._conn
        while not conn.complete:
            await conn.wait()
        if conn.error is not None:
            raise conn.error
        body = conn.body
        return body[0] if len(body) == 1 else b"".join(body)

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.body:
                piece = conn.body[0] if len(conn.body) == 1 else b"".join(conn.body)
                conn.body = []
                conn.held = 0
                yield piece
            elif conn.complete:
                return
            else:
                await conn.wait()

    async def close(self) -> None:
        self._conn.done()
