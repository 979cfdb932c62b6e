"""SIP messages as bytes: build requests and responses, parse what comes off the wire.

Pure functions, no I/O. Parsing never raises on wire input: anything malformed is
`None`, because a locked-up or confused server may send anything and the prober must
keep going. Building raises `ValueError` on values that would corrupt the message
(CR/LF in a header): those come from configuration and must fail at start-up.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from breaker.probes._framing import MAX_MESSAGE

BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 8.1.1.7: marks a branch as globally unique

# RFC 3261 7.3.3 and the IANA registry: compact header names and their full names.
COMPACT_HEADERS = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    412: "Conditional Request Failed",
    415: "Unsupported Media Type",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    483: "Too Many Hops",
    489: "Bad Event",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    603: "Decline",
}

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-6][0-9]{2})(?: (.*))?", re.IGNORECASE | re.DOTALL)
_REQUEST_LINE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+) ([^ ]+) SIP/2\.0", re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]{1,10}")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def new_branch() -> str:
    """A fresh Via branch: the magic cookie makes RFC 3261 servers match on it alone."""
    return BRANCH_MAGIC + secrets.token_hex(10)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id() -> str:
    return secrets.token_hex(16) + "@breaker"


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status, "Unknown")


def format_host(host: str) -> str:
    """IPv6 literals go in brackets inside URIs and Via (RFC 3261 25.1)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def format_hostport(host: str, port: int | None) -> str:
    return format_host(host) if port is None else f"{format_host(host)}:{port}"


@dataclass(frozen=True, slots=True)
class Transaction:
    """What a response must echo to belong to our request (RFC 3261 17.1.3, plus Call-ID)."""

    branch: str
    call_id: str
    cseq: int
    method: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Message:
    """What requests and responses share: headers (names lower-case, full form) and body."""

    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def get(self, name: str) -> str | None:
        """The first value of a header, or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    @property
    def transaction(self) -> Transaction | None:
        """Top Via branch, Call-ID and CSeq; None when any of them is missing or malformed."""
        via = self.get("via")
        call_id = self.get("call-id")
        cseq = parse_cseq(self.get("cseq"))
        branch = via_branch(via) if via is not None else None
        if branch is None or not call_id or cseq is None:
            return None
        return Transaction(branch=branch, call_id=call_id, cseq=cseq[0], method=cseq[1])


@dataclass(frozen=True, slots=True)
class SipResponse(_Message):
    status: int
    reason: str

    @property
    def status_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}".rstrip()


@dataclass(frozen=True, slots=True)
class SipRequest(_Message):
    method: str
    uri: str


def parse_cseq(value: str | None) -> tuple[int, str] | None:
    """`CSeq: 17 OPTIONS` as (17, "OPTIONS"); None if malformed."""
    if value is None:
        return None
    parts = value.split()
    if len(parts) != 2 or not _DIGITS.fullmatch(parts[0]) or not _TOKEN.fullmatch(parts[1]):
        return None
    number = int(parts[0])
    return (number, parts[1]) if number < 2**31 else None


def via_branch(via: str) -> str | None:
    """The branch parameter of the first Via value in a header (which may hold several)."""
    first = via.split(",", 1)[0]
    for param in first.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "branch":
            value = value.strip()
            return value or None
    return None


def parse_message(data: bytes) -> SipRequest | SipResponse | None:
    """Parse one whole message (a datagram or a framed stream message); None if malformed.

    A Content-Length longer than the body means a truncated datagram: rejected (RFC 3261
    18.3). A missing Content-Length means the body runs to the end (allowed over UDP).
    """
    data = data.lstrip(b"\r\n")  # RFC 3261 7.5: tolerate leading CRLFs
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or len(data) > MAX_MESSAGE:
        return None
    lines = head.decode("utf-8", errors="replace").split("\r\n")
    headers = _parse_headers(lines[1:])
    if headers is None:
        return None
    lengths = [value for key, value in headers if key == "content-length"]
    if lengths:
        if not all(_DIGITS.fullmatch(value) for value in lengths) or len(set(lengths)) > 1:
            return None
        length = int(lengths[0])
        if length > len(body):
            return None
        body = body[:length]
    start = lines[0]
    status = _STATUS_LINE.fullmatch(start)
    if status:
        reason = (status.group(2) or "").strip()
        if _UNSAFE.search(reason):
            return None
        return SipResponse(int(status.group(1)), reason, headers=headers, body=body)
    request = _REQUEST_LINE.fullmatch(start)
    if request:
        return SipRequest(request.group(1), request.group(2), headers=headers, body=body)
    return None


def parse_response(data: bytes) -> SipResponse | None:
    message = parse_message(data)
    return message if isinstance(message, SipResponse) else None


def parse_request(data: bytes) -> SipRequest | None:
    message = parse_message(data)
    return message if isinstance(message, SipRequest) else None


def _parse_headers(lines: list[str]) -> tuple[tuple[str, str], ...] | None:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):  # folded continuation of the previous header
            if not headers:
                return None
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not _TOKEN.fullmatch(name) or _UNSAFE.search(value.replace("\t", " ")):
            return None
        name = name.lower()
        headers.append((COMPACT_HEADERS.get(name, name), value.strip()))
    return tuple(headers)


def format_message(start_line: str, headers: Iterable[tuple[str, str]], body: bytes = b"") -> bytes:
    """Serialize a message; adds Content-Length (always, it is mandatory over TCP)."""
    lines = [start_line]
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _UNSAFE.search(value):
            raise ValueError(f"invalid SIP header {name!r}: {value!r}")
        if name.lower() not in ("content-length", "l"):
            lines.append(f"{name}: {value}")
    if _UNSAFE.search(start_line):
        raise ValueError(f"invalid SIP start line {start_line!r}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def build_request(
    method: str,
    request_uri: str,
    *,
    transport: str,
    local_host: str,
    local_port: int,
    txn: Transaction,
    from_uri: str,
    from_tag: str,
    to_uri: str,
    contact_uri: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    user_agent: str = "breaker",
) -> bytes:
    """An RFC 3261 out-of-dialog request. `rport` asks for the answer back to our source port."""
    if method != txn.method:
        raise ValueError(f"method {method} does not match the transaction's {txn.method}")
    via = f"SIP/2.0/{transport.upper()} {format_hostport(local_host, local_port)}"
    base = [
        ("Via", f"{via};branch={txn.branch};rport"),
        ("Max-Forwards", "70"),
        ("From", f"<{from_uri}>;tag={from_tag}"),
        ("To", f"<{to_uri}>"),
        ("Call-ID", txn.call_id),
        ("CSeq", f"{txn.cseq} {method}"),
    ]
    if contact_uri is not None:
        base.append(("Contact", f"<{contact_uri}>"))
    base.append(("User-Agent", user_agent))
    return format_message(f"{method} {request_uri} SIP/2.0", [*base, *headers], body)


def build_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    """A response to `request` echoing Via, From, To, Call-ID and CSeq (RFC 3261 8.2.6)."""
    echoed: list[tuple[str, str]] = [("Via", via) for via in request.get_all("via")]
    for name, key in (("From", "from"), ("To", "to"), ("Call-ID", "call-id"), ("CSeq", "cseq")):
        value = request.get(key)
        if value is not None:
            if key == "to" and to_tag and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            echoed.append((name, value))
    start = f"SIP/2.0 {status} {reason if reason is not None else reason_phrase(status)}"
    return format_message(start.rstrip(), [*echoed, *headers], body)
