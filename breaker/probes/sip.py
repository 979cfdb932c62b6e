"""SIP prober: one OPTIONS (or PUBLISH) transaction per check over a long-lived transport.

The incident this exists for: a presence server whose process was alive with sockets open
but answered nothing. So a check is a real SIP transaction with a hard deadline, and it
reuses one UDP socket or one TCP/TLS connection per target (a socket per probe is how the
incident ran out of sockets). Everything from the network is untrusted: stray, late,
duplicated or malformed messages are counted in `ignored` and otherwise dropped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from breaker._config import BreakerConfig
from breaker.probes._base import ProbeResult
from breaker.probes._sipmsg import (
    SipResponse,
    Transaction,
    build_request,
    format_host,
    format_hostport,
    new_branch,
    new_call_id,
    new_tag,
    parse_response,
)
from breaker.probes._transports import (
    Channel,
    TcpChannel,
    UdpChannel,
    _Failure,
    addr,
)
from breaker.probes.dns import SipResolver

log = logging.getLogger(__name__)

_EVENT = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_MAX_CSEQ = 2**31 - 1


def is_alive_code(
    status: int, alive_codes: tuple[int, ...] | None, dead_codes: tuple[int, ...]
) -> bool:
    """A final answer is life unless configured otherwise: a 404 still proves the server works."""
    if alive_codes is not None:
        return status in alive_codes
    return status not in dead_codes


def publish_expires(interval: float) -> int:
    """Long enough to survive a few missed probes, short enough to clean up after us."""
    return max(60, math.ceil(10 * interval))


@dataclass
class _Pending:
    """The one transaction a check is waiting for."""

    txn: Transaction
    future: asyncio.Future[tuple[SipResponse, float]]
    provisional: SipResponse | None = None
    answered: bool = False  # anything of this transaction arrived (even a 1xx)
    sent: float = field(default=0.0)


class SipProbe:
    """Probes one SIP target. Not safe for overlapping checks: they are serialized."""

    def __init__(
        self,
        cfg: BreakerConfig,
        *,
        resolver: SipResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        target = cfg.target
        if target.kind != "sip":
            raise ValueError(f"SipProbe needs a sip: target, got {target.display!r}")
        self._cfg = cfg
        self._target = target
        self._transport = target.transport or "udp"
        self._resolver = resolver or SipResolver()
        self._ssl_context = ssl_context
        self._lock = asyncio.Lock()
        self._channel: Channel | None = None
        self._pending: _Pending | None = None
        self._last_pending: _Pending | None = None
        self._call_id = new_call_id()
        self._from_tag = new_tag()
        self._cseq = 0
        # PUBLISH state: the entity-tag of our publication and when it lapses (time.monotonic)
        self._etag: str | None = None
        self._etag_expires = 0.0
        self._expires = publish_expires(cfg.interval)
        self._aor = f"sip:{cfg.probe_user}@{format_host(target.host)}"
        self._publish_body = (
            _publish_body(cfg.event, self._aor) if cfg.method == "PUBLISH" else None
        )
        self.ignored = 0  # messages that matched no waiting transaction
        self.publishes: Counter[str] = Counter()  # PUBLISH sent: initial, refresh, remove; 412s
        self.connections_opened = 0  # sockets/connections created over the probe's life

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The socket's own address (used in Via/Contact), None before the first check."""
        return self._channel.local if self._channel is not None else None

    @property
    def etag(self) -> str | None:
        return self._etag

    async def check(self) -> ProbeResult:
        async with self._lock:
            try:
                return await self._check()
            except _Failure as exc:
                return _result(False, exc.reason, None, str(exc))
            except Exception as exc:  # check() never raises: a bug must not kill the breaker
                log.exception("SIP probe of %s failed unexpectedly", self._target.display)
                return _result(False, "error", None, f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        """Withdraw our publication (best effort) and close the socket."""
        async with self._lock:
            channel = self._channel
            if self._etag is not None and channel is not None and channel.is_open():
                try:
                    async with asyncio.timeout(self._cfg.timeout):
                        txn = self._next_txn("PUBLISH")
                        await self._exchange(channel, txn, self._publish_request(channel, txn, 0))
                except Exception as exc:
                    log.debug("withdrawing publication on %s: %s", self._target.display, exc)
            self._etag = None
            if channel is not None:
                channel.close()
            self._channel = None

    # -- one check -------------------------------------------------------------------

    async def _check(self) -> ProbeResult:
        cfg = self._cfg
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.timeout
        self._last_pending = None
        phase = "dns"
        try:
            async with asyncio.timeout_at(deadline):
                resolution = await self._resolver.resolve(self._target, lifetime=cfg.timeout)
                if not resolution.ok:
                    return _result(False, "dns", None, resolution.error or "no address")
                phase = "connect"
                fresh = await self._ensure_channel(resolution.addresses)
                phase = "answer"
                if cfg.method == "PUBLISH":
                    response, rtt = await self._publish(fresh, deadline)
                else:
                    response, _, rtt = await self._send(fresh, "OPTIONS", self._options_request)
        except TimeoutError:
            return self._timed_out(phase)
        return self._judge(response, rtt)

    def _timed_out(self, phase: str) -> ProbeResult:
        within = f"within {self._cfg.timeout:g} s"
        if phase == "dns":
            return _result(
                False, "dns", None, f"DNS resolution of {self._target.host} not done {within}"
            )
        if phase == "connect":
            detail = f"no connection to {self._target.display} {within}"
            return _result(False, "timeout", None, detail)
        pending = self._last_pending
        detail = f"no final response {within}"
        if pending is not None and pending.provisional is not None:
            detail += f" (last: {pending.provisional.status_line})"
        return _result(False, "timeout", None, detail)

    def _judge(self, response: SipResponse, rtt: float) -> ProbeResult:
        cfg = self._cfg
        if not is_alive_code(response.status, cfg.alive_codes, cfg.dead_codes):
            return _result(False, f"status {response.status}", rtt, response.status_line)
        if rtt > cfg.slow_threshold:
            limit = cfg.slow_threshold * 1000
            detail = f"{response.status_line} after {rtt * 1000:.0f} ms (slow above {limit:.0f} ms)"
            return _result(False, "slow", rtt, detail)
        return _result(True, "ok", rtt, response.status_line)

    async def _ensure_channel(
        self, addresses: tuple[tuple[str, int], ...], *, renew: bool = False
    ) -> bool:
        """Reuse the open socket if it still points at a resolved address; True if new."""
        channel = self._channel
        if channel is not None and channel.is_open() and channel.remote in addresses and not renew:
            return False
        if channel is not None:
            channel.close()
            self._channel = None
        remote = channel.remote if renew and channel is not None else addresses[0]
        if self._transport == "udp":
            self._channel = await UdpChannel.open(remote, self)
        else:
            context = self._tls_context() if self._transport == "tls" else None
            self._channel = await TcpChannel.open(remote, self, context, self._target.host)
        self.connections_opened += 1
        return True

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    async def _send(
        self, fresh: bool, method: str, build: Callable[[Channel, Transaction], bytes]
    ) -> tuple[SipResponse, float, float]:
        """One transaction; returns (response, send time, rtt).

        A reused TCP connection the server closed while idle is retried once on a new
        connection: that is housekeeping on the server's side, not a failure.
        """
        assert self._channel is not None
        channel = self._channel
        txn = self._next_txn(method)
        try:
            return await self._exchange(channel, txn, build(channel, txn))
        except _Failure as exc:
            answered = self._last_pending is not None and self._last_pending.answered
            if fresh or exc.reason != "connection-reset" or answered:
                raise
        await self._ensure_channel((), renew=True)
        channel = self._channel
        assert channel is not None
        txn = self._next_txn(method)
        return await self._exchange(channel, txn, build(channel, txn))

    async def _exchange(
        self, channel: Channel, txn: Transaction, data: bytes
    ) -> tuple[SipResponse, float, float]:
        loop = asyncio.get_running_loop()
        pending = _Pending(txn, loop.create_future())
        self._pending = self._last_pending = pending
        try:
            # time.monotonic, not loop.time: uvloop's clock ticks in whole milliseconds.
            pending.sent = time.monotonic()
            channel.send(data)
            response, received = await pending.future
        finally:
            self._pending = None
        return response, pending.sent, received - pending.sent

    def _next_txn(self, method: str) -> Transaction:
        if self._cseq >= _MAX_CSEQ:  # RFC 3261 8.1.1.5: CSeq stays below 2**31
            self._cseq, self._call_id = 0, new_call_id()
        self._cseq += 1
        return Transaction(new_branch(), self._call_id, self._cseq, method)

    # -- transport callbacks (Sink) ---------------------------------------------------

    def received(self, channel: Channel, data: bytes, at: float) -> None:
        """Match a message to the waiting transaction; anything else is ignored."""
        pending = self._pending
        response = parse_response(data)
        if (
            channel is not self._channel
            or pending is None
            or pending.future.done()
            or response is None
            or response.transaction != pending.txn
        ):
            self.ignored += 1
            log.debug("ignored %d bytes from %s", len(data), addr(channel.remote))
            return
        pending.answered = True
        if response.status < 200:
            pending.provisional = response  # 1xx: the final answer is still to come
            return
        pending.future.set_result((response, at))

    def broken(self, channel: Channel, reason: str, detail: str) -> None:
        pending = self._pending
        if channel is self._channel and pending is not None and not pending.future.done():
            pending.future.set_exception(_Failure(reason, detail))

    # -- requests --------------------------------------------------------------------

    def _scheme(self) -> str:
        return "sips" if self._transport == "tls" else "sip"

    def _target_uri(self, user: str | None = None) -> str:
        target = self._target
        userinfo = f"{user}@" if user else ""
        uri = f"{self._scheme()}:{userinfo}{format_hostport(target.host, target.port)}"
        return uri + ";transport=tcp" if self._transport == "tcp" else uri

    def _options_request(self, channel: Channel, txn: Transaction) -> bytes:
        uri = self._target_uri()
        contact = f"{self._scheme()}:{self._cfg.probe_user}@{format_hostport(*channel.local)}"
        if self._transport == "tcp":
            contact += ";transport=tcp"
        accept = [("Accept", "application/sdp")]
        return self._request(channel, txn, uri, to_uri=uri, contact_uri=contact, headers=accept)

    def _publish_request(self, channel: Channel, txn: Transaction, expires: int) -> bytes:
        """Initial publish (with body) without an etag, else a body-less refresh/removal."""
        headers = [("Event", self._cfg.event), ("Expires", str(expires))]
        body = b""
        self.publishes["initial" if self._etag is None else "refresh" if expires else "remove"] += 1
        if self._etag is not None:
            headers.append(("SIP-If-Match", self._etag))
        else:
            assert self._publish_body is not None
            content_type, body = self._publish_body
            headers.append(("Content-Type", content_type))
        uri = self._target_uri(self._cfg.probe_user)
        return self._request(channel, txn, uri, to_uri=self._aor, headers=headers, body=body)

    def _request(
        self,
        channel: Channel,
        txn: Transaction,
        uri: str,
        *,
        to_uri: str,
        headers: list[tuple[str, str]],
        contact_uri: str | None = None,
        body: bytes = b"",
    ) -> bytes:
        """Our request for `txn` from the channel's own address: Via, From and tag are ours."""
        return build_request(
            txn.method,
            uri,
            transport=channel.via_transport,
            local_host=channel.local[0],
            local_port=channel.local[1],
            txn=txn,
            from_uri=self._aor,
            from_tag=self._from_tag,
            to_uri=to_uri,
            contact_uri=contact_uri,
            headers=headers,
            body=body,
        )

    async def _publish(self, fresh: bool, deadline: float) -> tuple[SipResponse, float]:
        """Refresh our one publication; on 412 (server forgot it) publish anew.

        The immediate re-publish happens only when the time left is clearly enough for
        another round trip; otherwise the 412 is judged and the next check publishes.
        """
        loop = asyncio.get_running_loop()
        if self._etag is not None and time.monotonic() + self._cfg.timeout >= self._etag_expires:
            self._etag = None  # lapsed on the server by now: a refresh would only earn a 412

        def build(channel: Channel, txn: Transaction) -> bytes:
            return self._publish_request(channel, txn, self._expires)

        refreshing = self._etag is not None
        response, sent, rtt = await self._send(fresh, "PUBLISH", build)
        self._remember(response, sent + rtt)
        if response.status == 412 and refreshing and deadline - loop.time() > 2 * rtt:
            response, sent2, rtt2 = await self._send(False, "PUBLISH", build)
            self._remember(response, sent2 + rtt2)
            rtt = sent2 + rtt2 - sent  # both round trips: what the check really waited
        return response, rtt

    def _remember(self, response: SipResponse, at: float) -> None:
        status = response.status
        if 200 <= status < 300:
            self._etag = response.get("sip-etag") or None
            expires = response.get("expires") or ""
            lifetime = int(expires) if expires.isascii() and expires.isdigit() else self._expires
            self._etag_expires = at + min(lifetime, self._expires)
        elif status == 412:
            self.publishes["412"] += 1
            self._etag = None
        elif status == 423:  # Interval Too Brief: use the server's Min-Expires from now on
            minimum = response.get("min-expires") or ""
            if minimum.isascii() and minimum.isdigit():
                self._expires = max(self._expires, min(int(minimum), 86400))


def _publish_body(event: str, aor: str) -> tuple[str, bytes]:
    """A minimal, valid document for the event package (RFC 3842 / RFC 3863)."""
    if not _EVENT.fullmatch(event):
        raise ValueError(f"event {event!r} is not a valid SIP event token")
    if event == "message-summary":
        return "application/simple-message-summary", b"Messages-Waiting: no\r\n"
    if event == "presence":
        pidf = (
            '<?xml version="1.0" encoding="UTF-8"?>\r\n'
            f'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="{aor}">\r\n'
            '<tuple id="breaker"><status><basic>open</basic></status></tuple>\r\n'
            "</presence>\r\n"
        )
        return "application/pidf+xml", pidf.encode()
    raise ValueError(f"PUBLISH probe supports event message-summary or presence, not {event!r}")


def _result(ok: bool, reason: str, rtt: float | None, detail: str) -> ProbeResult:
    return ProbeResult(ok=ok, reason=reason, rtt=rtt, at=time.time(), detail=detail)
