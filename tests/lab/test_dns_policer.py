"""The lab resolver's policer in front of a real dnsmasq: answers within its cap, drops the
rest unanswered, and counts both by client (query name)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import pytest

from lab._dns import CARRIER_DOMAIN, PRESENCE_SERVICE, Policer, dnsmasq_argv
from testbed.procs import LOOPBACK, Child, await_ready, free_port


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    child = Child(dnsmasq_argv(port, proxy_port=5999, far_end_port=6000), tmp_path / "dnsmasq.log")
    try:
        await_ready(child, lambda: "started" in child.output(), 10, "dnsmasq")
        yield port
    finally:
        child.stop()


async def _ask(name: str, rdtype: str, port: int) -> dns.message.Message | None:
    try:
        return await dns.asyncquery.udp(
            dns.message.make_query(name, rdtype), LOOPBACK, timeout=0.5, port=port
        )
    except dns.exception.Timeout:
        return None


@pytest.mark.timeout(30)
async def test_policer_answers_up_to_its_cap_and_drops_the_rest_counted_by_client(
    dnsmasq: int,
) -> None:
    cap = 40.0  # bucket depth cap / 20 = 2 queries
    listen = (LOOPBACK, free_port())
    policer = await Policer(listen, (LOOPBACK, dnsmasq), cap).start()
    try:
        srv = await _ask(f"_sip._udp.{CARRIER_DOMAIN}", "SRV", listen[1])
        assert srv is not None and "6000" in srv.answer[0].to_text(), f"SRV answer: {srv}"
        await asyncio.sleep(0.2)  # refill the bucket
        burst = await asyncio.gather(
            *(_ask(PRESENCE_SERVICE, "NAPTR", listen[1]) for _ in range(30))
        )
    finally:
        policer.close()
    answered = sum(1 for r in burst if r is not None)
    totals = policer.counts.totals()
    assert 1 <= answered <= 4, f"expected about the bucket's depth (2) answered, saw {answered}/30"
    assert totals["queries"]["carrier"] == 1 and totals["dropped"]["carrier"] == 0, totals
    assert totals["dropped"]["presence"] == 30 - answered, (
        f"expected every unanswered query counted as dropped: {totals}"
    )
