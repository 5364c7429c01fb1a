"""Configuration: every option of a run declared once, and the immutable values it builds.

``OPTIONS`` is the one table (name, default, help, command-line flag, where the value goes in
``Config``); ``make_config`` (the Python API's keywords) and ``fanfetch run``'s flags both come
from it, and the value objects validate what either gives, so the two cannot disagree: what
the API refuses, the command line refuses with the same message (and exit status 2).
Adding an option is a row here, a field of ``Config`` (or of one of its parts) and the code
that uses it.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from ._exceptions import ConfigError

__all__ = [
    "BY_NAME",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_RETRY",
    "DEFAULT_RETRY_ON",
    "DEFAULT_TIMEOUTS",
    "OPTIONS",
    "PARTS",
    "Auth",
    "Auto",
    "Checks",
    "Config",
    "Costs",
    "Guards",
    "Http",
    "Idempotency",
    "Limits",
    "Network",
    "Option",
    "Options",
    "Pages",
    "Rate",
    "Records",
    "RetryPolicy",
    "Timeouts",
    "make_config",
    "parse_codes",
    "parse_duration",
    "parse_headers",
    "select_columns",
]

DEFAULT_CONCURRENCY = 100
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_MAX_PAGES = 10_000  # pages per chain: an endless chain of cursors ends there
DEFAULT_RETRY_ON: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 10
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_MAX = 30.0
DEFAULT_MAX_RETRY_AFTER = 120.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How many requests may be in flight (``concurrency``, ``per_host``) and how often
    attempts may start (``rate``, ``rate_per_host``): what the scheduler holds to."""

    concurrency: int = DEFAULT_CONCURRENCY
    per_host: int | None = None
    rate: Rate | Auto | None = None
    rate_per_host: Rate | Auto | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigError("concurrency", self.concurrency, "give a whole number >= 1, e.g. 100")
        if self.per_host is not None and (not isinstance(self.per_host, int) or self.per_host < 1):
            raise ConfigError("per_host", self.per_host, "give a whole number >= 1, or None")


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """``attempt``: seconds one attempt may take, counted once it holds its slot (not queued)."""

    attempt: float | None = DEFAULT_TIMEOUT
    connect: float | None = None

    def __post_init__(self) -> None:
        for name, option in (("attempt", "timeout"), ("connect", "connect_timeout")):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ConfigError(option, value, "give seconds > 0, or None for none")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Which outcomes are tried again, how often, and how long to wait in between.

    ``retries`` counts further attempts after the first. Timeouts and connection errors are
    always retryable; statuses only when in ``retry_on``. See ``_retry.backoff`` for waits.
    """

    retries: int = DEFAULT_RETRIES
    retry_on: frozenset[int] = DEFAULT_RETRY_ON
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError("retries", self.retries, "give a whole number >= 0 (0: no retries)")
        if self.backoff_base < 0:
            raise ConfigError("backoff_base", self.backoff_base, "give seconds >= 0")
        if self.backoff_max < self.backoff_base:
            raise ConfigError("backoff_max", self.backoff_max, "give seconds >= backoff_base")
        if self.max_retry_after < 0:
            raise ConfigError("max_retry_after", self.max_retry_after, "give seconds >= 0")
        object.__setattr__(self, "retry_on", frozenset(self.retry_on))
        if any(not isinstance(c, int) or not 100 <= c <= 599 for c in self.retry_on):
            shown = ",".join(map(str, sorted(self.retry_on, key=str)))
            raise ConfigError("retry_on", shown, "statuses are whole numbers from 100 to 599")


def compile_select(expression: str, option: str = "select") -> Any:
    """A JMESPath expression (``--select``, ``--expect``...) compiled; a ``ConfigError`` that
    says where it is wrong."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    if not isinstance(expression, str) or not expression.strip():
        raise ConfigError(option, expression, "give a JMESPath expression, e.g. '{id: id}'")
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        reason = str(exc).splitlines()[0]
        raise ConfigError(option, expression, f"not JMESPath: {reason}") from None


def select_columns(expression: str) -> tuple[str, ...]:
    """The keys of a multiselect hash (``{id: id, n: name}`` gives ``id``, ``n``): a table's
    own columns. Empty for any other expression."""
    parsed = compile_select(expression).parsed
    if parsed.get("type") != "multi_select_dict":
        return ()
    return tuple(child["value"] for child in parsed["children"])


_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$", re.I)
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PER |= {"h": 3600.0, "hour": 3600.0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """At most ``count`` starts per ``period`` seconds, evenly spaced; ``burst`` may go at once."""

    count: float
    period: float = 1.0
    burst: int = 1

    def __post_init__(self) -> None:
        if self.count <= 0 or self.period <= 0:
            raise ConfigError("rate", f"{self.count}/{self.period}s", "give a positive rate")
        if not isinstance(self.burst, int) or self.burst < 1:
            raise ConfigError("burst", self.burst, "give a whole number >= 1")

    @property
    def interval(self) -> float:
        """Seconds between two evenly spaced starts."""
        return self.period / self.count

    @classmethod
    def parse(cls, text: str, *, burst: int = 1, parameter: str = "rate") -> Rate:
        """Read ``"100/s"``, ``"3000/min"`` or ``"10/h"``."""
        match = _RATE_RE.match(text)
        if not match:
            raise ConfigError(parameter, text, "write it as COUNT/UNIT, e.g. 100/s or 3000/min")
        count = float(match.group(1))
        if count <= 0:
            raise ConfigError(parameter, text, "the count must be above 0")
        return cls(count=count, period=_PER[match.group(2).lower()], burst=burst)

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period, f"{self.period}s")
        return f"{self.count:g}/{unit}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Auto:
    """``auto``: a rate (or budget) learned from each host's rate-limit headers, at
    ``share`` of what the host advertises (a worker's part of the job's)."""

    share: float = 1.0

    def __str__(self) -> str:
        return "auto"

    @staticmethod
    def fixed(rate: Rate | Auto | None) -> Rate | None:
        """``rate`` when it is a fixed one."""
        return rate if isinstance(rate, Rate) else None


DEFAULT_LIMITS = Limits()
DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    """How the transports reach a host: which client, through which proxy, trusting which
    certificates, keeping cookies or not."""

    transport: str = "auto"  # a name in _transports.TRANSPORTS, or auto
    proxy: str | None = None  # http(s)://[user:password@]host:port
    trust_env: bool = False  # honour HTTP_PROXY, HTTPS_PROXY, NO_PROXY
    verify_tls: bool = True
    cacert: str | None = None  # a CA bundle to trust
    cert: str | None = None  # a client certificate (mutual TLS); its key in it or in key
    key: str | None = None
    cookies: bool = False  # keep cookies per origin, as a browser would


@dataclass(frozen=True, slots=True, kw_only=True)
class Http:
    """What one exchange does above the transport: headers added, bodies bounded, redirects
    followed, bodies saved to files."""

    headers: Mapping[str, str] = field(default_factory=dict)
    max_body: int = DEFAULT_MAX_BODY
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    save_dir: str | None = None  # stream 2xx bodies to files here instead of into records
    max_file: int | None = None  # with save_dir: the largest file (None: no limit)
    allow_link_local: bool = False  # follow redirects and next links to 169.254/16, fe80::/10

    def __post_init__(self) -> None:
        if not isinstance(self.max_body, int) or self.max_body < 0:
            raise ConfigError("max_body", self.max_body, "give a size in bytes >= 0")
        if self.max_file is not None and (not isinstance(self.max_file, int) or self.max_file < 0):
            raise ConfigError("max_file", self.max_file, "give a size in bytes >= 0, or None")
        if not isinstance(self.max_redirects, int) or self.max_redirects < 0:
            raise ConfigError("max_redirects", self.max_redirects, "give a whole number >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Auth:
    """Credentials an attempt's hooks add: an OAuth2 token, a key from a pool (``headers``
    and ``user`` are plain headers, in ``Http``)."""

    oauth2_token_url: str | None = None  # client credentials; the secret from the environment
    oauth2_client_id: str | None = None
    oauth2_scope: str | None = None
    key_pool: str | None = None  # a file of API keys, one a line
    key_header: str | None = None  # 'Header: text {key}'
    rate_per_key: Rate | None = None
    budget_per_key: Rate | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Costs:
    """What a request costs against ``budget``: ``cost`` before it goes, ``usage`` after."""

    budget: Rate | Auto | None = None
    cost: str | None = None  # JMESPath over the request: its cost against the budget
    usage: str | None = None  # JMESPath over the answer: what it really cost


@dataclass(frozen=True, slots=True, kw_only=True)
class Pages:
    """How a request's next pages are found, and how many are fetched at most."""

    paginate: str | None = None  # link, next:EXPR, cursor:EXPR:PARAM, page:PARAM, offset:PARAM
    items: str | None = None  # JMESPath: a page's items (page: and offset: modes)
    page_start: int = 1
    page_size: int | None = None
    max_pages: int | None = DEFAULT_MAX_PAGES  # None: no limit
    has_next: str | None = None  # JMESPath: false on a chain's last page

    def __post_init__(self) -> None:
        if self.max_pages is not None and (
            not isinstance(self.max_pages, int) or self.max_pages < 1
        ):
            raise ConfigError("max_pages", self.max_pages, "give a whole number >= 1")
        if self.has_next is not None:
            if self.paginate is None:
                raise ConfigError("has_next", self.has_next, "goes with `paginate`")
            compile_select(self.has_next, "has_next")


@dataclass(frozen=True, slots=True, kw_only=True)
class Checks:
    """What makes a 2xx good: an expression true of its body, a schema it follows."""

    expect: str | None = None  # JMESPath: true of every good body
    schema: str | None = None  # a JSON Schema file every good body follows

    def __post_init__(self) -> None:
        if self.expect is not None:
            compile_select(self.expect, "expect")


@dataclass(frozen=True, slots=True, kw_only=True)
class Records:
    """What a record holds and how it is written: the selection, headers and attempts kept,
    parameters masked, a transform's value, CSV cells as they are."""

    select: str | None = None  # a JMESPath expression; records keep what it selects
    rows: str | None = None  # JMESPath giving a list: each item a row of OUTPUT.rows.jsonl
    include_headers: bool = False
    include_attempts: bool = False
    redact_params: frozenset[str] = frozenset()  # more query parameters records show as ***
    transform: str | Callable[[dict[str, Any]], Any] | None = None
    transform_workers: int | None = None  # None: one per core; 0: on the loop itself
    csv_raw: bool = False  # CSV cells as they are, formulas included (no leading ')

    def __post_init__(self) -> None:
        if self.select is not None:
            compile_select(self.select, "select")
        if self.rows is not None:
            compile_select(self.rows, "rows")
        if self.transform_workers is not None and (
            not isinstance(self.transform_workers, int) or self.transform_workers < 0
        ):
            raise ConfigError(
                "transform_workers", self.transform_workers, "give a whole number >= 0"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Idempotency:
    """The header a changing request's job-derived key goes in (None: no key), and the salt
    that makes one job's keys differ from another's over the same input."""

    idempotency_key: str | None = None
    idempotency_salt: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Guards:
    """What stops a run before its input ends (``limit`` requests started, ``deadline``
    seconds from the start, ``stop_if`` true of the live counters) and what fails it at the
    end (``fail_if``): the engine's guard, and the exit status."""

    limit: int | None = None
    deadline: float | None = None
    max_cost: float | None = None
    stop_if: str | None = None
    fail_if: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        """Whether any guard is asked for."""
        return bool(self.limit is not None or self.deadline is not None
                    or self.max_cost is not None or self.stop_if or self.fail_if)  # fmt: skip

    def __post_init__(self) -> None:
        if self.limit is not None and (
            not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 0
        ):
            raise ConfigError("limit", self.limit, "give a whole number of requests >= 0")
        if self.deadline is not None and (
            not isinstance(self.deadline, int | float) or self.deadline <= 0
        ):
            raise ConfigError("deadline", self.deadline, "give seconds > 0, or 30s, 90m, 2h")
        if self.max_cost is not None and (not _is_number(self.max_cost) or self.max_cost <= 0):
            raise ConfigError("max_cost", self.max_cost, "give a total cost > 0, e.g. 2000000")


DEFAULT_NETWORK = Network()
DEFAULT_HTTP = Http()
DEFAULT_AUTH = Auth()
DEFAULT_COSTS = Costs()
DEFAULT_PAGES = Pages()
DEFAULT_CHECKS = Checks()
DEFAULT_RECORDS = Records()
DEFAULT_IDEMPOTENCY = Idempotency()
DEFAULT_GUARDS = Guards()


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything one run needs to know, in one immutable object shared by CLI and API: a
    part per layer that reads it, so a layer is handed only its part (``make_config`` routes
    each flat option to its part)."""

    limits: Limits = DEFAULT_LIMITS  # the scheduler
    timeouts: Timeouts = DEFAULT_TIMEOUTS  # the attempt and the transports
    retry: RetryPolicy = DEFAULT_RETRY  # the attempt
    network: Network = DEFAULT_NETWORK  # the transports
    http: Http = DEFAULT_HTTP  # _net._http
    auth: Auth = DEFAULT_AUTH  # the attempt's hooks
    costs: Costs = DEFAULT_COSTS  # the scheduler's budget, the attempt's hooks
    pages: Pages = DEFAULT_PAGES  # pagination
    checks: Checks = DEFAULT_CHECKS  # the attempt's body checks
    records: Records = DEFAULT_RECORDS  # the scheduler's stages, the formats
    idempotency: Idempotency = DEFAULT_IDEMPOTENCY  # the attempt's hooks
    guards: Guards = DEFAULT_GUARDS  # the scheduler's guard, the exit status


PARTS: Mapping[str, type] = {
    "limits": Limits, "timeouts": Timeouts, "retry": RetryPolicy, "network": Network,
    "http": Http, "auth": Auth, "costs": Costs, "pages": Pages, "checks": Checks,
    "records": Records, "idempotency": Idempotency, "guards": Guards,
}  # fmt: skip


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
    ``invert`` makes a switch mean False (``--insecure`` is ``verify_tls=False``). ``to`` is
    where the value goes: a part of ``Config`` and its field (``"retry.retries"``; empty:
    only read by another option's ``coerce``); ``coerce(value, values, name)`` turns the
    API's value into that."""

    name: str
    default: Any
    help: str
    flags: tuple[str, ...] = ()
    kind: type = str
    metavar: str | None = None
    parse: Callable[[Any], Any] | None = None
    invert: bool = False
    cli_default: Any = None  # the flag's default as text, when the API's is not text
    to: str = ""  # PART.FIELD: where make_config puts the value (empty: nowhere)
    coerce: Callable[[Any, Mapping[str, Any], str], Any] | None = None
    choices: tuple[str, ...] = ()  # the only values the flag takes
    api: bool = True  # also a keyword of the Python API (job options: some are flags only)
    section: str = ""  # its heading in ``fanfetch run --help`` and docs/flags.md

    def from_cli(self, value: Any) -> Any:
        """The API's value for what the command line read."""
        if self.invert:
            return not value
        if value is None or self.parse is None:
            return value
        return self.parse(value)


def _backoff_max(value: float | None, values: Mapping[str, Any], name: str) -> float | None:
    base = values["backoff_base"]
    return max(DEFAULT_BACKOFF_MAX, base) if value is None and _is_number(base) else value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_rate(
    value: str | Rate | Auto | None, values: Mapping[str, Any], name: str
) -> Rate | Auto | None:
    if value is None or isinstance(value, Rate | Auto):
        return value
    if isinstance(value, str) and value.strip().lower() == "auto":
        if name not in _LEARNABLE:
            raise ConfigError(name, value, "only `rate`, `rate_per_host` and `budget` learn "
                              "from the server's headers")  # fmt: skip
        return Auto()
    if isinstance(value, str):
        burst = 1 if name.startswith("budget") else values["burst"]
        return Rate.parse(value, burst=burst, parameter=name)
    raise ConfigError(name, value, "give a string like '100/s' or 'auto', or a fanfetch.Rate")


_LEARNABLE = frozenset({"rate", "rate_per_host", "budget"})


def _as_headers(
    value: Mapping[str, str] | None, values: Mapping[str, Any], name: str
) -> Mapping[str, str]:
    headers = dict(value or {})
    user = values.get("user")
    if user is not None:  # --user: basic auth, one more header that records never show
        import base64

        if not isinstance(user, str) or ":" not in user:
            raise ConfigError("user", "***", "write it as USER:PASSWORD")
        headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
    return headers


def _as_names(value: Iterable[str] | None, values: Mapping[str, Any], name: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(name, value, "give a list of parameter names, e.g. ['session']")
    return frozenset(v.strip().lower() for v in value)


def _as_proxy(value: str | None, values: Mapping[str, Any], name: str) -> str | None:
    if value is None:
        return None
    scheme = value.partition("://")[0].lower() if "://" in value else ""
    if scheme not in ("http", "https", "socks5", "socks5h", "socks4"):
        shown = value.rpartition("@")[2]  # never echo a password
        hint = "give http://, https://, socks5:// or socks4:// and HOST:PORT"
        raise ConfigError("proxy", shown, hint)
    return value


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


def _as_key_header(value: str | bool | None, values: Mapping[str, Any], name: str) -> str | None:
    if value is None or value is False:
        return None
    if value is True or value == "auto":
        return "Idempotency-Key"
    if not isinstance(value, str) or not _HEADER_NAME.match(value):
        raise ConfigError(name, value, "give auto (Idempotency-Key) or a header's name")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str, option: str = "deadline") -> float:
    """``30s``, ``90m``, ``2h``, ``7d`` (or plain seconds) as seconds."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(option, text, "give a duration like 30s, 90m, 2h or 7d")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def _as_duration(value: Any, values: Mapping[str, Any], name: str) -> float | None:
    if value is None or (_is_number(value) and not isinstance(value, bool)):
        return value  # a number: seconds, checked by Guards
    return parse_duration(value, name)


def _as_condition(value: str | None, values: Mapping[str, Any], name: str) -> str | None:
    if value is not None:
        from ._conditions import Condition

        Condition(value, name)  # refused here, before anything runs, if it is no condition
    return value


def _as_conditions(value: Any, values: Mapping[str, Any], name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    texts = (value,) if isinstance(value, str) else tuple(value)
    for text in texts:
        _as_condition(text, values, name)
    return texts


def _as_salt(value: str | None, values: Mapping[str, Any], name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(name, value, "give a text")
    return value


def _as_file(value: str | None, values: Mapping[str, Any], name: str) -> str | None:
    if value is not None and not os.path.isfile(value):
        what = "a file of API keys, one a line" if name == "key_pool" else "a PEM file"
        raise ConfigError(name, value, f"no such file: give {what}")
    return value


OPTIONS: tuple[Option, ...] = (
    Option("concurrency", DEFAULT_CONCURRENCY, "Requests in flight at most, in all.",
           ("-c", "--concurrency"), int, "N",
           to="limits.concurrency",
           section="How many, how fast"),
    Option("per_host", None, "Requests in flight at most to any one host.  [default: no limit]",
           ("--per-host",), int, "N",
           to="limits.per_host",
           section="How many, how fast"),
    Option("timeout", DEFAULT_TIMEOUT,
           "Per attempt, counted from when it gets its slot (not while queued).",
           ("--timeout",), float, "SECONDS",
           to="timeouts.attempt",
           section="When things fail"),
    Option("connect_timeout", None, "Seconds to connect, within the attempt's timeout.  "
           "[default: the attempt's]", ("--connect-timeout",), float, "SECONDS",
           to="timeouts.connect",
           section="When things fail"),
    Option("retries", DEFAULT_RETRIES, "Further attempts after the first, for retryable failures.",
           ("--retries",), int, "N",
           to="retry.retries",
           section="When things fail"),
    Option("retry_on", DEFAULT_RETRY_ON,
           "Comma-separated statuses to retry (timeouts and connection errors always are).",
           ("--retry-on",), str, "CODES", parse_codes,
           cli_default=",".join(map(str, sorted(DEFAULT_RETRY_ON))),
           to="retry.retry_on",
           section="When things fail"),
    Option("backoff_base", DEFAULT_BACKOFF_BASE,
           "First backoff ceiling; doubles each attempt (full jitter).",
           ("--backoff-base",), float, "SECONDS",
           to="retry.backoff_base",
           section="When things fail"),
    Option("backoff_max", None,
           f"Largest backoff.  [default: {DEFAULT_BACKOFF_MAX:g}, or the base if larger]",
           ("--backoff-max",), float, "SECONDS",
           to="retry.backoff_max", coerce=_backoff_max,
           section="When things fail"),
    Option("max_retry_after", DEFAULT_MAX_RETRY_AFTER,
           "Longest Retry-After honoured; beyond it the request ends.",
           ("--max-retry-after",), float, "SECONDS",
           to="retry.max_retry_after",
           section="When things fail"),
    Option("rate", None, "Attempts started at most, e.g. 100/s or 3000/min; auto: each host "
           "paced at the limit its rate-limit headers advertise.", ("--rate",),
           str, "R",
           coerce=_as_rate,
           to="limits.rate",
           section="How many, how fast"),
    Option("rate_per_host", None, "Like --rate, for each host.", ("--rate-per-host",), str, "R",
           coerce=_as_rate,
           to="limits.rate_per_host",
           section="How many, how fast"),
    Option("cost", None, "JMESPath over each request giving its cost against --budget, e.g. "
           "'sum([json.max_tokens, tokens(json.messages)])' (tokens(x): a token per 4 "
           "characters).  [default: the line's cost]", ("--cost",), str, "EXPR",
           to="costs.cost",
           section="How many, how fast"),
    Option("usage", None, "JMESPath over each answer giving what it really cost, e.g. "
           "usage.total_tokens: the budget is corrected by it.", ("--usage",), str, "EXPR",
           to="costs.usage",
           section="How many, how fast"),
    Option("burst", 1, "Starts allowed at once under --rate.", ("--burst",), int, "N",
           to="",
           section="How many, how fast"),
    Option("budget", None, 'Cost started at most, e.g. 90000/min; requests carry "cost" '
           "(LLM tokens); auto: from x-ratelimit-*-tokens.", ("--budget",), str, "B",
           coerce=_as_rate,
           to="costs.budget",
           section="How many, how fast"),
    Option("headers", None, "Added to every request; repeatable. Never written to records.",
           ("--header",), list, "'NAME: VALUE'", parse_headers,
           coerce=_as_headers,
           to="http.headers",
           section="What is sent and what is accepted"),
    Option("include_headers", False, "Add response headers to records.",
           ("--include-headers",), bool,
           to="records.include_headers",
           section="Input and output"),
    Option("include_attempts", False,
           "Add each attempt's status or error and timing to records (history).",
           ("--include-attempts",), bool,
           to="records.include_attempts",
           section="Input and output"),
    Option("max_body", DEFAULT_MAX_BODY, "Larger bodies end with error too_large.",
           ("--max-body",), int, "BYTES",
           to="http.max_body",
           section="What is sent and what is accepted"),
    Option("max_redirects", DEFAULT_MAX_REDIRECTS, "Redirects followed at most (0: none).",
           ("--max-redirects",), int, "N",
           to="http.max_redirects",
           section="What is sent and what is accepted"),
    Option("verify_tls", True, "Do not verify TLS certificates.", ("--insecure",), bool,
           invert=True,
           to="network.verify_tls",
           section="What is sent and what is accepted"),
    Option("transform", None, "Run FUNCTION(record) in a process pool on each ok record; its "
           "value goes into the record as 'transformed'.", ("--transform",), str,
           "MODULE:FUNCTION",
           to="records.transform",
           section="Files and processing"),
    Option("transform_workers", None,
           "Processes for --transform (0: on the event loop).  [default: one per core]",
           ("--transform-workers",), int, "N",
           to="records.transform_workers",
           section="Files and processing"),
    Option("save_dir", None,
           "Stream each 2xx body to a file in DIR; records get path, bytes, sha256.",
           ("--save-dir",), str, "DIR",
           to="http.save_dir",
           section="Files and processing"),
    Option("max_file", None,
           "With --save-dir: larger files end with error too_large.  [default: no limit]",
           ("--max-file",), int, "BYTES",
           to="http.max_file",
           section="Files and processing"),
    Option("select", None, "Keep only what this JMESPath expression selects from each JSON "
           "body, e.g. '{id: id, name: name}' (a table's columns).", ("--select",), str,
           "EXPR",
           to="records.select",
           section="Input and output"),
    Option("rows", None, "JMESPath giving a list over each ok body: each item a row of "
           "OUTPUT.rows.jsonl (id, page, index, its fields), beside the records.",
           ("--rows",), str, "EXPR",
           to="records.rows",
           section="Input and output"),
    Option("expect", None, "A 2xx is good only when this JMESPath expression is true of its "
           "body; else invalid_response, retried like a 5xx.", ("--expect",), str, "EXPR",
           to="checks.expect",
           section="Input and output"),
    Option("schema", None, "A 2xx is good only when its body follows this JSON Schema; else "
           "invalid_response, retried like a 5xx.", ("--schema",), str, "FILE",
           to="checks.schema",
           section="Input and output"),
    Option("paginate", None, "Follow each request's pages: link, next:EXPR, cursor:EXPR:PARAM "
           "(PARAM json.A.B: in the JSON body), page:PARAM or offset:PARAM; a record per page.",
           ("--paginate",), str, "MODE",
           to="pages.paginate",
           section="Pages"),
    Option("items", None, "JMESPath to a page's items (page: and offset: end on too few).  "
           "[default: the body]", ("--items",), str, "EXPR",
           to="pages.items",
           section="Pages"),
    Option("has_next", None, "JMESPath over each page's body; false (or absent) on the last "
           "page, e.g. data.search.pageInfo.hasNextPage: the chain ends there.",
           ("--has-next",), str, "EXPR", to="pages.has_next", section="Pages"),
    Option("page_start", 1, "With page:PARAM, the first page's number.", ("--page-start",),
           int, "N",
           to="pages.page_start",
           section="Pages"),
    Option("page_size", None, "With offset:PARAM, the items a full page has.", ("--page-size",),
           int, "N",
           to="pages.page_size",
           section="Pages"),
    Option("max_pages", DEFAULT_MAX_PAGES, "Pages fetched at most per chain (a chain of "
           "ever-new cursors ends there; the summary counts chains cut short).",
           ("--max-pages",), int, "N",
           to="pages.max_pages",
           section="Pages"),
    Option("allow_link_local", False, "Follow redirects and next links to link-local "
           "addresses (169.254.0.0/16, fe80::/10, where cloud metadata answers).  [default: "
           "refused]", ("--allow-link-local",), bool,
           to="http.allow_link_local",
           section="What is sent and what is accepted"),
    Option("redact_params", None, "A query parameter whose value records show as *** (as "
           "they do api_key, token, key, sig...); repeatable.", ("--redact-param",), list,
           "NAME", coerce=_as_names,
           to="records.redact_params",
           section="What is sent and what is accepted"),
    Option("csv_raw", False, "CSV outputs: write every cell as it is. By default a cell a "
           "spreadsheet would run as a formula (= + - @ first) gets a leading ', which "
           "fanfetch's own readers take off again.", ("--csv-raw",), bool,
           to="records.csv_raw",
           section="What is sent and what is accepted"),
    Option("proxy", None, "Send every request through this http://, https:// or socks5:// "
           "proxy; credentials in its URL go to the proxy only, never into records or messages.",
           ("--proxy",), str, "URL", coerce=_as_proxy,
           to="network.proxy",
           section="Networks and credentials"),
    Option("trust_env", False, "Honour HTTP_PROXY, HTTPS_PROXY and NO_PROXY (off: the "
           "environment never changes what a job does).", ("--trust-env",), bool,
           to="network.trust_env",
           section="Networks and credentials"),
    Option("cacert", None, "Trust the CAs in this PEM bundle (a private CA).", ("--cacert",),
           str, "FILE", coerce=_as_file,
           to="network.cacert",
           section="Networks and credentials"),
    Option("cert", None, "Present this client certificate (PEM; mutual TLS).", ("--cert",),
           str, "FILE", coerce=_as_file,
           to="network.cert",
           section="Networks and credentials"),
    Option("key", None, "The client certificate's private key, when not in --cert.",
           ("--key",), str, "FILE", coerce=_as_file,
           to="network.key",
           section="Networks and credentials"),
    Option("cookies", False, "Keep the cookies servers set and send them back to where they "
           "came from (a login through a redirect).  [default: off: requests are independent]",
           ("--cookies",), bool,
           to="network.cookies",
           section="Networks and credentials"),
    Option("oauth2_token_url", None, "Get a bearer token here (OAuth2 client credentials; the "
           "secret from FANFETCH_OAUTH2_CLIENT_SECRET), refreshed before it expires.",
           ("--oauth2-token-url",), str, "URL",
           to="auth.oauth2_token_url",
           section="Networks and credentials"),
    Option("oauth2_client_id", None, "With --oauth2-token-url: the client's id.",
           ("--oauth2-client-id",), str, "ID",
           to="auth.oauth2_client_id",
           section="Networks and credentials"),
    Option("oauth2_scope", None, "With --oauth2-token-url: the scope to ask for.",
           ("--oauth2-scope",), str, "SCOPE",
           to="auth.oauth2_scope",
           section="Networks and credentials"),
    Option("key_pool", None, "Spread requests over the API keys in FILE (one a line): each "
           "attempt takes the key with the most room; records get key_index, never a key.",
           ("--key-pool",), str, "FILE", coerce=_as_file,
           to="auth.key_pool",
           section="Networks and credentials"),
    Option("key_header", None, "With --key-pool: how a key is sent.  [default: "
           "'Authorization: Bearer {key}']", ("--key-header",), str, "'NAME: TEXT {key}'",
           to="auth.key_header",
           section="Networks and credentials"),
    Option("rate_per_key", None, "With --key-pool: like --rate, for each key.",
           ("--rate-per-key",), str, "R", coerce=_as_rate,
           to="auth.rate_per_key",
           section="Networks and credentials"),
    Option("budget_per_key", None, "With --key-pool: like --budget, for each key.",
           ("--budget-per-key",), str, "B", coerce=_as_rate,
           to="auth.budget_per_key",
           section="Networks and credentials"),
    Option("idempotency_key", None, "Send a key on POST, PUT, PATCH and DELETE in this header "
           "(auto: Idempotency-Key), derived from the request's id, method, URL and body: the "
           "same on every retry and after --resume, never in records; a line's own wins.",
           ("--idempotency-key",), str, "auto|HEADER", coerce=_as_key_header,
           to="idempotency.idempotency_key",
           section="What is sent and what is accepted"),
    Option("idempotency_salt", None, "With --idempotency-key: mixed into every key, so a new "
           "job over the same input sends new keys.", ("--idempotency-salt",), str, "TEXT",
           coerce=_as_salt, to="idempotency.idempotency_salt",
           section="What is sent and what is accepted"),
    Option("limit", None, "Make at most N requests (pages count, retries do not), then stop as "
           "after Ctrl-C: exit status 3; --resume goes on.", ("--limit",), int, "N",
           to="guards.limit", section="Guards"),
    Option("deadline", None, "Take no new request this long after the start (30s, 90m, 2h): "
           "exit status 3; --resume goes on.", ("--deadline",), str, "DURATION",
           coerce=_as_duration, to="guards.deadline", section="Guards"),
    Option("max_cost", None, "Stop before an attempt would take the run's total cost (what "
           "--cost or a line's cost says, corrected by --usage) over X: exit status 3.",
           ("--max-cost",), float, "X", to="guards.max_cost", section="Guards"),
    Option("stop_if", None, "Stop when this is true of the live counters, e.g. 'error_rate > "
           "0.5 and done >= 200' (names in docs/flags.md): exit status 3.", ("--stop-if",),
           str, "EXPR", coerce=_as_condition, to="guards.stop_if", section="Guards"),
    Option("fail_if", None, "At the end, exit status 3 when this is true of the counters, "
           "e.g. 'p99_ms > 500'; repeatable; the summary says which.", ("--fail-if",), list,
           "EXPR", coerce=_as_conditions, to="guards.fail_if", section="Guards"),
    Option("user", None, "Basic auth for every request, as USER:PASSWORD (never echoed).",
           ("--user",), str, "USER:PASSWORD", to="",
           section="Networks and credentials"),
    Option("transport", "auto", "The HTTP client underneath: lean (HTTP/1.1), aiohttp, http2, "
           "or auto (lean, or aiohttp for --cookies and socks or https:// proxies).",
           ("--transport",), str, "NAME",
           to="network.transport",
           section="What is sent and what is accepted"),
    Option("http2", False, "Speak HTTP/2 to https:// hosts that offer it: one connection to a "
           "host carries many requests at once (the http2 transport; pip install "
           "'fanfetch[http2]').", ("--http2",), bool, to="",
           section="What is sent and what is accepted"),
)  # fmt: skip

BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}


class Options(TypedDict, total=False):
    """The API's keywords, for type checkers (the table above has their defaults and help).
    ``transport`` is not here: the API's functions take it as a parameter of its own, a name
    or a ``Transport`` object."""

    concurrency: int
    per_host: int | None
    timeout: float | None
    connect_timeout: float | None
    retries: int
    retry_on: Iterable[int]
    backoff_base: float
    backoff_max: float | None
    max_retry_after: float
    rate: str | Rate | None
    rate_per_host: str | Rate | None
    burst: int
    budget: str | Rate | None
    headers: Mapping[str, str] | None
    include_headers: bool
    include_attempts: bool
    max_body: int
    max_redirects: int
    verify_tls: bool
    transform: str | Callable[[dict[str, Any]], Any] | None
    transform_workers: int | None
    save_dir: str | None
    max_file: int | None
    select: str | None
    rows: str | None
    proxy: str | None
    trust_env: bool
    cacert: str | None
    cert: str | None
    key: str | None
    user: str | None
    idempotency_key: str | bool | None
    limit: int | None
    deadline: str | float | None
    max_cost: float | None
    stop_if: str | None
    fail_if: str | Sequence[str] | None
    idempotency_salt: str | None
    http2: bool
    cookies: bool
    oauth2_token_url: str | None
    oauth2_client_id: str | None
    oauth2_scope: str | None
    cost: str | None
    usage: str | None
    key_pool: str | None
    key_header: str | None
    rate_per_key: str | Rate | None
    budget_per_key: str | Rate | None
    expect: str | None
    schema: str | None
    paginate: str | None
    items: str | None
    page_start: int
    page_size: int | None
    max_pages: int | None
    has_next: str | None
    allow_link_local: bool
    redact_params: Sequence[str]
    csv_raw: bool


def make_config(*, transport: str = "auto", **options: Unpack[Options]) -> Config:
    """A ``Config`` from flat keyword options (the command line's flags, in Python).

    A name that is no option is a ``ConfigError`` that suggests the nearest one.
    """
    for name in sorted(options):
        if name not in BY_NAME:
            near = difflib.get_close_matches(name, BY_NAME, n=1)
            hint = f"no such option; did you mean {near[0]}?" if near else "no such option"
            shown = ", ".join(BY_NAME)
            raise ConfigError(name, options[name], f"{hint} (the options: {shown})")  # type: ignore[literal-required]
    values: dict[str, Any] = {o.name: o.default for o in OPTIONS} | dict(options)
    values["transport"] = transport
    if values.get("http2"):
        if transport not in ("auto", "http2"):
            raise ConfigError("http2", True, f"`http2` is the http2 transport, not {transport}")
        values["transport"] = "http2"
    parts: dict[str, dict[str, Any]] = {name: {} for name in PARTS}
    for option in OPTIONS:
        value = values[option.name]
        if option.coerce is not None:
            value = option.coerce(value, values, option.name)
        if option.to:
            part, _, name = option.to.partition(".")
            parts[part][name] = value
    return Config(**{name: PARTS[name](**kw) for name, kw in parts.items()})


make_config.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default) for o in OPTIONS],
    return_annotation=Config,
)
