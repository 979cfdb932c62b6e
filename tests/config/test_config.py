"""Bad config fails at start-up with one line naming the field; good config loads as written."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from breaker._config import load_settings
from breaker._errors import ConfigError

GOOD = """
[redis]
url = "redis://127.0.0.1:6379/0"
[api]
host = "127.0.0.1"
port = 8080
[[breakers]]
name = "presence"
target = "sip:presence.example.net:5060;transport=udp"
interval = 1.0
timeout = 0.5
fall = 3
rise = 2
slow_start = 30.0
"""

BREAKER = '[[breakers]]\nname = "presence"\ntarget = "sip:127.0.0.1:5070"\n'


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "breaker.toml"
    path.write_text(text)
    return load_settings(path)


def test_issue_example_loads_as_written(tmp_path: Path) -> None:
    settings = load(tmp_path, GOOD)
    [b] = settings.breakers
    assert (b.name, b.interval, b.timeout, b.fall, b.rise, b.slow_start) == (
        "presence",
        1.0,
        0.5,
        3,
        2,
        30.0,
    )
    assert (b.target.kind, b.target.host, b.target.port, b.target.transport) == (
        "sip",
        "presence.example.net",
        5060,
        "udp",
    )
    assert b.slow_threshold == 0.25 and b.detection_bound == 2.5


def test_shipped_example_config_is_valid() -> None:
    settings = load_settings(Path(__file__).parents[2] / "breaker.example.toml")
    assert [b.name for b in settings.breakers] == ["presence"]


@pytest.mark.parametrize(
    ("target", "kind", "host", "port", "transport"),
    [
        ("sip:10.0.0.1", "sip", "10.0.0.1", None, "udp"),
        ("sips:presence.example.net", "sip", "presence.example.net", None, "tls"),
        ("sip:[::1]:5070;transport=tcp", "sip", "::1", 5070, "tcp"),
        ("sip:probe@host.example:5080", "sip", "host.example", 5080, "udp"),
        ("http://127.0.0.1:9000/health", "http", "127.0.0.1", 9000, None),
        ("tcp://127.0.0.1:5060", "tcp", "127.0.0.1", 5060, None),
    ],
)
def test_targets_parse(
    tmp_path: Path, target: str, kind: str, host: str, port: int | None, transport: str | None
) -> None:
    settings = load(tmp_path, f'[[breakers]]\nname = "x"\ntarget = "{target}"\n')
    t = settings.breakers[0].target
    assert (t.kind, t.host, t.port, t.transport) == (kind, host, port, transport)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BREAKER + "fal = 3\n", r"breakers\['presence'\]\.fal: unknown key"),
        (BREAKER + 'fall = "three"\n', r"breakers\['presence'\]\.fall: .*integer"),
        (BREAKER + "fall = 0\n", r"breakers\['presence'\]\.fall: .*greater than or equal to 1"),
        (BREAKER + "interval = 1.0\ntimeout = 1.0\n", r"timeout \(1.0s\) must be shorter"),
        (BREAKER + BREAKER, r"breakers: duplicate breaker name 'presence'"),
        (BREAKER.replace("sip:127.0.0.1:5070", "ftp://x"), r"target.*must start with sip:"),
        (BREAKER.replace("sip:127.0.0.1:5070", "tcp://host"), r"needs host and port"),
        ('[redis]\nurl = "http://x"\n' + BREAKER, r"redis\.url: scheme must be redis://"),
        ("[api]\nprot = 1\n" + BREAKER, r"api\.prot: unknown key"),
        ("", r"breakers: .*at least 1"),
        (BREAKER.replace('"presence"', '"Bad Name"'), r"breakers\[.*\]\.name: .*pattern"),
        (BREAKER + "slow = 0.9\n", r"slow \(0.9s\) must not exceed timeout"),
        ('[[api.tokens]]\nname = "ops"\n' + BREAKER, r"exactly one of file or env"),
        (
            "[redis]\nstate_ttl = 1\n" + BREAKER + "interval = 1.0\n",
            r"redis\.state_ttl \(1s\) must be longer than breakers\['presence'\]\.interval \(1s\)",
        ),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        load(tmp_path, text)
    assert "\n" not in str(info.value), f"expected one line, got {info.value!r}"


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(tmp_path, "[[breakers]\n")


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREAKER_API__PORT", "9999")
    monkeypatch.setenv("BREAKER_REDIS__URL", "redis://127.0.0.1:7000/1")
    settings = load(tmp_path, GOOD)
    assert settings.api.port == 9999 and settings.redis.url == "redis://127.0.0.1:7000/1"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "breaker", *args], capture_output=True, text=True, timeout=30
    )


def test_cli_rejects_bad_config_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BREAKER + "fall = 0\n")
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "breakers['presence'].fall" in result.stderr


def test_cli_check_accepts_good_config(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    result = run_cli("serve", "--config", str(path), "--check")
    assert result.returncode == 0 and "config ok: 1 breaker(s): presence" in result.stdout


def test_port_in_use_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "busy.toml"
        path.write_text(f"[api]\nport = {port}\n" + BREAKER)
        result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2, result
    assert (
        result.stderr.strip()
        == f"breaker: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_policy_defaults_have_one_home() -> None:
    """Every Policy field is a config key whose default is the Policy's own default."""
    import dataclasses

    from breaker._config import BreakerConfig
    from breaker.core import Policy

    cfg = BreakerConfig(name="presence", target="sip:127.0.0.1:5070")  # type: ignore[arg-type]
    assert cfg.policy() == Policy(), f"config defaults drifted from Policy: {cfg.policy()}"
    for f in dataclasses.fields(Policy):
        assert f.name in BreakerConfig.model_fields, f"Policy.{f.name} has no config key"


def test_pool_members_must_be_breakers(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(
        '[[breakers]]\nname = "a"\ntarget = "sip:127.0.0.1:5071"\n'
        '[[pools]]\nname = "presence"\nmembers = ["a", "nope"]\n'
    )
    with pytest.raises(ConfigError, match="unknown member 'nope'"):
        load_settings(path)


def test_pool_min_healthy_defaults_to_all_but_one(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(
        "".join(
            f'[[breakers]]\nname = "{n}"\ntarget = "sip:127.0.0.1:507{i}"\n'
            for i, n in enumerate("abc")
        )
        + '[[pools]]\nname = "presence"\nmembers = ["a", "b", "c"]\n'
    )
    pool = load_settings(path).pool("presence")
    assert pool is not None and pool.healthy_needed == 2


def test_pools_vote_like_breakers_with_or_without_a_cluster_section(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    body = (
        '[[breakers]]\nname = "a"\ntarget = "sip:127.0.0.1:5071"\n'
        '[[pools]]\nname = "presence"\nmembers = ["a"]\n'
    )
    path.write_text(body)
    alone = load_settings(path)
    assert alone.cluster.observer == socket.gethostname() and alone.cluster.quorum == "majority"
    path.write_text('[cluster]\nobserver = "a"\n' + body)
    assert load_settings(path).cluster.observer == "a"


def test_pools_on_redis_cluster_are_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(
        '[redis]\nurl = "redis+cluster://127.0.0.1:7000"\n'
        '[[breakers]]\nname = "a"\ntarget = "sip:127.0.0.1:5071"\n'
        '[[pools]]\nname = "presence"\nmembers = ["a"]\n'
    )
    with pytest.raises(ConfigError, match=r"\[\[pools\]\] need a standalone Redis or Sentinel"):
        load_settings(path)


def test_the_observer_id_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[[breakers]]\nname = "a"\ntarget = "sip:127.0.0.1:5071"\n')
    monkeypatch.setenv("BREAKER_CLUSTER__OBSERVER", "registrar-2")
    assert load_settings(path).cluster.observer == "registrar-2"


def test_an_older_config_with_pending_events_max_still_loads(tmp_path: Path) -> None:
    """Nothing is queued any more (every sidecar votes), but an upgrade must not refuse
    a config that still sets the key."""
    path = tmp_path / "b.toml"
    path.write_text(
        "[redis]\npending_events_max = 500\n"
        '[[breakers]]\nname = "a"\ntarget = "sip:127.0.0.1:5071"\n'
    )
    assert load_settings(path).redis.pending_events_max == 500
