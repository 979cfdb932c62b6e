"""breaker.cfg's old, unprefixed define names still work for one release (deprecated).

REDIS_SERVER, REDIS_CONNECT_TIMEOUT, REDIS_CMD_TIMEOUT, REDIS_DISABLE_TIME,
PRESENCE_MAX_RATE and PRESENCE_POOL_TRIES are aliases of their BREAKER_ names
(docs/kamailio.md, "Deprecated define names").
"""

from __future__ import annotations

from pathlib import Path

from testbed.procs import free_port
from testbed.redis import Redis
from tests.kamailio.harness import (
    PROXY_CFG,
    BreakerHash,
    Define,
    Kamailio,
    Responder,
    check_config,
    proxy_defines,
    quoted,
)
from tests.kamailio.sip import SipClient
from tests.kamailio.test_configs import assert_config_ok

DSLIST = Path(__file__).resolve().parents[2] / "kamailio-config" / "dispatcher.list"


def test_old_define_names_pass_kamailio_check() -> None:
    assert_config_ok(
        PROXY_CFG,
        {
            "REDIS_SERVER": quoted("name=breaker;addr=127.0.0.1;port=6380;db=2"),
            "REDIS_CONNECT_TIMEOUT": 100,
            "REDIS_CMD_TIMEOUT": 100,
            "REDIS_DISABLE_TIME": 5,
            "PRESENCE_MAX_RATE": 200,
        },
    )
    assert_config_ok(
        PROXY_CFG,
        {
            "WITH_PRESENCE_POOL": True,
            "PRESENCE_DSLIST": quoted(str(DSLIST)),
            "PRESENCE_POOL_TRIES": 3,
            "PRESENCE_MAX_RATE": 200,
        },
    )


def test_old_define_name_reaches_the_module_parameter() -> None:
    """A non-number under the old name must break ndb_redis's int parameter: proof it is read."""
    result = check_config(PROXY_CFG, {"REDIS_CMD_TIMEOUT": quoted("not-a-number")})
    output = result.stdout + result.stderr
    assert result.returncode != 0, (
        f'expected kamailio -c to reject REDIS_CMD_TIMEOUT="not-a-number", got rc=0:\n'
        f"{output[-2000:]}"
    )


def _proxy_with(tmp_path: Path, presence_port: int, redis_port: int, **names: Define) -> Kamailio:
    port = free_port()
    defines = proxy_defines(port, presence_port, redis_port)
    del defines["BREAKER_REDIS_SERVER"]
    defines.update(names)
    return Kamailio(PROXY_CFG, tmp_path / "proxy", port, defines, name="proxy")


def _server(port: int) -> Define:
    return quoted(f"name=breaker;addr=127.0.0.1;port={port};db=0")


def test_old_redis_server_name_reaches_redis(
    tmp_path: Path, redis_server: Redis, responder: Responder, breaker_hash: BreakerHash
) -> None:
    proxy = _proxy_with(
        tmp_path, responder.port, redis_server.port, REDIS_SERVER=_server(redis_server.port)
    ).start()
    try:
        epoch = breaker_hash.set("open", retry_after=10)
        proxy.wait_verdict(state="open", epoch=epoch, source="redis")
        with SipClient(proxy.address) as client:
            code = client.transact(client.mwi_publish("mbox1")).code
        assert code == 503, f"expected 503 from the open verdict read via REDIS_SERVER, got {code}"
    finally:
        proxy.stop()


def test_new_redis_server_name_wins_over_the_old_one(
    tmp_path: Path, redis_server: Redis, responder: Responder, breaker_hash: BreakerHash
) -> None:
    proxy = _proxy_with(
        tmp_path,
        responder.port,
        redis_server.port,
        REDIS_SERVER=_server(free_port()),  # nobody listens there
        BREAKER_REDIS_SERVER=_server(redis_server.port),
    ).start()
    try:
        epoch = breaker_hash.set("open", retry_after=10)
        proxy.wait_verdict(state="open", epoch=epoch, source="redis")
    finally:
        proxy.stop()
