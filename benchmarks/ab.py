"""Two or more clients against the same server, taking turns: the quick check for one change.

    python benchmarks/ab.py [--requests N] [--rounds R] [--concurrency C] [--latency-ms MS]
                            [CLIENT ...]

The full suite takes a quarter of an hour and compares ten clients; to see whether a change
to the hot path moved fanfetch against the hand-written loop, this runs just the clients
named (by default ``aiohttp_pool`` and ``fanfetch_cli``), in turns, so that the machine's
drift hits them alike, and prints the median and the spread of each. Servers and clients
are those of ``run.py``: nginx (or the embedded API) on loopback, or with ``--latency-ms``
the fixed-delay server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clients", nargs="*", default=["aiohttp_pool", "fanfetch_cli"])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, help="use the fixed-delay server")
    parser.add_argument("--https", action="store_true", help="nginx over TLS (HTTP/2 offered)")
    parser.add_argument("--pin", action="store_true", help="nginx on CPU 0, each client on CPU 1")
    args = parser.parse_args()
    run.compile_fanfetch()
    n = args.requests
    runs: dict[str, list[run.Run]] = {client: [] for client in args.clients}
    with tempfile.TemporaryDirectory() as tmp:
        cpu = 1 if args.pin else None
        server = (
            run.latency_server(args.latency_ms)
            if args.latency_ms
            else run.fast_server(tls=args.https, cpu=0 if args.pin else None)
        )
        with server as address:
            base = address if isinstance(address, str) else address[0]
            urls = run.write_urls(os.path.join(tmp, "urls.txt"), base, n)
            for _ in range(args.rounds):
                for client in args.clients:
                    result = run.measure(client, urls, args.concurrency, cpu=cpu)
                    if result.ok != n:
                        sys.exit(f"{client}: {result.ok} of {n} requests succeeded")
                    runs[client].append(result)
    for client, results in runs.items():
        walls = [r.wall for r in results]
        cpu = [r.cpu / n * 1e6 for r in results]
        print(
            f"{client:20} wall {statistics.median(walls):6.2f} s "
            f"({min(walls):.2f}-{max(walls):.2f})  {n / statistics.median(walls):7,.0f}/s  "
            f"CPU {statistics.median(cpu):5.0f} us/request ({min(cpu):.0f}-{max(cpu):.0f})"
        )


if __name__ == "__main__":
    main()
