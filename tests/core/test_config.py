"""Configuration objects refuse bad values with messages that name the parameter and the fix."""

from __future__ import annotations

import dataclasses
import sys

import pytest

import fanfetch
from fanfetch import ConfigError, Limits, Rate, RetryPolicy, Timeouts, make_config


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (lambda: Limits(concurrency=0), "concurrency"),
        (lambda: Limits(per_host=-1), "per_host"),
        (lambda: Timeouts(attempt=0), "timeout"),
        (lambda: RetryPolicy(retries=-1), "retries"),
        (lambda: RetryPolicy(backoff_base=2, backoff_max=1), "backoff_max"),
        (lambda: Rate.parse("lots"), "rate"),
        (lambda: make_config(rate_per_host="5 per second"), "rate_per_host"),
    ],
)
def test_bad_values_raise_config_error_naming_the_parameter_with_a_hint(make, parameter):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.parameter == parameter
    assert "HINT:" in str(info.value)


@pytest.mark.parametrize(
    ("text", "interval"), [("100/s", 0.01), ("3000/min", 0.02), ("2/sec", 0.5), ("36/h", 100.0)]
)
def test_rates_parse_per_second_minute_and_hour(text, interval):
    assert Rate.parse(text).interval == pytest.approx(interval)


def test_config_objects_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Limits().concurrency = 5  # type: ignore[misc]


def test_the_api_s_keywords_and_the_command_line_s_flags_come_from_one_table():
    import inspect

    from fanfetch._cli._main import run
    from fanfetch._core._config import OPTIONS

    signature = inspect.signature(fanfetch.make_config).parameters
    assert sorted(signature) == sorted(o.name for o in OPTIONS)
    for option in OPTIONS:
        assert signature[option.name].default == option.default, option.name
    flags = {flag for param in run.params for flag in param.opts}
    for option in OPTIONS:
        assert set(option.flags) <= flags, option.name
    typed = [*fanfetch.Options.__annotations__, "transport"]  # transport: a parameter of its own
    assert sorted(typed) == sorted(o.name for o in OPTIONS)


def test_every_option_lands_in_a_field_of_the_config_and_keeps_its_value():
    import dataclasses

    from fanfetch._core._config import OPTIONS

    config = fanfetch.make_config()
    for option in OPTIONS:
        if option.to:  # "" is read by another option (burst by the rates)
            part, name = option.to.split(".")
            owner = getattr(config, part)
            assert name in {f.name for f in dataclasses.fields(owner)}, option.name
    given = fanfetch.make_config(per_host=3, retries=0, connect_timeout=2.0, max_file=9)
    assert (given.limits.per_host, given.retry.retries) == (3, 0)
    assert (given.timeouts.connect, given.http.max_file) == (2.0, 9)
    assert fanfetch.make_config(rate="10/s", burst=4).limits.rate == fanfetch.Rate(
        count=10, burst=4
    )


def test_each_part_of_the_config_is_a_frozen_value_and_every_field_has_an_option():
    import dataclasses

    from fanfetch._core._config import OPTIONS, PARTS

    routed = {option.to for option in OPTIONS if option.to}
    for part, kind in PARTS.items():
        assert kind.__dataclass_params__.frozen, part  # type: ignore[attr-defined]
        for field in dataclasses.fields(kind):
            assert f"{part}.{field.name}" in routed, f"{part}.{field.name} has no option"
    assert [f.name for f in dataclasses.fields(fanfetch.Config)] == list(PARTS)


@pytest.mark.parametrize(
    ("flags", "keywords", "hint"),
    [
        (["--retry-on", "999"], {"retry_on": [999]}, "100 to 599"),
        (["-c", "0"], {"concurrency": 0}, "whole number >= 1"),
        (["--backoff-base", "2", "--backoff-max", "1"], {"backoff_base": 2, "backoff_max": 1},
         "backoff_base"),
        (["--max-body", "-1"], {"max_body": -1}, "size in bytes"),
    ],
)  # fmt: skip
async def test_the_api_and_the_command_line_refuse_the_same_values_with_the_same_hint(
    flags, keywords, hint, tmp_path
):
    from tests.conftest import run_cli

    with pytest.raises(fanfetch.ConfigError, match=hint):
        fanfetch.make_config(**keywords)
    (tmp_path / "in.txt").write_text("http://127.0.0.1:9/\n")
    result = await run_cli("run", str(tmp_path / "in.txt"), *flags, "-q")
    assert result.status == 2 and hint in result.stderr, result.stderr


def test_an_omitted_backoff_cap_follows_a_larger_base():
    assert fanfetch.make_config(backoff_base=60).retry.backoff_max == 60
    assert fanfetch.make_config().retry.backoff_max == 30


async def test_a_transport_is_chosen_by_name_and_a_wrong_name_lists_the_names(tmp_path, api):
    from tests.conftest import run_cli

    url = api.url("/ok/1")
    for name in ("lean", "aiohttp", "auto"):
        assert [r.ok async for r in fanfetch.stream([url], transport=name)] == [True]
    with pytest.raises(fanfetch.ConfigError, match="choose one of: auto, lean, aiohttp"):
        fanfetch.Fetcher(transport="carrier-pigeon")
    (tmp_path / "in.txt").write_text(url + "\n")
    result = await run_cli("run", str(tmp_path / "in.txt"), "--transport", "carrier-pigeon")
    assert result.status == 2 and "choose one of: auto, lean, aiohttp" in result.stderr
    assert sum(api.log.hits.values()) == 3  # only the runs with a transport it knows


def test_auto_is_the_lean_transport_unless_the_run_needs_what_only_aiohttp_does():
    from fanfetch._net._transports import transport_name

    assert transport_name(fanfetch.make_config()) == "lean"
    assert transport_name(fanfetch.make_config(proxy="http://127.0.0.1:3128")) == "lean"
    assert transport_name(fanfetch.make_config(cookies=True)) == "aiohttp"
    assert transport_name(fanfetch.make_config(proxy="socks5://127.0.0.1:1080")) == "aiohttp"
    assert transport_name(fanfetch.make_config(proxy="https://127.0.0.1:3128")) == "aiohttp"
    assert transport_name(fanfetch.make_config(transport="aiohttp")) == "aiohttp"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HTTPS_PROXY", "https://127.0.0.1:3128")
        assert transport_name(fanfetch.make_config(trust_env=True)) == "aiohttp"
        assert transport_name(fanfetch.make_config()) == "lean"  # the environment unread


def test_http2_without_its_extra_is_a_one_line_error_naming_the_install(monkeypatch):
    from fanfetch._net._transports._http2 import Http2Transport

    monkeypatch.setitem(sys.modules, "pyreqwest.client", None)  # as if not installed
    with pytest.raises(fanfetch.UsageError, match=r"pip install 'fanfetch\[http2\]'"):
        Http2Transport(fanfetch.make_config(http2=True))


async def test_flag_hints_name_only_what_a_flag_takes_and_connect_timeout_is_a_flag(tmp_path):
    from tests.conftest import run_cli

    zero = await run_cli("run", "-", "--timeout", "0", stdin=b"")
    assert zero.status == 2 and "None" not in zero.stderr and "--timeout" in zero.stderr
    pool = await run_cli("run", "-", "--key-pool", str(tmp_path / "nope.txt"), stdin=b"")
    assert pool.status == 2 and "a file of API keys" in pool.stderr and "PEM" not in pool.stderr
    ok = await run_cli("run", "-", "-q", "--connect-timeout", "2.5", stdin=b"")
    assert ok.status == 0, ok.stderr
    bad = await run_cli("run", "-", "--connect-timeout", "-1", stdin=b"")
    assert bad.status == 2 and "--connect-timeout" in bad.stderr
