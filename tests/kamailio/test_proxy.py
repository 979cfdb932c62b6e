"""The example proxy as a proxy: presence server end to end, registrar, rate cap, MWI NOTIFY."""

from __future__ import annotations

import time
from pathlib import Path

from testbed.kamailio import enforced
from testbed.procs import stopping
from tests.kamailio.conftest import StartProxy
from tests.kamailio.harness import BreakerHash, Kamailio, Responder, run_sipp
from tests.kamailio.sip import SipClient, build_request


def test_presence_server_answers_mwi_publish_subscribe_and_options(
    start_proxy: StartProxy, presence_server: Kamailio, tmp_path: Path
) -> None:
    proxy = start_proxy(presence_server.port)
    with SipClient(proxy.address) as client:
        publish = client.transact(client.mwi_publish("1001"))
        subscribe = client.transact(client.subscribe("1001"))
    with SipClient(presence_server.address) as direct:
        options = direct.transact(direct.options())
    assert publish.code == 200 and publish.header("sip-etag"), f"PUBLISH: {publish.code}"
    assert subscribe.code in (200, 202), f"SUBSCRIBE: {subscribe.code}"
    assert options.code == 200
    sipp = run_sipp("mwi_publish", proxy.address, calls=200, rate=400, workdir=tmp_path)
    assert sipp.returncode == 0 and sipp.successful == 200, f"sipp through the proxy: {sipp}"


def test_registrar_routes_to_the_registered_contact(proxy: Kamailio, tmp_path: Path) -> None:
    with stopping(Responder(tmp_path / "phone").start()) as phone:
        with SipClient(proxy.address) as client:
            domain = f"127.0.0.1:{proxy.port}"
            register = build_request(
                "REGISTER",
                f"sip:{domain}",
                local=client.local,
                from_uri=f"sip:bob@{domain}",
                to_uri=f"sip:bob@{domain}",
                headers=[("Expires", "300")],
            )
            register.text = register.text.replace(
                f"Contact: <sip:test@{client.local[0]}:{client.local[1]}>",
                f"Contact: <sip:bob@127.0.0.1:{phone.port}>",
            )
            assert client.transact(register).code == 200
            invite = client.transact(client.invite(f"sip:bob@{domain}"))
            unknown = client.transact(client.invite(f"sip:nobody@{domain}"))
        assert invite.code == 486, f"INVITE must reach bob's phone (486), got {invite.code}"
        assert phone.count("INVITE") == 1
        assert unknown.code == 404


def test_unsolicited_mwi_notify_goes_to_the_presence_server(
    proxy: Kamailio, responder: Responder, breaker_hash: BreakerHash
) -> None:
    with SipClient(proxy.address) as client:
        assert client.transact(client.mwi_notify("mbox7")).code == 200
        enforced(proxy, breaker_hash, "open", retry_after=6)
        rejected = client.transact(client.mwi_notify("mbox7"))
    assert rejected.code == 503 and rejected.header("retry-after")
    assert responder.count("NOTIFY") == 1


def test_presence_max_rate_caps_what_is_forwarded(
    start_proxy: StartProxy, responder: Responder, breaker_hash: BreakerHash
) -> None:
    proxy = start_proxy(responder.port, BREAKER_PRESENCE_MAX_RATE=50)
    enforced(proxy, breaker_hash, "closed")
    with SipClient(proxy.address) as client:
        started = time.monotonic()
        got = client.send_all([client.mwi_publish(f"mbox{i}") for i in range(400)])
        elapsed = time.monotonic() - started
    codes = [r.code for r in got.values()]
    forwarded = codes.count(200)
    windows = int(elapsed) + 2  # pipelimit counts per 1 s window; a burst can span two
    assert 0 < forwarded <= 50 * windows, (
        f"at most 50/s may be forwarded: {forwarded} in {elapsed:.2f}s"
    )
    assert codes.count(503) == 400 - forwarded
    assert all(r.header("retry-after") for r in got.values() if r.code == 503)
    assert responder.count("PUBLISH") == forwarded
