"""A job file's steps run as one job: follow-up requests made from recorded answers.

All steps share one engine, so the concurrency, the per-host limits, rates, budgets, key
pools and retries hold across the whole tree, not per step. A child request is made once
its parent's record is stored (the output is the frontier), and from then on children come
before new roots: the engine's queue takes the children of what it has answered before it
reads more of the input. Each item is made into a request only when the queue has room for
it; and once the answers whose children wait pass 4 x concurrency (long chains of parent
pages), every worker but one waits after storing its record (one stays free, or nothing
would take the children), so what waits is that bound and the pages of one chain.

Within a step two parents that yield the same request (the same id: the item's ``id``
expression, else the method and URL) make it once; the record names the parent seen first.

Resumed, the outputs are the frontier: each step's output says which of its ids are done
and where its chains stand, and the children of every recorded answer are made again from
the records (those already recorded skipped), so each (step, id, page) is recorded once
whenever the job was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import jmespath
import orjson

from .._core._config import Config
from .._core._events import ChainEnded, Listener
from .._core._exceptions import ConfigError, UsageError
from .._core._job import JobSpec
from .._core._jobfile import PAGE_KEYS, JobFile, Step
from .._core._models import Request, Result
from .._core._resume import IdSet, id_hash
from .._core._types import Item
from .._io._input import LineParser, aiter_items, checked, invalid_request, open_source
from .._io._output import RecordWriter
from .._io._records import FdOutput
from .._io._rows import Rows, body_of
from .._observe._summary import Stats
from ._paginate import ChainState
from ._scheduler import Engine, Profile, profile_for

__all__ = ["Graph", "StepCounts"]

_JMESPATH_OPTIONS = jmespath.Options(dict_cls=dict)


@dataclass(slots=True)
class StepCounts:
    """One step's counts, for the summary (``steps`` in ``--summary-json``)."""

    records: int = 0
    ok: int = 0
    failed: int = 0
    duplicates: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"records": self.records, "ok": self.ok, "failed": self.failed,
                "duplicates": self.duplicates}  # fmt: skip


@dataclass(slots=True)
class _StepRun:
    step: Step
    path: str
    config: Config  # the run's, with the step's own pages and select over it
    profile: Profile = field(default_factory=lambda: Profile(None, None))
    writer: RecordWriter | None = None
    counts: StepCounts = field(default_factory=StepCounts)
    done: IdSet | None = None  # resumed: the ids whose record (or whole chain) is there
    chains: dict[int, ChainState] = field(default_factory=dict)  # resumed chains' places
    recorded: int = 0  # records its output held when resumed
    rows: Rows | None = None  # rows = EXPR: its items as rows, in rows_writer
    rows_writer: RecordWriter | None = None
    children: tuple[_StepRun, ...] = ()
    template: Any = None  # ItemTemplate of a child step
    items: Any = None  # its compiled JMESPath over the parent's answers
    id_of: Any = None  # its compiled ``id`` expression, if any
    seen: set[int] = field(default_factory=set)  # the ids asked for (their hashes)


class Graph:
    """The steps of ``job`` run through one engine into ``DIR/STEP.jsonl`` each.

    Offers what the command line's runner asks of a pipeline: ``engine``, ``stats``,
    ``stop``, ``run``, ``aclose``.
    """

    def __init__(
        self,
        job: JobFile,
        config: Config,
        output: str,
        *,
        stats: Stats,
        listeners: Sequence[Listener] = (),
        resume: bool = False,
        redo_failed: bool = False,
        warn: Callable[[str], None] = lambda _: None,
    ) -> None:
        from .._io._formats import format_for, open_output
        from .._io._template import ItemTemplate
        from ._paginate import resume_from

        check_steps(job, config)
        self.job, self.config, self.stats = job, config, stats
        self.spec = JobSpec(output=output, resume=resume, redo_failed=redo_failed)
        self.steps: dict[str, _StepRun] = {}
        self.already = 0  # records the outputs held when resumed
        for step in job.steps:
            path = f"{output}/{step.name}.jsonl"
            record_format = format_for(path, "jsonl")
            run = _StepRun(step, path, config=config_of(step, config))
            run.profile = profile_for(run.config)
            if resume and os.path.exists(path):  # repaired first: a torn last line is cut
                state, run.done, run.chains = resume_from(
                    record_format, path, paginated=run.profile.paginator is not None,
                    redo_failed=redo_failed, warn=warn,
                )  # fmt: skip
                run.recorded = state.records
                self.already += state.records
            if not step.is_root:
                assert step.url is not None
                run.template = ItemTemplate(step.url, step=step.name)
                run.items = jmespath.compile(step.items)
                run.id_of = None if step.id is None else jmespath.compile(step.id)
            self.steps[step.name] = run
        for run in self.steps.values():
            run.children = tuple(self.steps[c.name] for c in job.children_of(run.step.name))
        # the step of each item not yet done, and whether it is a request (a chain of pages
        # with --paginate) or a record already (a line or an item that is no request)
        self._of_seq: dict[int, tuple[_StepRun, bool]] = {}
        # children still to make: for a step, (parent id, item) pairs, made lazily
        self._pending: deque[tuple[_StepRun, Iterator[tuple[Any, Any]]]] = deque()
        if resume:  # the children of what is recorded: those without a record are asked
            for run in self.steps.values():
                if run.recorded:
                    for child in run.children:
                        held = os.path.getsize(run.path)  # not what this run appends
                        self._pending.append((child, _recorded_items(run.path, held,
                                                                     child.items)))  # fmt: skip
        self._outstanding = 0  # requests handed out whose last record is not yet stored
        self._wake = asyncio.Event()
        # Back-pressure: past this many parents' items waiting, a parent's worker waits for
        # them to be taken, all workers but one at most (one is always free for children)
        self._bound = 4 * config.limits.concurrency
        self._may_wait = config.limits.concurrency - 1
        self._waiting = 0
        self._roomy = asyncio.Event()
        self._closed = False  # the frontier is over: nobody waits for room any more
        self.most_pending = 0  # the most parents' items waiting at once
        self._seq = 0
        try:
            for run in self.steps.values():
                output_file = open_output(record_format, run.path, run.config.records,
                                          append=resume)  # fmt: skip
                run.writer = RecordWriter(output_file)
                if run.step.rows is not None:
                    run.rows = Rows(run.step.rows)
                    rows_path = f"{output}/{run.step.name}.rows.jsonl"
                    if resume:  # a function of the records: made again from them
                        run.rows.rebuild(run.path, rows_path)
                    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if resume else os.O_TRUNC)
                    run.rows_writer = RecordWriter(FdOutput(os.open(rows_path, flags, 0o644),
                                                            owns=True))  # fmt: skip
            self.engine = Engine(config, listeners=[stats, _ChainEnds(self._done), *listeners],
                                 chain_state=self._chain_state,
                                 profile_of=self._profile_of)  # fmt: skip
        except BaseException:
            self._close_writers()
            raise

    # -- what the views and the runner read ------------------------------------------------

    @property
    def counts(self) -> dict[str, StepCounts]:
        return {name: run.counts for name, run in self.steps.items()}

    def stop(self, grace: float) -> None:
        self.engine.stop(grace=grace)

    async def aclose(self) -> None:
        try:
            await self.engine.aclose()
        finally:
            self._close_writers()

    def _close_writers(self) -> None:
        for run in self.steps.values():
            for writer in (run.writer, run.rows_writer):
                if writer is not None:
                    writer.close()

    def _profile_of(self, request: Request) -> Profile:
        return self._of_seq[request.seq][0].profile

    def _chain_state(self, request: Request) -> ChainState | None:
        """Where a resumed request's chain stands in its own step's output."""
        return self._of_seq[request.seq][0].chains.get(id_hash(request.id))

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Every step's requests, children as their parents are recorded, until none is left."""
        done = asyncio.Event()
        frontier = self._frontier()
        async with asyncio.TaskGroup() as tg:
            for run in self.steps.values():
                assert run.writer is not None
                tg.create_task(run.writer.keep_syncing(done))
            try:
                async with contextlib.aclosing(frontier):
                    await self.engine.run(frontier, self._sink)
            finally:
                done.set()

    async def _frontier(self) -> AsyncGenerator[Item, None]:
        try:
            async with contextlib.aclosing(self._items()) as items:
                async for item in items:
                    yield item
        finally:  # ended, or the engine stopped taking items: no worker waits for room
            self._closed = True
            self._roomy.set()

    async def _items(self) -> AsyncGenerator[Item, None]:
        for run in self.steps.values():
            if not run.step.is_root:
                continue
            assert run.step.input is not None
            source = open_source(run.step.input)
            try:
                async for item in aiter_items(source, parser=_root_parser(run.step, run.done)):
                    while self._pending:
                        child = self._next_child()
                        if child is not None:
                            yield child
                    yield self._handed(run, item)
            finally:
                if run.step.input != "-":
                    source.close()
        while True:
            while self._pending:
                child = self._next_child()
                if child is not None:
                    yield child
            if self._outstanding == 0:
                return
            self._wake.clear()
            await self._wake.wait()

    def _handed(self, run: _StepRun, item: Item) -> Item:
        """``item`` numbered for this job (each step's input counts from 0) and counted."""
        request = item.request if isinstance(item, Result) else item
        step = run.step
        if step.headers and not isinstance(item, Result):  # the step's, under the line's
            request.headers = {**step.headers, **(request.headers or {})}
        if step.timeout is not None and request.timeout is None:
            request.timeout = step.timeout
        request.seq = self._seq
        self._seq += 1
        self._of_seq[request.seq] = (run, not isinstance(item, Result))
        self._outstanding += 1
        self.stats.total = self._seq  # the views' total: what is known so far, growing
        return item

    def _next_child(self) -> Item | None:
        """The next child of the oldest parent with children left (None: one already asked
        for or recorded, or that parent has no more)."""
        run, items = self._pending[0]
        pair = next(items, None)
        if pair is None:
            self._pending.popleft()
            if len(self._pending) <= self._bound // 2:
                self._roomy.set()
            return None
        item = self._child(run, *pair)
        return None if item is None else self._handed(run, item)

    def _child(self, run: _StepRun, parent: Any, value: Any) -> Item | None:
        url, missing = run.template.fill(value)
        rid: Any = None
        if run.id_of is not None:
            rid = run.id_of.search(value, options=_JMESPATH_OPTIONS)
            if rid is not None and (not isinstance(rid, str | int) or isinstance(rid, bool)):
                rid = None
        if rid is None:  # the request itself; an item that makes none, its parent and digest
            if url is None:
                rid = f"{parent}/{_digest(value)}"
            else:
                rid = url if run.step.method == "GET" else f"{run.step.method} {url}"
        key = id_hash(rid)
        if run.done is not None and key in run.done:
            return None  # recorded before the resume
        if key in run.seen:
            run.counts.duplicates += 1
            return None
        run.seen.add(key)
        request = Request(url or "", method=run.step.method, id=rid)
        request.parent = parent
        if url is None:
            return invalid_request(request, f"step {run.step.name!r}: the item has no "
                                   f"{', '.join(missing)} for its URL")  # fmt: skip
        if not run.template.authority_literal:  # the item names the origin: no credentials
            request.auth_origin = _NOWHERE
        return checked(request, seq=0, line=0)

    async def _sink(self, result: Result) -> None:
        request = result.request
        run, chains = self._of_seq[request.seq]
        assert run.writer is not None
        await run.writer.put(result)
        counts = run.counts
        counts.records += 1
        if result.ok:
            counts.ok += 1
            if run.rows is not None and run.rows_writer is not None:
                lines = run.rows.lines(request.id, result.page, body_of(result))
                run.rows_writer.write_lines(lines)  # after its record: a kill between is mended
            if run.children:
                self._adopt(run, result)
        else:
            counts.failed += 1
        if not (chains and run.profile.paginator is not None):  # else its chain's end does
            self._done(request.seq)
        if len(self._pending) > self._bound and self._waiting < self._may_wait:
            await self._room()

    async def _room(self) -> None:
        """Wait until the children waiting are down to half the bound (this worker's next
        page, or next request, waits with it)."""
        self._waiting += 1
        try:
            while not self._closed and len(self._pending) > self._bound // 2:
                self._roomy.clear()
                await self._roomy.wait()
        finally:
            self._waiting -= 1

    def _adopt(self, run: _StepRun, result: Result) -> None:
        """The items of ``result``'s answer, for each child step (lazily: made into requests
        only when the engine's queue takes them)."""
        body = body_of(result)
        parent = result.request.id
        for child in run.children:
            found = child.items.search(body, options=_JMESPATH_OPTIONS)
            if found is not None:
                values = found if isinstance(found, list) else (found,)
                self._pending.append((child, ((parent, value) for value in values)))
        self.most_pending = max(self.most_pending, len(self._pending))
        self._wake.set()

    def _done(self, seq: int) -> None:
        if self._of_seq.pop(seq, None) is not None:
            self._outstanding -= 1
            self._wake.set()


class _ChainEnds:
    """Hears when a request's chain of pages is over (its last record is stored); a
    ``finished`` of its own, so the engine makes no event of each result for it."""

    __slots__ = ("_done",)

    def __init__(self, done: Callable[[int], None]) -> None:
        self._done = done

    def finished(self, result: Result) -> None:
        pass

    def __call__(self, event: Any) -> None:
        if isinstance(event, ChainEnded):
            self._done(event.request.seq)


_NOWHERE = ("", None, None)  # an origin no URL has: a request that carries no credentials


def _recorded_items(path: str, size: int, items: Any) -> Iterator[tuple[Any, Any]]:
    """The (parent id, item) pairs of the ok records in the first ``size`` bytes of
    ``path``, read as they are asked for: the children a resumed job makes of what it had
    recorded."""
    with open(path, "rb") as f:
        for line in _lines_within(f, size):
            record = orjson.loads(line)
            if not record.get("ok") or record.get("body_encoding") is not None:
                continue
            found = items.search(record.get("body"), options=_JMESPATH_OPTIONS)
            if found is not None:
                for value in found if isinstance(found, list) else (found,):
                    yield record["id"], value


def _lines_within(f: Any, size: int) -> Iterator[bytes]:
    read = 0
    for line in f:
        read += len(line)
        if read > size:
            return
        yield line


def _root_parser(step: Step, done: IdSet | None) -> LineParser:
    """A root step's lines as ``fanfetch run`` reads them: URLs and JSON requests, or rows
    filled into its ``url`` (CSV under a header when the file's name ends in .csv), less
    those ``done`` (resumed)."""
    if step.url is None:
        return LineParser(done=done)
    from .._io._template import RowParser, UrlTemplate

    assert step.input is not None
    return RowParser(UrlTemplate(step.url, method=step.method),
                     csv_rows=step.input.lower().endswith(".csv"), done=done)  # fmt: skip


def config_of(step: Step, config: Config) -> Config:
    """The run's ``config`` with ``step``'s own pages and ``select`` over it."""
    import dataclasses

    if not step.pages and step.select is None:
        return config
    own = {PAGE_KEYS[key]: value for key, value in step.pages.items()}
    pages = dataclasses.replace(config.pages, **own)
    records = config.records
    if step.select is not None:
        records = dataclasses.replace(records, select=step.select)
    return dataclasses.replace(config, pages=pages, records=records)


def check_steps(job: JobFile, config: Config | None = None) -> None:
    """What the job file alone cannot tell: each root's input is there, and a CSV input's
    header has every field its step's ``url`` names; each template is one. Checked before
    anything is written or sent."""
    import os

    from .._io._template import ItemTemplate, UrlTemplate, csv_header

    for step in job.steps:
        where = f"step {step.name!r}"
        try:
            if step.is_root and step.url is not None:
                fields = UrlTemplate(step.url, method=step.method).fields
            elif step.url is not None:
                fields = ItemTemplate(step.url, step=step.name).names
        except ConfigError as exc:
            raise UsageError(f"{where}: 'url' {step.url!r}: {exc.hint}") from None
        if config is not None:
            try:
                profile_for(config_of(step, config))
            except ConfigError as exc:
                key = {v: k for k, v in PAGE_KEYS.items()}.get(exc.parameter, exc.parameter)
                raise UsageError(f"{where}: {key!r} {exc.value!r}: {exc.hint}") from None
        if not step.is_root or step.input == "-":
            continue
        assert step.input is not None
        if not os.path.isfile(step.input):
            raise UsageError(f"{where}: 'input' {step.input!r} is no file")
        if step.url is not None and step.input.lower().endswith(".csv"):
            header = csv_header(step.input)[0]
            lacking = [name for name in fields if name not in header]
            if lacking:
                has = ", ".join(header)
                raise UsageError(f"{where}: 'url' names {', '.join(lacking)}, which the header "
                                 f"of {step.input!r} does not have ({has})")  # fmt: skip


def _digest(value: Any) -> str:
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.blake2b(raw, digest_size=6).hexdigest()
