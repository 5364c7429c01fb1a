"""Functions for the --transform tests; importable by name in worker processes."""

from __future__ import annotations

import os
from typing import Any


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    return {"id_twice": str(record["body"]["id"]) * 2, "pid": os.getpid(), "ppid": os.getppid()}


def explode(record: dict[str, Any]) -> None:
    raise ValueError(f"cannot handle {record['id']}")


def burn(record: dict[str, Any]) -> int:
    """CPU-bound: a few milliseconds of pure Python, as parsing a big body would be."""
    total = 0
    for i in range(200_000):
        total += i * i % 7
    return total


def die_on_three(record: dict[str, Any]) -> str:
    """Kills its own process on the record with id 3, as the OOM killer or a kill -9 would."""
    if record["id"] == 3:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    return "fine"
