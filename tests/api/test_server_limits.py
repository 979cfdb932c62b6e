"""uvicorn as `breaker serve` runs it: oversized heads get 431, slow heads are cut off, and
neither gets in the way of a normal request. (The /allow latency under 200 slow clients
is measured by `python -m bench --only slow_clients`, not here.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import breaker.api._server as server
from testbed.procs import free_port
from testbed.waiting import eventually


async def hello(_: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture
async def port(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    monkeypatch.setattr(server, "HEAD_TIMEOUT", 0.5)
    chosen = free_port()
    config = uvicorn.Config(
        Starlette(routes=[Route("/", hello)]),
        host="127.0.0.1",
        port=chosen,
        log_config=None,
        lifespan="off",
        **server.UVICORN_LIMITS,
    )
    app_server = uvicorn.Server(config)
    task = asyncio.create_task(app_server.serve())
    await eventually(lambda: app_server.started, what="uvicorn to start")
    try:
        yield chosen
    finally:
        app_server.should_exit = True
        await asyncio.wait_for(task, 5)


async def get(port: int, extra: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
    try:
        return await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()


def test_breaker_serve_uses_the_bounded_httptools_protocol() -> None:
    assert server.UVICORN_LIMITS["http"] is server.HTTP
    assert "limit_concurrency" not in server.UVICORN_LIMITS, "a 503 must never mean overload"


async def test_oversized_head_gets_431_and_the_server_keeps_serving(port: int) -> None:
    answer = await get(port, b"X-Big: " + b"a" * (server.MAX_HEAD + 10) + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
    assert (await get(port)).startswith(b"HTTP/1.1 200"), "a normal request still works"


async def test_trickled_head_is_cut_off_while_others_are_served(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHo")
    served = await get(port)
    closed = await asyncio.wait_for(reader.read(), 3)  # b"" once the server gives up
    writer.close()
    assert served.startswith(b"HTTP/1.1 200"), served[:80]
    assert closed == b"", f"expected the slow head dropped, got {closed[:80]!r}"


async def test_idle_connection_without_a_byte_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    closed = await asyncio.wait_for(reader.read(), 3)
    writer.close()
    assert closed == b"", f"expected the idle connection dropped, got {closed[:80]!r}"
