"""The transport seam: ``_http`` sends one request and gets one exchange or one error.

``TRANSPORTS`` names every transport a run can choose with ``--transport``; each is one
module, imported only when chosen (so one that needs an extra costs nothing until used).
``MockTransport`` answers from a function, for tests without sockets.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from .._config import Config
from .._exceptions import ConfigError
from ._aiohttp import AiohttpTransport
from ._base import Exchange, Response, Transport
from ._mock import MockTransport

__all__ = [
    "TRANSPORTS",
    "AiohttpTransport",
    "Exchange",
    "MockTransport",
    "Response",
    "Transport",
    "open_transport",
]

TRANSPORTS: Mapping[str, str] = {
    "aiohttp": "fanfetch._transports._aiohttp:AiohttpTransport",
}


def open_transport(config: Config, *, pool_size: int | None = None) -> Transport:
    """The transport ``config.transport`` names, its pool sized for ``pool_size`` requests
    in flight (default: the run's concurrency)."""
    where = TRANSPORTS.get(config.transport)
    if where is None:
        raise ConfigError("transport", config.transport, f"choose one of: {', '.join(TRANSPORTS)}")
    module, _, name = where.partition(":")
    transport: Transport = getattr(importlib.import_module(module), name)(
        config, pool_size=pool_size
    )
    return transport
