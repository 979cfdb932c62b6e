"""A password in a target URL never leaves the sidecar: not by the API, logs, metrics or Redis."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import redis

from breaker._config import redact_url
from breaker.probes.http import HttpProbe
from testbed.procs import free_port
from testbed.redis import Redis
from testbed.waiting import wait_until
from tests.probes.helpers import make_cfg
from tests.support.sidecar import TOKEN, Sidecar

SECRET = "S3cret-Pw-4711"
TARGET_PATH = "/health"


def redis_dump(url: str) -> str:
    """Every key and every value in the database, as text."""
    client = redis.Redis.from_url(url, decode_responses=True)
    out: list[str] = []
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            value: object
            if kind == "hash":
                value = client.hgetall(key)
            elif kind == "stream":
                value = client.xrange(key)
            elif kind == "string":
                value = client.get(key)
            elif kind == "list":
                value = client.lrange(key, 0, -1)
            elif kind == "set":
                value = client.smembers(key)
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            else:
                value = kind
            out.append(f"{key} {value!s}")
    finally:
        client.close()
    return "\n".join(out)


@pytest.mark.parametrize("open_reads", [True, False], ids=["open-reads", "closed-reads"])
def test_target_password_appears_in_no_output_channel_whatever_the_token(
    tmp_path: Path, redis_server: Redis, open_reads: bool
) -> None:
    target = f"http://ops:{SECRET}@127.0.0.1:{free_port()}{TARGET_PATH}"  # refused: it fails
    sidecar = Sidecar(tmp_path, redis_server.url, target, open_reads=open_reads).start()
    try:
        wait_until(
            lambda: sidecar.get("/metrics").text.count("breaker_probe_failures_total{") > 0,
            10,
            what="a failed probe",
        )
        sidecar.put("/v1/breakers/presence/force", {"state": "open", "ttl": 60, "reason": "t"})
        seen: list[str] = []
        for token in (TOKEN, "wrong-token-0123456789abc", None):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            for path in (
                "/v1/breakers",
                "/v1/breakers/presence",
                "/v1/breakers/presence/allow",
                "/v1/breakers/presence/history",
                "/metrics",
                "/openapi.json",
                "/docs",
                "/healthz",
                "/readyz",
            ):
                response = httpx.get(f"{sidecar.url}{path}", headers=headers, timeout=5)
                seen.append(f"{path} {response.status_code} {response.headers} {response.text}")
            response = httpx.put(
                f"{sidecar.url}/v1/breakers/presence/force",
                headers=headers,
                json={"state": "closed", "ttl": 5, "reason": "drill"},
                timeout=5,
            )
            seen.append(f"force {response.status_code} {response.text}")
        listing = httpx.get(
            f"{sidecar.url}/v1/breakers", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        ).json()
        channels = {
            "api": "\n".join(seen),
            "redis": redis_dump(redis_server.url),
            "sidecar log": sidecar.proc.output() if sidecar.proc else "",
        }
    finally:
        sidecar.stop()
    shown = listing["breakers"][0]["target"]
    assert shown == redact_url(target) and "***" in shown, f"expected a redacted target: {shown}"
    for channel, text in channels.items():
        assert text, f"expected something to inspect in {channel}"
        assert SECRET not in text, f"the password leaked into {channel}"


async def test_unexpected_http_probe_error_logs_and_reports_no_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = f"https://ops:{SECRET}@127.0.0.1:1{TARGET_PATH}"

    class Exploding(httpx.AsyncClient):
        async def get(self, url: httpx.URL | str, **_: object) -> httpx.Response:  # type: ignore[override]
            raise RuntimeError(f"kaboom while fetching {url}")

    client = Exploding()
    probe = HttpProbe(make_cfg(target), client=client)
    with caplog.at_level(logging.DEBUG):
        result = await probe.check()
    await client.aclose()
    assert not result.ok and result.reason == "error"
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "kaboom" in result.detail and SECRET not in result.detail, result.detail
    assert logged and SECRET not in logged, f"password in the log: {logged}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://ops:pw@host/health", "https://ops:***@host/health"),
        ("http://h/health?token=abc&x=1", "http://h/health?token=***&x=1"),
        ("http://h/health?api_key=K1&monkey=2", "http://h/health?api_key=***&monkey=2"),
        ("https://u:p%40ss@h:8443/x?access_token=t#f", "https://u:***@h:8443/x?access_token=***#f"),
        ("sip:alice:pw@example.net;transport=tcp", "sip:alice:***@example.net;transport=tcp"),
        ("tcp://127.0.0.1:5060", "tcp://127.0.0.1:5060"),
        ("http://h/\x1b[31mred", "http://h/\\x1b[31mred"),
    ],
)
def test_redacted_display_hides_passwords_and_credential_parameters(url: str, shown: str) -> None:
    assert redact_url(url) == shown
