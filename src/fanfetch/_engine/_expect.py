"""``--expect EXPR`` and ``--schema FILE``: a 2xx is a success only when its body passes.

A body that fails is an attempt that failed (``invalid_response``), retried like a 5xx up to
``--retries``; the final record keeps the last body. The JMESPath expression is checked on
the loop (microseconds); a schema check of a body over 64 KiB goes to a thread, so a big
body does not stall the other requests.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson

from .._core._config import compile_select
from .._core._exceptions import ConfigError, InvalidResponse
from .._core._types import is_success

if TYPE_CHECKING:
    from .._net._http import Response
    from ._hooks import Try, Verdict

__all__ = ["Validator"]

_BIG = 64 * 1024


class Validator:
    """What a body must be; ``check`` says what is wrong with one, or None. As an attempt
    hook, a 2xx whose body fails is a failed attempt (``invalid_response``)."""

    def __init__(self, expect: str | None, schema: str | None) -> None:
        self._expect = compile_select(expect, "expect") if expect is not None else None
        self._expect_text = expect
        self._schema: Any = None
        if schema is not None:
            self._schema = _load_schema(schema)

    async def before(self, attempt: Try) -> None:
        pass

    async def after(self, attempt: Try, response: Response) -> Verdict:
        if not is_success(response.status):
            return None
        problem = await self.check(response.content)
        return None if problem is None else InvalidResponse(problem)

    async def check(self, content: bytes | None) -> str | None:
        try:
            body = orjson.loads(content or b"")
        except orjson.JSONDecodeError:
            return "the body is not JSON"
        if self._expect is not None:
            try:
                ok = self._expect.search(body)
            except Exception as exc:  # a JMESPath function given the wrong type
                return f"`expect` {self._expect_text!r} cannot be applied: {exc}"
            if not ok:
                return f"`expect` {self._expect_text!r} is not true of the body"
        if self._schema is not None:
            if content is not None and len(content) > _BIG:
                return await asyncio.to_thread(self._schema_problem, body)
            return self._schema_problem(body)
        return None

    def _schema_problem(self, body: Any) -> str | None:
        try:
            error = next(iter(self._schema.iter_errors(body)), None)
        except RecursionError:  # a recursive schema over a deep body: Python's stack ends
            return "`schema`: the body nests too deep to be checked"
        if error is None:
            return None
        where = "".join(f"[{p!r}]" for p in error.absolute_path) or " (the whole body)"
        return f"`schema`: {error.message} at body{where}"


def _load_schema(path: str) -> Any:
    import jsonschema

    try:
        with open(path, "rb") as f:
            schema = orjson.loads(f.read())
    except OSError as exc:
        raise ConfigError("schema", path, f"cannot read it: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError("schema", path, f"it is not JSON: {exc}") from None
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError("schema", path, f"not a JSON Schema: {exc.message}") from None
    return cls(schema)
