"""The lean transport: HTTP/1.1 over the loop's own transports, parsed by ``httptools``.

One ``asyncio.Protocol`` per connection, one request at a time on it, kept alive and reused
per origin; ``httptools`` (llhttp, the parser under uvicorn) reads the responses. Written by
hand: only the pool and the request/response state machine. It only transports (see
``_base``): no redirect followed, no body decoded.

What it promises, as the aiohttp transport does: a request is sent once (a kept-alive
connection the server closed is never written to again, and nothing is re-sent quietly);
the timeout covers connecting, the answer and its body; headers are capped in size and
count; a body is read no faster than the layer above takes it (reading pauses past
``_PAUSE_AT`` bytes held), so an endless stream holds no more than that.

The parts: ``_pool`` (``LeanTransport``: connections kept per origin, the one timer for
every deadline, CONNECT tunnels), ``_connection`` (one connection's protocol and the
exchange on it), ``_origin`` (where an origin's requests go: directly or through a proxy),
``_dns`` (names looked up once for every connection that asks, and kept) and ``_head``
(the request's head, as bytes).
"""

from ._pool import LeanTransport

__all__ = ["LeanTransport"]
