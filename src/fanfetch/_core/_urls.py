"""URLs a response names: the one rule for every request fanfetch derives from an answer.

A redirect's ``Location``, a next page's link and (to come) a follow-up request are written
by the server, not by the user. Such a URL is followed only when it is http(s), carries no
``user:password@`` (never sent as basic auth, never written into a record) and names no
link-local address (169.254.0.0/16, fe80::/10: where cloud metadata services answer) unless
``allow_link_local``. The credentials a user gave (``--header``, ``--user``, a line's own
``headers``, OAuth2 tokens, pool keys) go only to the origin they were given for: a derived
request carries that origin (``Request.auth_origin``) and ``_http`` sends them nowhere else.
"""

from __future__ import annotations

import ipaddress
import socket

from yarl import URL

from ._redact import redact

__all__ = [
    "Origin",
    "RefusedURL",
    "bad_name",
    "bypasses_proxy",
    "derived_url",
    "is_link_local",
    "origin_of",
]

Origin = tuple[str, str | None, int | None]  # scheme, host, port (the default one filled in)


class RefusedURL(ValueError):
    """A URL a response named that fanfetch will not follow; the message says why."""


def origin_of(url: URL) -> Origin:
    """The origin of ``url`` (RFC 6454): scheme, host and port."""
    return url.scheme, url.raw_host, url.port


def is_link_local(host: str | None) -> bool:
    """Whether ``host`` is a link-local address, in any spelling a resolver accepts
    (``169.254.169.254``, ``2852039166``, ``0xa9.0xfe.0xa9.0xfe``, ``[fe80::1]``,
    ``::ffff:169.254.1.1``)."""
    if not host:
        return False
    host = host.strip("[]")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        if not host[0].isdigit():
            return False
        try:  # the forms inet_aton (and so getaddrinfo) reads: 127.1, 0x7f.1, 2130706433
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_link_local


def bad_name(host: str) -> str | None:
    """Why ``host`` (as a URL writes it, IDNs encoded) can be no DNS name: an empty label, one
    over 63 characters, or over 253 in all; else None. Such a name fails in the idna codec or
    in a resolver, in a way no transport should have to meet."""
    if host[0] == "[" or (len(host) <= 63 and ".." not in host and host[0] != "."):
        return None  # the common case, for two comparisons and a search
    name = host[:-1] if host[-1] == "." else host  # a trailing dot names the root
    if len(name) > 253 or any(not label or len(label) > 63 for label in name.split(".")):
        return f"the host {host[:80]!r} is no DNS name (an empty label, or one over 63 characters)"
    return None


def derived_url(base: URL, link: str, what: str, *, allow_link_local: bool = False) -> URL:
    """``link`` (named by the answer to ``base``) resolved against it, or ``RefusedURL``
    saying why it may not be followed; ``what`` names it in the message ("a redirect")."""
    try:
        url = base.join(URL(link))
    except ValueError as exc:
        raise RefusedURL(f"{what} to {redact(link)!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise RefusedURL(f"{what} to {redact(str(url))!r} is not an http(s) URL")
    if (reason := bad_name(url.raw_host)) is not None:
        raise RefusedURL(f"{what}: {reason}")
    if url.raw_user is not None or url.raw_password is not None:
        shown = str(url.with_user(None))
        raise RefusedURL(f"{what} to {redact(shown)!r} carries credentials (user:password@)")
    if not allow_link_local and is_link_local(url.raw_host):
        raise RefusedURL(
            f"{what} to {redact(str(url))!r} names a link-local address (cloud metadata "
            "lives there); allow_link_local lets it through"
        )
    return url


def bypasses_proxy(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (comma-separated) sends ``host:port`` direct, as curl reads it:
    ``*``; a name, for itself and its subdomains (``example.com``, ``.example.com``); a
    name or address with a port (``api.test:8080``, ``[::1]:8080``); an IP address, in
    brackets or not (``::1``, ``[::1]``); a network (``10.0.0.0/8``, ``fd00::/8``). Python's
    own reader knows names only."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if entry == "*":
            return True
        wanted_port = None
        if entry.startswith("["):  # [v6], or [v6]:port
            entry, _, rest = entry[1:].partition("]")
            if rest[:1] == ":" and rest[1:].isdigit():
                wanted_port = int(rest[1:])
        elif entry.count(":") == 1 and entry.partition(":")[2].isdigit():  # name or v4:port
            entry, _, number = entry.partition(":")
            wanted_port = int(number)
        if not entry or (wanted_port is not None and wanted_port != port):
            continue
        if address is not None:
            try:
                if "/" in entry:
                    if address in ipaddress.ip_network(entry, strict=False):
                        return True
                elif ipaddress.ip_address(entry) == address:
                    return True
            except (ValueError, TypeError):  # a name, or a network of the other family
                pass
            continue
        name = entry.strip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False
