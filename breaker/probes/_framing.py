"""Cutting a TCP/TLS byte stream into whole SIP messages (RFC 3261 18.3).

Stateful but free of I/O: the transports feed it what they read and parse each message
it returns with `_sipmsg`, which holds datagrams to the same MAX_MESSAGE. A stream that
cannot be cut any more raises FramingError, and the connection is dropped.
"""

from __future__ import annotations

MAX_MESSAGE = 65535  # bytes, on a stream or a datagram; nothing a health check expects comes close
_LENGTH_NAMES = (b"content-length", b"l")


class FramingError(Exception):
    """The stream cannot be cut into messages any more; the connection must be dropped."""


class StreamFramer:
    """Cuts by Content-Length; CRLF keep-alives (RFC 5626) between messages are skipped."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._max = max_message

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes, return the messages now complete. Raises FramingError when hopeless."""
        self._buffer += data
        messages: list[bytes] = []
        while True:
            while self._buffer[:2] == b"\r\n" or self._buffer[:1] == b"\n":
                del self._buffer[: 2 if self._buffer[:1] == b"\r" else 1]
            if self._buffer == b"\r":
                break
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self._max:
                    raise FramingError(f"no end of headers within {self._max} bytes")
                break
            head_end = end + 4
            length = stream_content_length(bytes(self._buffer[:end]))
            if head_end + length > self._max:
                raise FramingError(f"message of {head_end + length} bytes is too large")
            if len(self._buffer) < head_end + length:
                break
            messages.append(bytes(self._buffer[: head_end + length]))
            del self._buffer[: head_end + length]
        return messages


def stream_content_length(head: bytes) -> int:
    """The body length announced in a stream message's head (start line and headers).

    The header may sit anywhere, in any case, in compact form (`l:`) and folded over
    continuation lines (RFC 3261 7.3.1). Missing means no body. Repeated values must agree.
    Raises FramingError naming the problem for negative, non-numeric or absurd lengths.
    """
    values: list[bytes] = []
    in_length = False  # the previous header line was a Content-Length: fold into it
    for line in head.split(b"\r\n")[1:]:
        if line[:1] in (b" ", b"\t"):
            if in_length:
                values[-1] = (values[-1] + b" " + line.strip()).strip()
            continue
        name, sep, value = line.partition(b":")
        in_length = bool(sep) and name.strip().lower() in _LENGTH_NAMES
        if in_length:
            values.append(value.strip())
    if not values:
        return 0
    lengths: set[int] = set()
    for raw in values:
        shown = raw[:20].decode("ascii", errors="replace")
        if raw.startswith(b"-") and raw[1:].isdigit():
            raise FramingError(f"negative Content-Length {shown!r}")
        if not raw.isdigit() or not raw.isascii():
            raise FramingError(f"unreadable Content-Length {shown!r}")
        if len(raw) > 10:
            raise FramingError(f"absurd Content-Length {shown!r}")
        lengths.add(int(raw))
    if len(lengths) > 1:
        raise FramingError(f"conflicting Content-Length values {sorted(lengths)}")
    return lengths.pop()
