"""``--idempotency-key``: an ``Idempotency-Key`` header on every request that may change
something (POST, PUT, PATCH, DELETE), so that a retried request is not done twice.

The key is derived from the job, not made per attempt: a hash of the salt, the request's id,
its method, URL, query and body. So it is the same on every attempt and every retry, and
after ``kill -9`` and ``--resume`` (the id is the line's, or the one it gives), and differs
between requests. A request that carries the header itself keeps its own. Give another
salt (``--idempotency-salt``) to make a new job over the same input send new keys.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import orjson

from .._core._models import Request

if TYPE_CHECKING:
    from .._net._http import Response
    from ._hooks import Try, Verdict

__all__ = ["IdempotencyKeys", "idempotency_key"]

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def idempotency_key(request: Request, salt: str = "") -> str:
    """The key of ``request`` in a job salted with ``salt``: 32 hex digits (128 bits of
    SHA-256), the shape of a UUID without its dashes."""
    body = request.json
    parts = [
        salt.encode(),
        orjson.dumps(request.id, option=_SORTED, default=str),
        request.method.upper().encode(),
        request.url.encode(),
        b"" if not request.params else orjson.dumps(request.params, option=_SORTED, default=str),
        b"" if body is None else orjson.dumps(body, option=_SORTED, default=str),
        _data(request.data),
    ]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:32]


def _data(data: object) -> bytes:
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    return orjson.dumps(data, option=_SORTED, default=str)  # a form's fields


class IdempotencyKeys:
    """The attempt hook: adds ``header: KEY`` before each send of a changing request."""

    def __init__(self, header: str, salt: str = "") -> None:
        self.header = header
        self._lower = header.lower()
        self._salt = salt

    async def before(self, attempt: Try) -> None:
        request = attempt.request
        if request.method.upper() not in CHANGING:
            return
        own = request.headers
        if own and any(name.lower() == self._lower for name in own):
            return  # the request's own key wins
        attempt.add_headers({self.header: idempotency_key(request, self._salt)})

    async def after(self, attempt: Try, response: Response) -> Verdict:
        return None
