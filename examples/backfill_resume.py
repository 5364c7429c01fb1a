"""A backfill that survives being stopped: run it, kill it, run it again with --resume.

The second run skips every id the output already holds and appends the rest, so the file
ends with exactly one record per request. Run: python examples/backfill_resume.py
"""

import http.server
import os
import signal
import subprocess
import sys
import tempfile
import threading

import fanfetch

reached = threading.Event()  # set when the run is some way in: then it is killed


class Tripwire(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        reached.set()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


tripwire = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tripwire)
threading.Thread(target=tripwire.serve_forever, daemon=True).start()

with fanfetch.MockAPI(latency_ms=20) as api, tempfile.TemporaryDirectory() as tmp:
    src, out = os.path.join(tmp, "ids.txt"), os.path.join(tmp, "out.jsonl")
    urls = [f"{api.url}/items/{i}" for i in range(2000)]
    # the tripwire is request 301: when it arrives the run is some way in, and is killed
    # there as a crash would kill it, however fast or slow the machine is
    urls.insert(300, f"http://127.0.0.1:{tripwire.server_port}/tripwire")
    with open(src, "w") as f:
        f.writelines(url + "\n" for url in urls)
    run = [sys.executable, "-m", "fanfetch", "run", src, "-o", out, "-q", "-c", "20"]

    first = subprocess.Popen(run)
    assert reached.wait(60), "the first run never reached the tripwire"
    first.send_signal(signal.SIGKILL)
    first.wait()
    with open(out) as f:
        print("after the kill:", sum(1 for _ in f), "records")

    subprocess.run([*run, "--resume"], check=True)
    with open(out) as f:
        ids = [line.split('"id":', 1)[1].split(",", 1)[0] for line in f]
    print("after --resume:", len(ids), "records,", len(set(ids)), "distinct ids")
    assert len(ids) == len(set(ids)) == len(urls), "one record per request"
tripwire.shutdown()
