"""TCP probe: connect and close."""

from __future__ import annotations

import asyncio

from breaker.probes import TcpProbe
from testbed.procs import free_port
from tests.probes.helpers import expect, explain, make_cfg


async def test_open_port_is_ok() -> None:
    accepted = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await TcpProbe(make_cfg(f"tcp://127.0.0.1:{port}")).check()
        expect(result, "ok")
        assert result.rtt is not None, explain(result)
        async with asyncio.timeout(2):
            await accepted.wait()
    finally:
        server.close()
        await server.wait_closed()


async def test_closed_port_is_connect_refused() -> None:
    result = await TcpProbe(make_cfg(f"tcp://127.0.0.1:{free_port()}")).check()
    expect(result, "connect-refused")


async def test_localhost_name_resolves_without_dns() -> None:
    result = await TcpProbe(make_cfg(f"tcp://localhost:{free_port()}")).check()
    expect(result, "connect-refused")  # resolved, then refused: no dns failure
