"""uvicorn settings that keep slow, idle or oversized clients from hurting /allow.

httptools (uvicorn's fast parser) buffers request headers without a size limit, and
a client that trickles header bytes cancels uvicorn's keep-alive timeout forever.
`BoundedHttpTools` adds both bounds without giving up httptools: h11, which has a
size limit of its own, costs about 1.5x the CPU per /allow request.

No `limit_concurrency`: above it uvicorn answers 503, and a 503 from /allow means
"hold back". An overload answer must never look like a verdict.
"""

from __future__ import annotations

import asyncio
from typing import Any

MAX_HEAD = 16 * 1024  # bytes of request line + headers
HEAD_TIMEOUT = 10.0  # seconds from connection (or the previous answer) to a complete head
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools: h11 and its own limit
    HTTP: Any = "h11"
else:

    class BoundedHttpTools(HttpToolsProtocol):
        """httptools with a cap on head size and a deadline for a complete head."""

        _head_bytes = 0
        _in_head = True
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD:
                    self._cancel_head_timer()
                    self.transport.write(_431)
                    self.transport.close()
                    return
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._cancel_head_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_head()

        def _await_head(self) -> None:
            self._in_head, self._head_bytes = True, 0
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_too_slow)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self.transport.close()

    HTTP = BoundedHttpTools

# Passed to uvicorn.Config by `breaker serve`.
UVICORN_LIMITS: dict[str, Any] = {
    "http": HTTP,
    "timeout_keep_alive": 5,  # seconds an idle keep-alive connection is kept
    "h11_max_incomplete_event_size": MAX_HEAD,  # the same bound when h11 is used
    "backlog": 2048,
}
