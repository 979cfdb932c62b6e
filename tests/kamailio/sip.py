"""A small SIP-over-UDP client for tests: build requests, send them, match final responses."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

MWI_BODY = (
    "Messages-Waiting: yes\r\nMessage-Account: sip:{user}@{domain}\r\nVoice-Message: 2/8 (0/2)\r\n"
)


@dataclass
class Response:
    """A parsed SIP response (only what tests look at)."""

    code: int
    reason: str
    headers: dict[str, str]
    call_id: str
    received_at: float
    raw: str = field(repr=False, default="")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Request:
    """A request ready to send; `call_id` is how its responses are matched."""

    method: str
    call_id: str
    text: str
    to_user: str = ""


def parse_response(data: bytes, received_at: float | None = None) -> Response | None:
    text = data.decode("utf-8", errors="replace")
    head, _, _ = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    if not lines or not lines[0].startswith("SIP/2.0 "):
        return None
    parts = lines[0].split(" ", 2)
    code = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers: dict[str, str] = {}
    compact = {"i": "call-id", "v": "via", "f": "from", "t": "to", "l": "content-length"}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = compact.get(key, key)
        headers.setdefault(key, value.strip())
    return Response(
        code, reason, headers, headers.get("call-id", ""), received_at or time.monotonic(), text
    )


def build_request(
    method: str,
    ruri: str,
    *,
    local: tuple[str, int],
    from_uri: str,
    to_uri: str,
    call_id: str | None = None,
    cseq: int = 1,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: str = "",
    content_type: str | None = None,
) -> Request:
    call_id = call_id or f"{uuid.uuid4().hex}@breaker-test"
    host, port = local
    branch = "z9hG4bK" + os.urandom(8).hex()
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <{from_uri}>;tag={os.urandom(4).hex()}",
        f"To: <{to_uri}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:test@{host}:{port}>",
        "User-Agent: breaker-tests",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body.encode())}")
    text = "\r\n".join(lines) + "\r\n\r\n" + body
    to_user = to_uri.split(":", 1)[-1].split("@", 1)[0]
    return Request(method, call_id, text, to_user)


class SipClient:
    """One UDP socket on 127.0.0.1 that sends requests to `target` and collects final replies."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.local: tuple[str, int] = self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SipClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- request builders ------------------------------------------------------

    @property
    def domain(self) -> str:
        return f"{self.target[0]}:{self.target[1]}"

    def mwi_publish(self, user: str, *, call_id: str | None = None) -> Request:
        aor = f"sip:{user}@{self.target[0]}"
        return build_request(
            "PUBLISH",
            aor,
            local=self.local,
            from_uri=aor,
            to_uri=aor,
            call_id=call_id,
            headers=[("Event", "message-summary"), ("Expires", "3600")],
            body=MWI_BODY.format(user=user, domain=self.target[0]),
            content_type="application/simple-message-summary",
        )

    def mwi_notify(self, user: str) -> Request:
        """Unsolicited (out-of-dialog) MWI NOTIFY, as a voicemail system sends it."""
        aor = f"sip:{user}@{self.target[0]}"
        return build_request(
            "NOTIFY",
            aor,
            local=self.local,
            from_uri="sip:voicemail@test",
            to_uri=aor,
            headers=[("Event", "message-summary"), ("Subscription-State", "active")],
            body=MWI_BODY.format(user=user, domain=self.target[0]),
            content_type="application/simple-message-summary",
        )

    def subscribe(
        self,
        user: str,
        watcher: str = "watcher",
        event: str = "message-summary",
    ) -> Request:
        aor = f"sip:{user}@{self.target[0]}"
        return build_request(
            "SUBSCRIBE",
            aor,
            local=self.local,
            from_uri=f"sip:{watcher}@{self.target[0]}",
            to_uri=aor,
            headers=[
                ("Event", event),
                ("Expires", "600"),
                ("Accept", "application/simple-message-summary"),
            ],
        )

    def options(self, ruri: str | None = None) -> Request:
        ruri = ruri or f"sip:{self.domain}"
        return build_request(
            "OPTIONS", ruri, local=self.local, from_uri="sip:probe@test", to_uri=ruri
        )

    def invite(self, ruri: str) -> Request:
        sdp = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 4000 RTP/AVP 0\r\n"
        )
        return self._with_body("INVITE", ruri, "sip:caller@test", sdp, "application/sdp")

    def message(self, ruri: str, text: str = "hello") -> Request:
        return self._with_body("MESSAGE", ruri, "sip:vm@test", text, "text/plain")

    def _with_body(
        self, method: str, ruri: str, from_uri: str, body: str, content_type: str
    ) -> Request:
        return build_request(
            method,
            ruri,
            local=self.local,
            from_uri=from_uri,
            to_uri=ruri,
            body=body,
            content_type=content_type,
        )

    # -- sending ---------------------------------------------------------------

    def send(self, request: Request) -> None:
        self.sock.sendto(request.text.encode(), self.target)

    def transact(self, request: Request, timeout: float = 5.0) -> Response:
        """Send one request, return its final response (fails after `timeout`)."""
        got = self.send_all([request], timeout=timeout)
        if request.call_id not in got:
            raise AssertionError(
                f"no final response to {request.method} {request.call_id} within {timeout}s"
            )
        return got[request.call_id]

    def send_all(
        self,
        requests: list[Request],
        timeout: float = 10.0,
        window: int = 100,
    ) -> dict[str, Response]:
        """Send requests keeping at most `window` outstanding; return call-id -> final response.

        Requests without a final response by `timeout` are simply missing from the result.
        """
        pending: dict[str, float] = {}
        results: dict[str, Response] = {}
        queue = list(requests)
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.05)
        while (queue or pending) and time.monotonic() < deadline:
            while queue and len(pending) < window:
                request = queue.pop(0)
                pending[request.call_id] = time.monotonic()
                self.send(request)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            response = parse_response(data)
            if response is None or response.code < 200:
                continue
            if response.call_id in pending:
                sent_at = pending.pop(response.call_id)
                response.headers["x-latency"] = f"{response.received_at - sent_at:.6f}"
                results[response.call_id] = response
        return results


def latency(response: Response) -> float:
    return float(response.headers["x-latency"])
