"""``--rate auto`` and ``--budget auto``: a host paced at the limit its headers advertise,
against the embedded API's fixed windows (``/limited/{form}``), which count what they let
through and what they refused."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

import fanfetch
from fanfetch._engine._learned import MARGIN, Pace
from fanfetch._engine._quota import Quota, quota
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4990",
          "X-RateLimit-Reset": "1800"}, Quota(5000, None, 4990, 1800)),
        ({"RateLimit-Limit": "100, 100;w=60", "RateLimit-Remaining": "7",
          "RateLimit-Reset": "30"}, Quota(100, 60, 7, 30)),
        ({"RateLimit": "limit=10, remaining=0, reset=4"}, Quota(10, None, 0, 4)),
        ({"RateLimit-Policy": '"burst";q=100;w=1, "day";q=1000;w=86400',
          "RateLimit": '"burst";r=50;t=1'}, Quota(100, 1, 50, 1)),
        ({"RateLimit-Policy": '"burst";q=100;w=1, "day";q=1000;w=86400'},
         Quota(1000, 86400, None, None)),  # no state named: the policy of the lowest rate
        ({"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
          "x-ratelimit-reset-requests": "1s"}, Quota(60, 60, 59, 1.0)),
        ({"Content-Type": "application/json"}, None),
    ],
)  # fmt: skip
def test_every_form_of_rate_limit_header_reads_as_a_limit_a_window_what_remains_and_a_reset(
    headers: dict[str, str], expected: Quota | None
):
    assert quota(headers) == expected


def test_a_reset_given_as_a_unix_time_reads_as_seconds_from_now():
    import time

    found = quota({"X-RateLimit-Limit": "60", "X-RateLimit-Reset": str(int(time.time()) + 30)})
    assert found is not None and found.reset is not None and 28 <= found.reset <= 30


def test_tokens_are_read_from_openai_fields_alone():
    headers = {"x-ratelimit-limit-tokens": "90000", "x-ratelimit-remaining-tokens": "89000",
               "x-ratelimit-reset-tokens": "6m0s"}  # fmt: skip
    assert quota(headers, "tokens") == Quota(90000, 60, 89000, 360.0)
    assert quota(headers) is None  # they say nothing of requests


def test_the_pace_is_the_policy_less_the_margin_moved_only_by_what_surely_remains():
    pace = Pace()
    policy = MARGIN * 100 / 60
    # on pace: what remains is about what the policy would spend before the reset
    assert pace.learn(Quota(100, 60, 50, 30), now=0.0) == pytest.approx(policy)
    # surely short (another client shares the quota): the rest spread over the time left
    assert pace.learn(Quota(100, 60, 10, 30), now=1.0) == pytest.approx(10 / 31)
    # surely more (the job started mid-window): spend it, at most at twice the policy
    assert pace.learn(Quota(100, 60, 100, 58), now=2.0) == pytest.approx(100 / 59)
    assert pace.learn(Quota(100, 60, 100, 10), now=3.0) == pytest.approx(2 * policy)
    # a reset in whole seconds of a one-second window teaches nothing beyond the policy
    assert Pace().learn(Quota(100, 1, 3, 1), now=0.0) == pytest.approx(MARGIN * 100)


def test_a_window_the_server_does_not_state_is_the_longest_reset_it_gave():
    pace = Pace()
    assert pace.learn(Quota(100, None, 100, 0), now=0.0) is None  # nothing to go on yet
    assert pace.learn(Quota(100, None, None, 9.2), now=1.0) == pytest.approx(MARGIN * 10)
    assert pace.learn(Quota(100, None, None, 3), now=2.0) == pytest.approx(MARGIN * 10)


def test_auto_is_refused_where_nothing_advertises_it():
    with pytest.raises(fanfetch.ConfigError, match="rate_per_key"):
        fanfetch.make_config(rate_per_key="auto")
    assert isinstance(fanfetch.make_config(rate="auto").limits.rate, fanfetch.Auto)


def stats(base: str, form: str) -> list[dict[str, float]]:
    with urllib.request.urlopen(f"{base}/limited/stats", timeout=10) as answer:
        return [w for w in json.load(answer) if w["form"] == form]


@pytest.mark.slow
@pytest.mark.parametrize("form", ["x", "x-epoch", "ietf", "dict", "draft"])
async def test_rate_auto_keeps_to_an_advertised_fixed_window_after_the_first(
    form: str, tmp_path: Path
):
    """100 requests at once blow the first window of 50; from then on nothing is refused,
    and every whole window the run spans (after the one it rested into) is at least 90%
    full."""
    limit = 50
    with fanfetch.MockAPI(latency_ms=5) as api:
        src = tmp_path / "in.txt"
        src.write_text("".join(f"{api.url}/limited/{form}/{i}?limit={limit}\n" for i in range(230)))
        out = tmp_path / "out.jsonl"
        done = await run_cli("run", str(src), "-o", str(out), "-q", "-c", "100", "--rate", "auto")
        windows = stats(api.url, form)
    assert done.status == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 230 and all(r["ok"] for r in records)
    assert windows[0]["refused"] > 0  # the first window, before any answer taught the pace
    assert [w["refused"] for w in windows[1:]] == [0] * (len(windows) - 1)
    full = windows[2:-1]
    assert full and all(w["ok"] >= 0.9 * limit for w in full), windows


@pytest.mark.slow
def test_rate_per_host_auto_from_python_paces_each_host_under_a_fixed_rate_as_its_ceiling():
    """``rate_per_host="auto"`` under ``rate="100/s"``: the API advertises 20 a second, so
    the learned pace, not the ceiling, holds the run: after the first window nothing is
    refused (at the ceiling alone, 80 of each second's 100 would be)."""
    with fanfetch.MockAPI(latency_ms=5) as api:
        urls = [f"{api.url}/limited/draft/{i}?limit=20" for i in range(60)]
        results = fanfetch.run(urls, concurrency=10, rate="100/s", rate_per_host="auto")
        windows = stats(api.url, "draft")
    assert all(r.ok for r in results)
    assert [w["refused"] for w in windows[1:]] == [0] * (len(windows) - 1), windows


@pytest.mark.slow
async def test_budget_auto_paces_the_tokens_the_server_advertises(tmp_path: Path):
    """3,000 tokens a minute (50 a second), 10 a request: paced, the server sees at most
    twice the advertised rate of tokens (the most a window's rest is spent at), where the
    same requests unpaced would all arrive within a tenth of a second."""
    with fanfetch.MockAPI(latency_ms=5) as api:
        url = f"{api.url}/limited/openai/{{i}}?limit=100000&tokens=10&token_limit=3000"
        src = tmp_path / "in.jsonl"
        src.write_text("".join(json.dumps({"url": url.format(i=i), "cost": 10}) + "\n"
                               for i in range(24)))  # fmt: skip
        out = tmp_path / "out.jsonl"
        done = await run_cli("run", str(src), "-o", str(out), "-q", "-c", "4", "--budget", "auto")
        windows = stats(api.url, "openai")
    assert done.status == 0, done.stderr
    assert sum(json.loads(line)["ok"] for line in out.read_text().splitlines()) == 24
    assert sum(w["refused"] for w in windows) == 0
    tokens = sum(w["tokens"] for w in windows)
    span = max(w["last"] for w in windows) - min(w["first"] for w in windows)
    unpaced = 4 * 10  # what went before the first answer taught the pace
    assert tokens == 240 and span >= (tokens - unpaced - 10) / (2 * 50) * 0.95, (span, windows)
