"""A CPU-bound transform in a process pool keeps fetching going; on the loop it stalls it.

    .venv/bin/python benchmarks/transform.py [N]

Fetches N items from the mock API (20 ms latency, concurrency 50) with a transform that
burns a few milliseconds of pure Python per record, once on the event loop
(``transform_workers=0``) and once in a process pool of one worker per core, and prints the
wall time and rate of each.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.transform_funcs import burn

import fanfetch


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    with fanfetch.MockAPI(latency_ms=20) as api:
        urls = [f"{api.url}/items/{i}" for i in range(n)]
        for label, workers in (("on the loop", 0), (f"process pool ({os.cpu_count()})", None)):
            start = time.perf_counter()
            results = fanfetch.run(urls, concurrency=50, transform=burn, transform_workers=workers)
            wall = time.perf_counter() - start
            assert all(r.ok for r in results)
            print(f"{label:>22}: {n} fetched and transformed in {wall:5.2f} s ({n / wall:6.0f}/s)")


if __name__ == "__main__":
    main()
