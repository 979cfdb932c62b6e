"""SIP over TCP for the lab's socket model: a client transaction and the customer-premises PBX.

Over TCP a client does not retransmit (RFC 3261 17.1.2.2: the transport is
reliable); it waits for the final answer up to Timer F (32 s). vm-presence keeps
one connection per PUBLISH in flight (`TcpChannel`, re-opened when it fails), so
every running instance holds `window` connections of the registrar's, and every
piled-up instance adds as many.

`Pbx` is the customer premises' SIP server that inbound calls are routed to, over
TCP: it answers INVITE with 100 and 200, BYE and anything else with 200, and
closes the connection after the BYE, so each inbound call needs a new connection
from the registrar, which a registrar at its `tcp_max_connections` cannot open.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

from breaker.probes._framing import FramingError, StreamFramer
from breaker.probes._sipmsg import (
    SipResponse,
    build_response,
    format_message,
    new_branch,
    new_call_id,
    new_tag,
    parse_request,
    parse_response,
    via_branch,
)
from lab._sip import Outcome, UacCounters, mwi_body

TIMER_F = 32.0
_SDP = b"v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"


class TcpChannel:
    """One client connection, reused for one transaction after another."""

    def __init__(self, remote: tuple[str, int]) -> None:
        self.remote = remote
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._framer = StreamFramer()
        self.connects = 0

    async def transact(
        self, data: bytes, branch: str, give_up_after: float = TIMER_F
    ) -> SipResponse | None:
        """Send a request; its final answer, or None (refused, closed, or none in time)."""
        try:
            async with asyncio.timeout(give_up_after):
                if self._writer is None or self._writer.is_closing():
                    self.connects += 1
                    self._reader, self._writer = await asyncio.open_connection(*self.remote)
                    self._framer = StreamFramer()
                assert self._reader is not None
                self._writer.write(data)
                await self._writer.drain()
                while True:
                    chunk = await self._reader.read(65536)
                    if not chunk:
                        self.close()
                        return None
                    for message in self._framer.feed(chunk):
                        response = parse_response(message)
                        if (
                            response is not None
                            and response.status >= 200
                            and via_branch(response.get("via") or "") == branch
                        ):
                            return response
        except (OSError, TimeoutError, FramingError):
            self.close()
            return None

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._reader = self._writer = None


async def publish_mwi_tcp(
    channel: TcpChannel, counters: UacCounters, user: str, domain: str
) -> Outcome:
    """One MWI PUBLISH on a kept TCP connection, as vm-presence sends it with --transport tcp."""
    host, port = channel.remote
    branch = new_branch()
    body = mwi_body(user, domain)
    data = format_message(
        f"PUBLISH sip:{user}@{host}:{port};transport=tcp SIP/2.0",
        [
            ("Via", f"SIP/2.0/TCP {host}:9;branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:vm-presence@{domain}>;tag={new_tag()}"),
            ("To", f"<sip:{user}@{domain}>"),
            ("Call-ID", new_call_id()),
            ("CSeq", "1 PUBLISH"),
            ("Event", "message-summary"),
            ("Expires", "3600"),
            ("Content-Type", "application/simple-message-summary"),
            ("User-Agent", "vm-presence"),
        ],
        body,
    )
    counters.transactions += 1
    sent_at = time.time()
    response = await channel.transact(data, branch)
    done_at = time.time()
    if response is None:
        counters.timeouts += 1
    else:
        counters.finals[response.status] += 1
        if response.status == 503 and counters.first_503_at is None:
            counters.first_503_at = done_at
    status = response.status if response is not None else None
    return Outcome(status, response, sent_at, done_at, 0)


class Pbx:
    """A SIP server on TCP that answers every call and closes the connection after the BYE."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: asyncio.Server | None = None
        self.connections = 0
        self.calls = 0

    async def start(self, host: str = "127.0.0.1") -> Pbx:
        self.server = await asyncio.start_server(self._serve, host, self.port)
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        framer = StreamFramer()
        tags: dict[str, str] = {}
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                for message in framer.feed(chunk):
                    request = parse_request(message)
                    if request is None or request.method == "ACK":
                        continue
                    if request.method == "INVITE":
                        self.calls += 1
                        call_id = request.get("call-id") or ""
                        tag = tags.setdefault(call_id, secrets.token_hex(4))
                        headers = [("Record-Route", rr) for rr in request.get_all("record-route")]
                        headers += [
                            ("Contact", f"<sip:pbx@127.0.0.1:{self.port};transport=tcp>"),
                            ("Content-Type", "application/sdp"),
                        ]
                        writer.write(build_response(request, 100))
                        writer.write(
                            build_response(request, 200, to_tag=tag, headers=headers, body=_SDP)
                        )
                    else:
                        writer.write(build_response(request, 200, to_tag=secrets.token_hex(4)))
                    await writer.drain()
                    if request.method == "BYE":
                        return
        except (OSError, FramingError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
