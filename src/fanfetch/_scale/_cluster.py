"""``--cluster ray``: one job over many machines, on Ray, with fanfetch's engine on each.

The input file is cut into shards by byte range, so no node reads the whole of it: a line
belongs to the shard its first byte falls in. A first, quick pass counts each shard's lines
(on the workers, in parallel) so that every request keeps its global line number as its
default id. Then each shard runs as a Ray task with fanfetch's own engine (its loop, limits
and retries) and writes ``part-NNNNN.jsonl``, in the ordinary record format.

Guarantees, as for one machine: each shard resumes from its own part file exactly as
``--resume`` does, so a task whose worker or node dies is retried by Ray and repeats only
what was in flight; a finished shard leaves ``part-NNNNN.done`` (its counts), which a
``--resume`` of the whole job skips.

Limits hold for the whole job. The driver runs at most K shards at once: one per CPU, and
no more than the concurrency or the per-host limit has slots for (``max_parts``). A small
actor, the ``Board`` (on the driver's node, so that no other node's loss takes it), knows
how many shards are not yet finished; each running shard gets ``1/D`` of every limit (slots
rounded down), where ``D`` is the smaller of that number and K, and asks again twice a
second. As shards finish ``D`` falls and the others take on their part (``Engine.resize``).
When nodes join, K grows and so does ``D``: each running shard is given a smaller share,
says when what it has in flight fits it (``Engine.fits``), and only then does the board
make room for more shards, so the shares never add up to more than the whole. The same
reports feed the driver's progress bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .._core._config import Config
from .._core._exceptions import ConfigError, FanfetchError, UsageError
from .._core._models import Request, Result
from .._core._voice import VOICE, Voice
from .._io._formats._jsonl import JSON_LINES
from .._io._template import UrlTemplate, csv_header

__all__ = [
    "Board",
    "JobProgress",
    "Shard",
    "cluster_address",
    "cluster_results",
    "plan_shards",
    "refuse_what_a_cluster_cannot_do",
    "run_on_ray",
    "shard_lines",
]

if TYPE_CHECKING:
    from .._core._resume import IdSet
    from .._engine._pipeline import Pipeline
    from .._io._input import LineParser

REPORT_EVERY = 0.5  # seconds between a shard's reports to the board
ASK_WITHIN = 60.0  # seconds the driver waits for the board to answer before giving up
STALL_AFTER = 30.0  # seconds without progress before the driver says what it waits for
WAIT_WITHIN = 600.0  # seconds the driver waits for Ray to run the line count at all
CPUS_EVERY = 1.0  # seconds between the driver's looks for nodes that joined


def cluster_address(cluster: str) -> str | None:
    """``"ray"`` (a local cluster: None) or ``"ray://HOST:PORT"``; anything else is refused."""
    if cluster == "ray":
        return None
    if cluster.startswith("ray://"):
        return cluster
    raise ConfigError("cluster", cluster, "give 'ray' (a local cluster) or 'ray://HOST:PORT'")


def _host_port(address: str) -> tuple[str, str]:
    """``HOST:PORT`` or ``ray://HOST:PORT`` (an IPv6 host in brackets) as host and port."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return host.strip("[]"), port


def _is_loopback(address: str) -> bool:
    host = _host_port(address)[0] or address
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _check_reachable(address: str, within: float = 5.0) -> None:
    """A cluster that cannot be reached is a one-line error, not Ray's minute of retries."""
    host, port = _host_port(address)
    try:
        socket.create_connection((host, int(port)), timeout=within).close()
    except ValueError:
        raise UsageError(f"{address!r} is not a Ray address: give HOST:PORT") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def _ask(ray: Any, ref: Any, what: str, within: float = ASK_WITHIN) -> Any:
    """``ray.get`` that gives up after ``within`` seconds, saying what it waited for."""
    try:
        return ray.get(ref, timeout=within)
    except ray.exceptions.GetTimeoutError:
        raise FanfetchError(f"Ray did not answer within {within:g} s {what}") from None


def _wait_all(ray: Any, refs: list[Any], what: str, warn: Callable[[str], None] | None,
              within: float = WAIT_WITHIN) -> list[Any]:  # fmt: skip
    """Every result of ``refs``, saying every ``STALL_AFTER`` seconds that it still waits, and
    giving up after ``within``."""
    start = time.monotonic()
    pending = list(refs)
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=STALL_AFTER)
        waited = time.monotonic() - start
        if pending and waited > within:
            raise FanfetchError(f"Ray ran nothing for {waited:.0f} s while {what}: are there "
                                "nodes with a CPU free?")  # fmt: skip
        if pending and warn is not None:
            warn(f"still {what} after {waited:.0f} s: waiting for Ray to run {len(pending)} "
                 "task(s)")  # fmt: skip
    return list(ray.get(refs))


def _slots(ray: Any, config: Config) -> int:
    """Shards that may run at once: one per CPU of the cluster now, and no more than the
    limits have slots for."""
    from ._workers import max_parts

    return min(max(1, int(ray.cluster_resources().get("CPU", 1))), max_parts(config))


def plan_shards(path: str, shards: int, *, start: int = 0) -> list[tuple[int, int]]:
    """Byte ranges ``[start, end)`` that cover the file from ``start`` in about equal parts."""
    size = os.path.getsize(path) - start
    shards = max(1, min(shards, size or 1))
    cuts = [start + size * i // shards for i in range(shards + 1)]
    return [(cuts[i], cuts[i + 1]) for i in range(shards) if cuts[i] < cuts[i + 1]]


def shard_lines(path: str, start: int, end: int) -> Iterator[bytes]:
    """The lines whose first byte lies in ``[start, end)``; only that part of the file is read."""
    with open(path, "rb", buffering=1024 * 1024) as f:
        if start > 0:
            f.seek(start - 1)
            f.readline()  # the rest of the line holding byte start-1 is the previous shard's
        position = f.tell()
        while position < end:
            line = f.readline()
            if not line:
                return
            yield line
            position += len(line)


def _count(path: str, start: int, end: int) -> tuple[int, int]:
    """A shard's lines, and how many of them are requests (not blank)."""
    lines = requests = 0
    for line in shard_lines(path, start, end):
        lines += 1
        requests += bool(line.strip())
    return lines, requests


@dataclass(frozen=True, slots=True)
class Rows:
    """``--url``: each line is a row for the template; CSV rows share the file's header."""

    template: UrlTemplate
    csv_rows: bool = False
    header: list[str] | None = None


@dataclass(frozen=True, slots=True)
class JobProgress:
    """The whole job as the board last heard of it: what the driver's progress bar shows."""

    total: int
    done: int
    ok: int
    retries: int
    in_flight: int


class Board:
    """The job's shared state, as a Ray actor: each shard's latest counts, and who finished.

    Reports replace a shard's last one rather than add to it, so a shard that Ray runs again
    after its worker died is counted once.
    """

    def __init__(self, shards: int, slots: int, finished: dict[int, Any]) -> None:
        self._shards = shards
        self._slots = slots
        self._total = 0
        self._finished = set(finished)
        self._keeps: dict[int, int] = {}  # running shard -> the divisor whose share it keeps
        self._counts: dict[int, dict[str, int]] = {
            i: _progress_counts(c) for i, c in finished.items()
        }

    def set_total(self, total: int) -> None:
        self._total = total

    def divisor(self) -> int:
        """How many parts each limit is cut into now: it falls as shards finish, and rises
        only when nodes join (``add_slots``)."""
        return max(1, min(self._slots, self._shards - len(self._finished)))

    def report(self, shard: int, counts: dict[str, int] | None, keeps: int = 0) -> int:
        """A running shard's counts so far, and the divisor whose share it keeps now; the
        answer is the divisor for its limits."""
        if counts is not None:
            self._counts[shard] = counts
        divisor = self.divisor()
        self._keeps[shard] = keeps or divisor  # a new shard starts with the share given
        return divisor

    def add_slots(self, slots: int) -> None:
        """More shards may run at once (a node joined): each running one is given a smaller
        share, and ``room`` lets new ones start once every running one keeps to it."""
        self._slots = max(self._slots, slots)

    def room(self) -> int:
        """How many shards may run at once now: after ``add_slots``, the old number until
        every running shard keeps its smaller share, so the shares never add up to more
        than the whole."""
        divisor = self.divisor()
        running = [k for s, k in self._keeps.items() if s not in self._finished]
        if all(keeps >= divisor for keeps in running):
            return self._slots
        return len(running)

    def finish(self, shard: int, counts: dict[str, Any]) -> None:
        self._finished.add(shard)
        self._keeps.pop(shard, None)
        self._counts[shard] = _progress_counts(counts)

    def progress(self) -> JobProgress:
        counts = self._counts.values()
        return JobProgress(
            total=self._total,
            done=sum(c["done"] for c in counts),
            ok=sum(c["ok"] for c in counts),
            retries=sum(c["retries"] for c in counts),
            in_flight=sum(c.get("in_flight", 0) for c in counts),
        )


def _progress_counts(counts: dict[str, Any]) -> dict[str, int]:
    """The progress figures in a shard's counts (``Stats.counts``, also its ``.done`` file)."""
    return {"done": counts["done"], "ok": counts["ok"], "retries": counts["retries"]}


@dataclass(frozen=True, slots=True)
class Shard:
    """One part of the job: lines ``[start, end)`` of ``path`` (bytes), written to ``part``."""

    index: int
    path: str
    start: int
    end: int
    first_line: int  # the global line number of its first line
    part: str


def _run_shard(
    shard: Shard, config: Config, board: Any, rows: Rows | None, voice: Voice
) -> dict[str, Any]:
    """One shard, on a Ray worker: resume from the part file, run the engine, mark it done."""
    import ray

    VOICE.set(voice)  # its records' messages name options as the driver's do
    from .._core._loop import loop_factory

    stem = shard.part.removesuffix(".jsonl")
    with open(stem + ".pid", "w") as f:  # an operator (or a test) can find who runs a shard
        f.write(str(os.getpid()))
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        counts = runner.run(_shard(shard, config, board, rows))
    counts["node"] = ray.get_runtime_context().get_node_id()  # where it ran (its .done says)
    with open(stem + ".done.tmp", "wb") as f:
        f.write(orjson.dumps(counts, option=orjson.OPT_NON_STR_KEYS))
        f.flush()
        os.fsync(f.fileno())
    os.replace(stem + ".done.tmp", stem + ".done")
    os.unlink(stem + ".pid")
    ray.get(board.finish.remote(shard.index, counts))
    return counts


async def _shard(shard: Shard, config: Config, board: Any, rows: Rows | None) -> dict[str, Any]:
    """The job pipeline over one shard's lines, resumed from its part file (JSON lines),
    with this shard's share of the limits; its progress reported to the board."""
    from .._core._job import JobSpec
    from .._engine._pipeline import Pipeline
    from .._io._input import aiter_items
    from .._net._transports import open_transport
    from .._observe._summary import Stats
    from ._workers import share

    stats = Stats()
    divisor = await board.report.remote(shard.index, None)
    # the connection pool is sized for the largest share this shard may grow to
    transport = open_transport(config, pool_size=config.limits.concurrency)
    spec = JobSpec(output=shard.part, format="jsonl", resume=True)
    try:
        pipeline = Pipeline(spec, share(config, divisor), stats=stats, transport=transport)
    except BaseException:
        await transport.aclose()
        raise
    if pipeline.resumed is not None:
        stats.add_earlier(pipeline.resumed)  # the whole job's summary counts every record once
    lines = shard_lines(shard.path, shard.start, shard.end)
    try:
        async with asyncio.TaskGroup() as tg:
            reporter = tg.create_task(_keep_reporting(board, shard, config, pipeline, divisor))
            try:
                await pipeline.run(aiter_items(lines, parser=_parser(shard, rows, pipeline.done)))
            finally:
                reporter.cancel()
    finally:
        try:
            await pipeline.aclose()
        finally:
            await transport.aclose()
    return stats.counts()


def _parser(shard: Shard, rows: Rows | None, done: IdSet | None) -> LineParser:
    """The shard's lines as requests (rows filled into the template), numbered as lines of
    the whole input, without those its part holds."""
    from .._io._input import LineParser
    from .._io._template import RowParser

    if rows is None:
        return LineParser(done=done, start_line=shard.first_line - 1)
    return RowParser(rows.template, csv_rows=rows.csv_rows, header=rows.header, done=done,
                     start_line=shard.first_line - 1)  # fmt: skip


async def _keep_reporting(
    board: Any, shard: Shard, config: Config, pipeline: Pipeline, divisor: int
) -> None:
    """Tell the board how far this shard is and which share it keeps; take on the share it
    gives (larger as shards finish, smaller when nodes join)."""
    from ._workers import share

    engine, stats = pipeline.engine, pipeline.stats
    assert stats is not None
    keeps = divisor
    while True:
        await asyncio.sleep(REPORT_EVERY)
        progress = _progress_counts(stats.counts())
        progress["in_flight"] = engine.in_flight
        if keeps != divisor and engine.fits():
            keeps = divisor  # what was in flight beyond the smaller share has finished
        try:
            now = await board.report.remote(shard.index, progress, keeps)
        except Exception:  # the driver is gone or busy: run on with the share we have
            continue
        if now != divisor:
            divisor = now
            engine.resize(share(config, divisor))
            if now < keeps or engine.fits():
                keeps = now  # a larger share is kept at once


@contextlib.contextmanager
def _on_loopback(ray: Any, wanted: bool) -> Iterator[None]:
    """While Ray starts (or joins) a cluster on this machine, keep 127.0.0.1 what it is.

    Ray rewrites a loopback node address to the machine's own IP unless clusters are "off"
    (``services.resolve_ip_for_localhost``): a Ray that fanfetch starts would then listen on
    every interface (its GCS, raylet, workers and driver bind 0.0.0.0 unless their node
    address is loopback), and the join of a cluster bound to 127.0.0.1 would wait for ever.
    The processes started meanwhile inherit the setting; the caller's environment and Ray's
    constant are put back afterwards.
    """
    if not wanted:
        yield
        return
    constants = ray._private.ray_constants
    before_env = os.environ.get(_CLUSTERS_ENV)
    before = constants.ENABLE_RAY_CLUSTER
    os.environ[_CLUSTERS_ENV] = "0"
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(_CLUSTERS_ENV, None)
        else:
            os.environ[_CLUSTERS_ENV] = before_env


_CLUSTERS_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's name: "0" keeps loopback loopback


def refuse_what_a_cluster_cannot_do(config: Config) -> None:
    """The rules of a cluster job's options, written once for the CLI and the API."""
    if config.pages.paginate is not None:
        raise ConfigError(
            "paginate", config.pages.paginate, "a cluster job does not follow pages yet: run it "
            "without a cluster, or without paginate"
        )  # fmt: skip


def run_on_ray(
    source: str,
    out_dir: str,
    config: Config,
    *,
    address: str | None = None,
    shards: int | None = None,
    resume: bool = False,
    template: UrlTemplate | None = None,
    csv_rows: bool = False,
    on_progress: Callable[[JobProgress], None] | None = None,
    every: float = 0.25,
    warn: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the job on Ray; return each shard's counts (for the summary).

    ``on_progress`` is called on the driver every ``every`` seconds with the whole job's counts.
    """
    refuse_what_a_cluster_cannot_do(config)
    target = address or os.environ.get("RAY_ADDRESS") or None  # None: start a local one
    if target is not None and target != "auto":
        _check_reachable(target)
    try:
        import ray
    except ImportError:
        raise UsageError(
            "`cluster=ray` needs Ray: pip install 'fanfetch[ray]' (on every node)"
        ) from None
    from .._io._input import open_source

    open_source(source).close()  # unreadable input: say so before starting a cluster
    _prepare_parts(out_dir, resume=resume)
    _start_ray(ray, address, target)
    try:
        job = _Job(ray, source, out_dir, config, shards=shards, resume=resume,
                   template=template, csv_rows=csv_rows, warn=warn)  # fmt: skip
        return job.drive(on_progress, every)
    finally:
        ray.shutdown()


def _prepare_parts(out_dir: str, *, resume: bool) -> None:
    """The parts' directory, made; a new job's old parts removed."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write parts to {out_dir!r}: {exc.strerror or exc}") from exc
    if not resume:
        for name in os.listdir(out_dir):
            if name.startswith("part-"):
                os.unlink(os.path.join(out_dir, name))


def _start_ray(ray: Any, address: str | None, target: str | None) -> None:
    """Join the cluster at ``target``, or start a local one that talks over loopback only."""
    loopback = target is None or _is_loopback(target)
    local: dict[str, Any] = {"_node_ip_address": "127.0.0.1"} if loopback and not address else {}
    try:
        with _on_loopback(ray, loopback and not (target or "").startswith("ray://")):
            ray.init(
                # "local": a Ray of its own, never the cluster last started on this machine,
                # which ray.init() would join (or wait for, when it has gone)
                address=address or ("local" if target is None else None),
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
                configure_logging=False,
                **local,
            )
    except (ConnectionError, RuntimeError, TimeoutError) as exc:  # no traceback for these
        where = target or "a new local Ray"
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FanfetchError(f"Ray could not be joined ({where}): {message}") from None


class _Job:
    """The driver's side of one cluster job: its shards planned and counted, the board
    made, then the shards run (``drive``), no more at once than the limits can be cut."""

    def __init__(
        self,
        ray: Any,
        source: str,
        out_dir: str,
        config: Config,
        *,
        shards: int | None,
        resume: bool,
        template: UrlTemplate | None,
        csv_rows: bool,
        warn: Callable[[str], None] | None,
    ) -> None:
        self._ray, self._config, self._warn = ray, config, warn
        # shards running at once: one per CPU, and no more than the limits have slots for
        self.slots = slots = _slots(ray, config)
        self.rows, skip, before = None, 0, 0
        if template is not None:
            self.rows = Rows(template, csv_rows)
            if csv_rows:  # shards start after the header, and each is given it
                header, before, skip = csv_header(source)
                self.rows = Rows(template, True, header)
        plan = plan_shards(source, shards or 4 * slots, start=skip)
        self.finished: dict[int, Any] = {}
        for i in range(len(plan)):
            done = os.path.join(out_dir, f"part-{i:05d}.done")
            if resume and os.path.exists(done):
                with open(done, "rb") as f:
                    self.finished[i] = orjson.loads(f.read())
        # The board lives on the driver's node, so that losing any other node loses no
        # more than the shards it ran; its process starts while the lines are counted.
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.board: Any = (
            ray.remote(num_cpus=0)(Board)
            .options(scheduling_strategy=here)
            .remote(len(plan), slots, self.finished)
        )
        count = ray.remote(max_retries=5)(_count)
        sizes = _wait_all(
            ray, [count.remote(source, s, e) for s, e in plan], "counting the input's lines",
            warn,
        )  # fmt: skip
        firsts = [1 + before + sum(lines for lines, _ in sizes[:i]) for i in range(len(plan))]
        self.board.set_total.remote(sum(requests for _, requests in sizes))
        self.todo = [
            Shard(i, source, s, e, first, os.path.join(out_dir, f"part-{i:05d}.jsonl"))
            for i, ((s, e), first) in enumerate(zip(plan, firsts, strict=True))
            if i not in self.finished
        ]
        self.todo.reverse()  # popped from the end: in order

    def drive(
        self, on_progress: Callable[[JobProgress], None] | None, every: float
    ) -> list[dict[str, Any]]:
        """Run every shard to its end (Ray runs a shard again on a node lost); each shard's
        counts, those finished before a resume included."""
        ray, board, todo = self._ray, self.board, self.todo
        run = ray.remote(max_retries=5, retry_exceptions=False)(_run_shard)
        voice = VOICE.get()
        results: list[Any] = list(self.finished.values())
        pending: list[Any] = []
        last: tuple[int, int] | None = None
        quiet_since = time.monotonic()
        room, looked = self.slots, time.monotonic()
        while todo or pending:
            if todo and time.monotonic() - looked > CPUS_EVERY:  # nodes may have joined
                looked = time.monotonic()
                room = self._room()
            while todo and len(pending) < room:  # no more at once than the limits can be cut
                pending.append(run.remote(todo.pop(), self._config, board, self.rows, voice))
            ready, pending = ray.wait(pending, num_returns=1, timeout=every)
            results.extend(ray.get(ready))
            progress = _ask(ray, board.progress.remote(), "asking the job's board how far it is")
            if on_progress is not None:
                on_progress(progress)
            now = (progress.done, len(results))
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since > STALL_AFTER and self._warn is not None:
                self._warn(f"no request has finished for {STALL_AFTER:g} s ({len(pending)} "
                           "shard(s) running, or waiting for Ray to place them)")  # fmt: skip
                quiet_since = time.monotonic()
        return results

    def _room(self) -> int:
        """How many shards may run at once now (more when nodes joined)."""
        more = _slots(self._ray, self._config)
        if more > self.slots:
            self.slots = more
            self.board.add_slots.remote(more)
        return int(_ask(self._ray, self.board.room.remote(), "asking the job's board for room"))


def cluster_results(
    requests: str | os.PathLike[str] | Iterable[Request | Mapping[str, Any] | str],
    *,
    cluster: str,
    output: str | os.PathLike[str],
    config: Config,
    shards: int | None = None,
    resume: bool = False,
) -> Iterator[Result]:
    """The Python API's cluster job: run it, then yield each result back from the parts.

    ``requests`` is a path every node can read, or requests in memory, which are first
    written to ``output/input.jsonl`` (so ``output`` must then be on storage every node sees).
    The parts are read one line at a time: iterating does not hold the job in memory.
    """
    address = cluster_address(cluster)
    refuse_what_a_cluster_cannot_do(config)  # before anything is spilled
    out_dir = os.fspath(output)
    if isinstance(requests, str | os.PathLike):
        source = os.fspath(requests)
    else:
        source = _spill(requests, out_dir)
    run_on_ray(source, out_dir, config, address=address, shards=shards, resume=resume)
    for name in sorted(os.listdir(out_dir)):
        if name.startswith("part-") and name.endswith(".jsonl"):
            for record in JSON_LINES.read(os.path.join(out_dir, name)):
                yield Result.from_record(record)


def _spill(requests: Iterable[Request | Mapping[str, Any] | str], out_dir: str) -> str:
    """Write in-memory requests as input lines (atomically: a resume never sees half a file)."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "input.jsonl")
    with open(path + ".tmp", "wb") as f:
        for item in requests:
            if isinstance(item, Request):
                line = item.to_dict()
                if line["id"] is None:
                    del line["id"]  # the default id is the position, as elsewhere
                f.write(orjson.dumps(line))
            elif isinstance(item, Mapping):
                f.write(orjson.dumps(dict(item)))
            else:
                f.write(orjson.dumps(item) if "\n" in item else item.encode())
            f.write(b"\n")
    os.replace(path + ".tmp", path)
    return path
