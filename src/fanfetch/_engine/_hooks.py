"""Per-attempt features as hooks, in the spirit of httpx's ``Auth.auth_flow`` and aiohttp's
client middlewares: before the send a hook adds headers (or says the attempt cannot go, by
raising a ``RequestError``); after the answer it gives a verdict: nothing to say, ``AGAIN``
(make the attempt once more without spending a retry: a refused token or key), or an error
that fails the attempt (a body that fails ``--expect``), which the retry policy then weighs.

Hooks run before the send in their order and after the answer in the reverse order, as
middlewares nest. The attempt loop (``_attempt``) knows limits, hooks, the transport and the
retry policy, nothing else. A new per-attempt feature is a hook in its own module and one
line in ``hooks_for``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal, Protocol

from .._core._exceptions import RequestError
from .._core._models import Request

if TYPE_CHECKING:
    from .._core._config import Config
    from .._core._types import Clock, Sleep
    from .._net._http import HTTP, Response
    from ._guards import Guard
    from ._limits import Limiter

__all__ = ["AGAIN", "AttemptHook", "Try", "Verdict", "hooks_for"]

AGAIN: Final = "again"
Verdict = Literal["again"] | RequestError | None


class Try:
    """One request's attempts, as its hooks see them (made per request, only when a run
    has hooks)."""

    __slots__ = ("cost", "free", "headers", "key_index", "own_throttle", "request", "tried")

    def __init__(self, request: Request, cost: float | None) -> None:
        self.request = request
        self.cost = cost
        self.headers: dict[str, str] | None = None  # what the hooks add to this attempt
        self.free = 0  # attempts made again without spending a retry
        self.key_index: int | None = None  # the pool key of the last attempt (records show it)
        self.tried: frozenset[int] = frozenset()  # pool keys refused for this request
        self.own_throttle = False  # a 429 and its Retry-After are the credential's, not the host's

    def add_headers(self, headers: dict[str, str]) -> None:
        self.headers = headers if self.headers is None else {**self.headers, **headers}

    def __repr__(self) -> str:
        return f"<Try {self.request.id!r} free={self.free} key={self.key_index}>"


class AttemptHook(Protocol):
    async def before(self, attempt: Try) -> None:
        """Before each send: add headers to ``attempt``; raise a ``RequestError`` when the
        attempt cannot go (no token, no key left)."""
        ...

    async def after(self, attempt: Try, response: Response) -> Verdict:
        """After each answer: None, ``AGAIN``, or the error that fails the attempt."""
        ...


def hooks_for(
    config: Config,
    http: HTTP,
    limiter: Limiter,
    *,
    clock: Clock,
    sleep: Sleep,
    guard: Guard | None = None,
) -> tuple[AttemptHook, ...]:
    """The hooks a run's options ask for, in their order before the send."""
    hooks: list[AttemptHook] = []
    if (keys := config.idempotency).idempotency_key is not None:
        from ._idempotency import IdempotencyKeys

        hooks.append(IdempotencyKeys(keys.idempotency_key, keys.idempotency_salt))
    if (usage := config.costs.usage) is not None:
        from .._core._config import Auto
        from ._cost import UsageHook

        corrections: list[Callable[[float], None]] = []
        if config.costs.budget is not None and not isinstance(config.costs.budget, Auto):
            corrections.append(limiter.correct_budget)
        if guard is not None and guard.counts_cost:
            corrections.append(guard.correct)
        if corrections:
            hooks.append(UsageHook(usage, corrections))
    if config.checks.expect is not None or config.checks.schema is not None:
        from ._expect import Validator

        hooks.append(Validator(config.checks.expect, config.checks.schema))
    if config.auth.oauth2_token_url is not None:
        from ._oauth import OAuth2

        hooks.append(OAuth2(config.auth.oauth2_token_url, config.auth.oauth2_client_id,
                            config.auth.oauth2_scope, functools.partial(http.send, bare=True),
                            timeout=config.timeouts.attempt, clock=clock))  # fmt: skip
    if (auth := config.auth).key_pool is not None:
        from ._keys import KeyPool

        hooks.append(KeyPool(auth.key_pool, auth.key_header or "Authorization: Bearer {key}",
                             rate=auth.rate_per_key, budget=auth.budget_per_key,
                             clock=clock, sleep=sleep))  # fmt: skip
    return tuple(hooks)
