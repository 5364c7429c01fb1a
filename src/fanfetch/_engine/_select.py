"""``--select``: a JMESPath expression applied to each JSON body; the record keeps only what
it selects, so a job that needs three fields of a large body writes small records (and a
multiselect hash, ``{id: id, name: name}``, gives a table its columns)."""

from __future__ import annotations

import orjson
from jmespath.exceptions import JMESPathError

from .._core._config import compile_select
from .._core._exceptions import SelectError
from .._core._models import Result

__all__ = ["Selector"]


class Selector:
    """Applies one expression to ok results with a JSON body."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._compiled = compile_select(expression)

    def apply(self, result: Result) -> Result:
        """The result with its body replaced by the selection (non-JSON bodies stay)."""
        if not result.content or not result.content_type.lower().endswith("json"):
            return result
        try:
            document = orjson.loads(result.content)
        except orjson.JSONDecodeError:
            return result
        try:
            selected = self._compiled.search(document)
        except (JMESPathError, TypeError, ValueError) as exc:
            return result.replace(error=SelectError(f"`select` {self.expression!r}: {exc}"))
        try:
            content = orjson.dumps(selected, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # nested deeper than orjson writes (MAX_DEPTH)
            message = f"`select` {self.expression!r}: the selection nests too deep to record"
            return result.replace(error=SelectError(message))
        return result.replace(content=content, content_type="application/json", charset=None)
