"""Where one origin's requests go: its host and port, TLS or not, directly or through an
http:// forward proxy (whose credentials go to it only)."""

from __future__ import annotations

import base64
import socket
from typing import TYPE_CHECKING

from yarl import URL

from ...._core._exceptions import InvalidRequest, UsageError
from ...._core._redact import redact

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["Origin", "Proxy", "ip_family"]


def ip_family(host: str) -> int | None:
    """The address family of an IP address, or None for a name."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


class Proxy:
    """An http:// forward proxy: plain requests go to it in absolute form, https ones
    through a CONNECT tunnel; its credentials go to it only."""

    __slots__ = ("auth", "host", "port")  # auth: the Proxy-Authorization value, or ""

    def __init__(self, url: str) -> None:
        parsed = URL(url)
        if parsed.scheme != "http" or not parsed.raw_host:
            raise UsageError(
                "the lean transport speaks to http:// proxies: use `transport=aiohttp` for this one"
            )
        self.host = parsed.raw_host
        self.port = parsed.port or 80
        self.auth = ""
        if parsed.user is not None:
            token = base64.b64encode(f"{parsed.user}:{parsed.password or ''}".encode()).decode()
            self.auth = f"Basic {token}"


class Origin:
    """Where requests for one scheme://host:port go, worked out once per origin."""

    __slots__ = (
        "host",
        "host_header",
        "idle",
        "key",
        "port",
        "proxy",
        "server_hostname",
        "tls",
    )

    def __init__(self, url: URL, proxy: Proxy | None) -> None:
        host = url.raw_host
        if not host or url.scheme not in ("http", "https"):
            raise InvalidRequest(f"invalid URL: {redact(str(url))}")
        self.key = f"{url.scheme}://{url.raw_authority.rpartition('@')[2]}"
        self.host = host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.tls = url.scheme == "https"
        self.server_hostname = host
        shown = f"[{host}]" if ":" in host else host
        self.host_header = shown if url.is_default_port() else f"{shown}:{self.port}"
        self.idle: list[Connection] = []  # most recently used last
        self.proxy = proxy
