"""make_probe picks the prober for the target kind."""

from __future__ import annotations

import breaker.probes as probes
from breaker.probes import HttpProbe, SipProbe, SipResolver, TcpProbe, make_probe
from tests.probes.helpers import make_cfg


async def test_each_target_kind_gets_its_probe() -> None:
    resolver = SipResolver(["127.0.0.1"], port=53)
    made = {
        "sip:127.0.0.1:5060": make_probe(make_cfg("sip:127.0.0.1:5060"), resolver=resolver),
        "http://127.0.0.1:1/": make_probe(make_cfg("http://127.0.0.1:1/")),
        "tcp://127.0.0.1:1": make_probe(make_cfg("tcp://127.0.0.1:1")),
    }
    kinds = {target: type(probe) for target, probe in made.items()}
    assert kinds == {
        "sip:127.0.0.1:5060": SipProbe,
        "http://127.0.0.1:1/": HttpProbe,
        "tcp://127.0.0.1:1": TcpProbe,
    }
    for probe in made.values():
        await probe.aclose()


def test_public_api_is_exported() -> None:
    assert {"make_probe", "ProbeResult", "Probe"} <= set(probes.__all__)
