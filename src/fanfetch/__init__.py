"""fanfetch: make very many HTTP API calls concurrently, safely; one record out per request in.

The public API is what ``__all__`` lists; everything else lives in private modules.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._client import Fetcher, RequestLike, stream
from ._core._config import (
    Auto,
    Config,
    Limits,
    Options,
    Rate,
    RetryPolicy,
    Timeouts,
    make_config,
)
from ._core._events import Event, Finished, Listener, Retrying, RunEnded, RunStarted
from ._core._exceptions import (
    AuthError,
    BodyTooLarge,
    ConfigError,
    ConnectError,
    DecodeError,
    FanfetchError,
    HTTPStatusError,
    InputError,
    InvalidRequest,
    InvalidResponse,
    MapError,
    NoKeyLeft,
    OutputError,
    PaginationError,
    RequestError,
    RequestTimeout,
    SaveError,
    SelectError,
    ThresholdCrossed,
    TLSError,
    TooManyRedirects,
    TransformError,
    UsageError,
    WorkerDied,
)
from ._core._models import Request, Result
from ._frames import amap, map, read
from ._net._transports import MockTransport, Response, Transport
from ._sync import iter_results, run, run_job
from ._version import __version__

if _TYPE_CHECKING:
    from ._mockapi import MockAPI


def __getattr__(name: str) -> _Any:
    # MockAPI pulls in aiohttp's server side; a run that never uses it should not import it
    if name == "MockAPI":
        from ._mockapi import MockAPI

        return MockAPI
    raise AttributeError(f"module 'fanfetch' has no attribute {name!r}")


__all__ = [
    "AuthError",
    "Auto",
    "BodyTooLarge",
    "Config",
    "ConfigError",
    "ConnectError",
    "DecodeError",
    "Event",
    "FanfetchError",
    "Fetcher",
    "Finished",
    "HTTPStatusError",
    "InputError",
    "InvalidRequest",
    "InvalidResponse",
    "Limits",
    "Listener",
    "MapError",
    "MockAPI",
    "MockTransport",
    "NoKeyLeft",
    "Options",
    "OutputError",
    "PaginationError",
    "Rate",
    "Request",
    "RequestError",
    "RequestLike",
    "RequestTimeout",
    "Response",
    "Result",
    "RetryPolicy",
    "Retrying",
    "RunEnded",
    "RunStarted",
    "SaveError",
    "SelectError",
    "TLSError",
    "ThresholdCrossed",
    "Timeouts",
    "TooManyRedirects",
    "TransformError",
    "Transport",
    "UsageError",
    "WorkerDied",
    "__version__",
    "amap",
    "iter_results",
    "make_config",
    "map",
    "read",
    "run",
    "run_job",
    "stream",
]
