"""Keeping secrets out of messages and records: the one place that knows what to hide."""

from __future__ import annotations

import re

from yarl import URL

__all__ = ["SECRET_PARAMS", "mask_query", "redact", "redact_url"]

SECRET_PARAMS = frozenset({
    "access_token", "api-key", "api_key", "apikey", "auth", "auth_token", "client_secret",
    "id_token", "key", "passwd", "password", "pwd", "refresh_token", "secret", "sig",
    "signature", "token", "x-amz-credential", "x-amz-security-token", "x-amz-signature",
    "x-goog-credential", "x-goog-signature",
})  # fmt: skip
"""Query parameters whose values records never show (``--redact-param`` adds more)."""

_ANY_SECRET = re.compile(  # searched in a lower-cased query, after the quick test below
    r"[?&;](?:" + "|".join(re.escape(n) for n in sorted(SECRET_PARAMS)) + r")="
)
_PARAM = re.compile(r"([?&;])([^=&;#]+)=([^&;#]*)")

_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;](?:[\w.-]*(?:key|token|secret|password|passwd|signature|sig)[\w.-]*))=[^&#\s'\"]*",
    re.IGNORECASE,
)


_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/@\s'\"]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the values of secret-looking query parameters shown as ``***``, and
    the ``user:password@`` of any URL in it (a proxy's, say) too.

    Parameters whose names contain key, token, secret, password, signature or sig (``api_key``,
    ``X-Amz-Signature``, ``access_token``...) are masked wherever a URL is quoted in a message.
    """
    if "@" in text:
        text = _USERINFO.sub(r"\g<scheme>***@", text)
    if "=" not in text:
        return text
    return _SECRET_QUERY.sub(r"\g<name>=***", text)


def redact_url(url: str) -> str:
    """``url`` without any user:password part, safe to echo into records and messages."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return url
    if parsed.user is None and parsed.password is None:
        return url
    return str(parsed.with_user(None))


def mask_query(url: str, names: frozenset[str] | None = None) -> str:
    """``url`` with the values of its query parameters named in ``names`` (default
    ``SECRET_PARAMS``; compared without case) shown as ``***``: what records hold.

    A URL with no such parameter costs a search (the common case, once per record)."""
    start = url.find("?")
    if start < 0:
        return url
    if names is None:
        query = url[start:].lower()  # a third of the case-blind search's cost, with the test
        if not (
            "key" in query or "token" in query or "secret" in query or "sig" in query
            or "pass" in query or "pwd" in query or "auth" in query or "credential" in query
        ) or _ANY_SECRET.search(query) is None:  # fmt: skip
            return url
    wanted = SECRET_PARAMS if names is None else names

    def masked(match: re.Match[str]) -> str:
        if match[3] and match[2].lower() in wanted:
            return f"{match[1]}{match[2]}=***"
        return match[0]

    return _PARAM.sub(masked, url)
