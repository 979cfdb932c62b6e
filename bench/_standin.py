"""Many SIP targets in one process: a UDP socket per port, answering every request 200.

    python -m bench._standin --first-port 20000 --count 1000 --ready ready.txt

For the probe-scale benchmark: each target the sidecar probes is a distinct
127.0.0.1 port with its own socket, so the sidecar really keeps 1,000 sockets and
transactions apart; only the answering process is shared. Answers are built from
the request's own Via/From/To/Call-ID/CSeq lines (bytes, no full parse) to keep
this process cheap; it runs on the load core.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

_ECHO = re.compile(
    rb"^(?:via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[^\r\n]*\r\n", re.IGNORECASE | re.MULTILINE
)


def answer(data: bytes) -> bytes | None:
    if data.startswith(b"SIP/2.0") or data.startswith(b"ACK "):
        return None
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    lines = [m.group(0) for m in _ECHO.finditer(head)]
    out = [b"SIP/2.0 200 OK\r\n"]
    for line in lines:
        if line[:1] in b"tT" and b"tag=" not in line.lower():
            line = line[:-2] + b";tag=standin\r\n"
        out.append(line)
    out.append(b"Content-Length: 0\r\n\r\n")
    return b"".join(out)


class _Target(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        reply = answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)
            self.answered += 1

    def error_received(self, exc: Exception) -> None:
        pass


def _factory(target: _Target) -> Callable[[], _Target]:
    return lambda: target


async def _main(first: int, count: int, ready: Path) -> int:
    loop = asyncio.get_running_loop()
    targets: list[_Target] = []
    ports: list[int] = []
    port = first
    while len(ports) < count and port < 65000:
        target = _Target()
        try:
            await loop.create_datagram_endpoint(_factory(target), local_addr=("127.0.0.1", port))
        except OSError:
            port += 1
            continue
        targets.append(target)
        ports.append(port)
        port += 1
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Atomically: a reader that sees the file must see every port (rename after write).
    partial = ready.with_suffix(".partial")
    partial.write_text("\n".join(map(str, ports)) + "\n")
    partial.replace(ready)
    await stop.wait()
    for target in targets:
        if target.transport is not None:
            target.transport.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="standin")
    parser.add_argument("--first-port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--ready", required=True, help="file listing the ports once listening")
    args = parser.parse_args(argv)
    return asyncio.run(_main(args.first_port, args.count, Path(args.ready)))


if __name__ == "__main__":
    sys.exit(main())
