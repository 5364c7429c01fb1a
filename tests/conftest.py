from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.servers import DroppingServer, LoopbackAPI


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
    def records(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for line in self.stdout.splitlines()]


async def run_cli(
    *args: str, stdin: bytes | None = None, timeout: float = 60.0, cwd: Path | None = None
) -> CLIResult:
    """Run ``python -m fanfetch ARGS`` as a real process while the test's servers keep serving."""
    env = {**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning", "COLUMNS": "120"}
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
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CLIResult(proc.returncode, out, err.decode())


def read_records(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]
