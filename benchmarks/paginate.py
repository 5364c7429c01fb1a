"""CPU per page of ``--paginate`` against CPU per plain request: the same number of fetches
and the same bodies, through the whole ``fanfetch run`` process.

    python benchmarks/paginate.py [--chains 1000] [--pages 20] [--rounds 3]

The embedded mock API (no latency, in a process of its own) serves ``/repos/{repo}/issues``
with one issue a page: the plain run asks page 2 of N lists (the same body and ``Link``
header a page of a chain has, not followed), the paginated one N/pages chains of ``pages``
pages following the ``Link`` header. Runs take turns; CPU is user + sys
of the fanfetch process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

from fanfetch._mockapi import mock_api_process


def measure(args: list[str]) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "fanfetch", "run", *args, "-q"])
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"fanfetch run {' '.join(args)} failed")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.chains * args.pages
    with mock_api_process("--latency-ms", "0") as base, tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "plain.txt")
        with open(plain, "w") as f:
            # a middle page of a list as long as a chain: the same body and Link header
            f.writelines(
                f"{base}/repos/p{i}/issues?total={args.pages}&per_page=1&page=2\n" for i in range(n)
            )
        chains = os.path.join(tmp, "chains.txt")
        with open(chains, "w") as f:
            f.writelines(
                f"{base}/repos/c{i}/issues?total={args.pages}&per_page=1\n"
                for i in range(args.chains)
            )
        out = os.path.join(tmp, "out.jsonl")
        cpu: dict[str, list[float]] = {"plain": [], "paginated": []}
        for _ in range(args.rounds):
            cpu["plain"].append(measure([plain, "-o", out]))
            cpu["paginated"].append(measure([chains, "-o", out, "--paginate", "link"]))
    per = {k: statistics.median(v) / n * 1e6 for k, v in cpu.items()}
    for kind, values in cpu.items():
        spread = ", ".join(f"{v / n * 1e6:.0f}" for v in values)
        print(f"{kind:10} {per[kind]:5.0f} us of CPU a fetch (runs: {spread})")
    print(f"paginated / plain: {per['paginated'] / per['plain']:.2f}x ({n:,} fetches each)")


if __name__ == "__main__":
    main()
