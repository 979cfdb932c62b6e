"""A transparent UDP relay in front of the presence server that counts what reaches it.

This is how the lab answers "how many requests reached the presence server, and
when", honestly, even while the server is frozen: the relay is its own process, so
it keeps counting datagrams that arrive for a server that reads none of them (they
queue in the server's socket buffer and are processed at SIGCONT, or dropped when
the buffer is full). The proxy's `PRESENCE_URI` points at the relay; the relay
forwards every datagram unchanged to the real server and the answers back (the
presence server replies to the source port: `force_rport`).

A request is *new* the first time its top Via branch + method is seen and a
*retransmission* after that (the proxy's tm retransmits with the same branch).
Times are wall-clock seconds, one per datagram, dumped to JSON on exit.
"""

from __future__ import annotations

import re
import time
from array import array
from collections import Counter

from testbed.udp import Datagrams

_BRANCH = re.compile(rb"^(?:via|v)[ \t]*:[^\r\n]*?branch=([^;,\s]+)", re.IGNORECASE | re.MULTILINE)
_SEEN_TTL = 70.0  # longer than Timer F (32 s) plus the proxy's fr_timer


class RelayCounts:
    """Everything the relay saw, as timestamps and totals."""

    def __init__(self) -> None:
        self.new = array("d")
        self.retransmitted = array("d")
        self.answered = array("d")
        self.methods: Counter[str] = Counter()
        self._seen: dict[bytes, float] = {}

    def request(self, data: bytes, now: float) -> None:
        method = data.split(b" ", 1)[0]
        match = _BRANCH.search(data)
        key = method + b" " + (match.group(1) if match else data[:200])
        if key in self._seen:
            self.retransmitted.append(now)
            return
        self._seen[key] = now
        self.new.append(now)
        self.methods[method.decode("ascii", "replace")] += 1
        if len(self._seen) > 50_000:
            cutoff = now - _SEEN_TTL
            self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}

    def response(self, now: float) -> None:
        self.answered.append(now)

    def totals(self) -> dict[str, object]:
        return {
            "requests": len(self.new),
            "retransmissions": len(self.retransmitted),
            "responses": len(self.answered),
            "methods": dict(self.methods),
            "updated_at": time.time(),
        }

    def events(self) -> dict[str, list[float]]:
        return {
            "requests": [round(t, 4) for t in self.new],
            "retransmissions": [round(t, 4) for t in self.retransmitted],
            "responses": [round(t, 4) for t in self.answered],
        }


class Relay:
    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.listen = listen
        self.upstream = upstream
        self.counts = RelayCounts()
        self._front = Datagrams(self.from_client)  # faces the proxy
        self._back = Datagrams(self.from_server)  # faces the presence server
        self._client: tuple[str, int] | None = None

    async def start(self) -> Relay:
        await self._front.open(self.listen)
        await self._back.open((self.listen[0], 0))
        return self

    def close(self) -> None:
        self._front.close()
        self._back.close()

    def from_client(self, data: bytes, addr: tuple[str, int]) -> None:
        self._client = addr
        if not data.startswith(b"SIP/2.0"):
            self.counts.request(data, time.time())
        self._back.send(data, self.upstream)

    def from_server(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.startswith(b"SIP/2.0"):
            self.counts.response(time.time())
        if self._client is not None:
            self._front.send(data, self._client)
