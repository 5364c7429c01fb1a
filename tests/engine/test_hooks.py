"""Each attempt hook on its own, time moved by hand: what it adds before a send, what it says
of an answer (``AGAIN``: once more without a retry spent; an error: the attempt failed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from fanfetch import InvalidResponse, Rate, Request
from fanfetch._engine._cost import UsageHook
from fanfetch._engine._expect import Validator
from fanfetch._engine._hooks import AGAIN, Try
from fanfetch._engine._keys import KeyPool
from fanfetch._engine._oauth import SECRET_ENV, OAuth2
from fanfetch._net._http import Response


class Clock:
    """Time that passes only when a test (or a hook's sleep) moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def a_try(url: str = "http://127.0.0.1/a", cost: float | None = None) -> Try:
    return Try(Request(url), cost)


async def test_a_token_is_fetched_once_sent_and_renewed_when_a_tenth_of_its_life_is_left(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv(SECRET_ENV, "s3cret")
    clock, asked = Clock(), []

    async def send(request: Request, timeout: float | None) -> Response:
        asked.append(clock.now)
        body = {"access_token": f"t{len(asked)}", "expires_in": 100}
        return Response(200, orjson.dumps(body))

    oauth = OAuth2("http://127.0.0.1/token", "app", None, send, clock=clock)
    first = a_try()
    await oauth.before(first)
    assert first.headers == {"Authorization": "Bearer t1"}
    clock.now += 89  # 90 s of its 100 gone: one second before renewal
    await oauth.before(again := a_try())
    assert again.headers == {"Authorization": "Bearer t1"} and len(asked) == 1
    clock.now += 1
    await oauth.before(later := a_try())
    assert later.headers == {"Authorization": "Bearer t2"} and asked == [1000.0, 1090.0]


async def test_a_refused_token_is_dropped_and_the_attempt_made_again_once(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv(SECRET_ENV, "s3cret")
    tokens = iter(["old", "new"])

    async def send(request: Request, timeout: float | None) -> Response:
        return Response(200, orjson.dumps({"access_token": next(tokens), "expires_in": 3600}))

    oauth = OAuth2("http://127.0.0.1/token", "app", None, send, clock=Clock())
    attempt = a_try()
    await oauth.before(attempt)
    assert await oauth.after(attempt, Response(401)) == AGAIN
    attempt.free += 1  # as the attempt loop counts it
    await oauth.before(attempt)
    assert attempt.headers == {"Authorization": "Bearer new"}
    assert await oauth.after(attempt, Response(401)) is None  # refused twice: the answer stands
    assert await oauth.after(attempt, Response(200)) is None


def keys(tmp_path: Path, *names: str) -> str:
    path = tmp_path / "keys.txt"
    path.write_text("".join(name + "\n" for name in names))
    return str(path)


async def test_each_attempt_takes_the_key_with_the_most_room_and_waits_only_when_all_must(
    tmp_path: Path,
):
    clock = Clock()
    pool = KeyPool(keys(tmp_path, "k0", "k1"), "X-Api-Key: {key}", rate=Rate(count=1.0),
                   budget=None, clock=clock, sleep=clock.sleep)  # fmt: skip
    seen = []
    for _ in range(4):
        attempt = a_try()
        await pool.before(attempt)
        seen.append((attempt.headers or {}, clock.now))
        assert attempt.own_throttle  # its 429 is the key's, not the host's
    assert [headers["X-Api-Key"] for headers, _ in seen] == ["k0", "k1", "k0", "k1"]
    # the other key had room: no wait; both spent: about a second's wait (GCRA lets a start
    # go a few milliseconds early rather than sleep again), then the first key again
    assert [when for _, when in seen] == pytest.approx([1000.0, 1000.0, 1001.0, 1001.0], abs=0.01)


async def test_a_refused_key_is_tried_no_more_for_that_request_and_a_429_rests_it_alone(
    tmp_path: Path,
):
    clock = Clock()
    pool = KeyPool(keys(tmp_path, "k0", "k1"), "X-Api-Key: {key}", rate=None, budget=None,
                   clock=clock, sleep=clock.sleep)  # fmt: skip
    attempt = a_try()
    await pool.before(attempt)
    assert attempt.key_index == 0
    assert await pool.after(attempt, Response(401)) == AGAIN
    await pool.before(attempt)
    assert attempt.key_index == 1 and attempt.headers == {"X-Api-Key": "k1"}
    assert await pool.after(attempt, Response(403)) is None  # every key refused: it stands
    other = a_try("http://127.0.0.1/b")
    await pool.before(other)
    assert other.key_index == 0
    assert await pool.after(other, Response(429, headers={"Retry-After": "5"})) is None
    await pool.before(third := a_try("http://127.0.0.1/c"))
    assert third.key_index == 1 and clock.now == 1000.0  # the other key goes on at once
    assert pool.keys[0].paused_until == 1005.0


async def test_a_2xx_whose_body_fails_the_check_fails_the_attempt():
    check = Validator("length(items) > `0`", None)
    attempt = a_try()
    failed = await check.after(attempt, Response(200, b'{"items": []}'))
    assert isinstance(failed, InvalidResponse) and "is not true" in str(failed)
    assert await check.after(attempt, Response(200, b'{"items": [1]}')) is None
    assert await check.after(attempt, Response(500, b"oops")) is None  # a 5xx is the policy's
    assert isinstance(await check.after(attempt, Response(200, b"<html>")), InvalidResponse)


async def test_usage_corrects_the_budget_by_what_the_answer_says_it_cost():
    class Meter:
        def __init__(self) -> None:
            self.corrections: list[float] = []

        def correct_budget(self, delta: float) -> None:
            self.corrections.append(delta)

    meter = Meter()
    usage = UsageHook("usage.total_tokens", [meter.correct_budget])
    charged = a_try(cost=100.0)
    body: dict[str, Any] = {"usage": {"total_tokens": 130}}
    assert await usage.after(charged, Response(200, orjson.dumps(body))) is None
    assert await usage.after(charged, Response(200, b"not json")) is None  # nothing said
    assert meter.corrections == [30.0]
