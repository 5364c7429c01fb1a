"""``--cluster ray``: one job over many machines, on Ray, with fanfetch's engine on each.

The input file is cut into shards by byte range, so no node reads the whole of it: a line
belongs to the shard its first byte falls in. A first, quick pass counts each shard's lines
(on the workers, in parallel) so that every request keeps its global line number as its
default id. Then each shard runs as a Ray task with fanfetch's own engine (its loop, limits
and retries) and writes ``part-NNNNN.jsonl``, in the ordinary record format.

Guarantees, as for one machine: each shard resumes from its own part file exactly as
``--resume`` does, so a task whose worker or node dies is retried by Ray and repeats only
what was in flight; a finished shard leaves ``part-NNNNN.done`` (its counts), which a
``--resume`` of the whole job skips. Limits hold for the whole job: each of the K shards that
can run at once gets 1/K of the concurrency, per-host limit, rates and budget. (They are not
yet handed on when a shard finishes early: the totals hold, but the last shards run under
their share.)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import orjson

from ._config import Config
from ._exceptions import UsageError

__all__ = ["plan_shards", "run_on_ray", "shard_lines"]


def plan_shards(path: str, shards: int) -> list[tuple[int, int]]:
    """Byte ranges ``[start, end)`` that cover the file in about equal parts."""
    size = os.path.getsize(path)
    shards = max(1, min(shards, size or 1))
    cuts = [size * i // shards for i in range(shards + 1)]
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


def _count(path: str, start: int, end: int) -> int:
    return sum(1 for _ in shard_lines(path, start, end))


def _run_shard(
    path: str,
    start: int,
    end: int,
    first_line: int,
    part: str,
    config: Config,
) -> dict[str, Any]:
    """One shard, on a Ray worker: resume from the part file, run the engine, mark it done."""
    from ._loop import loop_factory

    with open(part.removesuffix(".jsonl") + ".pid", "w") as f:  # an operator (or test) can
        # find the worker running this shard
        f.write(str(os.getpid()))
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        counts = runner.run(_shard(path, start, end, first_line, part, config))
    with open(part.removesuffix(".jsonl") + ".done.tmp", "wb") as f:
        f.write(orjson.dumps(counts))
        f.flush()
        os.fsync(f.fileno())
    os.replace(part.removesuffix(".jsonl") + ".done.tmp", part.removesuffix(".jsonl") + ".done")
    os.unlink(part.removesuffix(".jsonl") + ".pid")
    return counts


async def _shard(
    path: str, start: int, end: int, first_line: int, part: str, config: Config
) -> dict[str, Any]:
    from ._input import LineParser, aiter_items
    from ._output import RecordWriter
    from ._resume import prepare_resume
    from ._scheduler import Engine
    from ._summary import Stats

    state = prepare_resume(part)
    stats = Stats()
    parser = LineParser(done=state.done, start_line=first_line - 1)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    writer = RecordWriter(fd, include_headers=config.include_headers)
    try:
        async with Engine(config, listeners=[stats]) as engine:
            await engine.run(aiter_items(shard_lines(path, start, end), parser=parser), writer.put)
    finally:
        writer.close()
        os.close(fd)
    return {
        "resumed": state.records,
        "stats": stats.as_dict(),
        "buckets": {str(k): v for k, v in stats.latency.buckets.items()},
        "max_ms": stats.latency.max,
        "retries": stats.retries,
    }


def run_on_ray(
    source: str,
    out_dir: str,
    config: Config,
    *,
    address: str | None = None,
    shards: int | None = None,
    resume: bool = False,
) -> list[dict[str, Any]]:
    """Run the job on Ray; return each shard's counts (for the summary)."""
    try:
        import ray
    except ImportError:
        raise UsageError(
            "--cluster ray needs Ray: pip install 'fanfetch[ray]' (on every node)"
        ) from None
    from ._workers import share

    os.makedirs(out_dir, exist_ok=True)
    if not resume:
        for name in os.listdir(out_dir):
            if name.startswith("part-"):
                os.unlink(os.path.join(out_dir, name))
    local: dict[str, Any] = {"_node_ip_address": "127.0.0.1"} if address is None else {}
    ray.init(  # a local cluster talks over loopback only
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        ignore_reinit_error=True,
        configure_logging=False,
        **local,
    )
    try:
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        plan = plan_shards(source, shards or 4 * slots)
        count = ray.remote(_count)
        sizes = ray.get([count.remote(source, s, e) for s, e in plan])
        firsts = [1 + sum(sizes[:i]) for i in range(len(plan))]
        part_config = share(config, min(slots, len(plan)))
        run = ray.remote(max_retries=5, retry_exceptions=False)(_run_shard)
        results: list[Any] = []
        pending = []
        for i, ((s, e), first) in enumerate(zip(plan, firsts, strict=True)):
            part = os.path.join(out_dir, f"part-{i:05d}.jsonl")
            done = os.path.join(out_dir, f"part-{i:05d}.done")
            if resume and os.path.exists(done):
                with open(done, "rb") as f:
                    results.append(orjson.loads(f.read()))
                continue
            pending.append(run.remote(source, s, e, first, part, part_config))
        results.extend(ray.get(pending))
        return results
    finally:
        ray.shutdown()
