"""SIP over TLS (sips:): same prober, a verified TLS connection reused like TCP."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from breaker.probes import SipProbe
from testbed.sip_standin import SipStandin
from tests.probes.helpers import expect, explain, make_cfg
from tests.support.tls import self_signed

ProbeFactory = Callable[..., SipProbe]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def tls_standin(certificate: tuple[Path, Path]) -> AsyncIterator[SipStandin]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    standin = await SipStandin(udp=False, tcp=True, ssl_context=server_context).start()
    try:
        yield standin
    finally:
        await standin.stop()


async def test_options_over_verified_tls_is_ok(
    tls_standin: SipStandin, certificate: tuple[Path, Path], sip_probe: ProbeFactory
) -> None:
    client_context = ssl.create_default_context(cafile=str(certificate[0]))
    probe = sip_probe(make_cfg(f"sips:127.0.0.1:{tls_standin.port}"), ssl_context=client_context)
    for _ in range(3):
        result = await probe.check()
        expect(result, "ok")
    request = tls_standin.requests[0].request
    assert request.uri == f"sips:127.0.0.1:{tls_standin.port}", request.uri
    assert (request.get("via") or "").startswith("SIP/2.0/TLS 127.0.0.1:"), request.get("via")
    assert tls_standin.tcp_connections == 1, (
        f"expected 1 connection, seen {tls_standin.tcp_connections}"
    )


async def test_untrusted_certificate_is_tls_failure(
    tls_standin: SipStandin, sip_probe: ProbeFactory
) -> None:
    result = await sip_probe(make_cfg(f"sips:127.0.0.1:{tls_standin.port}")).check()
    expect(result, "tls")
    assert "certificate" in result.detail.lower(), explain(result)
