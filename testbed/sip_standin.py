"""A SIP responder standing in for a presence server, in-process or as its own process.

In-process (asyncio) it can answer any code, answer late, freeze (socket open, nothing
answered), count requests per method, emulate RFC 3903 PUBLISH entity-tags (SIP-ETag,
412 for an unknown SIP-If-Match), and send garbage or forged responses on demand.

Standalone, freeze it the way the incident froze the real server: SIGSTOP, then SIGCONT.

    python -m testbed.sip_standin --port 5070 [--host 127.0.0.1] [--tcp]
        [--code 200] [--delay 0.0] [--count-file counts.json]

It prints one line when listening, nothing per request, and exits 0 on SIGTERM/SIGINT.
`--port 0` picks a free port (printed, and written to the count file).

With `--targets N --ready FILE` one process answers on N UDP ports from `--port` up
(busy ones skipped), each its own socket and stand-in, and lists the ports in FILE
once all listen: many distinct SIP targets for the probe-scale benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import ssl
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from breaker.probes._framing import FramingError, StreamFramer
from breaker.probes._sipmsg import (
    SipRequest,
    build_response,
    parse_request,
)
from testbed.procs import Child, free_port, python_module
from testbed.udp import Datagrams
from testbed.waiting import wait_until

MWI_EVENTS = ("message-summary", "presence")

# Given a request, return the raw messages to send instead of the normal answer, or None
# to answer normally. Used by tests to forge stray, late or malformed responses.
Responder = Callable[[SipRequest], Sequence[bytes] | None]


@dataclass(frozen=True, slots=True)
class Received:
    request: SipRequest
    source: tuple[str, int]
    transport: str  # "udp" or "tcp"


class SipStandin:
    """The stand-in server. Knobs are plain attributes; change them at any time."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        udp: bool = True,
        tcp: bool = False,
        code: int = 200,
        delay: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not (udp or tcp):
            raise ValueError("listen on UDP, TCP or both")
        self.host = host
        self.port = port
        self.udp = udp
        self.tcp = tcp
        self.ssl_context = ssl_context
        # knobs
        self.code = code
        self.delay = delay
        self.provisional = False  # send 100 Trying before the final answer
        self.responder: Responder | None = None
        self.drop_on_request = False  # TCP: close the connection instead of answering
        self.min_expires = 0  # PUBLISH: answer 423 below this (0: accept anything)
        self.on_change: Callable[[], None] | None = None
        self.record = True  # keep every request in `requests` (off for long runs)
        # observations
        self.counts: Counter[str] = Counter()
        self.requests: list[Received] = []
        self.udp_sources: set[tuple[str, int]] = set()
        self.tcp_connections = 0  # accepted over the stand-in's life
        self.garbage = 0  # received messages that were not SIP requests
        self.publish_log: list[str] = []  # "initial", "refresh", "remove", "412", ...
        self.publications: dict[str, float] = {}  # entity-tag -> expiry (loop time)
        self._frozen = False
        self._tag = secrets.token_hex(4)
        self._udp: Datagrams | None = None
        self._tcp_server: asyncio.Server | None = None
        self._conns: list[asyncio.Transport] = []
        self._last_udp: tuple[str, int] | None = None
        self._event = asyncio.Event()

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> SipStandin:
        loop = asyncio.get_running_loop()
        if self.udp:
            self._udp = await Datagrams(self._datagram).open((self.host, self.port))
            self.port = self._udp.port
        if self.tcp:
            self._tcp_server = await loop.create_server(
                lambda: _TcpServer(self), self.host, self.port, ssl=self.ssl_context
            )
            self.port = int(self._tcp_server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        self.drop_tcp_connections()
        if self._tcp_server is not None:
            self._tcp_server.close()
            await self._tcp_server.wait_closed()
            self._tcp_server = None

    async def __aenter__(self) -> SipStandin:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- knobs -----------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self) -> None:
        """Keep sockets open, answer nothing (answers already scheduled are dropped too)."""
        self._frozen = True

    def resume(self) -> None:
        self._frozen = False

    def forget_publications(self) -> None:
        """Like a server restart with an empty presentity table: next refresh gets 412."""
        self.publications.clear()

    def drop_tcp_connections(self) -> None:
        for conn in self._conns:
            conn.abort()
        self._conns.clear()

    # -- observations ----------------------------------------------------------------

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def active_publications(self) -> int:
        now = asyncio.get_running_loop().time()
        return sum(1 for expiry in self.publications.values() if expiry > now)

    async def wait_for(
        self, predicate: Callable[[], object], within: float = 2.0, what: str = ""
    ) -> None:
        """Wait until predicate() is true, woken by every request; fail after `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while not predicate():
                    self._event.clear()
                    await self._event.wait()
        except TimeoutError:
            raise AssertionError(
                f"stand-in: timed out after {within}s waiting for {what}"
            ) from None

    def snapshot(self) -> dict[str, object]:
        """Counters as JSON-able data (the standalone --count-file content)."""
        return {
            "pid": os.getpid(),
            "port": self.port,
            "frozen": self._frozen,
            "total": self.total,
            "requests": dict(self.counts),
            "udp_sources": len(self.udp_sources),
            "tcp_connections": self.tcp_connections,
            "garbage": self.garbage,
            "publications": len(self.publications),
            "publish_log": Counter(self.publish_log),
        }

    # -- sending on demand -----------------------------------------------------------

    def send_udp(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        """Send raw bytes to `addr`, default the last UDP client."""
        target = addr or self._last_udp
        if self._udp is None or target is None:
            raise RuntimeError("no UDP client to send to yet")
        self._udp.send(data, target)

    def send_tcp(self, data: bytes) -> None:
        """Write raw bytes on every open TCP connection."""
        for conn in self._conns:
            if not conn.is_closing():
                conn.write(data)

    # -- answering -------------------------------------------------------------------

    def answer(self, request: SipRequest, code: int | None = None) -> bytes:
        """The normal answer, PUBLISH entity-tags included (for responders to reuse)."""
        code = self.code if code is None else code
        if request.method == "PUBLISH" and 200 <= code < 300:
            return self._publish(request)
        headers = [("Server", "sip-standin")]
        if request.method == "OPTIONS" and 200 <= code < 300:
            headers += [("Allow", "OPTIONS, PUBLISH"), ("Accept", "application/sdp")]
        return build_response(request, code, to_tag=self._tag, headers=headers)

    def _publish(self, request: SipRequest) -> bytes:
        """RFC 3903 section 6 as presence servers do it, with a new entity-tag each time."""
        now = asyncio.get_running_loop().time()
        for etag in [e for e, expiry in self.publications.items() if expiry <= now]:
            del self.publications[etag]
        if (request.get("event") or "").split(";")[0].strip() not in MWI_EVENTS:
            return self._reply(request, 489, "bad-event")
        raw_expires = request.get("expires") or "3600"
        expires = int(raw_expires) if raw_expires.isdigit() else 3600
        if 0 < expires < self.min_expires:
            return self._reply(request, 423, "423", [("Min-Expires", str(self.min_expires))])
        match = request.get("sip-if-match")
        if match is None and not request.body:
            return self._reply(request, 400, "initial-without-body")
        if match is not None:
            if match not in self.publications:
                return self._reply(request, 412, "412")
            del self.publications[match]
            if expires == 0:
                return self._reply(request, 200, "remove", [("Expires", "0")])
        kind = "initial" if match is None else ("modify" if request.body else "refresh")
        etag = secrets.token_hex(8)
        self.publications[etag] = now + expires
        extra = [("SIP-ETag", etag), ("Expires", str(expires))]
        return self._reply(request, 200, kind, extra)

    def _reply(
        self, request: SipRequest, code: int, log: str, headers: Sequence[tuple[str, str]] = ()
    ) -> bytes:
        self.publish_log.append(log)
        return build_response(
            request, code, to_tag=self._tag, headers=[("Server", "sip-standin"), *headers]
        )

    def _datagram(self, data: bytes, source: tuple[str, int]) -> None:
        self.udp_sources.add(source)
        self._last_udp = source
        udp = self._udp

        def reply(message: bytes) -> None:
            if udp is not None:
                udp.send(message, source)  # RFC 3581: back to the source port

        self._handle(data, reply, source, "udp")

    def _handle(
        self,
        data: bytes,
        reply: Callable[[bytes], None],
        source: tuple[str, int],
        transport: str,
        conn: asyncio.Transport | None = None,
    ) -> None:
        request = parse_request(data)
        if request is None:
            self.garbage += 1
            self._changed()
            return
        if self.record:
            self.requests.append(Received(request, source, transport))
        self.counts[request.method] += 1
        if self._frozen:
            self._changed()
            return
        if self.drop_on_request and conn is not None:
            conn.abort()
            self._changed()
            return
        messages = self.responder(request) if self.responder is not None else None
        if messages is None:
            if self.provisional:
                reply(build_response(request, 100, headers=[("Server", "sip-standin")]))
            messages = [self.answer(request)]
        if self.delay > 0:
            loop = asyncio.get_running_loop()
            loop.call_later(self.delay, self._send, reply, list(messages))
        else:
            self._send(reply, messages)
        self._changed()

    def _send(self, reply: Callable[[bytes], None], messages: Sequence[bytes]) -> None:
        if not self._frozen:
            for message in messages:
                reply(message)

    def _changed(self) -> None:
        self._event.set()
        if self.on_change is not None:
            self.on_change()


class _TcpServer(asyncio.Protocol):
    def __init__(self, standin: SipStandin) -> None:
        self.standin = standin
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1]))
        self.standin.tcp_connections += 1
        self.standin._conns.append(self.transport)
        self.standin._changed()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        transport = self.transport

        def reply(message: bytes) -> None:
            if not transport.is_closing():
                transport.write(message)

        try:
            messages = self.framer.feed(data)
        except FramingError:
            transport.abort()
            return
        for message in messages:
            self.standin._handle(message, reply, self.peer, "tcp", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None and self.transport in self.standin._conns:
            self.standin._conns.remove(self.transport)


# -- as a process ---------------------------------------------------------------------


class StandinProcess:
    """`python -m testbed.sip_standin` on a free port, its counters in a JSON file.

    Started at construction; `freeze` (SIGSTOP) is how the incident froze the server.
    """

    def __init__(self, workdir: Path, name: str = "standin") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.counts = workdir / f"standin-{name}.json"
        argv = python_module("testbed.sip_standin", "--port", str(self.port))
        self.proc = Child(
            [*argv, "--count-file", str(self.counts)], workdir / f"standin-{name}.log"
        )
        try:
            wait_until(self.counts.exists, 10, f"stand-in {name} to listen")
        except BaseException:
            self.proc.stop()
            raise

    def freeze(self) -> None:
        self.proc.freeze()

    def resume(self) -> None:
        self.proc.thaw()

    def stop(self) -> None:
        self.proc.stop()


def start_targets(
    workdir: Path, first_port: int, count: int, wrapper: Sequence[str] = ()
) -> tuple[Child, list[int]]:
    """`python -m testbed.sip_standin --targets`: the process and the ports it answers on."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / "ports.txt"
    argv = python_module("testbed.sip_standin", "--port", str(first_port), "--ready", str(ready))
    child = Child([*wrapper, *argv, "--targets", str(count)], workdir / "standin.log")
    try:
        wait_until(ready.exists, 30, "the stand-in to listen on every port")
    except BaseException:
        child.stop()
        raise
    return child, [int(port) for port in ready.read_text().split()]


# -- standalone ----------------------------------------------------------------------


def _write_counts(path: Path, standin: SipStandin) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(standin.snapshot(), sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: readers never see half a file


async def _signalled() -> None:
    """Until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _serve_targets(args: argparse.Namespace) -> int:
    standins: list[SipStandin] = []
    port = args.port
    while len(standins) < args.targets and port < 65000:
        standin = SipStandin(args.host, port, code=args.code, delay=args.delay)
        standin.record = False
        port += 1
        try:
            standins.append(await standin.start())
        except OSError:
            continue
    # Atomically: a reader that sees the file must see every port (rename after write).
    partial = args.ready.with_name(args.ready.name + ".partial")
    partial.write_text("".join(f"{standin.port}\n" for standin in standins))
    partial.replace(args.ready)
    await _signalled()
    for standin in standins:
        await standin.stop()
    return 0


async def _serve(args: argparse.Namespace) -> int:
    standin = SipStandin(
        args.host, args.port, udp=True, tcp=args.tcp, code=args.code, delay=args.delay
    )
    await standin.start()
    loop = asyncio.get_running_loop()
    count_file: Path | None = args.count_file
    pending: list[asyncio.TimerHandle] = []
    if count_file is not None:

        def flush() -> None:
            pending.clear()
            _write_counts(count_file, standin)

        def schedule() -> None:  # at most 20 writes a second, however busy
            if not pending:
                pending.append(loop.call_later(0.05, flush))

        standin.on_change = schedule
        _write_counts(count_file, standin)
    transports = "udp+tcp" if args.tcp else "udp"
    print(
        f"sip_standin listening on {args.host}:{standin.port} ({transports}) pid {os.getpid()}",
        flush=True,
    )
    await _signalled()
    await standin.stop()
    for handle in pending:
        handle.cancel()
    if count_file is not None:
        _write_counts(count_file, standin)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.sip_standin", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, required=True, help="UDP (and TCP) port; 0 picks one")
    parser.add_argument("--tcp", action="store_true", help="listen on TCP too, same port")
    parser.add_argument("--code", type=int, default=200, help="final response code (default 200)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--count-file", type=Path, help="keep JSON counters in this file")
    parser.add_argument("--targets", type=int, help="answer on this many UDP ports from --port")
    parser.add_argument("--ready", type=Path, help="with --targets: list the ports here")
    args = parser.parse_args(argv)
    if args.targets is not None:
        if args.ready is None:
            parser.error("--targets needs --ready")
        return asyncio.run(_serve_targets(args))
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
