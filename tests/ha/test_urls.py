"""`[redis] url` forms: parsing, one-line errors without the password, the client each selects."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from breaker._config import RedisConfig
from breaker._errors import ConfigError
from breaker._redis_url import RedisUrl, parse_redis_url
from breaker.client import redis_client
from breaker.store import connect


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", RedisUrl("single", False)),
        ("rediss://h:6380/2", RedisUrl("single", True)),
        (
            "redis+sentinel://10.0.0.1,10.0.0.2:26380/breaker",
            RedisUrl("sentinel", False, (("10.0.0.1", 26379), ("10.0.0.2", 26380)), "breaker"),
        ),
        (
            "rediss+sentinel://:s3cret@[::1]:26379/mymaster/3",
            RedisUrl("sentinel", True, (("::1", 26379),), "mymaster", 3, None, "s3cret"),
        ),
        (
            "redis+cluster://ops:pw@n1:7000,n2:7001,n3",
            RedisUrl(
                "cluster", False, (("n1", 7000), ("n2", 7001), ("n3", 6379)), "", 0, "ops", "pw"
            ),
        ),
    ],
)
def test_url_forms_parse_to_mode_nodes_and_credentials(url: str, expected: RedisUrl) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h", "scheme must be redis://"),
        ("redis+sentinel://:pw@h1,h2", "needs the master's name"),
        ("redis+sentinel://:pw@h1/master/x", "database number must be an integer"),
        ("redis+cluster://:pw@h1:7000/3", "has no database number"),
        ("redis+cluster://:pw@h1:99999", "out of range"),
        ("redis+cluster://:pw@h1:7000?ssl=1", "takes no query string"),
        ("redis+sentinel://:pw@bad host/m", "cannot read host[:port]"),
    ],
)
def test_bad_url_is_one_line_naming_the_problem_never_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        redis_client(url)
    text = str(raised.value)
    assert message in text, f"expected {message!r} in {text!r}"
    assert "pw" not in text and "\n" not in text, f"one line, no password: {text!r}"


def test_sentinel_url_builds_a_master_client_with_sentinel_password(tmp_path: Path) -> None:
    secret = tmp_path / "sentinel-pass"
    secret.write_text("sentinel-secret\n")
    cfg = RedisConfig(
        url="redis+sentinel://:master-secret@127.0.0.1:1,127.0.0.1:2/breaker/4",
        sentinel_password_file=secret,
    )
    client = connect(cfg)
    assert not isinstance(client, RedisCluster), "a sentinel URL must not give a cluster client"
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "breaker"
    assert pool.connection_kwargs["password"] == "master-secret"
    assert pool.connection_kwargs["db"] == 4
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [1, 2]
    assert all(
        s.connection_pool.connection_kwargs["password"] == "sentinel-secret" for s in sentinels
    )


def test_cluster_url_builds_a_cluster_client_with_tls(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    client = connect(RedisConfig(url="rediss+cluster://127.0.0.1:7000", ssl_ca_file=ca))
    assert isinstance(client, RedisCluster)
    assert client.connection_kwargs["ssl_ca_certs"] == str(ca)
    assert client.connection_kwargs["connection_class"].__name__ == "SSLConnection"
