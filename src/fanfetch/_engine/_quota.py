"""What an answer's rate-limit headers say of its host's limit, in every form APIs write.

- ``X-RateLimit-Limit/Remaining/Reset`` (Reset in seconds from now, or a Unix time) and the
  older IETF trio ``RateLimit-Limit/Remaining/Reset`` (Limit may carry its window:
  ``100, 100;w=60``);
- ``RateLimit: limit=100, remaining=50, reset=30`` (drafts 03-06 of
  draft-ietf-httpapi-ratelimit-headers);
- the structured fields of revision 07 on: ``RateLimit-Policy: "default";q=100;w=60`` and
  ``RateLimit: "default";r=50;t=30``;
- OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (limits per minute,
  resets written ``6m0s``, ``1.5s``, ``20ms``).

Read by the retry policy (nothing remains: rest the host until the reset) and by
``--rate auto`` (pace the host at what it advertises).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["Quota", "parse_duration", "quota", "says_remaining"]

_EPOCH = 1_000_000_000  # a Reset above this is a Unix time, not seconds from now
_OPENAI_WINDOW = 60.0  # OpenAI's limits are per minute (RPM, TPM)

_PARAM = re.compile(r";\s*([a-z]+)\s*=\s*(\"[^\"]*\"|[^;,\s]+)", re.I)
_MEMBER = re.compile(r"\s*(\"[^\"]*\"|[^;,\s]+)((?:\s*;[^,]*)?)\s*(?:,|$)")
_DICT = re.compile(r"(?:^|[,;\s])(limit|remaining|reset)\s*=\s*(\d+(?:\.\d+)?)", re.I)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


class Quota(NamedTuple):
    """What one answer says: ``limit`` per ``window`` seconds (None: not said),
    ``remaining`` of it, and ``reset``: seconds until it is whole again."""

    limit: float | None
    window: float | None
    remaining: float | None
    reset: float | None


def quota(headers: Mapping[str, str], kind: str = "requests") -> Quota | None:
    """The limit ``headers`` advertise for ``kind`` (``requests``, or ``tokens``: OpenAI's
    fields only), or None when they advertise none, as most answers do."""
    if kind == "requests":
        policy, combined = headers.get("RateLimit-Policy"), headers.get("RateLimit")
        if combined is not None and ";" not in combined and "=" in combined:  # drafts 03-06
            fields = {k.lower(): float(v) for k, v in _DICT.findall(combined)}
            return Quota(fields.get("limit"), _window_of(policy), fields.get("remaining"),
                         _reset(fields.get("reset")))  # fmt: skip
        if combined is not None or policy is not None:
            found = _structured(policy, combined)
            if found is not None:
                return found
        for prefix in ("X-RateLimit-", "RateLimit-"):
            limit, remaining = headers.get(prefix + "Limit"), headers.get(prefix + "Remaining")
            if limit is not None or remaining is not None:
                reset = _reset(_number(headers.get(prefix + "Reset")))
                window = _window_of(limit) or _window_of(policy)
                return Quota(_number(limit), window, _number(remaining), reset)
    limit, remaining = (
        headers.get(f"x-ratelimit-limit-{kind}"),
        headers.get(f"x-ratelimit-remaining-{kind}"),
    )
    if limit is None and remaining is None:
        return None
    return Quota(_number(limit), _OPENAI_WINDOW, _number(remaining),
                 parse_duration(headers.get(f"x-ratelimit-reset-{kind}")))  # fmt: skip


def says_remaining(headers: Mapping[str, str]) -> bool:
    """Whether ``headers`` say what remains of some limit: the few lookups made of every
    answer, before any parsing."""
    get = headers.get
    return not (
        get("X-RateLimit-Remaining") is None
        and get("RateLimit") is None
        and get("RateLimit-Remaining") is None
        and get("x-ratelimit-remaining-requests") is None
        and get("x-ratelimit-remaining-tokens") is None
    )


def _structured(policy_field: str | None, state_field: str | None) -> Quota | None:
    """Revision 07 on: the policy the ``RateLimit`` field names (else the one of the lowest
    rate), and what remains of it."""
    policies: dict[str, tuple[float, float]] = {}
    for name, params in _members(policy_field or ""):
        q, w = _number(params.get("q")), _number(params.get("w", "1"))
        if q is not None and w:
            policies[name] = (q, w)
    state = _members(state_field or "")
    if not policies and not state:
        return None
    name, params = state[0] if state else ("", {})
    remaining, reset = _number(params.get("r")), _number(params.get("t"))
    limit, window = policies.get(name) or min(
        policies.values(), key=lambda p: p[0] / p[1], default=(None, None)
    )
    return Quota(limit, window, remaining, reset)


def _members(field: str) -> list[tuple[str, dict[str, str]]]:
    """A structured-field list (RFC 8941): each member's name and its parameters."""
    found = []
    for match in _MEMBER.finditer(field):
        if match.group(1):
            params = {k.lower(): v.strip('"') for k, v in _PARAM.findall(match.group(2))}
            found.append((match.group(1).strip('"'), params))
    return found


def _window_of(field: str | None) -> float | None:
    """``w=`` of the first policy in ``RateLimit-Limit: 100, 100;w=60`` or in the older
    ``RateLimit-Policy: 100;w=60``."""
    if not field or "w=" not in field:
        return None
    for _name, params in _members(field):
        if "w" in params:
            return _number(params["w"])
    return None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    head = text.split(",", 1)[0].split(";", 1)[0].strip()  # "100, 100;w=60": the first
    try:
        value = float(head)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _reset(value: float | None) -> float | None:
    if value is None:
        return None
    return max(0.0, value - time.time()) if value > _EPOCH else value


def parse_duration(value: str | None) -> float | None:
    """Seconds in ``6m0s``, ``1.5s``, ``20ms`` or a bare number (as OpenAI-style reset
    headers write them); None if unusable."""
    if not value:
        return None
    text = value.strip().lower()
    bare = _number(text)
    if bare is not None:
        return bare
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)
