"""The transport seam: ``_http`` sends one request and gets one exchange or one error.

``TRANSPORTS`` names every transport a run can choose with ``--transport``; each is one
module, imported only when chosen (so one that needs an extra costs nothing until used).
``MockTransport`` answers from a function, for tests without sockets. (aiohttp is imported
only by a run that uses it: it is a tenth of a second of every start-up.)
"""

from __future__ import annotations

import importlib
import urllib.request
from collections.abc import Mapping

from ..._core._config import Config
from ..._core._exceptions import ConfigError
from ._base import Exchange, Response, Transport
from ._mock import MockTransport

__all__ = [
    "TRANSPORTS",
    "Exchange",
    "MockTransport",
    "Response",
    "Transport",
    "open_transport",
    "transport_name",
]

TRANSPORTS: Mapping[str, str] = {
    "lean": "fanfetch._net._transports._lean:LeanTransport",
    "aiohttp": "fanfetch._net._transports._aiohttp:AiohttpTransport",
    "http2": "fanfetch._net._transports._http2:Http2Transport",  # the http2 extra: pyreqwest
}


def transport_name(config: Config) -> str:
    """The transport a run uses: the one named, or for ``auto`` the lean one unless the run
    asks for what only aiohttp does (a cookie jar, a socks or https:// proxy, given or, with
    ``trust_env``, from the environment)."""
    name = config.network.transport
    if name != "auto":
        return name
    proxies = [config.network.proxy] if config.network.proxy else []
    if config.network.trust_env and not config.network.proxy:
        env = urllib.request.getproxies_environment()
        proxies = [env[scheme] for scheme in ("http", "https") if env.get(scheme)]
    if config.network.cookies or any(not p.startswith("http://") for p in proxies):
        return "aiohttp"
    return "lean"


def open_transport(config: Config, *, pool_size: int | None = None) -> Transport:
    """The transport ``config.network.transport`` names, its pool sized for ``pool_size`` requests
    in flight (default: the run's concurrency)."""
    where = TRANSPORTS.get(transport_name(config))
    if where is None:
        choices = ", ".join(["auto", *TRANSPORTS])
        raise ConfigError("transport", config.network.transport, f"choose one of: {choices}")
    module, _, name = where.partition(":")
    transport: Transport = getattr(importlib.import_module(module), name)(
        config, pool_size=pool_size
    )
    return transport
