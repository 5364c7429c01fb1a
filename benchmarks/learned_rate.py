"""``--rate auto`` against an advertised limit: the rate a whole ``fanfetch run`` achieves
and the 429s it gets, for each header form, from the embedded API's fixed windows (a
process of its own, ``/limited/{form}/{id}``).

    python benchmarks/learned_rate.py [--limit 2000] [--seconds 6] [--forms x,draft]

The achieved rate is what the server let through in its whole windows after the second
(the first is spent before any answer has taught the pace, the second may begin with the
rest the first ended in); 429s are counted in every window, and after the first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from fanfetch._mockapi import mock_api_process

FORMS = "x,x-epoch,ietf,dict,draft"


def one(base: str, form: str, limit: int, seconds: float, folder: Path) -> str:
    src = folder / f"in-{form}.txt"
    n = int(limit * seconds)
    src.write_text("".join(f"{base}/limited/{form}/{i}?limit={limit}\n" for i in range(n)))
    subprocess.run(
        [sys.executable, "-m", "fanfetch", "run", str(src), "-o", "/dev/null", "-q",
         "-c", "100", "--rate", "auto"],
        check=True,
    )  # fmt: skip
    with urllib.request.urlopen(f"{base}/limited/stats", timeout=10) as answer:
        windows = [w for w in json.load(answer) if w["form"] == form]
    steady = windows[2:-1]
    achieved = sum(w["ok"] for w in steady) / len(steady) if steady else float("nan")
    refused = sum(w["refused"] for w in windows)
    later = sum(w["refused"] for w in windows[1:])
    return (f"| {form} | {limit:,}/s | {n:,} | {achieved:,.0f}/s | {100 * achieved / limit:.1f}% "
            f"| {refused} | {later} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--forms", default=FORMS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, mock_api_process("--latency-ms", "5") as base:
        print("| form | advertised | requests | achieved | of it | 429s | 429s after the first "
              "window |\n|---|---:|---:|---:|---:|---:|---:|")  # fmt: skip
        for form in args.forms.split(","):
            print(one(base, form, args.limit, args.seconds, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
