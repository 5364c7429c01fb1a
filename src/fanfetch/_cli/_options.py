"""What a ``fanfetch run`` job is besides the engine's ``Config``, and how it ends: the job's
option table (``JOB_OPTIONS``, beside the engine's ``OPTIONS``: one row per flag that says
where records go and what the run shows), shared by the command line (which builds a
``RunOptions`` from it) and the runner (which runs it), so neither imports the other.

Exit status: 0 every record ok; 1 some record not ok (or the output failed); 2 usage error;
3 a guard stopped the run or a --fail-if condition held (it wins over 1); 130 after Ctrl-C
and 143 after SIGTERM, with the output whole and resumable.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._core._config import Config, Option
from .._core._exceptions import ConfigError
from .._core._job import JobSpec
from .._io._formats import FORMATS
from .._io._template import UrlTemplate

__all__ = [
    "EXIT_FAILED",
    "EXIT_GUARD",
    "EXIT_OK",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_USAGE",
    "GRACE_SECONDS",
    "JOB_OPTIONS",
    "RunOptions",
    "job_options",
    "signal_exit_status",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_GUARD, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 3, 130, 143
GRACE_SECONDS = 5.0


def _workers(text: str) -> int:
    if text == "auto":
        return os.cpu_count() or 1
    if not text.isdigit():
        raise ConfigError("workers", text, "give a number >= 1, or auto")
    return int(text)


# ``to``: "job" for a field of ``JobSpec`` (the pipeline's), "run" for one of ``RunOptions``
# (the command line's own: its input rows and what it shows). ``api``: also a keyword of
# ``fanfetch.run``/``iter_results`` (``tests/core/test_config.py`` holds them together).
JOB_OPTIONS: tuple[Option, ...] = (
    Option("output", None, "Write records here (default: stdout); the name's ending picks the "
           "format: .jsonl, .csv, .parquet, .sqlite/.db, .duckdb (anything else: JSON lines).",
           flags=("-o", "--output"), metavar="FILE", to="job",
           section="Input and output"),
    Option("format", None, "The output's format, whatever its name (stdout takes jsonl or csv).",
           flags=("--format",), choices=tuple(FORMATS), to="job",
           section="Input and output"),
    Option("url_template", None, "Make each request from this URL, its {field}s filled from "
           "the input row (a JSON object, or a CSV line under a header).",
           flags=("--url",), metavar="TEMPLATE", to="run", api=False,
           section="Input and output"),
    Option("method", "GET", "With --url: the method; POST, PUT and PATCH send the row as the "
           "JSON body.", flags=("--method",), to="run", api=False,
           section="Input and output"),
    Option("csv_rows", False, "With --url: the input is CSV with a header (automatic for "
           "*.csv).", flags=("--csv",), kind=bool, to="run", api=False,
           section="Input and output"),
    Option("sql", None, "Read the input's rows from this DuckDB query instead of INPUT, e.g. "
           "\"SELECT id, name FROM 'users.parquet' ORDER BY id\" (each row as a Parquet "
           "row is; ORDER BY keeps the ids the same for --resume).", flags=("--sql",),
           metavar="QUERY", to="run", api=False,
           section="Input and output"),
    Option("dry_run", False, "Read and check the whole input and say what would be requested "
           "(how many, to which hosts, the first few, secrets masked); send nothing.",
           flags=("--dry-run",), kind=bool, to="run", api=False,
           section="Input and output"),
    Option("resume", False, "Skip ids already in --output; append the rest.",
           flags=("--resume",), kind=bool, to="job",
           section="Input and output"),
    Option("redo_failed", False, "With --resume: also do again the requests whose record is "
           "not ok.", flags=("--redo-failed",), kind=bool, to="job",
           section="Input and output"),
    Option("ordered", False, "Write records in input order.", flags=("--ordered",),
           kind=bool, to="job",
           section="Input and output"),
    Option("workers", 1, "Processes, each with its own event loop, sharing the limits; one "
           "writer.", flags=("--workers",), metavar="N|auto", parse=_workers, cli_default="1",
           to="job", api=False,
           section="More than one process"),
    Option("cluster", None, "Run on Ray: 'ray' joins the cluster at $RAY_ADDRESS, else starts "
           "one here; ray://HOST:PORT through Ray Client. -o is then a directory of parts.",
           flags=("--cluster",), metavar="ray|ray://HOST:PORT", to="job",
           section="More than one process"),
    Option("shards", None, "With --cluster: how many parts to cut the input into.  "
           "[default: 4 per CPU]", flags=("--shards",), kind=int, metavar="N", to="job",
           section="More than one process"),
    Option("summary_json", None, "Also write the end summary as JSON.",
           flags=("--summary-json",), metavar="FILE", to="run", api=False,
           section="What you see"),
    Option("metrics_port", None, "Serve Prometheus metrics of the run on this port (needs "
           "fanfetch[metrics]).", flags=("--metrics-port",), kind=int, metavar="PORT",
           to="run", api=False,
           section="What you see"),
    Option("metrics_host", "127.0.0.1", "With --metrics-port: the address to listen on.",
           flags=("--metrics-host",), metavar="ADDRESS", to="run", api=False,
           section="What you see"),
    Option("metrics_linger", 5.0, "With --metrics-port: after the run, serve the final counts "
           "until they are scraped once more, or this long.", flags=("--metrics-linger",),
           kind=float, metavar="SECONDS", to="run", api=False,
           section="What you see"),
    Option("progress", None, "Show the progress bar.  [default: when stderr is a terminal]",
           flags=("--progress/--no-progress",), kind=bool, to="run",
           section="What you see"),
    Option("dashboard", False, "A live full-terminal view instead of the progress bar: rate "
           "over time, latency, the status and error mix, the busiest hosts.",
           flags=("--dashboard",), kind=bool, to="run", api=False,
           section="What you see"),
    Option("quiet", False, "No progress bar, no summary.", flags=("-q", "--quiet"), kind=bool,
           to="run", api=False,
           section="What you see"),
)  # fmt: skip

BY_JOB_NAME: Mapping[str, Option] = {option.name: option for option in JOB_OPTIONS}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """What ``fanfetch run`` does besides the engine's ``Config``: the job (``JobSpec``:
    where records go), where requests come from, and what the run shows."""

    source: str
    config: Config
    job: JobSpec = field(default_factory=JobSpec)
    quiet: bool = False
    summary_json: str | None = None
    metrics_port: int | None = None  # a Prometheus endpoint for the run
    metrics_host: str = "127.0.0.1"
    metrics_linger: float = 5.0  # after the run: until scraped once more, or this long
    dry_run: bool = False  # read and check the input, say what would be sent, send nothing
    progress: bool | None = None  # None: when stderr is a terminal
    dashboard: bool = False  # the full-terminal view instead of the progress line
    url_template: UrlTemplate | None = None
    method: str = "GET"
    csv_rows: bool = False
    sql: str | None = None  # --sql: the rows come from this DuckDB query, not from source

    def __post_init__(self) -> None:
        if self.metrics_port is not None and not 1 <= self.metrics_port <= 65535:
            raise ConfigError("metrics_port", self.metrics_port, "give a port, 1 to 65535")
        if not self.metrics_linger >= 0:
            raise ConfigError("metrics_linger", self.metrics_linger, "give seconds >= 0")
        if self.method.upper() != "GET" and self.url_template is None:
            raise ConfigError("method", self.method, "it goes with `url_template`; give the "
                              "method in each JSON line")  # fmt: skip

    @property
    def output(self) -> str | None:
        """The output file (None: stdout)."""
        output = self.job.output
        return None if output == "-" else output


def job_options(values: Mapping[str, Any], *, source: str, config: Config) -> RunOptions:
    """The ``RunOptions`` of the command line's values, one per ``JOB_OPTIONS`` row (as it
    read them: ``Option.from_cli`` turns each into the option's value)."""
    job: dict[str, Any] = {}
    run: dict[str, Any] = {}
    for option in JOB_OPTIONS:
        value = option.from_cli(values[option.name])
        (job if option.to == "job" else run)[option.name] = value
    job["output"] = job["output"] or "-"
    template = run.pop("url_template")
    run["csv_rows"] = run["csv_rows"] or source.lower().endswith(".csv")
    if template is not None:
        template = UrlTemplate(template, method=run["method"])
    return RunOptions(source=source, config=config, job=JobSpec(**job), url_template=template,
                      **run)  # fmt: skip


def signal_exit_status(signum: int) -> int:
    return EXIT_SIGTERM if signum == signal.SIGTERM else EXIT_SIGINT
