"""HTTP probe against a tiny asyncio HTTP/1.1 server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from breaker.probes import HttpProbe
from testbed.procs import free_port
from tests.probes.helpers import SLACK, TIMEOUT, expect, explain, make_cfg

REASONS = {200: "OK", 204: "No Content", 503: "Service Unavailable"}


class HttpStandin:
    """Answers every request with `status`, optionally late or never (frozen)."""

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.frozen = False
        self.connections = 0
        self.requests = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> HttpStandin:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while await reader.readline():
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                self.requests += 1
                if self.frozen:
                    await asyncio.Event().wait()  # alive, connected, silent
                if self.delay:
                    await asyncio.sleep(self.delay)
                reason = REASONS.get(self.status, "Whatever")
                head = f"HTTP/1.1 {self.status} {reason}\r\nContent-Length: 2\r\n\r\n"
                writer.write(head.encode() + b"ok")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


@pytest.fixture
async def http_server() -> AsyncIterator[HttpStandin]:
    server = await HttpStandin().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def closing() -> AsyncIterator[list[HttpProbe]]:
    probes: list[HttpProbe] = []
    yield probes
    for probe in probes:
        with contextlib.suppress(Exception):
            await probe.aclose()


def probe_for(server: HttpStandin, closing: list[HttpProbe], **kw: object) -> HttpProbe:
    probe = HttpProbe(make_cfg(f"http://127.0.0.1:{server.port}/health", **kw))
    closing.append(probe)
    return probe


async def test_200_is_ok_with_rtt(http_server: HttpStandin, closing: list[HttpProbe]) -> None:
    result = await probe_for(http_server, closing).check()
    expect(result, "ok")
    assert result.rtt is not None and result.detail == "HTTP/1.1 200 OK", explain(result)


async def test_204_is_ok_by_default(http_server: HttpStandin, closing: list[HttpProbe]) -> None:
    http_server.status = 204
    expect(await probe_for(http_server, closing).check(), "ok")


async def test_503_is_status_503(http_server: HttpStandin, closing: list[HttpProbe]) -> None:
    http_server.status = 503
    result = await probe_for(http_server, closing).check()
    expect(result, "status 503")
    assert result.detail == "HTTP/1.1 503 Service Unavailable", explain(result)


async def test_expect_status_decides(http_server: HttpStandin, closing: list[HttpProbe]) -> None:
    http_server.status = 503
    expect(await probe_for(http_server, closing, expect_status=(503,)).check(), "ok")


async def test_frozen_server_times_out(http_server: HttpStandin, closing: list[HttpProbe]) -> None:
    http_server.frozen = True
    started = time.monotonic()
    result = await probe_for(http_server, closing).check()
    elapsed = time.monotonic() - started
    expect(result, "timeout")
    assert elapsed < TIMEOUT + SLACK, f"expected ~{TIMEOUT}s, seen {elapsed:.3f}s"


async def test_late_answer_is_slow(http_server: HttpStandin, closing: list[HttpProbe]) -> None:
    http_server.delay = 0.1
    result = await probe_for(http_server, closing, slow=0.05).check()
    expect(result, "slow")
    assert result.rtt is not None and result.rtt >= 0.1, explain(result)


async def test_closed_port_is_connect_refused(closing: list[HttpProbe]) -> None:
    probe = HttpProbe(make_cfg(f"http://127.0.0.1:{free_port()}/"))
    closing.append(probe)
    expect(await probe.check(), "connect-refused")


async def test_connection_is_reused_across_probes(
    http_server: HttpStandin, closing: list[HttpProbe]
) -> None:
    probe = probe_for(http_server, closing)
    for i in range(5):
        result = await probe.check()
        assert result.ok, f"probe {i}: {explain(result)}"
    assert http_server.connections == 1, f"expected 1 connection, seen {http_server.connections}"
