"""Uvicorn's HTTP protocol with TCP_NODELAY on every accepted connection, whatever the event loop.

A response goes out in two writes (headers, then body). With Nagle's algorithm on, the second waits for the
client to acknowledge the first, and clients delay that acknowledgement by up to 40 ms: every request on a
reused connection would pay it. uvloop happens to set TCP_NODELAY; asyncio's own loop sets it only on sockets
whose protocol number says TCP, which a listening socket shared by uvicorn's workers does not. So the
protocol sets it itself, on every connection, as soon as it is made.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
