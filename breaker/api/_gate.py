"""The API's front door: authenticate from the headers, then cap the body, then route.

An ASGI middleware rather than FastAPI dependencies because FastAPI reads and parses a
body before it runs any dependency: a 4 MiB body without a token would be read, parsed
and answered with 422. Here a request for a route that needs a token is refused on its
headers alone, and no body longer than `MAX_BODY` is ever buffered.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breaker.api._auth import Principal, TokenRegistry

MAX_BODY = 4096  # bytes; the largest legitimate body (a force) is under 700
PRINCIPAL = "breaker.principal"  # scope key under which the gate leaves the caller

Need = Literal["read", "operate"] | None


@dataclass(slots=True, eq=False)  # add_middleware(Gate, **options) builds it
class Gate:
    """Authenticates and bounds every request before the app sees it.

    `need(route)` says what a route requires: None (open), "read" or "operate".
    Requests that match no route, or a route only by path (405), pass unauthenticated:
    they reveal nothing and the app answers 404/405 itself.
    """

    app: ASGIApp
    _: KW_ONLY
    routes: Callable[[], list[BaseRoute]]
    need: Callable[[BaseRoute], Need]
    tokens: TokenRegistry
    open_reads: bool
    max_body: int = MAX_BODY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        required = self._required(scope)
        if required is not None:
            principal = self._authenticate(headers.get("authorization"))
            refusal = self._refuse(required, principal, headers.get("authorization"))
            if refusal is not None:
                await _send_error(send, *refusal)
                return
            scope[PRINCIPAL] = principal
        if "content-length" in headers or "transfer-encoding" in headers:
            declared = headers.get("content-length", "0").strip()
            if not declared.isascii() or not declared.isdigit():
                await _send_error(send, 400, "Content-Length must be a number of bytes")
                return
            if int(declared) > self.max_body:
                await _send_error(send, 413, self._too_large())
                return
            body = await self._read_body(receive)
            if body is None:
                await _send_error(send, 413, self._too_large())
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _required(self, scope: Scope) -> Need:
        if self.open_reads and scope["method"] in ("GET", "HEAD"):
            return None  # the hot path (/allow): no route matching
        for route in self.routes():
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return self.need(route)
        return None

    def _authenticate(self, authorization: str | None) -> Principal | None:
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.tokens.authenticate(value.strip())

    def _refuse(
        self,
        required: Literal["read", "operate"],
        principal: Principal | None,
        presented: str | None,
    ) -> tuple[int, str, dict[str, str]] | None:
        challenge = {"WWW-Authenticate": "Bearer"}
        if required == "read":
            if principal is None:
                return 401, "a valid token is required to read (open_reads is off)", challenge
            return None
        if principal is None and not self.tokens.can_operate:
            message = "no operate token is configured on the sidecar; writes are disabled"
            return 401, message, challenge
        if principal is None:
            return 401, "missing or wrong token" if presented else "missing token", challenge
        if principal.role != "operate":
            return 403, f"token {principal.name!r} has role read; operate is needed", {}
        return None

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body} bytes"

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the cap (chunked bodies too)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # disconnected: the app will see an empty body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(
    send: Send, status: int, message: str, headers: Mapping[str, str] | None = None
) -> None:
    payload = json.dumps({"error": message}).encode()
    raw: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if status in (400, 413):  # the rest of the body is unread: the connection cannot be reused
        raw.append((b"connection", b"close"))
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": raw}
    await send(start)
    await send({"type": "http.response.body", "body": payload})
