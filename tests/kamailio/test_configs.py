"""`kamailio -c` on every shipped config and every supported combination of defines."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kamailio.harness import (
    BREAKER_CFG,
    PRESENCE_CFG,
    PROXY_CFG,
    Define,
    check_config,
    quoted,
)

PROXY_VARIANTS: dict[str, dict[str, Define]] = {
    "defaults": {},
    "fail-mode-closed": {"BREAKER_FAIL_MODE": quoted("closed")},
    "fail-mode-open": {"BREAKER_FAIL_MODE": quoted("open")},
    "fail-mode-last": {"BREAKER_FAIL_MODE": quoted("last"), "BREAKER_LAST_HOLD": 30},
    "max-rate": {"BREAKER_PRESENCE_MAX_RATE": 200},
    "all-settings": {
        "LISTEN": "udp:127.0.0.1:5080",
        "PRESENCE_URI": quoted("sip:127.0.0.1:5090"),
        "BREAKER_REDIS_SERVER": quoted("name=breaker;addr=127.0.0.1;port=6380;db=2"),
        "BREAKER_NAME": quoted("mwi"),
        "BREAKER_KEY_PREFIX": quoted("site1:breaker:"),
        "BREAKER_POLL_MS": 500,
        "BREAKER_DEFAULT_RETRY_AFTER": 30,
        "BREAKER_REDIS_CONNECT_TIMEOUT": 100,
        "BREAKER_REDIS_CMD_TIMEOUT": 100,
        "BREAKER_REDIS_DISABLE_TIME": 5,
        "PRESENCE_FR_TIMER": 2000,
        "CHILDREN": 2,
    },
    "tcp": {"WITH_TCP": True, "LISTEN_TCP": "tcp:127.0.0.1:5060"},
    "mwi-notify-to-users": {"WITH_MWI_NOTIFY_TO_USERS": True},
    "without-breaker": {"WITHOUT_BREAKER": True},
}


def assert_config_ok(cfg: Path, defines: dict[str, Define]) -> None:
    result = check_config(cfg, defines)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "config file ok" in output, (
        f"kamailio -c {cfg.name} {defines} failed (rc={result.returncode}):\n{output[-3000:]}"
    )
    assert "warning in config file" not in output, f"config warnings:\n{output[-3000:]}"


@pytest.mark.parametrize("variant", sorted(PROXY_VARIANTS))
def test_proxy_config_passes_kamailio_check(variant: str) -> None:
    assert_config_ok(PROXY_CFG, PROXY_VARIANTS[variant])


def test_presence_server_config_passes_kamailio_check() -> None:
    assert_config_ok(PRESENCE_CFG, {})
    assert_config_ok(
        PRESENCE_CFG,
        {
            "LISTEN": "udp:127.0.0.1:5071",
            "PUBL_CACHE": 1,
            "DB_URL": quoted("sqlite:////tmp/presence.sqlite"),
        },
    )


@pytest.mark.parametrize("antiflood", [False, True], ids=["stock", "stock-antiflood"])
def test_snippet_includes_into_debian_stock_config(tmp_path: Path, antiflood: bool) -> None:
    """breaker.cfg drops into the kamailio.cfg Debian ships (htable already loaded or not)."""
    stock = Path("/etc/kamailio/kamailio.cfg")
    assert stock.exists(), "Debian's stock /etc/kamailio/kamailio.cfg is missing"
    text = stock.read_text()
    marker = "####### Routing Logic ########"
    assert marker in text, "stock config layout changed: no routing logic banner"
    include = f'include_file "{BREAKER_CFG}"\n\n'
    (tmp_path / "kamailio.cfg").write_text(text.replace(marker, include + marker, 1))
    assert_config_ok(tmp_path / "kamailio.cfg", {"WITH_ANTIFLOOD": antiflood})
