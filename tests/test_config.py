"""Configuration objects refuse bad values with messages that name the parameter and the fix."""

from __future__ import annotations

import dataclasses

import pytest

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
