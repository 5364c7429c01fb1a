"""Names looked up off the loop, once for all the connections that ask at the same time, and
kept five minutes, in a cache of bounded size (a run over a million hosts keeps no million)."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from typing import Any

from ...._core._exceptions import ConnectError
from ...._core._redact import redact
from ._origin import ip_family

__all__ = ["Resolver"]

_DNS_KEPT = 10_000  # hosts whose addresses are kept at once
_DNS_TTL = 300.0
_NO_SUCH_NAME = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
)

Addresses = list[tuple[int, Any]]  # (family, (host, port)) to connect to, in order


class Resolver:
    """The addresses of a host: an IP address as it is; a name looked up and kept."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, int], tuple[float, Addresses]] = {}
        self._resolving: dict[tuple[str, int], asyncio.Future[Addresses]] = {}

    async def resolve(self, host: str, port: int) -> Addresses:
        key = (host, port)
        known = self.kept.get(key)
        now = time.monotonic()
        if known is not None and known[0] > now:
            return known[1]
        family = ip_family(host)
        if family is not None:
            addresses: Addresses = [(family, (host, port))]
            self._remember(key, math.inf, addresses)
            return addresses
        pending = self._resolving.get(key)
        if pending is None:
            pending = self._resolving[key] = asyncio.ensure_future(self._lookup(host, port))
            pending.add_done_callback(lambda done: self._looked_up(key, done))
        return await asyncio.shield(pending)

    def _looked_up(self, key: tuple[str, int], done: asyncio.Future[Any]) -> None:
        self._resolving.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: when every asker was cancelled, none would

    async def _lookup(self, host: str, port: int) -> Addresses:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except socket.gaierror as exc:
            error = ConnectError(redact(f"cannot resolve {host}: {exc.strerror or exc}"))
            error.retryable = exc.errno not in _NO_SUCH_NAME
            raise error from None
        except UnicodeError as exc:  # the idna codec: an empty or over-long label
            error = ConnectError(redact(f"cannot resolve {host[:80]}: {exc}"))
            error.retryable = False
            raise error from None
        addresses: Addresses = [(info[0], info[4][:2]) for info in infos]
        self._remember((host, port), time.monotonic() + _DNS_TTL, addresses)
        return addresses

    def _remember(self, key: tuple[str, int], until: float, addresses: Addresses) -> None:
        kept = self.kept
        if len(kept) >= _DNS_KEPT:
            kept.clear()  # a run over very many hosts: what it meets again is cheap to redo
        kept[key] = (until, addresses)
