"""``fanfetch run --dry-run``: the whole input read and checked as a run would read it, and
what would be requested said (how many, to which hosts, the first few, secrets masked),
with nothing sent and nothing written."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from typing import TextIO

from .._core._models import Request, Result
from .._core._redact import mask_query, redact_url
from .._core._types import Item, printable
from .._engine._attempt import host_key
from .._io._input import Duplicates, LineParser, bounded_lines, open_source, read_items
from ._options import RunOptions

__all__ = ["dry_run"]

SHOWN = 5  # requests and bad lines shown in full
HOSTS = 10  # hosts listed, the busiest first


def dry_run(options: RunOptions, out: TextIO = sys.stdout) -> int:
    """Say what ``options`` would request; exit status 0 when every line is a request, 1
    when some are not (each would be an ``invalid_request`` record)."""
    hosts: Counter[str] = Counter()
    first: list[Request] = []
    bad: list[Result] = []
    requests = invalid = 0
    duplicates = Duplicates()
    for item in _items(options, duplicates):
        if isinstance(item, Result):
            invalid += 1
            if len(bad) < SHOWN:
                bad.append(item)
            continue
        requests += 1
        hosts[host_key(item.url)] += 1
        if len(first) < SHOWN:
            first.append(item)
    say = _Say(out)
    nothing = "nothing sent, nothing written"
    lines = f", and {invalid:,} line(s) that are no request" if invalid else ""
    say(f"fanfetch dry run: {requests:,} request(s) from {options.source}{lines}; {nothing}")
    if options.config.pages.paginate is not None:
        say("  --paginate: these are each chain's first page; the rest follow from the answers")
    if options.job.resume:
        say(f"  --resume: those whose id {options.output} already holds would be skipped")
    if hosts:
        say(f"  hosts ({len(hosts):,}):")
        for host, n in hosts.most_common(HOSTS):
            say(f"    {n:>10,}  {host}")
        if len(hosts) > HOSTS:
            say(f"    ... and {len(hosts) - HOSTS:,} more")
    if first:
        say("  the first requests:")
        for request in first:
            say(f"    {_shown(request)}")
    for result in bad:
        say(f"  not a request: {result.error}")
    if (warning := duplicates.message()) is not None:
        say(f"  {warning}")
    return 1 if invalid else 0


def _items(options: RunOptions, duplicates: Duplicates) -> Iterator[Item]:
    parser: LineParser
    if options.url_template is None:
        parser = LineParser(duplicates=duplicates)
    else:
        from .._io._template import RowParser

        parser = RowParser(options.url_template, csv_rows=options.csv_rows,
                           duplicates=duplicates)  # fmt: skip
    source = open_source(options.source, sql=options.sql)
    try:
        yield from read_items(bounded_lines(source), parser=parser)
    finally:
        if source is not sys.stdin.buffer:
            source.close()


def _shown(request: Request) -> str:
    """One request as a line: its method, URL (credentials in it masked), and what it
    carries by name only (a header's value may be a secret)."""
    parts = [request.method, mask_query(redact_url(request.url))]
    if request.params:
        parts.append("params " + ", ".join(sorted(map(str, request.params))))
    if request.headers:
        parts.append("headers " + ", ".join(sorted(map(str, request.headers))))
    if request.json is not None or request.data is not None:
        parts.append("with a body")
    return f"id {request.id!r}: " + " ".join(parts)


class _Say:
    def __init__(self, out: TextIO) -> None:
        self._out = out

    def __call__(self, line: str) -> None:
        self._out.write(printable(line) + "\n")
