"""One request's attempts: limits -> transport -> retry policy, until its final result.

The engine's workers call this once per request; the pool, the input and the sinks are the
engine's business, the attempts of one request are this module's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from .._core._config import Config, Rate
from .._core._events import Retrying
from .._core._exceptions import InvalidRequest, InvalidResponse, RequestError
from .._core._models import Attempt, Request, Result, status_error
from .._core._redact import SECRET_PARAMS, mask_query, redact_url
from .._core._types import Clock, Sleep, is_success
from .._net._http import HTTP, Response
from ._cost import Costs
from ._expect import Validator
from ._keys import Key, KeyPool
from ._limits import Limiter
from ._oauth import OAuth2
from ._retry import next_delay, throttle_delay

__all__ = ["Attempts", "host_key", "over_budget"]


def host_key(url: str) -> str:
    """The ``host:port`` a URL goes to: what per-host limits and throttling count by.

    A string split, not a URL parse: it runs once per request, and the URL was already
    checked when it was read (http or https, a host, no user:password part).
    """
    rest = url.partition("://")[2]
    end = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if i != -1 and i < end:
            end = i
    return rest[:end].lower()


def _host_of(request: Request) -> str:
    """``request``'s ``host:port`` key, from its parsed URL when the input checked it.

    yarl's ``raw_authority`` is already lower-cased and is several times quicker than
    ``host_port_subcomponent``, which is needed only to drop an explicit default port.
    """
    target = request.target
    if target is None:
        return host_key(request.url)
    key: str = target.raw_authority
    if key.endswith((":80", ":443")):
        key = target.host_port_subcomponent or key
    return key


def over_budget(request: Request, budget: Rate) -> Result:
    """A request whose cost alone is over the budget can never start: it fails at once."""
    message = (
        f"cost {request.cost:g} is over the whole budget of {budget}; "
        "split the request or raise --budget"
    )
    return Result(request, error=InvalidRequest(message), attempts=0)


def _attempt_entry(
    attempt: int,
    response: Response | None,
    error: RequestError | None,
    began: float,
    ended: float,
    delay: float | None,
) -> Attempt:
    """One line of ``--include-attempts`` history."""
    return Attempt(
        attempt,
        response.status if response is not None else None,
        error.type if error is not None else None,
        round((ended - began) * 1000.0, 3),
        round(delay * 1000.0, 3) if delay is not None else None,
    )


class Attempts:
    """Makes all the attempts of a request under one set of limits and one retry policy.

    ``stopping()`` true (Ctrl-C) ends a request after its current attempt instead of
    waiting to retry; ``on_retry`` hears of every retry.
    """

    def __init__(
        self,
        config: Config,
        http: HTTP,
        limiter: Limiter,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep,
        stopping: Callable[[], bool] = lambda: False,
        on_retry: Callable[[Retrying], None] | None = None,
    ) -> None:
        self.config = config
        self.limiter = limiter
        self._http = http
        self._clock = clock
        self._epoch = time.time() - clock()  # a start on ``clock`` + this = epoch seconds
        self._sleep = sleep
        self._stopping = stopping
        self._on_retry = on_retry
        self._oauth = (
            OAuth2(config.oauth2_token_url, config.oauth2_client_id, config.oauth2_scope,
                   functools.partial(http.send, bare=True), timeout=config.timeouts.attempt,
                   clock=clock)
            if config.oauth2_token_url is not None
            else None
        )  # fmt: skip
        self._keys = (
            KeyPool(config.key_pool, config.key_header or "Authorization: Bearer {key}",
                    rate=config.rate_per_key, budget=config.budget_per_key, clock=clock,
                    sleep=sleep)
            if config.key_pool is not None
            else None
        )  # fmt: skip
        self._costs = (
            Costs(config.cost, config.usage)
            if config.cost is not None or config.usage is not None
            else None
        )
        # --redact-param: records show these too as *** (the usual names are masked anyway)
        self._secret_params = SECRET_PARAMS | config.redact_params if config.redact_params else None
        self._validator = (
            Validator(config.expect, config.schema)
            if config.expect is not None or config.schema is not None
            else None
        )

    async def run(self, request: Request) -> Result:
        """All the attempts of one request, and its one final result."""
        clock = self._clock
        limiter = self.limiter
        config = self.config
        policy = config.retry
        http = self._http
        timeout = request.timeout or config.timeouts.attempt
        host = _host_of(request)
        cost = request.cost
        costs = self._costs
        if costs is not None:
            found = costs.cost_of(request)
            if isinstance(found, str):  # --cost gave no number for this one
                return Result(request, error=InvalidRequest(found), attempts=0)
            cost = found
        budget = config.budget
        if cost is not None and budget is not None and cost > budget.count:
            return over_budget(request, budget)
        history: list[Attempt] | None = [] if config.include_attempts else None
        start = clock()
        attempt = 0
        free = 0  # attempts repeated after a refused token: they spend no retry
        oauth = self._oauth
        keys = self._keys
        key: Key | None = None
        tried: frozenset[int] = frozenset()  # keys refused (401, 403) for this request
        auth: dict[str, str] | None = None
        sends = 0  # attempts that went out: no token or no key left means none did
        while True:
            attempt += 1
            response: Response | None = None
            error: RequestError | None = None
            if not limiter.try_start(host, cost):
                await limiter.wait_can_start(host, cost)
            began = clock() if history is not None else 0.0
            try:
                if oauth is not None:
                    auth = await oauth.header()
                if keys is not None:  # the key with the most room, once it may start
                    key = await keys.take(cost, tried)
                    auth = {**(auth or {}), key.header[0]: key.header[1]}
                sends += 1
                response = await http.send(request, timeout, auth)
            except RequestError as exc:
                # The result keeps the error for its record, not the frames it came through:
                # they hold the attempt's locals (a body read so far) in a reference cycle
                # that only the garbage collector would free.
                error = exc.with_traceback(None)
                error.__cause__ = error.__context__ = None
            finally:
                if response is None:  # an error, or cancelled
                    limiter.notify_finished(host, ok=False)
                else:
                    status = response.status
                    limiter.notify_finished(
                        host,
                        ok=is_success(status),
                        status=status,
                        # with a key pool a 429 is about its key, which rests alone
                        throttle=None
                        if key is not None and status == 429
                        else throttle_delay(policy, status, response.headers),
                    )
            again = (
                key is not None
                and response is not None
                and keys is not None
                and keys.answered(
                    key,
                    response.status,
                    response.headers,
                    request.url,
                    tried | {key.index},
                )
            )
            if again:  # that key was refused: again with another, no retry spent
                assert key is not None
                tried |= {key.index}
                free += 1
                if history is not None:
                    entry = _attempt_entry(attempt, response, None, began, clock(), 0.0)
                    history.append(entry)
                continue
            refused = response is not None and response.status == 401 and auth is not None
            if oauth is not None and refused and free == 0:  # its token was refused:
                oauth.refused(auth)  # type: ignore[arg-type]  # once more, with a new one,
                free += 1  # and no retry spent
                if history is not None:
                    history.append(_attempt_entry(attempt, response, None, began, clock(), 0.0))
                continue
            invalid: InvalidResponse | None = None
            if response is not None and is_success(response.status) and self._validator:
                problem = await self._validator.check(response.content)
                if problem is not None:
                    invalid = InvalidResponse(problem)
            if costs is not None and response is not None and budget is not None:
                used = costs.used(response.content)
                if used is not None:  # --usage: what it really cost, against what was charged
                    limiter.correct_budget(used - (cost or 0.0))
            if response is not None and is_success(response.status) and invalid is None:
                delay = None
            else:
                delay = next_delay(
                    policy,
                    attempt - free,
                    status=response.status if response is not None else None,
                    # a key's Retry-After is its own: the retry takes another key meanwhile
                    headers=response.headers if response is not None and key is None else None,
                    error=error or invalid,
                )
            if history is not None:
                entry = _attempt_entry(attempt, response, error or invalid, began, clock(), delay)
                history.append(entry)
            if delay is None or self._stopping():
                break
            if self._on_retry is not None:
                failed = error or invalid
                reason = failed.type if failed is not None else f"status {response.status}"  # type: ignore[union-attr]
                self._on_retry(Retrying(request, attempt, delay, reason))
            await self._sleep(delay)
        elapsed_ms = (clock() - start) * 1000.0
        keyed = {"key_index": key.index} if key is not None else None  # never the key itself
        secret = self._secret_params
        shown = None if secret is None else mask_query(request.url, secret)
        if response is None:
            result = Result(
                request,
                url=shown,
                status=error.status if error is not None else None,
                error=error,
                attempts=sends,
                elapsed_ms=elapsed_ms,
                history=None if history is None else tuple(history),
                extra=keyed,
                started_at=self._epoch + start if sends else None,
            )
        else:
            status = response.status
            saved = response.saved
            final_url = redact_url(response.url or "") if response.redirects else None
            if final_url is not None and secret is not None:
                final_url = mask_query(final_url, secret)
            result = Result(
                request,
                url=shown,
                status=status,
                headers=response.headers,
                content=response.content,
                content_type=response.content_type,
                charset=response.charset,
                error=invalid if is_success(status) else status_error(status, response.reason),
                attempts=sends,
                elapsed_ms=elapsed_ms,
                redirects=response.redirects,
                final_url=final_url,
                history=None if history is None else tuple(history),
                extra=keyed
                if saved is None
                else {
                    "path": saved.path,
                    "bytes": saved.size,
                    "sha256": saved.sha256,
                    **(keyed or {}),
                },
                started_at=self._epoch + start,
            )
        return result
