from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests import forked
from tests.servers import DroppingServer, LoopbackAPI


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
    """The conformance suite runs on asyncio's loop and on uvloop (what the CLI runs on);
    the rest on asyncio's."""
    if item.path.name == "test_conformance.py":
        import uvloop

        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture
async def api() -> AsyncIterator[LoopbackAPI]:
    server = await LoopbackAPI().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def two_host_api() -> AsyncIterator[LoopbackAPI]:
    server = await LoopbackAPI(hosts=("127.0.0.1", "127.0.0.2")).start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def dropping() -> AsyncIterator[DroppingServer]:
    server = await DroppingServer().start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class CLIResult:
    status: int
    stdout: bytes
    stderr: str

    @property
    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.stdout.splitlines()]


async def run_cli(
    *args: str,
    stdin: bytes | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    preexec_fn: Any = None,
) -> CLIResult:
    """Run ``python -m fanfetch ARGS`` as a real process while the test's servers keep serving
    (``make test-fast``: a process forked from one that has imported fanfetch, ``forked``)."""
    env = {
        **os.environ,
        **(env or {}),
        "PYTHONWARNINGS": "error::RuntimeWarning",
        "COLUMNS": "120",
        "PYTHONFAULTHANDLER": "1",  # SIGABRT on a timeout below dumps every thread's stack
    }
    if forked.WANTED and preexec_fn is None:
        status, out, raw_err, timed_out = await forked.run(args, stdin, timeout, cwd, env)
        if timed_out:
            raise AssertionError(
                f"fanfetch {' '.join(args)} ran over {timeout} s; it wrote "
                f"{len(out.splitlines())} records, and on stderr: {raw_err.decode()[-12000:]}"
            )
        return CLIResult(status, out, raw_err.decode())
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fanfetch",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
        preexec_fn=preexec_fn,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.send_signal(signal.SIGUSR1)  # fanfetch run says where its tasks are waiting
        await asyncio.sleep(1)
        proc.send_signal(signal.SIGABRT)  # faulthandler writes where each thread was stuck
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
        lines = len(out.splitlines())
        raise AssertionError(
            f"fanfetch {' '.join(args)} ran over {timeout} s; it wrote {lines} records, "
            f"and on stderr: {err.decode()[-12000:]}"
        ) from None
    assert proc.returncode is not None
    return CLIResult(proc.returncode, out, err.decode())


def run_cli_blocking(*args: str, stdin: bytes | None = None, timeout: float = 180.0,
                     cwd: Path | None = None) -> CLIResult:  # fmt: skip
    """``run_cli`` for a test that is not a coroutine (one that serves from a thread)."""
    return asyncio.run(run_cli(*args, stdin=stdin, timeout=timeout, cwd=cwd))


def read_records(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture
def api_in_thread() -> Iterator[str]:
    """A LoopbackAPI on its own loop in a thread, for tests of the blocking API from sync code."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: list[LoopbackAPI] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(LoopbackAPI().start())
        holder.append(server)
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{holder[0].port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
