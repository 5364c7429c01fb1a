"""A minimal keep-alive HTTP/1.1 server on uvloop that answers every request after a fixed delay.

    python benchmarks/latency_server.py PORT DELAY_MS

Hand-written on asyncio's protocol layer (no framework) so that the server, not the client,
is never the limit: with 50 ms of delay it serves many thousands of requests a second on
one core. It prints ``listening on http://127.0.0.1:PORT`` once ready.
"""

from __future__ import annotations

import asyncio
import sys

BODY = b'{"id": 1, "name": "item", "price": 9.5, "tags": ["a", "b"]}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\nConnection: keep-alive\r\n\r\n"
    + BODY
)


class Delayed(asyncio.Protocol):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        loop = asyncio.get_running_loop()
        while (end := self.buffer.find(b"\r\n\r\n")) != -1:  # GET requests: no body
            self.buffer = self.buffer[end + 4 :]
            loop.call_later(self.delay, self.answer)

    def answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(RESPONSE)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def main(port: int, delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Delayed(delay_ms / 1000.0), "127.0.0.1", port, backlog=4096
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1]), float(sys.argv[2])))
