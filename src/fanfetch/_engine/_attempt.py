"""One request's attempts: limits -> transport -> retry policy, until its final result.

The engine's workers call this once per request; the pool, the input and the sinks are the
engine's business, the attempts of one request are this module's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from .._core._config import Auto, Config, Rate, RetryPolicy
from .._core._events import Retrying
from .._core._exceptions import InvalidRequest, RequestError
from .._core._models import Attempt, Request, Result, status_error
from .._core._redact import SECRET_PARAMS, mask_query, redact_url
from .._core._types import Clock, Sleep, is_success
from .._net._http import HTTP, Response
from ._cost import Costs
from ._guards import Guard
from ._hooks import AGAIN, Try, Verdict, hooks_for
from ._limits import Limiter
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
        "split the request or raise `budget`"
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
    """Makes all the attempts of a request under one set of limits and one retry policy,
    with the run's attempt hooks (``_hooks``: tokens, pool keys, body checks, usage) around
    each send.

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
        guard: Guard | None = None,
    ) -> None:
        self.config = config
        self.limiter = limiter
        self._http = http
        self._clock = clock
        self._epoch = time.time() - clock()  # a start on ``clock`` + this = epoch seconds
        self._sleep = sleep
        self._stopping = stopping
        self._on_retry = on_retry
        self._guard = guard if guard is not None and guard.counts_cost else None
        self._hooks = hooks_for(config, http, limiter, clock=clock, sleep=sleep, guard=guard)
        self._after = tuple(reversed(self._hooks))  # answers go back out as middlewares nest
        self._costs = Costs(config.costs.cost, None) if config.costs.cost is not None else None
        self._keep_history = config.records.include_attempts
        # --redact-param: records show these too as *** (the usual names are masked anyway)
        self._secret_params = (
            SECRET_PARAMS | config.records.redact_params if config.records.redact_params else None
        )

    async def run(self, request: Request) -> Result | None:
        """All the attempts of one request, and its one final result (None: ``--max-cost``
        let none start)."""
        cost = request.cost if self._costs is None else self._costs.cost_of(request)
        if isinstance(cost, str):  # --cost gave no number for this one
            return Result(request, error=InvalidRequest(cost), attempts=0)
        budget = Auto.fixed(self.config.costs.budget)
        if cost is not None and budget is not None and cost > budget.count:
            return over_budget(request, budget)
        clock, limiter, policy = self._clock, self.limiter, self.config.retry
        timeout = request.timeout or self.config.timeouts.attempt
        host = _host_of(request)
        history: list[Attempt] | None = [] if self._keep_history else None
        tries = Try(request, cost) if self._hooks else None  # what the hooks keep
        start, attempt, sends = clock(), 0, 0  # sends: attempts that went out
        guard = self._guard
        if guard is not None and not guard.may_spend(cost):
            return None
        while True:
            attempt += 1
            response: Response | None = None
            error: RequestError | None = None
            if not limiter.try_start(host, cost):
                await limiter.wait_can_start(host, cost)
            began = clock()
            try:
                headers = None if tries is None else await self._before(tries)
                if tries is not None:
                    began = clock()  # after a wait for a token or a key
                start = start if sends else began  # the first send: earlier waits not counted
                sends += 1
                response = await self._http.send(request, timeout, headers)
            except RequestError as exc:
                # The result keeps the error for its record, not the frames it came through:
                # they hold the attempt's locals (a body read so far) in a reference cycle
                # that only the garbage collector would free.
                error = exc.with_traceback(None)
                error.__cause__ = error.__context__ = None
            finally:
                _finished(limiter, host, response, policy, tries)
            ended = clock()
            invalid: RequestError | None = None
            if tries is not None and response is not None:
                verdict = await self._verdict(tries, response)
                if verdict is AGAIN:  # a token or key refused: again, no retry spent
                    tries.free += 1
                    if history is not None:
                        history.append(_attempt_entry(attempt, response, None, began, ended, 0.0))
                    continue
                invalid = verdict if isinstance(verdict, RequestError) else None
            failed = error or invalid
            delay = _delay(policy, attempt, response, failed, tries)
            if history is not None:
                history.append(_attempt_entry(attempt, response, failed, began, ended, delay))
            if delay is None or self._stopping():
                break
            if guard is not None and not guard.may_spend(cost):
                break  # --max-cost: no more attempts; this one's answer is the record
            if self._on_retry is not None:
                self._on_retry(_retrying(request, attempt, delay, failed, response, began, ended))
            await self._sleep(delay)
        spans = (start, began, ended)
        return self._result(request, response, error, invalid, sends, spans, history, tries)

    async def _before(self, tries: Try) -> dict[str, str] | None:
        """The headers the hooks add to this attempt (each attempt asks them afresh)."""
        tries.headers = None
        for hook in self._hooks:
            await hook.before(tries)
        return tries.headers

    async def _verdict(self, tries: Try, response: Response) -> Verdict:
        """What the hooks say of an answer: ``AGAIN`` from the first that says so, else the
        first error one gives (every hook hears the answer: ``--usage`` counts a bad one)."""
        failed: RequestError | None = None
        for hook in self._after:
            verdict = await hook.after(tries, response)
            if verdict is AGAIN:
                return AGAIN
            if isinstance(verdict, RequestError) and failed is None:
                failed = verdict
        return failed

    def _result(
        self,
        request: Request,
        response: Response | None,
        error: RequestError | None,
        invalid: RequestError | None,
        sends: int,
        spans: tuple[float, float, float],
        history: list[Attempt] | None,
        tries: Try | None,
    ) -> Result:
        """The request's one result, from its last attempt; ``spans``: when the first was
        sent, when the last began and ended (the final answer)."""
        start, began_last, ended = spans
        elapsed_ms = (ended - start) * 1000.0
        attempt_ms = (ended - began_last) * 1000.0
        key = tries.key_index if tries is not None else None  # which key: never the key
        secret = self._secret_params
        shown = None if secret is None else mask_query(request.url, secret)
        steps = None if history is None else tuple(history)
        if response is None:
            status = error.status if error is not None else None
            began = self._epoch + start if sends else None
            return Result(request, url=shown, status=status, error=error, attempts=sends,
                          elapsed_ms=elapsed_ms, history=steps, key_index=key,
                          started_at=began, attempt_ms=attempt_ms if sends else None)  # fmt: skip
        status = response.status
        final_url = redact_url(response.url or "") if response.redirects else None
        if final_url is not None and secret is not None:
            final_url = mask_query(final_url, secret)
        return Result(
            request, url=shown, status=status, headers=response.headers,
            content=response.content, content_type=response.content_type,
            charset=response.charset,
            error=invalid if is_success(status) else status_error(status, response.reason),
            attempts=sends, elapsed_ms=elapsed_ms, redirects=response.redirects,
            final_url=final_url, history=steps, started_at=self._epoch + start,
            saved=response.saved, key_index=key, attempt_ms=attempt_ms,
        )  # fmt: skip


def _finished(
    limiter: Limiter, host: str, response: Response | None, policy: RetryPolicy, tries: Try | None
) -> None:
    """Tell the limits how the attempt ended (a 429 about a pool key rests that key alone)."""
    if response is None:  # an error, or cancelled
        limiter.notify_finished(host, ok=False)
        return
    status = response.status
    own = tries is not None and tries.own_throttle and status == 429
    throttle = None if own else throttle_delay(policy, status, response.headers)
    limiter.notify_finished(host, ok=is_success(status), status=status, throttle=throttle,
                            headers=response.headers)  # fmt: skip


def _delay(
    policy: RetryPolicy,
    attempt: int,
    response: Response | None,
    failed: RequestError | None,
    tries: Try | None,
) -> float | None:
    """How long to wait before the next attempt; None: this one was the last (a success,
    or the policy says no more). Attempts made again for free do not count."""
    if response is not None and is_success(response.status) and failed is None:
        return None
    free = tries.free if tries is not None else 0
    status = response.status if response is not None else None
    headers = _retry_headers(response, tries)
    return next_delay(policy, attempt - free, status=status, headers=headers, error=failed)


def _retrying(
    request: Request,
    attempt: int,
    delay: float,
    failed: RequestError | None,
    response: Response | None,
    began: float,
    ended: float,
) -> Retrying:
    reason = failed.type if failed is not None else f"status {response.status}"  # type: ignore[union-attr]
    return Retrying(request, attempt, delay, reason, ms=(ended - began) * 1000.0)


def _retry_headers(response: Response | None, tries: Try | None) -> Mapping[str, str] | None:
    """The headers a retry's wait may follow (``Retry-After``): not a pool key's, whose
    wait is its own while the retry takes another key."""
    if response is None or (tries is not None and tries.own_throttle):
        return None
    return response.headers
