"""The benchmark suite: fanfetch against the other ways people make many HTTP calls.

    make bench                          # the whole suite (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick

Every client runs as a whole process against servers on 127.0.0.1 that the suite starts and
stops: nginx for the fast scenario (one worker, keep-alive, no access log, a small JSON file;
install it with ``apt-get install nginx-light``; without it the suite falls back to the
embedded mock API, with a warning), and a uvloop server that answers after a fixed delay for
the latency-bound scenarios. Each figure is the median of several runs, with the spread; the
clients of a scenario take turns, run by run, and the ratios compare figures taken in the
same run of the suite. Results go to ``RESULTS.md``,
``results.json`` and, when matplotlib is installed (``pip install -e '.[bench]'``),
``results.png``, all beside this file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable
ITEM = b'{"id": 1, "name": "item", "price": 9.5, "tags": ["a", "b"]}\n'
# about 140 KB of JSON: big enough that parsing and re-encoding, not the network, is the limit
BIG = json.dumps(
    {
        "items": [
            {
                "id": i,
                "name": f"item {i}",
                "tags": ["a", "b", "c"],
                "price": i * 1.5,
                "desc": "x" * 40,
            }
            for i in range(1100)
        ]
    }
).encode()

# -- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _pin(cpu: int | None) -> Any:
    """A preexec_fn that keeps a process on one CPU (None: anywhere)."""
    if cpu is None or not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@contextlib.contextmanager
def _test_ca(tmp: str) -> Iterator[tuple[str, str]]:
    """A certificate for 127.0.0.1 from a CA made here, trusted by the clients started while
    this lasts: SSL_CERT_FILE for those that read it, FANFETCH_BENCH_CA for the rest."""
    # made in a process of its own: importing trustme (cryptography) here would grow this
    # process, and a client's peak RSS as os.wait4 reports it starts from its parent's size
    script = (
        "import sys, trustme; ca = trustme.CA(); tmp = sys.argv[1]; "
        "cert = ca.issue_cert('127.0.0.1').private_key_and_cert_chain_pem; "
        "cert.write_to_path(tmp + '/server.pem'); ca.cert_pem.write_to_path(tmp + '/ca.pem')"
    )
    subprocess.run([PY, "-c", script, tmp], check=True)
    saved = {k: os.environ.get(k) for k in ("SSL_CERT_FILE", "FANFETCH_BENCH_CA")}
    os.environ["SSL_CERT_FILE"] = os.environ["FANFETCH_BENCH_CA"] = f"{tmp}/ca.pem"
    try:
        yield f"{tmp}/server.pem", f"{tmp}/ca.pem"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def fast_server(tls: bool = False, cpu: int | None = None) -> Iterator[tuple[str, str]]:
    """nginx serving one small JSON file (over TLS with HTTP/2 offered, when ``tls``; kept
    on ``cpu`` when given); the embedded mock API when nginx is missing."""
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )
    with (
        tempfile.TemporaryDirectory(prefix="fanfetch-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        listen = ""
        if tls:
            if not nginx:
                raise RuntimeError("the TLS scenarios need nginx (apt-get install nginx-light)")
            pem, _ = stack.enter_context(_test_ca(tmp))
            listen = f" ssl http2; ssl_certificate {pem}; ssl_certificate_key {pem}"
        if nginx:
            os.chmod(tmp, 0o755)  # nginx's worker runs as an unprivileged user: let it read
            port = free_port()
            Path(tmp, "logs").mkdir()
            Path(tmp, "item.json").write_bytes(ITEM)
            Path(tmp, "big.json").write_bytes(BIG)
            conf = Path(tmp, "nginx.conf")
            conf.write_text(
                f"worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;\n"
                "events { worker_connections 8192; }\n"
                "http { access_log off; keepalive_requests 100000000; keepalive_timeout 120s;\n"
                "  default_type application/json;\n"
                f"  server {{ listen 127.0.0.1:{port}{listen}; root {tmp};\n"
                "    location /big/ { try_files /big.json =404; }\n"
                "    location / { try_files /item.json =404; } } }\n"
            )
            proc = subprocess.Popen(
                [nginx, "-c", str(conf), "-p", tmp],
                stderr=subprocess.DEVNULL,
                preexec_fn=_pin(cpu),
            )
            name = (
                "nginx "
                + subprocess.run([nginx, "-v"], capture_output=True, text=True)
                .stderr.strip()
                .rpartition("/")[2]
            )
        else:
            print(
                "warning: nginx is not installed (apt-get install nginx-light); using the "
                "embedded mock API, which is much slower: the fast scenario measures it, not "
                "the clients",
                file=sys.stderr,
            )
            port = free_port()
            proc = subprocess.Popen(
                [PY, "-m", "fanfetch", "mock-api", "--port", str(port), "--latency-ms", "0"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            name = "fanfetch mock-api (nginx missing)"
        try:
            wait_for_port(port)
            yield f"{'https' if tls else 'http'}://127.0.0.1:{port}", name
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.contextmanager
def latency_server(delay_ms: float) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [PY, str(HERE / "latency_server.py"), str(port), str(delay_ms)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


# -- clients ------------------------------------------------------------------------------------

SLOW = {
    "requests_serial",
    "requests_threads",
    "requests_processes",
    "httpx_async",
    "aiometer_httpx",
}


OUTPUT_SUFFIX = {"csv": ".csv", "sqlite": ".sqlite", "parquet": ".parquet", "duckdb": ".duckdb"}


def command(client: str, urls: str, concurrency: int, out: str) -> list[str]:
    if client.startswith("fanfetch_cli"):
        # the full feature set: an output file and the summary (computed, written to a file);
        # fanfetch_cli@parquet writes that format (its name picks it), fanfetch_cli_w2 2 workers,
        # fanfetch_cli_aiohttp over the aiohttp transport
        client = client.partition("@")[0]
        workers = client.rpartition("_w")[2] if "_w" in client else "1"
        transport = client.rpartition("_")[2] if client.endswith(("_aiohttp", "_http2")) else "auto"
        ca = os.environ.get("FANFETCH_BENCH_CA")
        return [PY, "-m", "fanfetch", "run", urls, "-o", out, "-c", str(concurrency),
                "--summary-json", out + ".summary", "--workers", workers,
                "--transport", transport, *(["--cacert", ca] if ca else [])]  # fmt: skip
    return [PY, str(HERE / "clients.py"), client, urls, str(concurrency)]


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    ok: int


@dataclass
class Figure:
    scenario: str
    client: str
    requests: int
    concurrency: int
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    def spread(self, attr: str) -> tuple[float, float]:
        values = [getattr(r, attr) for r in self.runs]
        return min(values), max(values)

    @property
    def complete(self) -> bool:
        """Whether every run answered every request ok: a figure from a run that was not
        all ok is no figure (a client failing fast looks fastest)."""
        return bool(self.runs) and all(r.ok >= self.requests for r in self.runs)

    @property
    def rate(self) -> float:
        return self.requests / self.median("wall")

    @property
    def cpu_us(self) -> float:
        return self.median("cpu") / self.requests * 1e6


def measure(
    client: str, urls: str, concurrency: int, timeout: float = 900, cpu: int | None = None
) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out" + OUTPUT_SUFFIX.get(client.partition("@")[2], ".jsonl"))
        start = time.perf_counter()
        proc = subprocess.Popen(
            command(client, urls, concurrency, out),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            preexec_fn=_pin(cpu),
        )
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if client.startswith("fanfetch_cli"):
            ok = json.loads(Path(out + ".summary").read_text())["ok"]
        else:
            ok = int(stdout.decode().strip().rpartition("ok=")[2] or 0)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, ok)


def write_urls(path: str, base: str, n: int) -> str:
    with open(path, "w") as f:
        f.writelines(f"{base}/items/{i}\n" for i in range(n))
    return path


# -- the suite ----------------------------------------------------------------------------------

THROUGHPUT_CLIENTS = [
    "requests_serial", "requests_threads", "requests_processes", "aiohttp_naive",
    "aiohttp_semaphore", "aiohttp_pool", "httpx_async", "aiometer_httpx", "fanfetch_cli",
    "fanfetch_api",
]  # fmt: skip
LATENCY_CLIENTS = [c for c in THROUGHPUT_CLIENTS if c not in ("requests_serial",)]


FORMAT_CLIENTS = ["fanfetch_cli", *(f"fanfetch_cli@{fmt}" for fmt in OUTPUT_SUFFIX)]

# fanfetch over each transport, the hand-written pool, and the fast clients that install here;
# over https, the HTTP/2 ones too
TRANSPORT_CLIENTS = [
    "aiohttp_pool", "fanfetch_cli", "fanfetch_api", "fanfetch_cli_aiohttp",
    "fanfetch_api_aiohttp", "pyreqwest_async", "rnet_async", "aiosonic_async",
    "curl_cffi_async", "pycurl_multi",
]  # fmt: skip
HTTP2_CLIENTS = ["fanfetch_cli_http2", "pyreqwest_http2", "httpx_http2"]


def transports(repeats: int, quick: bool, tmp: str) -> list[Figure]:
    """Each client on its own CPU, nginx on the other: CPU per request is the figure."""
    figures: list[Figure] = []
    n = 50_000 // (10 if quick else 1)
    for tls in (False, True):
        with fast_server(tls=tls, cpu=0) as (base, _):
            urls = write_urls(os.path.join(tmp, "transports.txt"), base, n)
            scenario = f"transports, {'https' if tls else 'http'}, pinned"
            clients = TRANSPORT_CLIENTS + (HTTP2_CLIENTS if tls else [])
            runs = [(Figure(scenario, client, n, 100), urls) for client in clients]
            figures += in_turns(runs, repeats, cpu=1)
    return figures


def run_suite(repeats: int, quick: bool, only: str | None = None) -> list[Figure]:
    figures: list[Figure] = []
    scale = 5 if quick else 1
    with tempfile.TemporaryDirectory(prefix="fanfetch-bench-urls-") as tmp:
        if only in (None, "transports"):
            figures += transports(repeats, quick, tmp)
            if only:
                return figures
        with fast_server() as (base, server_name):
            print(f"fast server: {server_name} at {base}", file=sys.stderr)
            if only in (None, "output-formats"):
                # what each output format costs over JSON lines, the whole job included (a
                # Parquet or DuckDB output is filled at the end); 100,000 so that importing
                # pyarrow or duckdb (0.1-0.2 s) weighs as it would in a job worth a table
                n = 100_000 // scale
                urls = write_urls(os.path.join(tmp, "formats.txt"), base, n)
                figures += in_turns(
                    [(Figure(f"output formats, {n:,} requests", c, n, 100), urls)
                     for c in FORMAT_CLIENTS],
                    repeats,
                )  # fmt: skip
                os.unlink(urls)
                if only:
                    return figures
            # client-bound: 140 KB bodies; what --workers is for
            big = os.path.join(tmp, "big.txt")
            with open(big, "w") as f:
                f.writelines(f"{base}/big/{i}\n" for i in range(3_000 // scale))
            figures += in_turns(
                [
                    (Figure("client-bound, 140 KB bodies", client, 3_000 // scale, 100), big)
                    for client in ("aiohttp_pool", "fanfetch_cli", "fanfetch_cli_w2")
                ],
                repeats,
            )
            if only == "client-bound":
                return figures
            n_fast, n_slow = 20_000 // scale, 4_000 // scale
            fast = write_urls(os.path.join(tmp, "fast.txt"), base, n_fast)
            fast_small = write_urls(os.path.join(tmp, "fast_small.txt"), base, n_slow)
            runs = []
            for client in THROUGHPUT_CLIENTS:
                n, urls = (n_slow, fast_small) if client in SLOW else (n_fast, fast)
                runs.append((Figure("throughput", client, n, 100), urls))
            figures += in_turns(runs, repeats)
            for n in (100_000,) if quick else (100_000, 1_000_000):
                urls = write_urls(os.path.join(tmp, f"mem{n}.txt"), base, n)
                clients = ["fanfetch_cli", "aiohttp_pool"] + (
                    ["aiohttp_naive"] if n <= 100_000 else []
                )
                figures += in_turns(
                    [(Figure(f"memory {n:,}", client, n, 100), urls) for client in clients], 1
                )
                os.unlink(urls)
        with latency_server(50) as base:
            n_lat, n_lat_slow = 5_000 // scale, 1_000 // scale
            urls = write_urls(os.path.join(tmp, "lat.txt"), base, n_lat)
            slow_urls = write_urls(os.path.join(tmp, "lat_slow.txt"), base, n_lat_slow)
            for concurrency in (200, 500):
                runs = []
                for client in LATENCY_CLIENTS:
                    # the slow clients would take minutes for 5,000: they get 1,000
                    n, path = (n_lat_slow, slow_urls) if client in SLOW else (n_lat, urls)
                    fig = Figure(f"latency 50 ms, c={concurrency}", client, n, concurrency)
                    runs.append((fig, path))
                figures += in_turns(runs, repeats)
    return figures


def in_turns(runs: list[tuple[Figure, str]], repeats: int, cpu: int | None = None) -> list[Figure]:
    """Measure each figure ``repeats`` times, the clients taking turns (a, b, c, a, b, c...).

    This VM drifts by 10-20% over minutes; run one client's repeats back to back and a slow
    patch lands on that client alone (it once put fanfetch at 0.82x of a loop it matched
    at 1.08x taking turns).
    """
    for _ in range(repeats):
        for fig, urls in runs:
            fig.runs.append(measure(fig.client, urls, fig.concurrency, cpu=cpu))
    for fig, _ in runs:
        r = fig.runs[-1]
        print(
            f"{fig.scenario:>24} {fig.client:>20}: {fig.rate:8,.0f}/s "
            f"wall {fig.median('wall'):6.2f} s cpu {fig.cpu_us:6.0f} us/req "
            f"rss {r.rss_mb:6.1f} MB ok {r.ok}/{fig.requests}",
            file=sys.stderr,
        )
    return [fig for fig, _ in runs]


# -- reporting ----------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("fanfetch", "aiohttp", "uvloop", "orjson", "httpx", "requests", "aiometer"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def report(figures: list[Figure], repeats: int) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}. "
        + ", ".join(f"{k} {v}" for k, v in versions().items())
        + ".",
        "",
        f"Each figure is the median of {repeats} runs of the whole process (start-up included),"
        " min-max in brackets; within a scenario the clients take turns, run by run. Every "
        "client reads and parses every JSON body. Made by `make bench` (`benchmarks/run.py`).",
        "",
    ]
    by_scenario: dict[str, list[Figure]] = {}
    for fig in figures:
        by_scenario.setdefault(fig.scenario, []).append(fig)
    for scenario, figs in by_scenario.items():
        ref = next((f for f in figs if f.client == "aiohttp_pool" and f.complete), None)
        if ref is None:  # the output formats: each against JSON lines, in CPU per request
            ref = next((f for f in figs if f.client == "fanfetch_cli" and f.complete), None)
        lines += [f"## {scenario}", ""]
        pinned = "pinned" in scenario  # CPU per request is the figure: its ratio, its spread
        against = (
            "CPU vs aiohttp_pool" if pinned
            else "vs aiohttp_pool" if ref is None or ref.client == "aiohttp_pool"
            else "CPU vs JSON lines"
        )  # fmt: skip
        lines += [
            f"| client | requests | req/s | wall s | CPU µs/req | peak RSS MB | ok | {against} |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for f in figs:
            if not f.complete:
                ok = min((r.ok for r in f.runs), default=0)
                lines.append(f"| {f.client} | {f.requests:,} | failed | - | - | - | {ok:,} | "
                             f"not all ok: no figure |")  # fmt: skip
                continue
            lo, hi = f.spread("wall")
            cpu = f"{f.cpu_us:,.0f}"
            if pinned and ref is not None and ref.runs:
                ratio = f"{f.cpu_us / ref.cpu_us:.2f}x"
                c_lo, c_hi = (x / f.requests * 1e6 for x in f.spread("cpu"))
                cpu += f" [{c_lo:,.0f}-{c_hi:,.0f}]"
            elif ref is not None and ref.client == "fanfetch_cli" and ref.runs:
                ratio = f"{f.cpu_us / ref.cpu_us - 1:+.0%}"
            else:
                ratio = f"{f.rate / ref.rate:.2f}x" if ref and ref.runs else "-"
            ok = min(r.ok for r in f.runs)
            lines.append(
                f"| {f.client} | {f.requests:,} | {f.rate:,.0f} | {f.median('wall'):.2f} "
                f"[{lo:.2f}-{hi:.2f}] | {cpu} | {max(r.rss_mb for r in f.runs):,.1f} | "
                f"{ok:,} | {ratio} |"
            )
        lines.append("")
    return "\n".join(lines)


def chart(figures: list[Figure], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -e '.[bench]')", file=sys.stderr)
        return False
    throughput = [f for f in figures if f.scenario == "throughput"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = [f.client for f in throughput]
    colors = ["tab:orange" if n.startswith("fanfetch") else "tab:blue" for n in names]
    ax.barh(names, [f.rate for f in throughput], color=colors)
    ax.set_xlabel("requests per second (higher is better)")
    ax.set_title("20,000 GETs to nginx on loopback, concurrency 100, whole process")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no URL in the file
    return True


def compile_fanfetch() -> None:
    """Byte-compile fanfetch's sources, as installing a wheel does.

    The other clients import libraries pip compiled at install time. fanfetch is installed
    editable here, and with PYTHONDONTWRITEBYTECODE set (as on our CI machines) every run
    would compile all its modules from source again: about 50 ms of start-up a user never
    pays, which is 5% of a one-second scenario.
    """
    import compileall

    import fanfetch

    compileall.compile_dir(os.path.dirname(fanfetch.__file__), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer requests, one run each")
    parser.add_argument(
        "--out", help="where RESULTS.md etc. go (default: benchmarks/, or with --quick "
        "benchmarks/quick/, which git ignores: a quick run never replaces the results)",
    )  # fmt: skip
    parser.add_argument(
        "--only",
        choices=["client-bound", "output-formats", "transports"],
        help="run one scenario; add its table to RESULTS.md",
    )
    args = parser.parse_args()
    compile_fanfetch()
    repeats = 1 if args.quick else args.repeats
    figures = run_suite(repeats, args.quick, args.only)
    out = Path(args.out) if args.out else HERE / "quick" if args.quick else HERE
    out.mkdir(parents=True, exist_ok=True)
    if args.only:
        table = report(figures, repeats).split("\n## ", 1)[1]
        with (out / "RESULTS.md").open("a") as f:
            f.write(f"\n## {table}\n")
        print(f"added to {out / 'RESULTS.md'}", file=sys.stderr)
        return
    (out / "RESULTS.md").write_text(report(figures, repeats))
    (out / "results.json").write_text(json.dumps([asdict(f) for f in figures], indent=1))
    if chart(figures, out / "results.png"):
        with (out / "RESULTS.md").open("a") as f:
            f.write("\n![throughput chart](results.png)\n")
    print(f"wrote {out / 'RESULTS.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
