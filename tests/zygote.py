"""A fanfetch process that has imported everything once, and forks a child per command.

``make test-fast`` starts one per test worker (``FANFETCH_TEST_FORK=1``): a ``fanfetch``
command then costs a fork, not an interpreter and ~60 imports (most of what a short
command line test spends). The child is a whole process of its own: its own pid, its
stdin, stdout and stderr (the caller's pipes, passed over the socket), environment and
working directory, and it runs the console script's ``main`` as ``python -m fanfetch`` does.
``make test`` starts every command as a fresh interpreter instead (coverage follows those).

Protocol, one connection per command: the caller sends a JSON header (argv, env, cwd) with
three file descriptors (stdin, stdout, stderr); the zygote answers the child's pid as a
line; the child writes its exit status as a line on the same connection as it ends (a
child killed by a signal closes it with none).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import Any, NoReturn


def _child(conn: socket.socket, header: dict[str, Any], fds: list[int]) -> NoReturn:
    """The command, in the forked child: it ends as ``python -m fanfetch`` would, its atexit
    handlers run, and says its exit status last."""
    import atexit

    import fanfetch.__main__
    from fanfetch._cli._main import main

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # its own children are its to wait for
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(header["cwd"])
    os.environ.clear()
    os.environ.update(header["env"])
    sys.argv = ["fanfetch", *header["argv"]]
    sys.modules["__main__"] = fanfetch.__main__  # what --workers' spawned processes import
    status = [1]
    atexit.register(lambda: conn.sendall(f"{status[0]}\n".encode()))  # first in, last out
    try:
        main(header["argv"])
        status[0] = 0
    except SystemExit as exc:
        code = exc.code
        status[0] = code if isinstance(code, int) else (0 if code is None else 1)
    sys.exit(status[0])


def serve(path: str) -> None:
    import fanfetch._cli._main
    import fanfetch._cli._runner

    assert fanfetch._cli._runner  # everything the commands import, imported once

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    server.settimeout(2.0)
    parent = os.getppid()
    print("ready", flush=True)
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the test process is gone (killed): so is this one
                return
            continue
        conn.settimeout(None)
        message, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        while message and not message.endswith(b"\n"):  # a header longer than one read
            message += conn.recv(1 << 16)
        if not fds:  # no command: the test session ends
            conn.close()
            return
        header = json.loads(message)
        pid = os.fork()
        if pid == 0:
            server.close()
            _child(conn, header, fds)
        for fd in fds:
            os.close(fd)
        conn.sendall(f"{pid}\n".encode())
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
