"""A real sidecar (two breakers, each probing its own SIP stand-in), named tokens, and
helpers to run `python -m breaker …` as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from testbed.procs import free_port
from testbed.redis import Redis
from testbed.sidecar import Sidecar, sidecar_toml
from testbed.sip_standin import StandinProcess
from testbed.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
BREAKERS = ("mwi", "presence")  # sorted, as the API lists them

OPERATE = "cli-default-operate-token-0123"  # BREAKER_API_TOKEN: the "default" token
ALICE = "cli-alice-operate-token-0123456"
VIEWER = "cli-viewer-read-token-01234567"

# Detection: fall x interval + timeout = 0.5 s. State TTL in Redis: max(3 x 0.2, 2) = 2 s.
INTERVAL = 0.2
STATE_TTL = 2.0


Standin = StandinProcess


class Stack:
    """Redis + one stand-in per breaker + `breaker serve`, all on loopback."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.redis = Redis(workdir / "redis").start()
        self.standins = {name: Standin(workdir, name) for name in BREAKERS}
        port = free_port()
        self.sidecar = Sidecar(workdir / "sidecar", self._config(port), port, token=OPERATE)
        self.sidecar.start(env={"BREAKER_TEST_ALICE": ALICE, "BREAKER_TEST_VIEWER": VIEWER})
        self.url = self.sidecar.url
        for name in BREAKERS:
            wait_until(
                lambda: self.hash_field(name, "state") == "closed",
                10,
                what=f"{name} closed in Redis",
            )

    def _config(self, port: int) -> str:
        tokens = [
            {"name": "alice", "role": "operate", "env": "BREAKER_TEST_ALICE"},
            {"name": "viewer", "role": "read", "env": "BREAKER_TEST_VIEWER"},
        ]
        breakers = [
            {
                "name": name,
                "target": f"sip:127.0.0.1:{standin.port};transport=udp",
                "interval": INTERVAL,
                "timeout": 0.1,
                "fall": 2,
                "rise": 2,
                "slow_start": 0.5,
                "reopen_backoff": 0.2,
                "reopen_backoff_max": 0.5,
            }
            for name, standin in self.standins.items()
        ]
        return sidecar_toml(
            redis_url=self.redis.url,
            api_port=port,
            breakers=breakers,
            level="warning",
            log_format="text",
            tokens=tokens,
        )

    def stop(self) -> None:
        self.sidecar.stop()
        for standin in self.standins.values():
            standin.stop()
        self.redis.stop()

    # -- looking and poking ------------------------------------------------------------

    def hash_field(self, name: str, field: str) -> str:
        try:
            return self.redis.cli("HGET", f"breaker:{{{name}}}", field)
        except subprocess.CalledProcessError:
            return ""

    def api(self, method: str, path: str, token: str | None = OPERATE, **kw: Any) -> httpx.Response:
        return self.sidecar.request(method, path, token, **kw)

    def force(self, name: str, state: str, ttl: float = 60, reason: str = "test") -> None:
        body = {"state": state, "ttl": ttl, "reason": reason}
        response = self.api("PUT", f"/v1/breakers/{name}/force", json=body)
        assert response.status_code == 200, response.text

    def state(self, name: str) -> str:
        return str(self.api("GET", f"/v1/breakers/{name}").json()["state"])

    def reset(self) -> None:
        """Back to all closed, nothing frozen, no guard locks: the start of every test."""
        for name, standin in self.standins.items():
            standin.resume()
            self.api("DELETE", f"/v1/breakers/{name}/force")
        for key in self.redis.cli("--scan", "--pattern", "*:guard:*").split():
            self.redis.cli("DEL", key)
        for name in BREAKERS:
            wait_until(lambda: self.state(name) == "closed", 15, what=f"{name} closed again")

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a CLI process: where the sidecar and Redis are; no token."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKER_")}
        env.update(BREAKER_URL=self.url, BREAKER_REDIS_URL=self.redis.url, COLUMNS="200")
        env.update(extra)
        return env


def breaker_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "breaker", *args]


def run_cli(
    args: Sequence[str], env: dict[str, str], timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        breaker_cmd(*args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def one_line(text: str) -> str:
    """The single line of `text`; fails if there are more or none."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected exactly one line, got {len(lines)}: {text!r}"
    return lines[0]


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for its reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def read_pids(path: Path, count: int, within: float = 10) -> list[int]:
    def ready() -> list[int]:
        try:
            pids = [int(p) for p in path.read_text().split()]
        except (OSError, ValueError):
            return []
        return pids if len(pids) >= count else []

    return wait_until(ready, within, what=f"{count} pids in {path}")


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
