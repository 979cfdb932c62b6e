from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from breaker._config import BreakerConfig
from breaker.probes import SipProbe
from testbed.sip_standin import SipStandin


@pytest.fixture
async def udp_standin() -> AsyncIterator[SipStandin]:
    standin = await SipStandin(udp=True).start()
    try:
        yield standin
    finally:
        await standin.stop()


@pytest.fixture
async def tcp_standin() -> AsyncIterator[SipStandin]:
    standin = await SipStandin(udp=False, tcp=True).start()
    try:
        yield standin
    finally:
        await standin.stop()


@pytest.fixture
async def sip_probe() -> AsyncIterator[Callable[..., SipProbe]]:
    """Factory for SipProbes that are closed after the test."""
    made: list[SipProbe] = []

    def factory(cfg: BreakerConfig, **kwargs: object) -> SipProbe:
        probe = SipProbe(cfg, **kwargs)  # type: ignore[arg-type]
        made.append(probe)
        return probe

    yield factory
    for probe in made:
        await probe.aclose()
