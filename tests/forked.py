"""The test side of ``tests/zygote.py``: run a ``fanfetch`` command as a child forked from a
process that has imported everything, when ``FANFETCH_TEST_FORK=1`` (``make test-fast``)."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

WANTED = os.environ.get("FANFETCH_TEST_FORK") == "1"

_zygote: tuple[subprocess.Popen[bytes], str] | None = None


def _socket_path(env: dict[str, str]) -> str:
    """The socket of this test process's zygote, started on first use with ``env`` (what
    Python reads as it starts: warnings as errors, the fault handler)."""
    global _zygote
    if _zygote is not None and _zygote[0].poll() is None:
        return _zygote[1]
    folder = tempfile.mkdtemp(prefix="fanfetch-zygote-")
    path = os.path.join(folder, "socket")
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("zygote.py")), path],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    _zygote = (process, path)
    atexit.register(_stop, process, folder)
    return path


def _stop(process: subprocess.Popen[bytes], folder: str) -> None:
    process.kill()
    process.wait()
    shutil.rmtree(folder, ignore_errors=True)


async def run(
    args: tuple[str, ...], stdin: bytes | None, timeout: float, cwd: Path | None,
    env: dict[str, str],
) -> tuple[int, bytes, bytes, bool]:  # fmt: skip
    """The command's exit status (-1: killed by a signal), stdout, stderr, and whether it
    ran over ``timeout`` (then stopped as ``conftest.run_cli`` stops a process)."""
    loop = asyncio.get_running_loop()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if stdin is not None else (os.open(os.devnull, os.O_RDONLY), -1)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(_socket_path(env))
    header = {"argv": list(args), "env": env, "cwd": str(cwd or os.getcwd())}
    socket.send_fds(sock, [json.dumps(header).encode() + b"\n"], [in_r, out_w, err_w])
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    sock.setblocking(False)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    pid = int(await reader.readline())

    async def drain(fd: int) -> bytes:
        stream = asyncio.StreamReader(limit=1 << 24)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(fd, "rb", 0)
        )
        try:
            return await stream.read()
        finally:
            transport.close()

    def feed() -> bytes:
        try:
            _write_all(in_w, stdin or b"")
        except BrokenPipeError:
            pass  # the command ended without reading it all
        finally:
            os.close(in_w)
        return b""

    tasks: list[asyncio.Future[bytes]] = [
        asyncio.ensure_future(drain(out_r)), asyncio.ensure_future(drain(err_r)),
        asyncio.ensure_future(reader.readline()),
    ]  # fmt: skip
    if in_w != -1:
        tasks.append(asyncio.ensure_future(asyncio.to_thread(feed)))
    everything = asyncio.gather(*tasks)
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(everything), timeout)
    except TimeoutError:
        timed_out = True
        os.kill(pid, signal.SIGUSR1)  # fanfetch run says where its tasks are waiting
        await asyncio.sleep(1)
        os.kill(pid, signal.SIGABRT)  # faulthandler writes where each thread was stuck
        try:
            await asyncio.wait_for(asyncio.shield(everything), 10)
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            await everything
    finally:
        writer.close()
    out, err, status = tasks[0].result(), tasks[1].result(), tasks[2].result()
    return (int(status) if status else -1), out, err, timed_out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
