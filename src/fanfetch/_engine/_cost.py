"""``--cost EXPR`` and ``--usage EXPR``: what a request costs against ``--budget``, without a
``cost`` on every input line, and what it really cost once answered.

``--cost`` is JMESPath over the request as its JSON line holds it (``json.max_tokens``), with
one function of ours: ``tokens(x)``, a rough token count (a token per 4 characters of
``x``, or of its JSON), for ``sum([json.max_tokens, tokens(json.messages)])``. No tokenizer
that downloads a vocabulary. ``--usage`` is JMESPath over the answer's JSON body
(``usage.total_tokens``); the budget's meter is corrected by the difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jmespath
import orjson
from jmespath import functions

from .._core._exceptions import ConfigError
from .._core._models import Request

if TYPE_CHECKING:
    from .._net._http import Response
    from ._hooks import Try, Verdict

__all__ = ["Costs", "UsageHook"]


class _Functions(functions.Functions):
    @functions.signature({"types": []})
    def _func_tokens(self, value: Any) -> int:
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        return math.ceil(len(text) / 4)


_OPTIONS = jmespath.Options(custom_functions=_Functions())


def _compile(expression: str, option: str) -> Any:
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        reason = str(exc).splitlines()[0]
        raise ConfigError(option, expression, f"not JMESPath: {reason}") from None


class Costs:
    """The two expressions of a run (either may be None)."""

    def __init__(self, cost: str | None, usage: str | None) -> None:
        self._cost = _compile(cost, "cost") if cost is not None else None
        self._usage = _compile(usage, "usage") if usage is not None else None

    def cost_of(self, request: Request) -> float | str | None:
        """The request's cost: its own ``cost``, else ``--cost``'s value; a message when the
        expression gives no number."""
        if request.cost is not None or self._cost is None:
            return request.cost
        try:
            value = self._cost.search(request.to_dict(), options=_OPTIONS)
        except jmespath.exceptions.JMESPathError as exc:
            return f"`cost` cannot be applied to this request: {exc}"
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            return f"`cost` gave {value!r} for this request, not a number >= 0"
        return float(value)

    def used(self, content: bytes | None) -> float | None:
        """What the answer says it cost (``--usage``), when it says."""
        if self._usage is None or not content:
            return None
        try:
            value = self._usage.search(orjson.loads(content), options=_OPTIONS)
        except (orjson.JSONDecodeError, jmespath.exceptions.JMESPathError):
            return None
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        return None


class UsageHook:
    """The attempt hook of ``--usage``: after each answer, the budget's meter corrected by
    what the answer says it cost, against what was charged before the send."""

    def __init__(self, usage: str, corrections: Sequence[Callable[[float], None]]) -> None:
        self._costs = Costs(None, usage)
        self._corrections = tuple(corrections)  # the budget's meter, --max-cost's total

    async def before(self, attempt: Try) -> None:
        pass

    async def after(self, attempt: Try, response: Response) -> Verdict:
        used = self._costs.used(response.content)
        if used is not None:
            for correct in self._corrections:
                correct(used - (attempt.cost or 0.0))
        return None
