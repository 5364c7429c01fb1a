"""fanfetch's one exception tree. Each transport maps its own library's errors onto it.

    FanfetchError
    ├── WorkerDied              --workers: worker processes kept dying (exit status 1)
    ├── ThresholdCrossed        from Python: a `fail_if` condition held at the run's end
    ├── MapError                fanfetch.map(on_error="raise"): some rows failed
    ├── OutputError             the output cannot be written (a full disk): the run stops
    ├── UsageError              the caller asked for something we cannot do (exit status 2)
    │   ├── ConfigError         a bad option value: names the parameter and the fix
    │   └── InputError          the input as a whole cannot be read (missing file...)
    └── RequestError            one request failed; becomes the record's ``error``
        ├── InvalidRequest      "invalid_request": the line could not be made into a request
        ├── RequestTimeout      "timeout": an attempt took longer than its timeout
        ├── ConnectError        "connection": refused, reset, dropped mid-body, DNS...
        ├── TLSError            "tls": the certificate was refused, or the handshake failed
        ├── TooManyRedirects    "too_many_redirects": more than --max-redirects, or a loop
        ├── HTTPStatusError     "http_status": the final response was not 2xx
        ├── BodyTooLarge        "too_large": the body is over the size limit
        ├── DecodeError         "decode": the body's Content-Encoding cannot be undone
        ├── SaveError           "save": the body could not be written to --save-dir
        ├── InvalidResponse     "invalid_response": a 2xx whose body fails --expect/--schema
        ├── PaginationError     "pagination": a chain's next page repeats one, or is refused
        ├── SelectError         "select": --select could not be applied to the body
        ├── TransformError      "transform": --transform raised on the record
        ├── AuthError           "auth": no OAuth2 token could be had (tried again)
        └── NoKeyLeft           "no_key": every key of --key-pool was refused

Each ``RequestError`` subclass carries ``type``, the stable string written into records, and
``retryable``: whether another attempt could go otherwise (a timeout may; a refused
certificate will not). ``status`` is the response's status when there was one (a body too
large or undecodable still had its status line).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._voice import Voice, speak

__all__ = [
    "AuthError",
    "BodyTooLarge",
    "ConfigError",
    "ConnectError",
    "DecodeError",
    "FanfetchError",
    "HTTPStatusError",
    "InputError",
    "InvalidRequest",
    "InvalidResponse",
    "MapError",
    "NoKeyLeft",
    "OutputError",
    "PaginationError",
    "RequestError",
    "RequestTimeout",
    "SaveError",
    "SelectError",
    "TLSError",
    "ThresholdCrossed",
    "TooManyRedirects",
    "TransformError",
    "UsageError",
    "WorkerDied",
    "error_from_record",
]


class FanfetchError(Exception):
    """Root of every error fanfetch raises on purpose. A message names options as `name`
    (see ``_voice``): ``str()`` says them as the current voice does."""

    def __str__(self) -> str:
        return speak(super().__str__())

    def spoken(self, voice: Voice) -> str:
        """The message with each option it names said as ``voice`` says it."""
        return speak(super().__str__(), voice)


class UsageError(FanfetchError):
    """The caller asked for something that cannot be done; the CLI exits with status 2."""


class ConfigError(UsageError, ValueError):
    """An option has a bad value. The message names the parameter, the value and the fix.

    The hint names other options as `name` (see ``FanfetchError``); the command line says
    the whole message in terms of the flag (``_cli._main``)."""

    def __init__(self, parameter: str, value: object, hint: str) -> None:
        self.parameter = parameter
        self.value = value
        self.hint = hint
        super().__init__(f"invalid {parameter}={value!r}. HINT: {hint}")


class OutputError(FanfetchError):
    """The output cannot be written (disk full, closed pipe): the run stops, output whole."""


class MapError(FanfetchError):
    """``fanfetch.map(..., on_error="raise")``: some rows failed. ``failures`` lists each as
    ``(position, error_type, message)``; ``frame`` is the whole output, failed rows in it."""

    def __init__(self, failures: list[tuple[int, str, str]], frame: Any) -> None:
        self.failures = failures
        self.frame = frame
        position, kind, message = failures[0]
        super().__init__(f"{len(failures):,} of the rows failed; the first, row {position}: "
                         f"{kind}: {message}")  # fmt: skip


class ThresholdCrossed(FanfetchError):
    """A ``fail_if=`` condition held at the end of a run started from Python (the command
    line says it with exit status 3). ``crossed`` names them; ``results`` holds the run's
    results, as ``fanfetch.run`` would have returned them (empty for ``iter_results``,
    which yielded them)."""

    def __init__(self, crossed: list[str], results: list[Any] | None = None) -> None:
        self.crossed = list(crossed)
        self.results = results or []
        shown = "; ".join(repr(text) for text in self.crossed)
        super().__init__(f"a `fail_if` condition held at the end of the run: {shown}")


class WorkerDied(FanfetchError):
    """``--workers``: a worker process died more often than it is replaced; the output
    holds every record that came back, and ``--resume`` asks the rest."""


class InputError(UsageError):
    """The input as a whole cannot be read (a missing or unreadable file)."""


class RequestError(FanfetchError):
    """One request failed. ``type`` is the stable name written into the record."""

    type: str = "error"
    retryable: bool = False
    status: int | None = None

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class SaveError(RequestError):
    """The body could not be written to its file (``--save-dir``): a full disk, say."""

    type = "save"


class InvalidRequest(RequestError):
    type = "invalid_request"


class RequestTimeout(RequestError):
    type = "timeout"
    retryable = True


class ConnectError(RequestError):
    type = "connection"
    retryable = True


class TLSError(RequestError):
    type = "tls"


class TooManyRedirects(RequestError):
    type = "too_many_redirects"


class HTTPStatusError(RequestError):
    type = "http_status"


class BodyTooLarge(RequestError):
    type = "too_large"


class DecodeError(RequestError):
    type = "decode"


class InvalidResponse(RequestError):
    """A 2xx whose body fails ``--expect`` or ``--schema``: tried again like a 5xx (the
    record keeps the last body, to look at)."""

    type = "invalid_response"
    retryable = True


class PaginationError(RequestError):
    """``"pagination"``: the chain cannot go on (its next page repeats one already fetched,
    or is a URL fanfetch does not follow)."""

    type = "pagination"


class SelectError(RequestError):
    """``"select"``: the expression could not be applied to the body (a function given the
    wrong type, say). The record keeps the whole body, so it can be looked at."""

    type = "select"


class TransformError(RequestError):
    """``"transform"``: the ``--transform`` function raised on the record."""

    type = "transform"


class AuthError(RequestError):
    """``"auth"``: no token could be had from the token endpoint (tried again like a 5xx)."""

    type = "auth"
    retryable = True


class NoKeyLeft(RequestError):
    """``"no_key"``: every key of the pool was refused (401 or 403)."""

    type = "no_key"


def _error_classes() -> dict[str, type[RequestError]]:
    """Every ``RequestError`` class by its record ``type`` (each type names one class)."""
    classes: dict[str, type[RequestError]] = {}
    todo = [RequestError]
    while todo:
        cls = todo.pop()
        classes[cls.type] = cls
        todo.extend(cls.__subclasses__())
    return classes


_ERROR_CLASSES = _error_classes()  # record ``type`` -> class


def error_from_record(error: Mapping[str, Any]) -> RequestError:
    """The error a record's ``error`` field names, rebuilt (message and ``type`` kept)."""
    kind, message = str(error.get("type", "error")), str(error.get("message", ""))
    found = _ERROR_CLASSES.get(kind)
    if found is not None:
        return found(message)
    exc = RequestError(message)
    exc.type = kind  # a type this version does not know: keep its name all the same
    return exc
