"""Every option of a run, declared once: its name, default, help and command-line flag.

``make_config`` (the Python API's keywords) and ``fanfetch run`` (the flags) both come from
this table, and ``Config`` validates the values, so the two cannot disagree: what the API
refuses, the command line refuses with the same message (and exit status 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._config import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_ON,
    DEFAULT_TIMEOUT,
)
from ._exceptions import ConfigError

__all__ = ["BY_NAME", "OPTIONS", "Option", "parse_codes", "parse_headers"]


def parse_codes(text: str) -> frozenset[int]:
    """``"429,503"`` as statuses (their range is checked by ``RetryPolicy``)."""
    try:
        return frozenset(int(c) for c in text.replace(" ", "").split(",") if c)
    except ValueError:
        raise ConfigError("retry_on", text, "give statuses like 429,503") from None


def parse_headers(values: tuple[str, ...]) -> dict[str, str]:
    """``--header 'Name: value'``, repeated, as a mapping."""
    headers: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise ConfigError("headers", value, "write it as 'Name: value'")
        headers[name.strip()] = rest.strip()
    return headers


@dataclass(frozen=True, slots=True)
class Option:
    """One option: ``name`` is the API's keyword; ``flags`` the command line's (none: API
    only). ``kind`` is what the command line reads (``int``, ``float``, ``str``, ``bool``
    for a switch, ``list`` for a repeatable one); ``parse`` turns that into the API's value;
    ``invert`` makes a switch mean False (``--insecure`` is ``verify_tls=False``)."""

    name: str
    default: Any
    help: str
    flags: tuple[str, ...] = ()
    kind: type = str
    metavar: str | None = None
    parse: Callable[[Any], Any] | None = None
    invert: bool = False
    cli_default: Any = None  # the flag's default as text, when the API's is not text

    def from_cli(self, value: Any) -> Any:
        """The API's value for what the command line read."""
        if self.invert:
            return not value
        if value is None or self.parse is None:
            return value
        return self.parse(value)


OPTIONS: tuple[Option, ...] = (
    Option("concurrency", DEFAULT_CONCURRENCY, "Requests in flight at most, in all.",
           ("-c", "--concurrency"), int, "N"),
    Option("per_host", None, "Requests in flight at most to any one host.  [default: no limit]",
           ("--per-host",), int, "N"),
    Option("timeout", DEFAULT_TIMEOUT,
           "Per attempt, counted from when it gets its slot (not while queued).",
           ("--timeout",), float, "SECONDS"),
    Option("connect_timeout", None, "Seconds to connect, within the attempt's timeout."),
    Option("retries", DEFAULT_RETRIES, "Further attempts after the first, for retryable failures.",
           ("--retries",), int, "N"),
    Option("retry_on", DEFAULT_RETRY_ON,
           "Comma-separated statuses to retry (timeouts and connection errors always are).",
           ("--retry-on",), str, "CODES", parse_codes,
           cli_default=",".join(map(str, sorted(DEFAULT_RETRY_ON)))),
    Option("backoff_base", DEFAULT_BACKOFF_BASE,
           "First backoff ceiling; doubles each attempt (full jitter).",
           ("--backoff-base",), float, "SECONDS"),
    Option("backoff_max", None,
           f"Largest backoff.  [default: {DEFAULT_BACKOFF_MAX:g}, or the base if larger]",
           ("--backoff-max",), float, "SECONDS"),
    Option("max_retry_after", DEFAULT_MAX_RETRY_AFTER,
           "Longest Retry-After honoured; beyond it the request ends.",
           ("--max-retry-after",), float, "SECONDS"),
    Option("rate", None, "Attempts started at most, e.g. 100/s or 3000/min.", ("--rate",),
           str, "R"),
    Option("rate_per_host", None, "Like --rate, for each host.", ("--rate-per-host",), str, "R"),
    Option("burst", 1, "Starts allowed at once under --rate.", ("--burst",), int, "N"),
    Option("budget", None, 'Cost started at most, e.g. 90000/min; requests carry "cost" '
           "(LLM tokens).", ("--budget",), str, "B"),
    Option("headers", None, "Added to every request; repeatable. Never written to records.",
           ("--header",), list, "'NAME: VALUE'", parse_headers),
    Option("include_headers", False, "Add response headers to records.",
           ("--include-headers",), bool),
    Option("include_attempts", False,
           "Add each attempt's status or error and timing to records (history).",
           ("--include-attempts",), bool),
    Option("max_body", DEFAULT_MAX_BODY, "Larger bodies end with error too_large.",
           ("--max-body",), int, "BYTES"),
    Option("max_redirects", DEFAULT_MAX_REDIRECTS, "Redirects followed at most (0: none).",
           ("--max-redirects",), int, "N"),
    Option("verify_tls", True, "Do not verify TLS certificates.", ("--insecure",), bool,
           invert=True),
    Option("transform", None, "Run FUNCTION(record) in a process pool on each ok record; its "
           "value goes into the record as 'transformed'.", ("--transform",), str,
           "MODULE:FUNCTION"),
    Option("transform_workers", None,
           "Processes for --transform (0: on the event loop).  [default: one per core]",
           ("--transform-workers",), int, "N"),
    Option("save_dir", None,
           "Stream each 2xx body to a file in DIR; records get path, bytes, sha256.",
           ("--save-dir",), str, "DIR"),
    Option("max_file", None,
           "With --save-dir: larger files end with error too_large.  [default: no limit]",
           ("--max-file",), int, "BYTES"),
)  # fmt: skip

BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}
