"""``--stop-if`` and ``--fail-if``: conditions over a run's counters, in a small language of
their own: names, numbers, comparisons, ``and``, ``or``, ``not`` and parentheses. Nothing
else is evaluated: the text is parsed by Python's ``ast`` and each node checked against
that list, then walked by ``holds``, never given to ``eval``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from ._exceptions import ConfigError

__all__ = ["NAMES", "Condition"]

NAMES: Mapping[str, str] = {
    "done": "requests finished (a record each)",
    "ok": "records that are ok",
    "failed": "records that are not ok",
    "error_rate": "failed / done, over the run (0 before the first)",
    "status_4xx": "final answers 400-499",
    "status_429": "final answers 429",
    "status_5xx": "final answers 500-599",
    "consecutive_errors": "records not ok in a row, the latest last",
    "elapsed_s": "seconds since the run started",
    "p99_ms": "the 99th percentile of attempt latency, in ms (0 before the first)",
}

_COMPARE: Mapping[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}  # fmt: skip


class Condition:
    """One condition, checked when it is made (a ``ConfigError`` naming ``option``)."""

    __slots__ = ("_tree", "text")

    def __init__(self, text: str, option: str = "stop_if") -> None:
        self.text = text
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(option, text, "give a condition, e.g. 'error_rate > 0.5'")
        try:
            tree = ast.parse(text.strip(), mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):  # nested past reason too
            raise ConfigError(option, text, "not a condition: " + _HINT) from None
        self._tree = tree
        _check(tree, option, text)

    def holds(self, counters: Mapping[str, float]) -> bool:
        """Whether the condition is true of ``counters`` (every name in ``NAMES``)."""
        return bool(_value(self._tree, counters))

    def __repr__(self) -> str:
        return f"<Condition {self.text!r}>"


_HINT = "names, numbers, < <= > >= == !=, and, or, not, ( )"


def _check(node: ast.AST, option: str, text: str) -> None:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And | ast.Or):
        for value in node.values:
            _check(value, option, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        _check(node.operand, option, text)
    elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        for part in (node.left, *node.comparators):
            _check(part, option, text)
    elif isinstance(node, ast.Name):
        if node.id not in NAMES:
            raise ConfigError(option, text, f"no counter {node.id!r}; the counters: "
                              + ", ".join(NAMES))  # fmt: skip
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        pass
    else:
        shown = ast.get_source_segment(text.strip(), node) or type(node).__name__
        raise ConfigError(option, text, f"{shown!r} is not allowed: {_HINT}")


def _value(node: ast.AST, counters: Mapping[str, float]) -> Any:
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_value(v, counters) for v in node.values)
        return any(_value(v, counters) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        inner = _value(node.operand, counters)
        return (not inner) if isinstance(node.op, ast.Not) else -inner
    if isinstance(node, ast.Compare):
        left = _value(node.left, counters)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _value(right_node, counters)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Name):
        return counters[node.id]
    assert isinstance(node, ast.Constant)
    return node.value
