"""The real transport: one ``aiohttp.ClientSession`` for the whole run.

Redirects are followed here, not by aiohttp, so that fanfetch decides what a redirect may
carry: the headers a user gave (``--header`` and a request's own ``headers``) go only to the
origin they were given for, and a chain that goes on too long is ``too_many_redirects``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from yarl import URL

from .._config import Config
from .._decoding import ACCEPT_ENCODING, IDENTITY, Decoder, UnknownEncoding, decoder_for
from .._exceptions import (
    BodyTooLarge,
    ConnectError,
    DecodeError,
    InvalidRequest,
    RequestError,
    RequestTimeout,
    TLSError,
    TooManyRedirects,
)
from .._files import save_stream
from .._models import Request
from .._redact import redact
from .._version import __version__
from ._base import Response

__all__ = ["AiohttpTransport", "map_aiohttp_error"]

_JSON_HEADERS = {"Content-Type": "application/json"}
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# A body is read freely up to this size; past it, the reader needs one of the run's few
# places for big bodies, so that a hundred bodies near --max-body (or a hundred gzip bombs
# expanding to it) are never all held at once.
_SMALL_BODY = 256 * 1024
_BIG_BODIES_BYTES = 128 * 1024 * 1024
# getaddrinfo's answers that mean the name does not exist (not a passing resolver failure)
_NO_SUCH_NAME = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
)


def map_aiohttp_error(exc: BaseException) -> RequestError | None:
    """Our error for an aiohttp or asyncio error, or None when it does not mean a failed
    request (a bug, which must raise rather than become a record).

    aiohttp's total timeout surfaces as a bare ``asyncio.TimeoutError`` (the builtin
    ``TimeoutError`` on 3.11+), not only as ``ServerTimeoutError``, so both are caught.
    """
    mapped = _map(exc)
    if mapped is None:
        return None
    message = str(mapped)
    clean = redact(message)
    if clean != message:
        mapped = type(mapped)(clean)
    if _no_such_name(exc):
        mapped.retryable = False
    return mapped


def _map(exc: BaseException) -> RequestError | None:
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return RequestTimeout(str(exc) or "the request timed out")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TLSError(
            f"the server's certificate was refused: {exc.certificate_error}. HINT: trust its "
            "CA with SSL_CERT_FILE=ca.pem, or skip verification with --insecure"
        )
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return TLSError(f"TLS failed: {exc}. HINT: check the URL's scheme and port, or --insecure")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return InvalidRequest(f"invalid URL: {exc}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ConnectError(f"the body was cut short: {exc}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ConnectError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return None


def _no_such_name(exc: BaseException) -> bool:
    """A DNS answer that the name does not exist: asking again a second later will not help."""
    os_error = getattr(exc, "os_error", None)
    return isinstance(exc, aiohttp.ClientConnectorDNSError) and (
        getattr(os_error, "errno", None) in _NO_SUCH_NAME
    )


def _decoder(resp: aiohttp.ClientResponse) -> Decoder | None:
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


def _decode(decoder: Decoder, data: bytes, room: int, resp: aiohttp.ClientResponse) -> bytes:
    """``data`` decoded, at most ``room + 1`` bytes of it (one more than fits: too large)."""
    try:
        return decoder.decode(data, room + 1)
    except ValueError as exc:
        encoding = resp.headers.get("Content-Encoding", "")
        raise DecodeError(
            f"the body cannot be decoded (Content-Encoding: {encoding}): {exc}",
            status=resp.status,
        ) from None


async def _decoded(
    chunks: AsyncIterator[bytes], decoder: Decoder, status: int, limit: int | None
) -> AsyncIterator[bytes]:
    """A saved body's pieces decoded; at most one byte over ``limit`` (the saver refuses it)."""
    size = 0
    async for raw in chunks:
        while True:  # a megabyte at a time: a bomb is written out, never held
            room = _CHUNK * 16 if limit is None else min(_CHUNK * 16, limit - size + 1)
            try:
                chunk = decoder.decode(raw, room)
            except ValueError as exc:
                raise DecodeError(f"the body cannot be decoded: {exc}", status=status) from None
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


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.raw_host, url.port


class AiohttpTransport:
    """Sends attempts over one pooled session sized to the run's concurrency.

    The session is made on first use, inside the running loop. Its connector allows as many
    connections as there are workers, so a request never queues inside aiohttp and the
    per-attempt timeout counts only the attempt itself.
    """

    def __init__(self, config: Config, *, pool_size: int | None = None) -> None:
        self._config = config
        self._pool_size = pool_size or config.limits.concurrency
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        self._max_body = config.max_body
        # Content-Type header -> (type, charset): an API sends the same one or two values all
        # run long, so each is parsed once, not per response.
        self._ctypes: dict[str, tuple[str, str | None]] = {}
        self._max_redirects = config.max_redirects
        self._save_dir = config.save_dir
        self._max_file = config.max_file
        self._headers: dict[str, str] | None = dict(config.headers) or None
        self._big_bodies: asyncio.Semaphore | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=0,  # per-host limits are ours (_limits.py), not the pool's
            ttl_dns_cache=300,
            use_dns_cache=True,
            ssl=self._config.verify_tls,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": f"fanfetch/{__version__}", "Accept-Encoding": ACCEPT_ENCODING},
            auto_decompress=False,  # decoded here, a piece at a time under the cap (_decoding)
            cookie_jar=aiohttp.DummyCookieJar(),  # requests are independent: no cookie carry-over
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,
        )
        # aiohttp quietly re-sends an idempotent request once when a kept-alive connection drops
        # before the answer (aio-libs/aiohttp#7363, #10790). fanfetch owns its retries and counts
        # every attempt the server sees, so that hidden re-send is switched off.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        self._session = session
        return session

    def _timeout(self, seconds: float | None) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=seconds, connect=self._config.timeouts.connect)
            if len(self._timeouts) < 64:  # per-request timeouts are few; never grow unbounded
                self._timeouts[seconds] = timeout
        return timeout

    async def send(self, request: Request, timeout: float | None) -> Response:
        session = self._session or self._open()
        headers: Any = self._headers
        if request.headers is not None:
            headers = dict(request.headers) if headers is None else {**headers, **request.headers}
        data: Any = request.data
        if request.json is not None:
            data = orjson.dumps(request.json)
            headers = _JSON_HEADERS if headers is None else {**_JSON_HEADERS, **headers}
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            # The first request under aiohttp's own timeout: most are not redirected, and a
            # task-level timeout around every one would cost more.
            first = await self._send_once(
                session, request, request.target or request.url, request.method, headers,
                request.params, data, self._timeout(timeout), 0,
            )  # fmt: skip
            if type(first) is Response:
                return first
            assert isinstance(first, _Redirect)
            left = None if timeout is None else timeout - (loop.time() - started)
            async with asyncio.timeout(left):  # the rest of the chain, within the same time
                return await self._follow(session, request, first, headers, data)
        except RequestError:
            raise
        except Exception as exc:
            mapped = map_aiohttp_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def _follow(
        self,
        session: aiohttp.ClientSession,
        request: Request,
        redirect: _Redirect,
        headers: Any,
        data: Any,
    ) -> Response:
        """Follow ``redirect`` and those after it, as browsers and curl -L do: 303 (and 301
        or 302 after a POST) become a GET without a body; 307 and 308 repeat the request as
        it was. Leaving the first origin drops every header the user gave."""
        origin = _origin(redirect.url)
        method = request.method
        no_timeout = self._timeout(None)
        for hop in range(1, self._max_redirects + 2):
            location = redirect.location
            if hop > self._max_redirects:
                raise TooManyRedirects(
                    f"more than {self._max_redirects} redirects (last to "
                    f"{redact(location)}); raise --max-redirects if that is expected",
                    status=redirect.status,
                )
            url = redirect.url.join(URL(location))
            if url.scheme not in ("http", "https"):
                raise InvalidRequest(f"a redirect to an unsupported scheme: {redact(str(url))}")
            to_get = redirect.status == 303 and method != "HEAD"
            if to_get or (redirect.status in (301, 302) and method == "POST"):
                method, data = "GET", None
                if headers is _JSON_HEADERS:
                    headers = None
                elif headers is not None:
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            if headers is not None and _origin(url) != origin:
                headers = None  # the user's headers were given for the first origin only
            # params: None, the Location is the whole next URL, query included
            response = await self._send_once(
                session, request, url, method, headers, None, data, no_timeout, hop
            )
            if type(response) is Response:
                return response
            assert isinstance(response, _Redirect)
            redirect = response
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _send_once(
        self,
        session: aiohttp.ClientSession,
        request: Request,
        url: Any,
        method: str,
        headers: Any,
        params: Any,
        data: Any,
        timeout: aiohttp.ClientTimeout,
        hop: int,
    ) -> Response | _Redirect:
        async with session.request(
            method,
            url,
            headers=headers,
            params=params,
            data=data,
            timeout=timeout,
            allow_redirects=False,
        ) as resp:
            status = resp.status
            if status in _REDIRECTS and self._max_redirects:
                location = resp.headers.get("Location")
                if location:
                    return _Redirect(status, location, resp.url)
            if self._save_dir is not None and 200 <= status < 300:
                response = await self._save(resp, request)
            else:
                response = await self._read(resp)
            if hop:
                response.url = str(resp.url)
                response.redirects = hop
            return response

    async def _read(self, resp: aiohttp.ClientResponse) -> Response:
        length = resp.content_length
        status = resp.status
        decoder = _decoder(resp)
        if decoder is None:
            if length is not None and length > self._max_body:
                message = f"the body is {length:,} bytes, over {self._max_body:,}"
                raise BodyTooLarge(message, status=status)
            if length is not None and length <= _SMALL_BODY:
                content = await resp.read()
            else:
                content = await self._read_capped(resp, IDENTITY)
        else:
            content = await self._read_capped(resp, decoder)
        rheaders = resp.headers
        raw_type = rheaders.get("Content-Type")
        if raw_type is None:
            ctype, charset = "", None
        elif (known := self._ctypes.get(raw_type)) is not None:
            ctype, charset = known
        else:
            ctype, charset = resp.content_type, resp.charset
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

    async def _save(self, resp: aiohttp.ClientResponse, request: Request) -> Response:
        """Stream a 2xx body to a file (``--save-dir``) instead of into memory."""
        assert self._save_dir is not None
        length = resp.content_length
        limit = self._max_file  # not --max-body: a file is streamed, never held in memory
        identity = "Content-Encoding" not in resp.headers
        if identity and length is not None and limit is not None and length > limit:
            raise BodyTooLarge(
                f"the body is {length:,} bytes, over --max-file {limit:,}", status=resp.status
            )
        decoder = _decoder(resp)
        chunks: AsyncIterator[bytes] = resp.content.iter_chunked(_CHUNK)
        if decoder is not None:
            chunks = _decoded(chunks, decoder, resp.status, limit)
        try:
            saved = await save_stream(chunks, self._save_dir, request.id, limit=limit)
        except OverflowError:
            raise BodyTooLarge(
                f"the body is over --max-file {limit:,} bytes", status=resp.status
            ) from None
        except OSError as exc:
            raise RequestError(f"cannot save the body: {exc.strerror or exc}") from exc
        response = Response(resp.status, b"", headers=resp.headers, reason=resp.reason)
        response.saved = saved
        return response

    async def _read_capped(self, resp: aiohttp.ClientResponse, decoder: Decoder) -> bytes:
        """Read a body of unknown, compressed or large size, stopping as soon as it (decoded)
        is too large; past ``_SMALL_BODY`` only a few bodies are read at once."""
        chunks: list[bytes] = []
        size = 0
        big: asyncio.Semaphore | None = None
        cap = self._max_body
        try:
            async for raw in resp.content.iter_chunked(_CHUNK):
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

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        state = "open" if self._session is not None else "not open"
        return f"<AiohttpTransport pool={self._pool_size} {state}>"
