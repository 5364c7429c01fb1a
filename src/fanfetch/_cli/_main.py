"""The command line: parse flags, build a ``Config``, run the engine, choose the exit status.

Exit status: 0 every record ok; 1 some record not ok (or the output failed); 2 usage error;
130 after Ctrl-C and 143 after SIGTERM, with the output whole and resumable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from .._core._config import BY_NAME, DEFAULT_CONCURRENCY, OPTIONS, Option, make_config
from .._core._exceptions import ConfigError, FanfetchError, UsageError
from .._core._job import JobSpec
from .._core._types import printable
from .._core._voice import VOICE, as_keyword, speak
from .._io._formats import FORMATS
from .._version import __version__
from ._options import (
    BY_JOB_NAME,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_USAGE,
    JOB_OPTIONS,
    RunOptions,
    job_options,
)

__all__ = ["main"]


EXAMPLES = """
\b
Examples:
  fanfetch run urls.txt -o results.jsonl
  cat requests.jsonl | fanfetch run - > results.jsonl
  fanfetch run urls.txt -o out.jsonl -c 200 --per-host 20 --rate 500/s
  fanfetch run urls.txt -o out.jsonl --resume       # after a crash: finish what is left
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(
    __version__, "--version", prog_name="fanfetch", message="%(prog)s %(version)s"
)
def cli() -> None:
    """Make very many HTTP API calls concurrently: one JSON line out for each request in.

    \b
    Start with:  fanfetch demo
    Then:        fanfetch run urls.txt -o results.jsonl
    """


def _option_flags(options: tuple[Option, ...]) -> Callable[[Callable[..., Any]], Any]:
    """The ``fanfetch run`` flags of every row of an option table (``_config.OPTIONS``,
    ``_job.JOB_OPTIONS``)."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            if option.flags:
                f = click.option(*option.flags, option.name, **_click_settings(option))(f)
        return f

    return decorate


def _click_settings(option: Option) -> dict[str, Any]:
    if option.kind is bool:
        if "/" in option.flags[0]:  # --progress/--no-progress: unset unless given
            return {"default": option.default, "help": option.help}
        return {"is_flag": True, "help": option.help}
    if option.kind is list:
        return {"multiple": True, "metavar": option.metavar, "help": option.help}
    shown = option.cli_default if option.cli_default is not None else option.default
    kind: Any = click.Choice(option.choices) if option.choices else (
        click.INT if option.kind is int else click.FLOAT if option.kind is float else click.STRING
    )  # fmt: skip
    return {"type": kind, "default": shown, "show_default": shown is not None,
            "metavar": option.metavar, "help": option.help}  # fmt: skip


# ``fanfetch run --help`` in sections, as docs/flags.md has them (tests/cli/test_cli.py holds
# the two together): each option row names its heading; one in none is listed under "Other".
HELP_HEADINGS: tuple[str, ...] = (
    "Input and output",
    "Pages",
    "How many, how fast",
    "When things fail",
    "Guards",
    "What is sent and what is accepted",
    "Networks and credentials",
    "Files and processing",
    "More than one process",
    "What you see",
)


class _Sectioned(click.Command):
    """A command whose options are listed under the headings their rows name, in the order
    of ``HELP_HEADINGS``."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: dict[str, list[tuple[str, str]]] = {title: [] for title in (*HELP_HEADINGS, "Other")}
        for param in self.get_params(ctx):
            if isinstance(param, click.Option) and (row := param.get_help_record(ctx)):
                option = BY_NAME.get(param.name or "") or BY_JOB_NAME.get(param.name or "")
                title = option.section if option is not None and option.section else "Other"
                rows[title].append(row)
        for title, found in rows.items():
            if found:
                with formatter.section(title):
                    formatter.write_dl(found)


@cli.command(cls=_Sectioned, epilog=EXAMPLES)
@click.argument("source", metavar="INPUT", required=False)
@_option_flags(JOB_OPTIONS)
@_option_flags(OPTIONS)
def run(**kw: Any) -> int:
    """Make one request per INPUT line (a file, or - for stdin); write one record per request.

    INPUT lines are URLs (GET) or JSON objects with url and optionally id, method, headers,
    params, json, data, form, timeout, meta. Blank lines are skipped. Records are JSON lines with
    id, url, method, ok, status, attempts, elapsed_ms, started_at, body, error and meta.
    """
    if (kw["source"] is None) == (kw["sql"] is None):
        raise click.UsageError("give INPUT (a file, or - for stdin) or --sql QUERY, one of the "
                               "two")  # fmt: skip
    if kw["sql"] is not None:
        kw["source"] = "--sql"  # a name for messages; the rows come from the query
    elif kw["source"].lower().endswith(".toml"):
        return _run_job_file(kw)
    try:
        config = make_config(**{o.name: o.from_cli(kw[o.name]) for o in OPTIONS if o.flags})
        options = job_options(kw, source=kw["source"], config=config)
    except ConfigError as exc:
        raise click.UsageError(_as_flag(exc)) from exc
    except FanfetchError as exc:
        raise click.UsageError(str(exc)) from exc
    if kw["transform"]:
        from .._engine._transform import load_function

        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` does: the user's own modules
        try:
            load_function(kw["transform"])
        except FanfetchError as exc:
            raise click.UsageError(str(exc)) from exc
    if not config.network.verify_tls:
        click.echo("fanfetch: warning: --insecure: TLS certificates are not verified", err=True)
    try:
        options.job.check(config)
        if options.dry_run:
            from ._dry_run import dry_run

            return dry_run(options)
        if options.job.cluster is not None:
            return _run_on_cluster(options)
        return _run_checked(options, kw)
    except ConfigError as exc:  # found once the run is built (a transport's name, --select)
        raise click.UsageError(_as_flag(exc)) from exc


_NOT_WITH_A_JOB_FILE = ("url_template", "method", "csv_rows", "ordered", "workers", "cluster",
                        "shards", "dry_run", "format")  # fmt: skip


def _run_job_file(kw: dict[str, Any]) -> int:
    """``fanfetch run JOB.toml -o DIR``: the job file's ``[run]``, with the flags given on
    the command line over it, and its steps (``_core._jobfile``)."""
    from .._core._jobfile import load_job, run_options
    from .._core._loop import loop_factory
    from ._runner import run_graph_job

    ctx = click.get_current_context()
    given = {name for name in kw if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    for name in _NOT_WITH_A_JOB_FILE:
        if name in given:
            flag = (BY_NAME.get(name) or BY_JOB_NAME[name]).flags[0]
            raise click.UsageError(f"{flag} does not go with a job file (not yet, or it is a "
                                   "step's own)")  # fmt: skip
    if not kw["output"] or kw["output"] == "-":
        raise click.UsageError("a job file writes a folder: give it as -o DIR (each step's "
                               "records go to DIR/STEP.jsonl)")  # fmt: skip
    try:
        job = load_job(kw["source"])
        values = run_options(job)
        values.update({o.name: o.from_cli(kw[o.name]) for o in OPTIONS if o.flags and
                       o.name in given})  # fmt: skip
        config = make_config(**values)
        options = job_options(kw, source=kw["source"], config=config)
        options.job.check(config)
    except ConfigError as exc:
        raise click.UsageError(_as_flag(exc)) from exc
    except FanfetchError as exc:
        raise click.UsageError(str(exc)) from exc
    from .._engine._graph import check_steps

    try:
        check_steps(job, config)
    except FanfetchError as exc:
        raise click.UsageError(f"{kw['source']}: {exc}") from exc
    inputs = {os.path.realpath(s.input) for s in job.steps if s.input and s.input != "-"}
    for step in job.steps:
        target = os.path.join(kw["output"], f"{step.name}.jsonl")
        if os.path.realpath(target) in inputs:
            raise click.UsageError(f"step {step.name!r} would write over an input: {target}")
    try:
        os.makedirs(kw["output"], exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"{kw['output']!r}: cannot make that folder: "
                               f"{exc.strerror or exc}") from None  # fmt: skip
    _allow_open_files(config.limits.concurrency)
    _prepare_save_dir(config.http.save_dir)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(run_graph_job(options, job))


def _run_checked(options: RunOptions, kw: dict[str, Any]) -> int:
    config = options.config
    _check_paths(options)
    _check_ids_for_resume(options)
    _allow_open_files(config.limits.concurrency)
    _prepare_save_dir(config.http.save_dir)
    return _run_in_loop(options)


def _prepare_save_dir(folder: str | None) -> None:
    """``--save-dir``: the folder made, and the ``.part`` files a killed run left cleaned."""
    if not folder:
        return
    from .._core._files import clean_partials

    clean_partials(folder)  # one run a folder
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise click.BadParameter(
            f"{folder!r}: cannot make that directory: {exc.strerror or exc}",
            param_hint="--save-dir",
        ) from None


def _check_ids_for_resume(options: RunOptions) -> None:
    """A resume skips every id the output holds: two lines with one id (a line without an
    id takes its number) would leave one of them without a record, so say so first."""
    source = options.source
    if not options.job.resume or options.url_template is not None or not os.path.isfile(source):
        return
    from .._io._input import find_repeated_ids

    repeated = find_repeated_ids(source)
    if repeated.count:
        lines = ", ".join(map(str, repeated.lines)) + (", ..." if repeated.count > 20 else "")
        raise click.UsageError(
            f"--resume cannot tell apart lines that share an id (lines {lines}: an id given "
            "twice, or given by one line and taken as its line number by a line without an "
            "id); give each of those lines an id of its own"
        )


_SPARE_FILES = 64  # the input, the output, the loop's own, a few for --save-dir and pipes


def _allow_open_files(concurrency: int) -> None:
    """Raise the soft open-file limit towards the hard one when ``-c`` needs it (a socket
    per request in flight), or say at start how many requests would fail for want of it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = concurrency + _SPARE_FILES
    if soft == resource.RLIM_INFINITY or need <= soft:
        return
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
    if target < need:
        click.echo(
            f"fanfetch: warning: -c {concurrency} needs about {need:,} open files, but the "
            f"limit is {target:,} (ulimit -n): beyond about {max(1, target - _SPARE_FILES):,} "
            "requests at once, connections fail with 'Too many open files'; lower -c or "
            "raise the limit",
            err=True,
        )


_SIDE_FILES = (".journal", "-wal", "-shm", "-journal", ".wal")  # a journal, SQLite's, DuckDB's


def _check_paths(options: RunOptions) -> None:
    """Refuse, before anything is opened for writing, every path fanfetch would write or
    remove that is the input (or a link to it), or another such path: the output, the files
    beside it that its format writes and deletes (a journal, SQLite's -wal, -shm and
    -journal, DuckDB's .wal), and the summary file; and a ``--save-dir`` that holds the
    input, the output or the summary (a request whose id is its name would replace it).
    Also a summary file that cannot be written (found out at the end)."""
    files: list[tuple[str, str]] = []  # (path, flag): what fanfetch writes, by name
    sides: list[tuple[str, str]] = []  # what the output's format writes beside it
    if options.output is not None and options.output != "-":
        files.append((options.output, "-o/--output"))
        sides = [(options.output + side, "-o/--output") for side in _SIDE_FILES]
    if options.summary_json:
        files.append((options.summary_json, "--summary-json"))
    source: str | int = 0 if options.source == "-" else options.source
    for i, (path, flag) in enumerate([*files, *sides]):
        if _same_file(path, source):
            raise click.BadParameter(
                f"{path!r} is the input: writing there would destroy it", param_hint=flag
            )
        for other, _ in files[:i]:
            if _same_file(path, other):
                raise click.BadParameter(
                    f"{path!r} is also {other!r}, which fanfetch writes too", param_hint=flag
                )
    if options.config.http.save_dir:
        folder = os.path.realpath(options.config.http.save_dir)
        held = [(options.source, "the input")] if options.source != "-" else []
        for path, what in [*held, *files]:
            if os.path.dirname(os.path.realpath(path)) == folder:
                raise click.BadParameter(
                    f"{options.config.http.save_dir!r} holds {path!r} ({what}): a request whose id "
                    "is its name would replace it; save into a folder of its own",
                    param_hint="--save-dir",
                )
    if options.summary_json:
        folder = os.path.dirname(os.path.abspath(options.summary_json))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise click.BadParameter(
                f"{options.summary_json!r}: the folder {folder!r} does not exist or is not "
                "writable",
                param_hint="--summary-json",
            )


def _same_file(a: str, b: str | int) -> bool:
    """Whether ``a`` and ``b`` (a path, or 0 for stdin) name one file, through links too."""
    if isinstance(b, str) and os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        first, second = os.stat(a), os.stat(b)
    except OSError:
        return False  # one does not exist (yet): no file to destroy
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _run_on_cluster(options: RunOptions) -> int:
    from .._scale._cluster import cluster_address
    from ._runner import run_cluster_job

    address = cluster_address(options.job.cluster or "")
    if options.source == "-":
        raise click.UsageError("--cluster reads a file every node can see, not stdin")
    if options.sql is not None:
        raise click.UsageError("--cluster reads a file every node can see, not --sql")
    if options.source.lower().endswith(".parquet"):
        raise click.UsageError("--cluster cuts its input into byte ranges of lines: give it "
                               "JSON lines (fanfetch export rows.parquet -o rows.jsonl... or "
                               "run it without --cluster)")  # fmt: skip
    return run_cluster_job(options, address=address)


def _as_flag(exc: ConfigError) -> str:
    """A ``ConfigError`` as the command line says it: in terms of the flag, not the keyword."""
    flag = _flag(exc.parameter)
    if not flag.startswith("-"):
        return str(exc)
    hint = _PYTHON_ONLY.sub("", speak(exc.hint, as_flag))  # "or None": a keyword's value only
    option = BY_NAME.get(exc.parameter) or BY_JOB_NAME.get(exc.parameter)
    if option is not None and option.kind is bool and exc.value is True:  # a switch: no value
        return f"{flag} {hint}"
    return f"invalid value for {flag}: {exc.value!r}. HINT: {hint}"


def _flag(name: str) -> str:
    """An option's name as the command line says it: its long flag (else the keyword)."""
    option = BY_NAME.get(name) or BY_JOB_NAME.get(name)
    if option is None or not option.flags:
        return f"{name}="
    return option.flags[-1].partition("/")[0]


def as_flag(named: str) -> str | None:
    """The command line's voice (``_core._voice``): `max_redirects` is ``--max-redirects``,
    `format=csv` ``--format csv``, and a switch given a value (`resume=True`) the flag alone."""
    name, given, value = named.partition("=")
    option = BY_NAME.get(name) or BY_JOB_NAME.get(name)
    if option is None or not option.flags:
        return as_keyword(named)
    flag = _flag(name)
    return f"{flag} {value}" if given and option.kind is not bool else flag


_PYTHON_ONLY = re.compile(r",? or None\b( for none)?")


def _run_in_loop(options: RunOptions, *, announce: str | None = None, call_ms: float = 0.0) -> int:
    from .._core._loop import loop_factory
    from .._core._tuning import collect_young_rarely
    from ._runner import run_job

    collect_young_rarely()  # this process is ours: the library itself leaves gc alone
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(run_job(options, announce=announce, call_ms=call_ms))


_DEMO_TREE = """\
[run]
concurrency = {concurrency}
paginate = "link"
retries = 3
backoff_base = 0.1

[[step]]
name = "orgs"
input = "orgs.txt"

[[step]]
name = "repos"
from = "orgs"
id = "name"
url = "{base}/repos/{{name}}/issues?per_page=5"

[[step]]
name = "issues"
from = "repos"
items = "items"
url = "{base}/items/{{title}}"
"""


def _demo_tree(base: str, tmp: Path, count: int, concurrency: int, output: str,
               quiet: bool) -> int:  # fmt: skip
    """``fanfetch demo --tree``: a three-level job file against the embedded API's tree."""
    from .._core._jobfile import load_job
    from .._core._loop import loop_factory
    from ._runner import run_graph_job

    orgs = max(1, count // 10)
    (tmp / "orgs.txt").write_text("".join(f"{base}/orgs/o{n}/repos\n" for n in range(orgs)))
    job_path = tmp / "job.toml"
    job_path.write_text(_DEMO_TREE.format(base=base, concurrency=concurrency))
    folder = "demo-tree" if output == "demo-results.jsonl" else output
    if not quiet:
        click.echo(f"fanfetch demo: a job file of three steps against the mock API at {base}: "
                   f"{orgs:,} organisations, each repository they list (neighbours share two), "
                   f"every page of its issues, each issue's item; records in {folder}/",
                   err=True)  # fmt: skip
    job = load_job(job_path)
    config = make_config(**job.run)
    os.makedirs(folder, exist_ok=True)
    options = RunOptions(source=str(job_path), config=config, job=JobSpec(output=folder),
                         quiet=quiet)  # fmt: skip
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(run_graph_job(options, job))


@cli.command("mock-api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8080,
    show_default=True,
    help="Port (0: any free port; the URL is printed).",
)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=20.0, show_default=True)
@click.option("--jitter-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of answers that are 500 or 503.",
)
@click.option(
    "--throttle-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of answers that are 429 with Retry-After.",
)
@click.option(
    "--retry-after",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="The Retry-After those 429s carry.",
)
@click.option("--seed", type=int, help="Make the misbehaviour repeatable.")
def mock_api(host: str, port: int, **kw: Any) -> int:
    """Serve the embedded mock JSON API (GET /items/ID, POST /echo, GET /status/CODE)."""
    from .._core._loop import loop_factory
    from .._mockapi import MockAPIConfig, serve

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(MockAPIConfig(**kw), host=host, port=port))
    return EXIT_OK


@cli.command()
@click.option(
    "-n",
    "--requests",
    "count",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="How many calls to make.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
)
@click.option("-o", "--output", default="demo-results.jsonl", show_default=True)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=20.0, show_default=True)
@click.option("-q", "--quiet", is_flag=True)
@click.option(
    "--paginate",
    "pages",
    is_flag=True,
    help="Fetch every page of N/10 issue lists of 10 pages instead (--paginate link): N "
    "pages, a record each.",
)
@click.option(
    "--tree",
    is_flag=True,
    help="Run a job file instead: N/10 organisations, each repository they list, every page "
    "of its issues (a request graph; -o is then a folder, demo-tree by default).",
)
@click.option("--dashboard", is_flag=True, help="Watch it on the live dashboard.")
def demo(
    count: int, concurrency: int, output: str, latency_ms: float, quiet: bool, pages: bool,
    tree: bool, dashboard: bool,
) -> int:  # fmt: skip
    """Start the embedded API on loopback and make N calls to it, with retries on."""
    from .._mockapi import mock_api_process

    misbehave = ["--error-rate", "0.02", "--throttle-rate", "0.0005", "--retry-after", "1"]
    jitter = str(latency_ms / 2)
    with (
        mock_api_process("--latency-ms", str(latency_ms), "--jitter-ms", jitter, *misbehave,
                         "--seed", "7") as base,
        tempfile.TemporaryDirectory(prefix="fanfetch-demo-") as tmp,
    ):  # fmt: skip
        if tree:
            return _demo_tree(base, Path(tmp), count, concurrency, output, quiet)
        source = Path(tmp, "requests.txt")
        lists = max(1, count // 10)  # lists of 10 pages of 10 issues each, with --paginate
        with source.open("w") as f:
            if pages:
                f.writelines(f"{base}/repos/r{i}/issues?total=100\n" for i in range(lists))
            else:
                f.writelines(f"{base}/items/{i}\n" for i in range(1, count + 1))
        if not quiet:
            what = (
                f"every page of {lists:,} issue lists (10 pages each, following Link headers)"
                if pages
                else f"{count:,} calls"
            )
            click.echo(
                f"fanfetch demo: {what} to the mock API at {base} "
                f"(~{latency_ms:g} ms each; 2% answer 500/503, 0.05% 429 with Retry-After), "
                f"concurrency {concurrency}",
                err=True,
            )
        config = make_config(concurrency=concurrency, retries=3, backoff_base=0.1,
                             paginate="link" if pages else None)  # fmt: skip
        options = RunOptions(source=str(source), config=config, job=JobSpec(output=output),
                             quiet=quiet, dashboard=dashboard)  # fmt: skip
        status = _run_in_loop(options, announce=output, call_ms=latency_ms)
    return status


@cli.command()
@click.argument("source", metavar="INPUT")
@click.option("-o", "--output", required=True, metavar="FILE", help="Write the records here.")
@click.option(
    "--from",
    "source_format",
    type=click.Choice(list(FORMATS)),
    help="INPUT's format, whatever its name.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(list(FORMATS)),
    help="The output's format, whatever its name.",
)
@click.option(
    "--select",
    metavar="EXPR",
    help="Apply this JMESPath expression to each ok "
    "body, as run --select does (a table gets its keys as columns).",
)
@click.option("-q", "--quiet", is_flag=True, help="Say nothing when done.")
def export(
    source: str, output: str, source_format: str | None, output_format: str | None,
    select: str | None, quiet: bool,
) -> int:  # fmt: skip
    """Convert the records in INPUT (any output of fanfetch run) to another format.

    The formats follow the files' names (.jsonl, .csv, .parquet, .sqlite/.db, .duckdb).
    Records are streamed, in flat memory; an existing output is replaced.

    \b
    fanfetch export results.jsonl -o results.parquet
    fanfetch export results.jsonl -o items.csv --select '{id: id, name: name}'
    """
    from .._io._export import export as run_export

    try:
        count = run_export(
            source, output, source_format=source_format, output_format=output_format,
            select=select, warn=lambda message: _say(f"fanfetch: {message}"),
        )  # fmt: skip
    except ConfigError as exc:
        raise click.BadParameter(f"{exc.value!r}: {exc.hint}", param_hint="--select") from None
    if not quiet:
        click.echo(f"fanfetch: {count:,} records written to {output}", err=True)
    return EXIT_OK


@cli.command()
@click.argument("sources", metavar="OUTPUT...", nargs=-1, required=True)
@click.option(
    "-o", "--output", default="report.html", show_default=True, metavar="FILE",
    help="Write the page here (replaced whole).",
)  # fmt: skip
@click.option(
    "--from",
    "source_format",
    type=click.Choice(list(FORMATS)),
    help="The records' format, whatever the files' names.",
)
@click.option("--title", metavar="TEXT", help="The page's title.  [default: the files' names]")
@click.option("-q", "--quiet", is_flag=True, help="Say nothing when done.")
def report(
    sources: tuple[str, ...], output: str, source_format: str | None, title: str | None,
    quiet: bool,
) -> int:  # fmt: skip
    """Draw one self-contained HTML page about a run from its records (finished or not).

    Totals, throughput and the status/error mix over time, latency over time and its
    distribution, the slowest requests, every distinct error message with its count, and
    figures per host. The page needs no network to open. Any output format; a folder
    stands for its .jsonl parts (a --cluster job's). Read in flat memory.

    \b
    fanfetch report results.jsonl -o report.html
    """
    from ._report import write_report

    counted = write_report(sources, output, source_format=source_format, title=title)
    if not quiet:
        click.echo(f"fanfetch: report on {counted.requests:,} records written to {output}",
                   err=True)  # fmt: skip
    return EXIT_OK


@cli.command()
@click.option("--quick", is_flag=True, help="Less work: a few seconds instead of under a minute.")
@click.option("--chart", metavar="FILE.png", help="Also draw the results (needs matplotlib).")
def bench(quick: bool, chart: str | None) -> int:
    """Show, on this machine, why asyncio wins for I/O-bound calls and processes for CPU work.

    One at a time vs threads vs processes vs asyncio (naive gather and fanfetch) against the
    embedded mock API, then a CPU-bound step with threads (no help: the GIL) and processes.
    """
    from ._bench import run_bench

    run_bench(quick=quick, chart=chart)
    return EXIT_OK


def _say(message: str) -> None:
    """A line on stderr, with no control character a server (or a file) put in it."""
    click.echo(printable(message), err=True)


def main(argv: list[str] | None = None) -> None:
    """The console script: one-line errors, no tracebacks, the documented exit statuses;
    the library's messages name options by their flags (``as_flag``)."""
    voice = VOICE.set(as_flag)
    try:
        _main(argv)
    finally:
        VOICE.reset(voice)


def _main(argv: list[str] | None) -> None:
    try:
        status = cli.main(args=argv, prog_name="fanfetch", standalone_mode=False)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "fanfetch"
        _say(f"fanfetch: error: {exc.format_message()} (see '{command} --help')")
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        _say(f"fanfetch: error: {exc.format_message()}")
        sys.exit(EXIT_USAGE)
    except UsageError as exc:
        _say(f"fanfetch: error: {exc}")
        sys.exit(EXIT_USAGE)
    except FanfetchError as exc:  # e.g. the summary file cannot be written: say so, no traceback
        _say(f"fanfetch: error: {exc}")
        sys.exit(EXIT_FAILED)
    except click.Abort:
        sys.exit(EXIT_SIGINT)
    except BrokenPipeError:
        # stdout went away (e.g. `| head`): nothing more can be said on it
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_FAILED)
    sys.exit(status if isinstance(status, int) else EXIT_OK)
