"""A counting UDP SIP responder: a stand-in presence server that can be frozen with SIGSTOP.

Run as a script (the tests start it in its own process so SIGSTOP freezes it for
real: socket open, nothing read). Every request received is appended to the
log as one JSON line, then answered with `--code` (INVITE gets `--invite-code`).
The first log line is {"ready": port}.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

REASONS = {
    200: "OK",
    202: "Accepted",
    408: "Request Timeout",
    486: "Busy Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
}


def reply(request: str, code: int) -> bytes:
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")
    keep: list[str] = []
    has_tag = False
    for line in head[1:]:
        name = line.split(":", 1)[0].strip().lower()
        if name in ("via", "v", "from", "f", "call-id", "i", "cseq"):
            keep.append(line)
        elif name in ("to", "t"):
            has_tag = ";tag=" in line
            keep.append(line if has_tag else line + ";tag=" + os.urandom(4).hex())
    lines = [f"SIP/2.0 {code} {REASONS.get(code, 'Reply')}", *keep, "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def header(request: str, *names: str) -> str:
    for line in request.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in names:
            return value.strip()
    return ""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--code", type=int, default=200)
    parser.add_argument("--invite-code", type=int, default=486)
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", args.port))
    with open(args.log, "a", buffering=1) as log:
        log.write(json.dumps({"ready": args.port}) + "\n")
        while True:
            data, addr = sock.recvfrom(65535)
            text = data.decode("utf-8", errors="replace")
            if text.startswith("SIP/2.0"):
                continue
            method = text.split(" ", 1)[0]
            to = header(text, "to", "t")
            log.write(
                json.dumps(
                    {
                        "method": method,
                        "call_id": header(text, "call-id", "i"),
                        "to": to,
                        "t": time.time(),
                    }
                )
                + "\n"
            )
            if method == "ACK":
                continue
            sock.sendto(reply(text, args.invite_code if method == "INVITE" else args.code), addr)


if __name__ == "__main__":
    sys.exit(main())
