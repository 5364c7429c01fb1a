"""A request's head as the bytes that go on the wire: the request line, Host, the default
headers a caller did not give, the caller's (checked: no header may smuggle a line),
Content-Type and Content-Length. A request with no headers of its own and no body, the
common case, is one f-string."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ...._core._exceptions import InvalidRequest
from ...._version import __version__
from ..._decoding import ACCEPT_ENCODING
from ._origin import Origin

__all__ = ["METHODS", "TOKEN", "Heads"]

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class Heads:
    """Makes request heads with the transport's default headers."""

    def __init__(self) -> None:
        block = {
            "user-agent": f"User-Agent: fanfetch/{__version__}\r\n",
            "accept": "Accept: */*\r\n",
            "accept-encoding": f"Accept-Encoding: {ACCEPT_ENCODING}\r\n",
        }
        self._defaults = block
        self._default_block = "".join(block.values())

    def head(
        self,
        method: str,
        target: str,
        origin: Origin,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        text: bool,
    ) -> bytes:
        proxy = origin.proxy
        if proxy is not None and not origin.tls:
            target = origin.key + target  # absolute form, for the proxy to read
            if proxy.auth:
                headers = {**(headers or {}), "Proxy-Authorization": proxy.auth}
        if headers is None and body is None:
            return (
                f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"
                f"{self._default_block}\r\n"
            ).encode()
        given = {name.lower(): (name, value) for name, value in (headers or {}).items()}
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        if "host" not in given:
            lines.append(f"Host: {origin.host_header}\r\n")
        lines.extend(line for name, line in self._defaults.items() if name not in given)
        for lower, (name, value) in given.items():
            value = str(value)
            if not TOKEN.match(name) or "\n" in value or "\r" in value:
                raise InvalidRequest(f"a header cannot be sent as given: {name!r}")
            if lower not in ("content-length", "transfer-encoding"):
                lines.append(f"{name}: {value}\r\n")
        if body is not None:
            if "content-type" not in given:
                kind = "text/plain; charset=utf-8" if text else "application/octet-stream"
                lines.append(f"Content-Type: {kind}\r\n")
            lines.append(f"Content-Length: {len(body)}\r\n")
        elif method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0\r\n")
        lines.append("\r\n")
        try:
            return "".join(lines).encode()
        except UnicodeEncodeError as exc:  # a lone surrogate from a template
            raise InvalidRequest(f"the request cannot be encoded: {exc.reason}") from None
