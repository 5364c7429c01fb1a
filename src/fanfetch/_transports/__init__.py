"""The transport seam: the scheduler sends one request and gets one response or one error.

``AiohttpTransport`` is the real one; ``MockTransport`` answers from a function, so the
scheduler, limits and retries can be tested without sockets.
"""

from ._aiohttp import AiohttpTransport
from ._base import Exchange, Response, Transport
from ._mock import MockTransport

__all__ = ["AiohttpTransport", "Exchange", "MockTransport", "Response", "Transport"]
