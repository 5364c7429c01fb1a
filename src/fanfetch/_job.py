"""What a ``fanfetch run`` job is, besides the engine's ``Config``, and how it ends: shared by
the command line (which builds it) and the runner (which runs it), so neither imports the other.

Exit status: 0 every record ok; 1 some record not ok (or the output failed); 2 usage error;
130 after Ctrl-C and 143 after SIGTERM, with the output whole and resumable.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from ._config import Config
from ._template import UrlTemplate

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_USAGE",
    "GRACE_SECONDS",
    "RunOptions",
    "signal_exit_status",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143
GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """What ``fanfetch run`` does besides the engine's ``Config``: where to read and write."""

    source: str
    output: str | None
    config: Config
    format: str | None = None  # None: from the output's name
    ordered: bool = False
    resume: bool = False
    redo_failed: bool = False
    quiet: bool = False
    summary_json: str | None = None
    metrics_port: int | None = None  # a Prometheus endpoint for the run
    metrics_host: str = "127.0.0.1"
    progress: bool | None = None  # None: when stderr is a terminal
    dashboard: bool = False  # the full-terminal view instead of the progress line
    url_template: UrlTemplate | None = None
    csv_rows: bool = False
    workers: int = 1
    cluster: str | None = None
    shards: int | None = None


def signal_exit_status(signum: int) -> int:
    return EXIT_SIGTERM if signum == signal.SIGTERM else EXIT_SIGINT
