"""The public API under mypy --strict: this file type-checks (make test runs mypy on it), and
its assertions hold at run time too."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import Any, assert_type

import fanfetch


def test_the_public_api_has_the_types_it_promises() -> None:
    config = fanfetch.make_config(concurrency=5, rate="10/s", retries=1)
    assert_type(config, fanfetch.Config)
    assert_type(config.limits, fanfetch.Limits)
    assert_type(config.limits.rate, fanfetch.Rate | fanfetch.Auto | None)
    request = fanfetch.Request("http://127.0.0.1/", method="POST", json={"a": 1})
    result = fanfetch.Result(request, status=200, content=b"{}")
    assert_type(result.ok, bool)
    assert_type(result.status, int | None)
    assert_type(result.error, fanfetch.RequestError | None)
    assert_type(result.text, str)
    assert_type(result.to_dict(), dict[str, Any])
    assert result.ok and result.json() == {}


def annotated_uses() -> None:  # checked by mypy, never called
    stream = fanfetch.stream(["http://127.0.0.1/"], concurrency=2)
    assert_type(stream, AsyncGenerator[fanfetch.Result, None])
    assert_type(fanfetch.run([{"url": "http://127.0.0.1/"}]), list[fanfetch.Result])
    assert_type(fanfetch.iter_results(iter(["http://127.0.0.1/"])), Iterator[fanfetch.Result])
