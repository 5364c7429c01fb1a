"""CPU-heavy post-processing off the event loop: a user function run in a process pool.

Parsing or cleaning big bodies on the loop stalls every request in flight, and threads do not
help (the GIL lets one run Python at a time). So ``--transform module:function`` runs in
worker processes: the loop hands each successful record over, keeps fetching, and puts the
function's return value into the record as ``transformed``. A function that raises gives
that record ``error.type == "transform"``; the run goes on.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .._core._exceptions import ConfigError, TransformError

__all__ = ["Transformer", "load_function"]

TransformFunction = Callable[[dict[str, Any]], Any]


def load_function(spec: str) -> TransformFunction:
    """Import ``"package.module:function"``."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise ConfigError("transform", spec, "write it as module:function, e.g. mypkg.clean:row")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("transform", spec, f"cannot import {module_name!r}: {exc}") from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError("transform", spec, f"{module_name} has no function {name!r}")
    return function  # type: ignore[no-any-return]


_loaded: dict[str, TransformFunction] = {}


def _call_spec(spec: str, record: dict[str, Any]) -> Any:
    """Runs in a worker process: import the function once per process, then call it."""
    function = _loaded.get(spec)
    if function is None:
        function = _loaded[spec] = load_function(spec)
    return function(record)


def _call(function: TransformFunction, record: dict[str, Any]) -> Any:
    return function(record)


class Transformer:
    """Applies the function to records in ``workers`` processes (0: inline, on the loop)."""

    def __init__(self, function: str | TransformFunction, *, workers: int | None = None) -> None:
        if isinstance(function, str):
            load_function(function)  # fail now, in the parent, with a clear message
        self._function = function
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self._pool: Executor | None = None
        self._alone_pool: Executor | None = None  # for records held by a pool that broke
        self._alone_lock: asyncio.Lock | None = None

    def _executor(self) -> Executor:
        if self._pool is None:
            # spawn, not fork: the parent has an event loop and threads, which fork would copy
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool

    async def apply(self, record: dict[str, Any]) -> Any:
        """The function's value for ``record``; raises ``TransformError`` if it raised.

        A pool process that dies (killed, out of memory) breaks the whole pool: it is
        replaced, and each record it held is tried once more, alone in a process of its
        own, so only a record whose function kills its process fails.
        """
        function = self._function
        try:
            if self.workers == 0:
                return (function if callable(function) else load_function(function))(record)
            loop = asyncio.get_running_loop()
            call: Callable[[Any, dict[str, Any]], Any] = (
                _call_spec if isinstance(function, str) else _call
            )
            pool = self._executor()
            try:
                return await loop.run_in_executor(pool, call, function, record)
            except BrokenProcessPool:
                self._replace(pool)
            return await self._alone(call, record)
        except TransformError:
            raise
        except Exception as exc:
            raise TransformError(f"{type(exc).__name__}: {exc}") from exc

    async def _alone(
        self, call: Callable[[Any, dict[str, Any]], Any], record: dict[str, Any]
    ) -> Any:
        """One record at a time in a one-process pool: if that process dies, this record
        killed it."""
        if self._alone_lock is None:
            self._alone_lock = asyncio.Lock()
        async with self._alone_lock:
            if self._alone_pool is None:
                context = multiprocessing.get_context("spawn")
                self._alone_pool = ProcessPoolExecutor(1, mp_context=context)
            pool = self._alone_pool
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    pool, call, self._function, record
                )
            except BrokenProcessPool:
                self._alone_pool = None
                pool.shutdown(wait=False, cancel_futures=True)
                raise TransformError("the transform's process died on this record") from None

    def _replace(self, broken: Executor) -> None:
        """Forget a broken pool (once, however many records found it broken)."""
        if self._pool is broken:
            self._pool = None
            broken.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        for pool in (self._pool, self._alone_pool):
            if pool is not None:
                await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
        self._pool = self._alone_pool = None

    def __repr__(self) -> str:
        return f"<Transformer {self._function!r} workers={self.workers}>"
