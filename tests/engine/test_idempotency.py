"""``--idempotency-key``: a changing request carries a key derived from the job, the same on
every attempt and after ``kill -9`` and ``--resume``, different for every request, never on
a GET, never in records; a request's own key wins."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections import defaultdict
from pathlib import Path

import orjson

import fanfetch
from tests.conftest import read_records, run_cli
from tests.servers import LoopbackAPI


def _lines(api: LoopbackAPI, n: int, *, hold_from: int | None = None) -> str:
    rows = []
    for i in range(1, n + 1):
        hold = "?hold=1" if hold_from is not None and i >= hold_from else ""
        rows.append({"id": i, "url": api.url(f"/order/{i}{hold}"), "method": "POST",
                     "json": {"order": i, "items": [i, i + 1]}})  # fmt: skip
    return "".join(orjson.dumps(row).decode() + "\n" for row in rows)


def _keys(api: LoopbackAPI) -> dict[str, list[str | None]]:
    seen: dict[str, list[str | None]] = defaultdict(list)
    for order, _, key in api.orders:
        seen[order].append(key)
    return seen


async def test_every_attempt_of_a_request_carries_its_one_key_and_requests_differ(
    api: LoopbackAPI, tmp_path: Path
):
    api.script = {"2": [503, 503, 200]}
    src = tmp_path / "in.jsonl"
    src.write_text(_lines(api, 3) + orjson.dumps({"id": "g", "url": api.url("/order/g")}).decode()
                   + "\n")  # fmt: skip
    out = tmp_path / "out.jsonl"
    result = await run_cli("run", str(src), "-o", str(out), "-q", "--idempotency-key", "auto",
                           "--backoff-base", "0.01", "--include-headers")  # fmt: skip
    assert result.status == 0, result.stderr
    keys = _keys(api)
    assert len(keys["2"]) == 3 and len(set(keys["2"])) == 1  # 503, 503, 200: one key
    firsts = [keys[str(i)][0] for i in (1, 2, 3)]
    assert all(k is not None and re.fullmatch(r"[0-9a-f]{32}", k) for k in firsts)
    assert len(set(firsts)) == 3  # one per request
    assert keys["g"] == [None]  # a GET changes nothing: no key
    written = out.read_text()
    assert all(str(key) not in written for key in firsts)  # never in records


async def test_the_key_survives_kill_9_and_resume(api: LoopbackAPI, tmp_path: Path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(_lines(api, 12, hold_from=5))  # 1-4 answer at once, 5-12 wait
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanfetch", "run", str(src), "-o", str(out), "-q", "-c", "4",
        "--idempotency-key", "auto", stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    held = [f"/order/{i}" for i in range(5, 13)]
    await api.wait_until(lambda log: sum(log.hits[path] for path in held) >= 4)
    proc.send_signal(signal.SIGKILL)  # four requests in flight, held by the server
    await proc.wait()
    first = {order: keys[0] for order, keys in _keys(api).items()}
    api.release.set()
    again = await run_cli("run", str(src), "-o", str(out), "-q", "-c", "4", "--resume",
                          "--idempotency-key", "auto")  # fmt: skip
    assert again.status == 0, again.stderr
    assert sorted(r["id"] for r in read_records(out)) == list(range(1, 13))  # each once
    keys = _keys(api)
    resent = [order for order, sent in keys.items() if len(sent) > 1]
    assert len(resent) >= 4  # what was in flight at the kill went again...
    assert all(first[order] is not None for order in resent)
    assert all(set(keys[order]) == {first[order]} for order in resent)  # ...with its first key


async def test_the_api_and_the_command_line_send_the_same_keys_and_an_own_key_wins(
    api: LoopbackAPI, tmp_path: Path
):
    api.key_header = "Idem-Key"
    src = tmp_path / "in.jsonl"
    src.write_text(_lines(api, 3))
    done = await run_cli("run", str(src), "-q", "--idempotency-key", "Idem-Key",
                         "--idempotency-salt", "night-2")  # fmt: skip
    assert done.status == 0, done.stderr
    cli = {order: key for order, _, key in api.orders}
    requests = [orjson.loads(line) for line in src.read_text().splitlines()]
    requests[0]["headers"] = {"idem-key": "mine"}
    api.orders.clear()
    await asyncio.to_thread(
        fanfetch.run, requests, idempotency_key="Idem-Key", idempotency_salt="night-2"
    )
    python = {order: key for order, _, key in api.orders}
    api.orders.clear()
    await asyncio.to_thread(fanfetch.run, requests[1:], idempotency_key="Idem-Key")
    unsalted = {order: key for order, _, key in api.orders}
    assert python["2"] == cli["2"] and python["3"] == cli["3"]  # one job, one key a request
    assert python["1"] == "mine"  # the request's own header, whatever its case
    assert unsalted["2"] != cli["2"] and unsalted["3"] != cli["3"]  # another salt, other keys
