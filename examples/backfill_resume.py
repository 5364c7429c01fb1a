"""A backfill that survives being stopped: run it, kill it, run it again with --resume.

The second run skips every id the output already holds and appends the rest, so the file
ends with exactly one record per request. Run: python examples/backfill_resume.py
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

import fanfetch

with fanfetch.MockAPI(latency_ms=20) as api, tempfile.TemporaryDirectory() as tmp:
    src, out = os.path.join(tmp, "ids.txt"), os.path.join(tmp, "out.jsonl")
    with open(src, "w") as f:
        f.writelines(f"{api.url}/items/{i}\n" for i in range(2000))
    run = [sys.executable, "-m", "fanfetch", "run", src, "-o", out, "-q", "-c", "20"]

    def records_so_far() -> int:
        try:
            with open(out, "rb") as f:
                return f.read().count(b"\n")
        except FileNotFoundError:
            return 0

    first = subprocess.Popen(run)
    deadline = time.monotonic() + 60
    while records_so_far() < 200 and time.monotonic() < deadline:  # some way in, however
        time.sleep(0.01)  # slow the machine, then stop it as a crash would
    first.send_signal(signal.SIGKILL)
    first.wait()
    with open(out) as f:
        print("after the kill:", sum(1 for _ in f), "records")

    subprocess.run([*run, "--resume"], check=True)
    with open(out) as f:
        ids = [line.split('"id":', 1)[1].split(",", 1)[0] for line in f]
    print("after --resume:", len(ids), "records,", len(set(ids)), "distinct ids")
    assert len(ids) == len(set(ids)) == 2000, "one record per request"
