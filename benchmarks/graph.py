"""A job file's tree against a flat run of the same requests: CPU per request and peak
memory of the whole ``fanfetch run`` process, the embedded API in a process of its own.

    python benchmarks/graph.py [--parents 1000] [--children 20] [--pages 5] [--rounds 3]

The tree: each parent (``/repos/pN/issues``, one page of ``children`` issues) makes one
child per issue (``/repos/pN-K/issues``, ``pages`` pages of one issue by ``Link``). The
flat run is one input file of the parents' and the children's URLs, paged the same way.
The two take turns, round by round; figures are medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fanfetch._mockapi import mock_api_process

JOB = """\
[run]
concurrency = 100
paginate = "link"

[[step]]
name = "parents"
input = "parents.txt"

[[step]]
name = "children"
from = "parents"
items = "items"
url = "{base}/repos/{{title}}/issues?per_page=1&total={pages}"
"""


def measure(argv: list[str]) -> tuple[float, float, float]:
    """(CPU seconds, peak RSS MB, wall seconds) of one whole process.

    The peak is the process's own high-water mark (``VmHWM``, read until it ends): the
    ``ru_maxrss`` that ``wait4`` reports counts this process's size before the exec too.
    """
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    peak = 0.0
    while True:
        peak = max(peak, _high_water_mb(proc.pid))  # a zombie has none: the last read stands
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.05)
    proc.returncode = status  # reaped here, not by Popen
    wall = time.perf_counter() - began
    if status != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {status}")
    return usage.ru_utime + usage.ru_stime, peak, wall


def _high_water_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parents", type=int, default=1000)
    parser.add_argument("--children", type=int, default=20)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, mock_api_process("--latency-ms", "0") as base:
        folder = Path(tmp)
        parents = [f"{base}/repos/p{n}/issues?per_page={args.children}&total={args.children}"
                   for n in range(args.parents)]  # fmt: skip
        (folder / "parents.txt").write_text("".join(url + "\n" for url in parents))
        (folder / "job.toml").write_text(JOB.format(base=base, pages=args.pages))
        children = [f"{base}/repos/p{n}%20issue%20{k}/issues?per_page=1&total={args.pages}"
                    for n in range(args.parents) for k in range(1, args.children + 1)]  # fmt: skip
        (folder / "flat.txt").write_text("".join(url + "\n" for url in parents + children))
        requests = args.parents + len(children) * args.pages
        fanfetch = [sys.executable, "-m", "fanfetch", "run"]
        runs = {
            "tree (job file)": [*fanfetch, str(folder / "job.toml"), "-o", str(folder / "out"),
                                "-q"],
            "flat (one input)": [*fanfetch, str(folder / "flat.txt"), "-o",
                                 str(folder / "flat.jsonl"), "-q", "-c", "100",
                                 "--paginate", "link"],
        }  # fmt: skip
        figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, argv in runs.items():
                figures[name].append(measure(argv))
        print(f"{requests:,} requests a run ({args.parents:,} parents x {args.children} "
              f"children x {args.pages} pages), {args.rounds} rounds, medians\n")  # fmt: skip
        print("| run | CPU µs/req | peak RSS MB | wall s |\n|---|---:|---:|---:|")
        for name, rows in figures.items():
            cpu = statistics.median(r[0] for r in rows) / requests * 1e6
            rss = statistics.median(r[1] for r in rows)
            wall = statistics.median(r[2] for r in rows)
            print(f"| {name} | {cpu:.1f} | {rss:.1f} | {wall:.2f} |")


if __name__ == "__main__":
    main()
