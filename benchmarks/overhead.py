"""fanfetch's own CPU per request, without the network: the figure to watch on the hot path.

Against a real server the process's CPU per request varies by +-10% from run to run on a small
VM, which hides changes of a few microseconds. Here the transport is a ``MockTransport`` that
answers at once, and everything else is the CLI's path: the input file read lazily and
parsed, the engine's workers and limits, fanfetch's HTTP layer (``_http``), the record
encoded and written to a file, the summary's counts. What is left is fanfetch's own layer;
aiohttp's cost comes on top of it.

    python benchmarks/overhead.py [N] [REPEATS]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time

from fanfetch import Config, Limits, MockTransport, Request, Response
from fanfetch._core._loop import loop_factory
from fanfetch._core._tuning import collect_young_rarely
from fanfetch._engine._scheduler import Engine
from fanfetch._io._input import aiter_items, open_source
from fanfetch._io._output import RecordWriter
from fanfetch._observe._summary import Stats

BODY = b'{"id": 1, "name": "item", "price": 9.5, "tags": ["a", "b"]}\n'  # as nginx serves it
HEADERS = {"Content-Type": "application/json", "Content-Length": str(len(BODY))}


def answer(request: Request) -> Response:
    return Response(200, BODY, headers=HEADERS, content_type="application/json")


async def one_run(urls: str, out: str) -> None:
    stats = Stats()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    writer = RecordWriter(fd)
    config = Config(limits=Limits(concurrency=100))
    try:
        async with Engine(config, transport=MockTransport(answer), listeners=[stats]) as engine:
            await engine.run(aiter_items(open_source(urls)), writer.put)
    finally:
        writer.close()
        os.close(fd)
    assert stats.ok == stats.done, stats.as_dict()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory() as tmp:
        urls = os.path.join(tmp, "urls.txt")
        with open(urls, "w") as f:
            f.writelines(f"http://127.0.0.1:8080/items/{i}\n" for i in range(n))
        collect_young_rarely()  # as `fanfetch run` does for its own process
        cpu = []
        for _ in range(repeats):
            start = time.process_time()
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                runner.run(one_run(urls, os.path.join(tmp, "out.jsonl")))
            cpu.append((time.process_time() - start) / n * 1e6)
    print(
        f"fanfetch's own layer: {statistics.median(cpu):.1f} us of CPU per request "
        f"(median of {repeats}; runs {', '.join(f'{c:.1f}' for c in cpu)})"
    )


if __name__ == "__main__":
    main()
