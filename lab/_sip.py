"""A SIP-over-UDP client transaction layer with RFC 3261 timers, for the lab's load.

What matters for replaying the incident is the retransmission behaviour of a real
UDP client: Timer E (non-INVITE) starts at T1 = 500 ms and doubles up to T2 = 4 s,
Timer A (INVITE) doubles without a cap until a provisional answer arrives, and the
transaction gives up after Timer F / Timer B = 64 x T1 = 32 s. Every retransmission
is counted, so the lab can show them "on the wire".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import cast

from breaker.probes._sipmsg import (
    SipResponse,
    format_message,
    new_branch,
    new_call_id,
    new_tag,
    parse_response,
    via_branch,
)

T1 = 0.5
T2 = 4.0
LOOPBACK = "127.0.0.1"


@dataclass
class UacCounters:
    """Cumulative counts for one client; the lab samples them every second."""

    transactions: int = 0
    retransmissions: int = 0
    finals: Counter[int] = field(default_factory=Counter)
    timeouts: int = 0
    first_503_at: float | None = None  # wall clock

    def as_dict(self) -> dict[str, object]:
        return {
            "transactions": self.transactions,
            "retransmissions": self.retransmissions,
            "finals": {str(k): v for k, v in sorted(self.finals.items())},
            "timeouts": self.timeouts,
            "first_503_at": self.first_503_at,
        }


@dataclass(frozen=True)
class Outcome:
    """How one client transaction ended. `status` is None when no final answer came."""

    status: int | None
    response: SipResponse | None
    sent_at: float  # wall clock
    done_at: float
    retransmissions: int

    @property
    def elapsed(self) -> float:
        return self.done_at - self.sent_at

    @property
    def retry_after(self) -> float | None:
        if self.response is None:
            return None
        raw = (self.response.get("retry-after") or "").split(";")[0].split("(")[0].strip()
        return float(raw) if raw.isdigit() else None


@dataclass
class _Pending:
    method: str
    data: bytes
    future: asyncio.Future[SipResponse | None]
    interval: float
    handle: asyncio.TimerHandle | None = None
    retransmissions: int = 0
    provisional: bool = False
    ack: bytes | None = None  # INVITE: the ACK for a non-2xx final, re-sent on retransmits


@dataclass(frozen=True)
class Dialog:
    """What an in-dialog request needs after a 2xx to INVITE (UAC side)."""

    call_id: str
    from_uri: str
    from_tag: str
    to_uri: str
    to_tag: str
    remote_target: str
    route: tuple[str, ...]


class SipUac(asyncio.DatagramProtocol):
    """Client transactions over one UDP socket towards one next hop."""

    def __init__(self, remote: tuple[str, int], counters: UacCounters | None = None) -> None:
        self.remote = remote
        self.counters = counters or UacCounters()
        self.transport: asyncio.DatagramTransport | None = None
        self.local_port = 0
        self._pending: dict[str, _Pending] = {}
        self._done_acks: dict[str, bytes] = {}  # branch -> ACK, for late final retransmits

    @classmethod
    async def open(cls, remote: tuple[str, int], counters: UacCounters | None = None) -> SipUac:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: cls(remote, counters), local_addr=(LOOPBACK, 0)
        )
        return protocol

    # -- asyncio protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.local_port = int(self.transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        response = parse_response(data)
        if response is None:
            return
        via = response.get("via")
        branch = via_branch(via) if via else None
        if branch is None:
            return
        pending = self._pending.get(branch)
        if pending is None:
            ack = self._done_acks.get(branch)
            if ack is not None and response.status >= 300:
                self._send(ack)  # our ACK was lost: the final is retransmitted
            return
        if response.status < 200:
            if not pending.provisional:
                pending.provisional = True
                if pending.method == "INVITE":
                    self._cancel_timer(pending)  # Timer A stops on a provisional
                else:
                    pending.interval = T2  # Timer E continues at T2 (RFC 3261 17.1.2.2)
            return
        if pending.method == "INVITE" and response.status >= 300:
            pending.ack = self._ack_for(pending.data, response)
            self._send(pending.ack)
            self._done_acks[branch] = pending.ack
            if len(self._done_acks) > 4096:
                self._done_acks.pop(next(iter(self._done_acks)))
        self._finish(branch, response)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable on loopback: retransmissions go on, as RFC 3261 says

    def close(self) -> None:
        for branch in list(self._pending):
            self._finish(branch, None)
        if self.transport is not None:
            self.transport.close()

    # -- sending -----------------------------------------------------------------------

    def build(
        self,
        method: str,
        ruri: str,
        *,
        branch: str,
        call_id: str,
        cseq: int,
        from_uri: str,
        from_tag: str,
        to_uri: str,
        to_tag: str | None = None,
        route: Sequence[str] = (),
        contact: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        user_agent: str = "breaker-lab",
    ) -> bytes:
        to = f"<{to_uri}>" + (f";tag={to_tag}" if to_tag else "")
        base = [
            ("Via", f"SIP/2.0/UDP {LOOPBACK}:{self.local_port};branch={branch};rport"),
            ("Max-Forwards", "70"),
            *[("Route", r) for r in route],
            ("From", f"<{from_uri}>;tag={from_tag}"),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if contact:
            base.append(("Contact", f"<{contact}>"))
        base.append(("User-Agent", user_agent))
        return format_message(f"{method} {ruri} SIP/2.0", [*base, *headers], body)

    async def transact(
        self, method: str, data: bytes, branch: str, give_up_after: float | None = None
    ) -> Outcome:
        """Send a request and retransmit it per RFC 3261 until a final answer or Timer F/B."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SipResponse | None] = loop.create_future()
        pending = _Pending(method, data, future, T1)
        self._pending[branch] = pending
        self.counters.transactions += 1
        sent_at = time.time()
        self._send(data)
        pending.handle = loop.call_later(T1, self._retransmit, branch)
        limit = 64 * T1 if give_up_after is None else min(64 * T1, give_up_after)
        response: SipResponse | None = None
        try:
            async with asyncio.timeout(limit):
                response = await future
        except TimeoutError:
            response = None
        finally:
            self._cancel_timer(pending)
            self._pending.pop(branch, None)
        done_at = time.time()
        if response is None:
            self.counters.timeouts += 1
        else:
            self.counters.finals[response.status] += 1
            if response.status == 503 and self.counters.first_503_at is None:
                self.counters.first_503_at = done_at
        status = response.status if response is not None else None
        return Outcome(status, response, sent_at, done_at, pending.retransmissions)

    def send_stateless(self, data: bytes) -> None:
        """ACK for a 2xx: its own transaction-less message (RFC 3261 13.2.2.4)."""
        self._send(data)

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, self.remote)

    def _retransmit(self, branch: str) -> None:
        pending = self._pending.get(branch)
        if pending is None or pending.future.done():
            return
        self._send(pending.data)
        pending.retransmissions += 1
        self.counters.retransmissions += 1
        if pending.method == "INVITE":
            pending.interval *= 2
        elif not pending.provisional:
            pending.interval = min(pending.interval * 2, T2)
        pending.handle = asyncio.get_running_loop().call_later(
            pending.interval, self._retransmit, branch
        )

    def _finish(self, branch: str, response: SipResponse | None) -> None:
        pending = self._pending.get(branch)
        if pending is None:
            return
        self._cancel_timer(pending)
        if not pending.future.done():
            pending.future.set_result(response)

    @staticmethod
    def _cancel_timer(pending: _Pending) -> None:
        if pending.handle is not None:
            pending.handle.cancel()
            pending.handle = None

    @staticmethod
    def _ack_for(invite: bytes, response: SipResponse) -> bytes:
        """ACK for a non-2xx final: same branch, To with the answer's tag (RFC 3261 17.1.1.3)."""
        head = invite.split(b"\r\n\r\n", 1)[0].decode()
        lines = head.split("\r\n")
        ruri = lines[0].split(" ")[1]
        keep: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            if key in ("via", "from", "call-id", "max-forwards", "route"):
                keep.append((name.strip(), value.strip()))
            elif key == "cseq":
                keep.append(("CSeq", value.strip().split()[0] + " ACK"))
        keep.append(("To", response.get("to") or ""))
        return format_message(f"ACK {ruri} SIP/2.0", keep)


# ---------------------------------------------------------------- requests the lab sends


def mwi_body(user: str, domain: str, waiting: bool = True) -> bytes:
    return (
        f"Messages-Waiting: {'yes' if waiting else 'no'}\r\n"
        f"Message-Account: sip:{user}@{domain}\r\n"
        "Voice-Message: 2/8 (0/2)\r\n"
    ).encode()


async def publish_mwi(uac: SipUac, user: str, domain: str, agent: str = "vm-presence") -> Outcome:
    """One MWI PUBLISH (Event: message-summary) for a mailbox, as a voicemail system sends it."""
    branch = new_branch()
    host, port = uac.remote
    data = uac.build(
        "PUBLISH",
        f"sip:{user}@{host}:{port}",
        branch=branch,
        call_id=new_call_id(),
        cseq=1,
        from_uri=f"sip:{agent}@{domain}",
        from_tag=new_tag(),
        to_uri=f"sip:{user}@{domain}",
        headers=[
            ("Event", "message-summary"),
            ("Expires", "3600"),
            ("Content-Type", "application/simple-message-summary"),
        ],
        body=mwi_body(user, domain),
        user_agent=agent,
    )
    return await uac.transact("PUBLISH", data, branch)


@dataclass(frozen=True)
class CallResult:
    started_at: float
    setup_status: int | None  # final answer to the INVITE (None: none came)
    setup_time: float | None
    bye_status: int | None
    ok_within: bool  # answered 200 and hung up with 200, each within the deadline


async def short_call(
    uac: SipUac,
    callee: str,
    far_end: tuple[str, int] | str,
    deadline: float,
    give_up_after: float,
) -> CallResult:
    """INVITE → 200 → ACK → BYE → 200 through the proxy: is the proxy still routing calls?

    `far_end` is an address, or a domain the proxy resolves (RFC 3263: SRV, then A).
    """
    started = time.time()
    call_id = new_call_id()
    from_tag = new_tag()
    from_uri = f"sip:caller@{LOOPBACK}"
    host = far_end if isinstance(far_end, str) else f"{far_end[0]}:{far_end[1]}"
    to_uri = f"sip:{callee}@{host}"
    branch = new_branch()
    sdp = b"v=0\r\no=lab 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    invite = uac.build(
        "INVITE",
        to_uri,
        branch=branch,
        call_id=call_id,
        cseq=1,
        from_uri=from_uri,
        from_tag=from_tag,
        to_uri=to_uri,
        contact=f"sip:caller@{LOOPBACK}:{uac.local_port}",
        headers=[("Content-Type", "application/sdp")],
        body=sdp,
    )
    setup = await uac.transact("INVITE", invite, branch, give_up_after)
    if setup.status is None or setup.response is None or not 200 <= setup.status < 300:
        return CallResult(started, setup.status, None, None, False)
    dialog = _dialog_from(setup.response, call_id, from_uri, from_tag, to_uri)
    if dialog is None:
        return CallResult(started, setup.status, setup.elapsed, None, False)

    def in_dialog(method: str, cseq: int, branch: str) -> bytes:
        assert dialog is not None
        return uac.build(
            method,
            dialog.remote_target,
            branch=branch,
            call_id=call_id,
            cseq=cseq,
            from_uri=from_uri,
            from_tag=from_tag,
            to_uri=to_uri,
            to_tag=dialog.to_tag,
            route=dialog.route,
        )

    uac.send_stateless(in_dialog("ACK", 1, new_branch()))
    bye_branch = new_branch()
    bye = in_dialog("BYE", 2, bye_branch)
    hangup = await uac.transact("BYE", bye, bye_branch, give_up_after)
    ok = (
        setup.elapsed <= deadline
        and hangup.status is not None
        and 200 <= hangup.status < 300
        and hangup.elapsed <= deadline
    )
    return CallResult(started, setup.status, setup.elapsed, hangup.status, ok)


def _dialog_from(
    response: SipResponse, call_id: str, from_uri: str, from_tag: str, to_uri: str
) -> Dialog | None:
    to = response.get("to") or ""
    to_tag = ""
    for param in to.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "tag":
            to_tag = value.strip()
    contact = response.get("contact") or ""
    if not to_tag or "<" not in contact:
        return None
    target = contact.split("<", 1)[1].split(">", 1)[0]
    records: list[str] = []
    for value in response.get_all("record-route"):
        records += [part.strip() for part in value.split(",") if part.strip()]
    return Dialog(call_id, from_uri, from_tag, to_uri, to_tag, target, tuple(reversed(records)))


@contextlib.asynccontextmanager
async def opened(
    remote: tuple[str, int], counters: UacCounters | None = None
) -> AsyncIterator[SipUac]:
    uac = await SipUac.open(remote, counters)
    try:
        yield uac
    finally:
        uac.close()
