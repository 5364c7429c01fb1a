"""Keeping secrets out of messages and records: the one place that knows what to hide."""

from __future__ import annotations

import re

from yarl import URL

__all__ = ["redact", "redact_url"]

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
