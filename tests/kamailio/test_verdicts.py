"""What the proxy does with presence requests in each breaker state (closed, open, half_open)."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

from testbed.waiting import wait_until
from tests.kamailio.conftest import StartProxy
from tests.kamailio.harness import (
    BreakerHash,
    Kamailio,
    Responder,
    mwi_bucket,
    run_sipp,
    udp_rx_queue,
)
from tests.kamailio.sip import SipClient


def test_closed_forwards_every_presence_request(
    proxy: Kamailio, responder: Responder, breaker_hash: BreakerHash
) -> None:
    epoch = breaker_hash.set("closed")
    proxy.wait_verdict(state="closed", epoch=epoch, source="redis")
    presence = f"sip:127.0.0.1:{responder.port}"
    with SipClient(proxy.address) as client:
        requests = [client.mwi_publish(f"mbox{i}") for i in range(50)]
        requests += [client.subscribe(f"mbox{i}") for i in range(10)]
        requests += [client.subscribe("alice", event="presence")]
        requests += [client.message(f"{presence};transport=udp".replace("sip:", "sip:vm@"))]
        got = client.send_all(requests)
    codes = {got[r.call_id].code for r in requests if r.call_id in got}
    assert len(got) == len(requests) and codes == {200}, (
        f"expected {len(requests)} x 200, got {len(got)} responses with codes {codes}"
    )
    call_ids = {r.call_id for r in requests}
    wait_until(
        lambda: responder.count(call_ids=call_ids) >= len(requests),
        5,
        what="all requests at the presence stand-in",
    )
    assert responder.count("PUBLISH", call_ids) == 50
    assert responder.count("SUBSCRIBE", call_ids) == 11
    assert responder.count("MESSAGE", call_ids) == 1


def test_forced_open_answers_503_locally_with_randomised_retry_after(
    proxy: Kamailio, responder: Responder, breaker_hash: BreakerHash, tmp_path: Path
) -> None:
    epoch = breaker_hash.set("open", retry_after=20, reason="forced: presence upgrade")
    proxy.wait_verdict(state="open", admit=0, epoch=epoch, source="redis")
    with SipClient(proxy.address) as client:
        requests = [client.mwi_publish(f"mbox{i}") for i in range(1000)]
        got = client.send_all(requests)
    codes = {r.code for r in got.values()}
    assert len(got) == 1000 and codes == {503}, f"expected 1000 x 503, got {len(got)}: {codes}"
    retry_after = [int(r.header("retry-after") or -1) for r in got.values()]
    assert min(retry_after) >= 10 and max(retry_after) <= 30, (
        f"Retry-After must be 20 +/- 50 %, saw {min(retry_after)}..{max(retry_after)}"
    )
    assert len(set(retry_after)) >= 15, f"Retry-After not spread: {sorted(set(retry_after))}"
    assert min(retry_after) <= 12 and max(retry_after) >= 28, (
        f"Retry-After does not cover the range: {min(retry_after)}..{max(retry_after)}"
    )

    sipp = run_sipp(
        "mwi_publish_rejected", proxy.address, calls=1000, rate=1000, workdir=tmp_path / "sipp"
    )
    assert sipp.returncode == 0 and sipp.successful == 1000, (
        f"sipp expected 1000 local 503s with Retry-After: {sipp}"
    )
    assert responder.count() == 0, f"{responder.count()} requests reached the stand-in"
    assert breaker_hash.passive().get("forwarded", 0) == 0


def test_frozen_presence_server_gets_nothing_once_open(
    start_proxy: StartProxy,
    presence_server: Kamailio,
    breaker_hash: BreakerHash,
    tmp_path: Path,
) -> None:
    """The incident: presence server alive but stuck. Open means not one packet reaches it."""
    proxy = start_proxy(presence_server.port)
    breaker_hash.set("closed")
    sipp = run_sipp("mwi_publish", proxy.address, calls=50, rate=500, workdir=tmp_path / "a")
    assert sipp.successful == 50, f"closed: real presence server should answer 200: {sipp}"
    wait_until(
        lambda: breaker_hash.passive().get("forwarded") == 50,
        5,
        what="50 forwarded counted in Redis",
    )

    assert presence_server.proc is not None
    presence_server.proc.signal(signal.SIGSTOP)  # sockets open, nothing processed
    epoch = breaker_hash.set("open", retry_after=30)
    proxy.wait_verdict(state="open", epoch=epoch)

    sipp = run_sipp(
        "mwi_publish_rejected", proxy.address, calls=500, rate=1000, workdir=tmp_path / "b"
    )
    assert sipp.returncode == 0 and sipp.successful == 500, f"open: 500 local 503s: {sipp}"
    assert udp_rx_queue(presence_server.port) == 0, "packets queued at the frozen server"
    forwarded = breaker_hash.passive().get("forwarded")
    assert forwarded == 50, f"nothing may be forwarded while open, counter went 50 -> {forwarded}"


def test_half_open_admits_the_share_stably_per_aor(
    proxy: Kamailio, responder: Responder, breaker_hash: BreakerHash
) -> None:
    epoch = breaker_hash.set("half_open", admit=30, retry_after=10)
    proxy.wait_verdict(state="half_open", admit=30, epoch=epoch)
    users = [f"{uuid.uuid4().hex[:12]}" for _ in range(1000)]
    decisions: list[dict[str, int]] = []
    with SipClient(proxy.address) as client:
        for _ in range(2):
            requests = [client.mwi_publish(user) for user in users]
            got = client.send_all(requests)
            assert len(got) == len(requests), f"{len(requests) - len(got)} requests unanswered"
            decisions.append({r.to_user: got[r.call_id].code for r in requests})
    admitted = [user for user, code in decisions[0].items() if code == 200]
    share = len(admitted) / len(users)
    assert 0.25 <= share <= 0.35, f"admit=30 should forward ~30 %, forwarded {share:.1%}"
    assert decisions[0] == decisions[1], "the same AoR must get the same decision every time"
    expected = {user for user in users if mwi_bucket(f"{user}@127.0.0.1") < 30}
    assert set(admitted) == expected, "admitted set differs from md5 bucket < admit"
    assert set(decisions[0].values()) == {200, 503}
    wait_until(
        lambda: responder.count("PUBLISH") == 2 * len(admitted),
        5,
        what=f"{2 * len(admitted)} admitted PUBLISH at the stand-in",
    )


def test_half_open_growing_share_keeps_admitted_aors(
    proxy: Kamailio, breaker_hash: BreakerHash
) -> None:
    users = [f"mbox{i}" for i in range(300)]
    admitted: list[set[str]] = []
    with SipClient(proxy.address) as client:
        for admit in (10, 50, 90):
            epoch = breaker_hash.set("half_open", admit=admit, retry_after=5)
            proxy.wait_verdict(state="half_open", admit=admit, epoch=epoch)
            requests = [client.mwi_publish(user) for user in users]
            got = client.send_all(requests)
            admitted.append({r.to_user for r in requests if got[r.call_id].code == 200})
    assert admitted[0] <= admitted[1] <= admitted[2], "a growing share dropped admitted AoRs"
    assert len(admitted[0]) < len(admitted[1]) < len(admitted[2])


def test_non_presence_traffic_is_untouched_while_open(
    proxy: Kamailio, responder: Responder, breaker_hash: BreakerHash, tmp_path: Path
) -> None:
    epoch = breaker_hash.set("open", retry_after=60)
    proxy.wait_verdict(state="open", epoch=epoch)
    phone = Responder(tmp_path / "phone").start()  # some user agent, not the presence server
    try:
        with SipClient(proxy.address) as client:
            options = client.transact(client.options())
            invite = client.transact(client.invite(f"sip:bob@127.0.0.1:{phone.port}"))
            message = client.transact(client.message(f"sip:carol@127.0.0.1:{phone.port}"))
            publish = client.transact(client.mwi_publish("mbox1"))
    finally:
        phone.stop()
    assert options.code == 200, f"OPTIONS to the proxy: {options.code}"
    assert invite.code == 486, f"INVITE must be relayed (the phone answers 486): {invite.code}"
    assert message.code == 200, f"MESSAGE to a user must be relayed: {message.code}"
    assert publish.code == 503
    assert responder.count() == 0


def test_breaker_name_and_key_prefix_build_the_key(
    start_proxy: StartProxy, responder: Responder, breaker_hash: BreakerHash
) -> None:
    proxy = start_proxy(responder.port, BREAKER_NAME='"mwi"', BREAKER_KEY_PREFIX='"site1:"')
    other = BreakerHash(
        breaker_hash.client.connection_pool.connection_kwargs["port"], name="mwi", prefix="site1:"
    )
    assert other.key == "site1:{mwi}"
    breaker_hash.set("open")  # breaker:{presence} is not ours any more
    epoch = other.set("open", retry_after=4)
    proxy.wait_verdict(state="open", epoch=epoch, source="redis", name="mwi")
    with SipClient(proxy.address) as client:
        assert client.transact(client.mwi_publish("mbox1")).code == 503
    other.set("closed")
    proxy.wait_verdict(state="closed", source="redis")
    with SipClient(proxy.address) as client:
        assert client.transact(client.mwi_publish("mbox1")).code == 200
    wait_until(
        lambda: other.passive().get("forwarded") == 1,
        5,
        what="passive counters under site1:{mwi}:passive",
    )
    other.client.close()
