"""Job files: a job's options and its steps in one TOML file (``fanfetch run JOB.toml -o DIR``,
``fanfetch.run_job``), checked whole before anything is sent or written.

``[run]`` holds any option of ``fanfetch run`` under its Python keyword name (the one option
table, ``_config.OPTIONS``, so a job file and the flags cannot disagree); each ``[[step]]``
is one level of a request graph: a root step reads an ``input`` file as ``fanfetch run``
does, a child step makes its requests from the items of each answer of the step it is
``from``. Every mistake is one line naming the step and the key (exit status 2).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._config import BY_NAME, compile_select
from ._exceptions import ConfigError, UsageError

__all__ = ["PAGE_KEYS", "RUN_KEYS", "STEP_KEYS", "JobFile", "Step", "load_job", "run_options"]

PAGE_KEYS = {"paginate": "paginate", "page_items": "items", "page_start": "page_start",
             "page_size": "page_size", "max_pages": "max_pages",
             "has_next": "has_next"}  # fmt: skip
"""A step's own pages (over ``[run]``'s): its key, and the option's (``--items`` is
``page_items`` in a step, where ``items`` are what a parent's answer holds)."""

STEP_KEYS = frozenset({"name", "input", "from", "items", "url", "method", "id", "select",
                       "rows", "headers", "timeout", *PAGE_KEYS})  # fmt: skip
"""What a step may hold. Other request options (``expect``, ``headers``, ...) are not yet
a step's own: they are the run's, in ``[run]``."""

_WHOLE = frozenset({"page_start", "page_size", "max_pages"})

RUN_KEYS = frozenset(BY_NAME) | {"format"}
"""What ``[run]`` may hold: every option of ``fanfetch run`` under its keyword name, and the
records' format."""

_PER_REQUEST = frozenset({"expect", "schema", "transform", "cost",
                          "usage", "save_dir"})  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One level of a job: where its requests come from, and how each is made."""

    name: str
    input: str | None = None  # a root step's file (relative to the job file's folder)
    parent: str | None = None  # a child step's ``from``
    items: str = "@"  # JMESPath over each ok JSON answer of the parent: its items
    url: str | None = None  # a template over the input's rows or the parent's items
    method: str = "GET"
    id: str | None = None  # JMESPath over each item: the child's id
    select: str | None = None  # its own --select, over [run]'s
    rows: str | None = None  # JMESPath: the items of each answer, as rows of DIR/NAME.rows.jsonl
    headers: Mapping[str, str] | None = None  # sent with each of its requests (a line's win)
    timeout: float | None = None  # seconds for each of its attempts (a line's wins)
    pages: Mapping[str, Any] = field(default_factory=dict)  # its own pages (PAGE_KEYS)

    @property
    def is_root(self) -> bool:
        return self.parent is None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFile:
    """A job file read and checked: the ``[run]`` options and the steps, parents first."""

    path: str | None
    run: Mapping[str, Any]
    steps: tuple[Step, ...]

    def children_of(self, name: str) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.parent == name)


def load_job(source: str | os.PathLike[str] | Mapping[str, Any]) -> JobFile:
    """Read a job file (or a dict of the same shape) and check it whole."""
    if isinstance(source, Mapping):
        return _checked(dict(source), None, os.getcwd())
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the job file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not TOML: {exc}") from None
    return _checked(data, path, os.path.dirname(os.path.abspath(path)))


def _checked(data: dict[str, Any], path: str | None, folder: str) -> JobFile:
    where = f"{path}: " if path else "job: "

    def fail(message: str) -> UsageError:
        return UsageError(where + message)

    for key in data:
        if key not in ("run", "step"):
            raise fail(f"unknown table [{key}]{_hint(key, ('run', 'step'))}; a job file holds "
                       "[run] and [[step]]")  # fmt: skip
    run = data.get("run", {})
    if not isinstance(run, dict):
        raise fail("[run] must be a table")
    for key in run:
        if key not in RUN_KEYS:
            raise fail(f"[run]: unknown key {key!r}{_hint(key, RUN_KEYS)}")
    raw_steps = data.get("step", [])
    if not isinstance(raw_steps, list) or not raw_steps:
        raise fail("no [[step]]: give at least one, with a name and an input")
    steps: dict[str, Step] = {}
    for n, raw in enumerate(raw_steps, 1):
        if not isinstance(raw, dict):
            raise fail(f"step {n} must be a table")
        name = raw.get("name")
        label = f"step {name!r}" if isinstance(name, str) else f"step {n}"
        for key in raw:
            if key in _PER_REQUEST:
                raise fail(f"{label}: {key!r} is not yet a step's own: put it in [run], "
                           "for every step")  # fmt: skip
            if key not in STEP_KEYS:
                raise fail(f"{label}: unknown key {key!r}{_hint(key, STEP_KEYS)}")
        for key, value in raw.items():
            if key == "headers":
                if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()
                ):
                    raise fail(f"{label}: 'headers' must be a table of strings, e.g. "
                               '{ Accept = "application/json" }')  # fmt: skip
            elif key == "timeout":
                if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                    raise fail(f"{label}: 'timeout' must be seconds above 0")
            elif key in _WHOLE:
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise fail(f"{label}: {key!r} must be a whole number >= 1")
            elif not isinstance(value, str):
                raise fail(f"{label}: {key!r} must be a string")
        if not isinstance(name, str) or not name.isidentifier():
            raise fail(f"{label}: give it a 'name' of letters, digits and _ (it names its "
                       "output, DIR/NAME.jsonl)")  # fmt: skip
        if name in steps:
            raise fail(f"{label}: two steps have that name")
        parent, source = raw.get("from"), raw.get("input")
        if (parent is None) == (source is None):
            raise fail(f"{label}: give 'input' (a root step) or 'from' (a child step), one of "
                       "the two")  # fmt: skip
        if parent is not None and raw.get("url") is None:
            raise fail(f"{label}: 'url' is missing: a child step makes its requests from it")
        if source is not None and not os.path.isabs(source) and source != "-":
            source = os.path.join(folder, source)
        steps[name] = Step(name=name, input=source, parent=parent, items=raw.get("items", "@"),
                           url=raw.get("url"), method=raw.get("method", "GET").upper(),
                           id=raw.get("id"), select=raw.get("select"), rows=raw.get("rows"),
                           headers=raw.get("headers"), timeout=raw.get("timeout"),
                           pages={key: raw[key] for key in PAGE_KEYS if key in raw})  # fmt: skip
    for step in steps.values():
        if step.parent is not None and step.parent not in steps:
            raise fail(f"step {step.name!r}: 'from' names no step: {step.parent!r}"
                       f"{_hint(step.parent, steps)}")  # fmt: skip
        seen = [step.name]
        up = step.parent
        while up is not None:
            if up in seen:
                raise fail(f"step {step.name!r}: its 'from' goes round in a cycle: "
                           + " <- ".join([*seen, up]))  # fmt: skip
            seen.append(up)
            up = steps[up].parent
    _check_expressions(steps.values(), fail)
    return JobFile(path=path, run=run, steps=_parents_first(steps))


def _check_expressions(steps: Any, fail: Any) -> None:
    for step in steps:
        for key in ("items", "id", "rows"):
            expression = getattr(step, key)
            if expression is None or (key == "items" and step.is_root):
                continue
            try:
                compile_select(expression, key)
            except ConfigError as exc:
                raise fail(f"step {step.name!r}: {key!r} {expression!r}: {exc.hint}") from None


def _parents_first(steps: dict[str, Step]) -> tuple[Step, ...]:
    ordered: list[Step] = []
    placed: set[str] = set()
    while len(ordered) < len(steps):
        for step in steps.values():
            if step.name not in placed and (step.parent is None or step.parent in placed):
                ordered.append(step)
                placed.add(step.name)
    return tuple(ordered)


def _hint(key: str, known: Any) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def run_options(job: JobFile) -> dict[str, Any]:
    """The ``[run]`` options that are the engine's, a relative file or folder taken from the
    job file's folder (``format`` is the records': JSON lines, the one a job writes for
    now)."""
    options = dict(job.run)
    folder = os.path.dirname(os.path.abspath(job.path)) if job.path else os.getcwd()
    for key, value in options.items():  # files and folders, as `input`: from the job's folder
        option = BY_NAME.get(key)
        if (option is not None and option.metavar in ("FILE", "DIR") and isinstance(value, str)
                and not os.path.isabs(value)):  # fmt: skip
            options[key] = os.path.join(folder, value)
    fmt = options.pop("format", None)
    if fmt not in (None, "jsonl"):
        where = f"{job.path}: " if job.path else "job: "
        raise UsageError(f"{where}[run]: format {fmt!r}: a job's steps are written as JSON "
                         "lines for now (`fanfetch export` makes any format of them)")  # fmt: skip
    return options
