"""SIP transports ("channels"): one long-lived UDP socket or TCP/TLS connection per target.

A channel only moves bytes: it hands every received message, and every breakage, to its
sink (the SIP probe), which matches them to transactions. Opening a channel fails with a
`_Failure` (internal: it ends as a ProbeResult) carrying the reason the probe reports.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
from typing import Protocol, cast

from breaker.probes._framing import FramingError, StreamFramer
from breaker.probes._sipmsg import format_hostport

_UNREACHABLE_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH}


class _Failure(Exception):
    """Ends a check with a failure reason (a metric label); str() of it is the detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Sink(Protocol):
    def received(self, channel: Channel, data: bytes, at: float) -> None: ...

    def broken(self, channel: Channel, reason: str, detail: str) -> None: ...


class Channel:
    """One transport to one remote address; hands every received message to the sink."""

    via_transport = "UDP"

    def __init__(self, remote: tuple[str, int], sink: Sink) -> None:
        self.remote = remote
        self.sink = sink
        self.local: tuple[str, int] = ("0.0.0.0", 0)
        self.closed = False

    def is_open(self) -> bool:
        return not self.closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport, and the socket's own address: Via and Contact carry it."""
        self.transport = cast(asyncio.DatagramTransport | asyncio.Transport, transport)
        sockname = transport.get_extra_info("sockname")
        self.local = (str(sockname[0]), int(sockname[1]))

    transport: asyncio.DatagramTransport | asyncio.Transport | None = None

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """At once: nothing still queued is worth a wait once the probe drops the channel."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class UdpChannel(Channel, asyncio.DatagramProtocol):
    """A connected UDP socket: the kernel filters other sources and reports ICMP errors."""

    def __init__(self, remote: tuple[str, int], sink: Sink) -> None:
        super().__init__(remote, sink)
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, remote: tuple[str, int], sink: Sink) -> UdpChannel:
        loop = asyncio.get_running_loop()
        channel = cls(remote, sink)
        try:
            await loop.create_datagram_endpoint(lambda: channel, remote_addr=remote)
        except OSError as exc:
            raise _Failure("error", f"cannot open UDP socket to {addr(remote)}: {exc}") from None
        return channel

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        self.sink.received(self, data, time.monotonic())

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
            detail = f"ICMP unreachable from {addr(self.remote)}: {exc.strerror}"
            self.sink.broken(self, "icmp-unreachable", detail)
        else:
            self.sink.broken(self, "error", f"UDP socket error: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.sink.broken(self, "error", f"UDP socket closed: {exc or 'closed'}")

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)


class TcpChannel(Channel, asyncio.Protocol):
    """A TCP (or TLS) connection framed by Content-Length."""

    def __init__(self, remote: tuple[str, int], sink: Sink, tls: bool) -> None:
        super().__init__(remote, sink)
        self.via_transport = "TLS" if tls else "TCP"
        self.transport: asyncio.Transport | None = None
        self.framer = StreamFramer()

    @classmethod
    async def open(
        cls,
        remote: tuple[str, int],
        sink: Sink,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str,
    ) -> TcpChannel:
        loop = asyncio.get_running_loop()
        channel = cls(remote, sink, tls=ssl_context is not None)
        where = addr(remote)
        try:
            await loop.create_connection(
                lambda: channel,
                remote[0],
                remote[1],
                ssl=ssl_context,
                server_hostname=server_hostname if ssl_context is not None else None,
            )
        except ConnectionRefusedError:
            raise _Failure("connect-refused", f"connection to {where} refused") from None
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
            raise _Failure("connection-reset", f"connecting to {where}: {exc}") from None
        except ssl.SSLError as exc:
            raise _Failure("tls", f"TLS handshake with {where}: {exc}") from None
        except TimeoutError:
            raise
        except OSError as exc:
            raise _Failure("error", f"connecting to {where}: {exc}") from None
        return channel

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()
        try:
            messages = self.framer.feed(data)
        except FramingError as exc:
            self.sink.broken(
                self, "error", f"unreadable SIP stream from {addr(self.remote)}: {exc}"
            )
            self.close()
            return
        for message in messages:
            self.sink.received(self, message, at)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if isinstance(exc, ssl.SSLError):
            self.sink.broken(self, "tls", f"TLS error from {addr(self.remote)}: {exc}")
        else:
            detail = f"{exc}" if exc else "connection closed by the server"
            self.sink.broken(self, "connection-reset", detail)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


def addr(remote: tuple[str, int]) -> str:
    """`host:port`, IPv6 hosts in brackets: how messages name a remote."""
    return format_hostport(remote[0], remote[1])
