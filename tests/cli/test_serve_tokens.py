"""`breaker serve` warns at start when no token may write, whatever read tokens exist."""

from __future__ import annotations

import json
from pathlib import Path

from testbed.redis import Redis
from testbed.waiting import wait_until
from tests.support.sidecar import Sidecar

READ = "serve-read-only-token-0123456789"


def _warnings(log: Path) -> list[str]:
    events = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return [e["event"] for e in events if e.get("level") == "warning"]


def _sidecar(tmp_path: Path, redis_server: Redis, operate: str) -> Sidecar:
    sidecar = Sidecar(tmp_path, redis_server.url, "tcp://127.0.0.1:9")
    with sidecar.config.open("a") as f:
        f.write('[[api.tokens]]\nname = "viewer"\nrole = "read"\nenv = "VIEWER_TOKEN"\n')
    return sidecar.start(env={"BREAKER_API_TOKEN": operate, "VIEWER_TOKEN": READ})


def test_serve_warns_writes_disabled_with_only_read_tokens(
    tmp_path: Path, redis_server: Redis
) -> None:
    sidecar = _sidecar(tmp_path, redis_server, operate="")
    try:
        log = tmp_path / "sidecar.log"
        wait_until(
            lambda: "api.no_operate_token" in _warnings(log),
            5,
            what="the api.no_operate_token warning with only a read token configured",
        )
        response = sidecar.put("/v1/breakers/presence/force", {"state": "open", "ttl": 60})
        detail = response.text
        assert response.status_code == 401, f"expected 401 on a write, saw {response.status_code}"
        assert "writes are disabled" in detail, f"expected 'writes are disabled', saw {detail}"
    finally:
        sidecar.stop()


def test_serve_does_not_warn_when_an_operate_token_exists(
    tmp_path: Path, redis_server: Redis
) -> None:
    sidecar = _sidecar(tmp_path, redis_server, operate="serve-operate-token-0123456789")
    try:
        warnings = _warnings(tmp_path / "sidecar.log")
        assert "api.no_operate_token" not in warnings, f"expected no warning, saw {warnings}"
    finally:
        sidecar.stop()
