"""One asyncio UDP endpoint that hands every datagram to a callback.

The stand-ins and relays differ in what they do with a datagram, not in how they
receive it; this is the how.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

Address = tuple[str, int]


class Datagrams(asyncio.DatagramProtocol):
    """A UDP socket calling `on_datagram(data, source)`; ICMP errors are ignored."""

    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    async def open(self, local: Address) -> Datagrams:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=local)
        return self

    @property
    def port(self) -> int:
        assert self.transport is not None, "not open"
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, target: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, target)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        self.on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        pass  # a peer went away (ICMP port unreachable); UDP servers do not care
