"""How much of ``--rate`` a run delivers, when nothing else limits it: the whole
``fanfetch run`` process against the embedded mock API (no latency, a process of its own).

    python benchmarks/rate.py [--seconds 5] [--rates 100,1000,3000]

Each rate asks for ``seconds * rate`` requests at ``-c 100``; the delivered rate is the
requests over the run's own wall time (the summary's ``wall_s``). The contract (the GCRA
meter, ``_limits.GCRA``): at least 98% of the rate, and no window of t seconds with more
than ``rate * t + burst`` starts plus 5 ms' worth (that half is tested on a fake clock).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from fanfetch._mockapi import mock_api_process


def delivered(base: str, rate: int, seconds: float, folder: Path) -> float:
    src = folder / f"in-{rate}.txt"
    src.write_text("".join(f"{base}/items/{i}\n" for i in range(int(rate * seconds))))
    summary = folder / "summary.json"
    subprocess.run(
        [sys.executable, "-m", "fanfetch", "run", str(src), "-o", "/dev/null", "-q",
         "-c", "100", "--rate", f"{rate}/s", "--summary-json", str(summary)],
        check=True,
    )  # fmt: skip
    figures = json.loads(summary.read_text())
    return float(figures["requests"] / figures["wall_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    # the embedded API answers about 4,000 requests a second here: above that it is the limit
    parser.add_argument("--rates", default="100,1000,3000")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, mock_api_process() as base:
        print("| --rate | delivered | of the rate |\n|---:|---:|---:|")
        for rate in (int(r) for r in args.rates.split(",")):
            got = delivered(base, rate, args.seconds, Path(tmp))
            print(f"| {rate:,}/s | {got:,.1f}/s | {100 * got / rate:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
