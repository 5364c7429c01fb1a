"""The real transport: one ``aiohttp.ClientSession`` for the whole run."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from .._config import Config
from .._exceptions import BodyTooLarge, RequestError, map_transport_error
from .._files import save_stream
from .._models import Request
from .._version import __version__
from ._base import Response

__all__ = ["AiohttpTransport"]

_JSON_HEADERS = {"Content-Type": "application/json"}
_CHUNK = 64 * 1024


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

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=0,  # per-host limits are ours (_limits.py), not the pool's
            ttl_dns_cache=300,
            use_dns_cache=True,
            ssl=self._config.verify_tls,
        )
        headers = {"User-Agent": f"fanfetch/{__version__}", **self._config.headers}
        session = aiohttp.ClientSession(
            connector=connector,
            headers=headers,
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
        headers: Any = request.headers
        data: Any = request.data
        if request.json is not None:
            data = orjson.dumps(request.json)
            headers = _JSON_HEADERS if headers is None else {**_JSON_HEADERS, **headers}
        try:
            async with session.request(
                request.method,
                request.target if request.target is not None else request.url,
                headers=headers,
                params=request.params,
                data=data,
                timeout=self._timeout(timeout),
                max_redirects=self._max_redirects,
                allow_redirects=self._max_redirects > 0,
            ) as resp:
                length = resp.content_length
                if self._save_dir is not None and 200 <= resp.status < 300:
                    return await self._save(resp, request)
                if length is not None and length > self._max_body:
                    raise BodyTooLarge(f"the body is {length:,} bytes, over {self._max_body:,}")
                if length is not None and resp.headers.get("Content-Encoding") is None:
                    content = await resp.read()
                else:
                    content = await self._read_capped(resp)
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
                    resp.status,
                    content,
                    headers=rheaders,
                    content_type=ctype,
                    charset=charset,
                    reason=resp.reason,
                    url=str(resp.url) if resp.history else None,
                )
        except RequestError:
            raise
        except Exception as exc:
            raise map_transport_error(exc) from exc

    async def _save(self, resp: aiohttp.ClientResponse, request: Request) -> Response:
        """Stream a 2xx body to a file (``--save-dir``) instead of into memory."""
        assert self._save_dir is not None
        length = resp.content_length
        limit = self._max_file  # not --max-body: a file is streamed, never held in memory
        if length is not None and limit is not None and length > limit:
            raise BodyTooLarge(f"the body is {length:,} bytes, over --max-file {limit:,}")
        try:
            saved = await save_stream(
                resp.content.iter_chunked(_CHUNK), self._save_dir, request.id, limit=limit
            )
        except OverflowError:
            raise BodyTooLarge(f"the body is over --max-file {limit:,} bytes") from None
        except OSError as exc:
            raise RequestError(f"cannot save the body: {exc.strerror or exc}") from exc
        response = Response(resp.status, b"", headers=resp.headers, reason=resp.reason)
        response.saved = saved
        return response

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        """Read a body of unknown (or compressed) size, stopping as soon as it is too large."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self._max_body:
                raise BodyTooLarge(f"the body is over {self._max_body:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        state = "open" if self._session is not None else "not open"
        return f"<AiohttpTransport pool={self._pool_size} {state}>"
