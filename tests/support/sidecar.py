"""A real `breaker serve` process with its own config, for end-to-end tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Self

import httpx

from tests.support.procs import Proc, free_port, wait_until

TOKEN = "e2e-operate-token-0123456789"


class Sidecar:
    def __init__(
        self,
        workdir: Path,
        redis_url: str,
        target: str,
        *,
        redis: dict[str, str] | None = None,  # more [redis] keys, e.g. ssl_ca_file
        open_reads: bool = True,
        **breaker: Any,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        fields = {"interval": 0.2, "timeout": 0.1, "fall": 3, "rise": 2, "slow_start": 2.0}
        fields.update(breaker)
        lines = [
            "[redis]",
            f'url = "{redis_url}"',
            *(f'{k} = "{v}"' for k, v in (redis or {}).items()),
            "[api]",
            'host = "127.0.0.1"',
            f"port = {self.port}",
            f"open_reads = {str(open_reads).lower()}",
            "[logging]",
            'format = "json"',
            "[[breakers]]",
            'name = "presence"',
            f'target = "{target}"',
        ] + [
            f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in fields.items()
        ]
        self.config = workdir / "breaker.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: Proc | None = None

    def start(self, env: dict[str, str] | None = None) -> Self:
        self.proc = Proc(
            [sys.executable, "-m", "breaker", "serve", "--config", str(self.config)],
            self.workdir / "sidecar.log",
            env={"BREAKER_API_TOKEN": TOKEN, **(env or {})},
        )
        wait_until(self._healthy, 15, what=f"sidecar /healthz on {self.url}")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if not self.proc.alive():
            raise AssertionError(f"sidecar exited:\n{self.proc.output()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=2)

    def put(self, path: str, json: dict[str, Any]) -> httpx.Response:
        return httpx.put(
            f"{self.url}{path}", json=json, timeout=2, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    def delete(self, path: str) -> httpx.Response:
        return httpx.delete(
            f"{self.url}{path}", timeout=2, headers={"Authorization": f"Bearer {TOKEN}"}
        )
