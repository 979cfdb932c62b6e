"""SIP OPTIONS over TCP: the connection is re-established after the server drops it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from breaker.probes import SipProbe
from testbed.procs import free_port
from testbed.sip_standin import SipStandin
from tests.probes.helpers import eventually, expect, explain, make_cfg

ProbeFactory = Callable[..., SipProbe]


def target(standin: SipStandin) -> str:
    return f"sip:127.0.0.1:{standin.port};transport=tcp"


async def test_refused_connection_is_connect_refused(sip_probe: ProbeFactory) -> None:
    port = free_port()
    result = await sip_probe(make_cfg(f"sip:127.0.0.1:{port};transport=tcp")).check()
    expect(result, "connect-refused")
    assert str(port) in result.detail, explain(result)


@pytest.mark.parametrize("noticed", [False, True], ids=["unnoticed", "noticed"])
async def test_connection_dropped_by_server_is_reopened_on_next_probe(
    tcp_standin: SipStandin, sip_probe: ProbeFactory, noticed: bool
) -> None:
    """Whether or not the probe saw the close before its next check."""
    probe = sip_probe(make_cfg(target(tcp_standin)))
    expect(await probe.check(), "ok")
    first = probe.local_address
    tcp_standin.drop_tcp_connections()
    if noticed:
        await eventually(
            lambda: probe._channel is not None and probe._channel.closed, what="close seen"
        )
    expect(await probe.check(), "ok")
    assert probe.local_address != first, "expected a new connection (new local port)"
    assert probe.connections_opened == 2, f"expected 2 connections, seen {probe.connections_opened}"
    assert tcp_standin.tcp_connections == 2, (
        f"expected 2 connections at the server, seen {tcp_standin.tcp_connections}"
    )


async def test_connection_dropped_while_waiting_is_connection_reset(
    tcp_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    probe = sip_probe(make_cfg(target(tcp_standin)))
    expect(await probe.check(), "ok")
    tcp_standin.drop_on_request = True
    result = await probe.check()
    expect(result, "connection-reset")
    tcp_standin.drop_on_request = False
    expect(await probe.check(), "ok")


async def test_server_gone_after_connecting_is_connect_refused(sip_probe: ProbeFactory) -> None:
    standin = await SipStandin(udp=False, tcp=True).start()
    probe = sip_probe(make_cfg(target(standin)))
    try:
        expect(await probe.check(), "ok")
    finally:
        await standin.stop()
    expect(await probe.check(), "connect-refused")
