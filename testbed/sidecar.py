"""A real `breaker serve` process, and the one writer of its TOML config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from testbed.procs import LOOPBACK, REPO, Child, Started, await_ready, python_module

Table = Mapping[str, object]


def sidecar_toml(
    *,
    redis_url: str,
    api_port: int,
    breakers: Sequence[Table],
    level: str = "info",
    log_format: str = "json",
    redis: Table | None = None,
    api: Table | None = None,
    tokens: Sequence[Table] = (),
    cluster: Table | None = None,
) -> str:
    """A sidecar config: [redis], [api] (+ [[api.tokens]]), [logging], one [[breakers]] each,
    and [cluster] last when given.

    `redis` and `api` add keys to their tables (e.g. ssl_ca_file, open_reads).
    """
    lines = _table("[redis]", {"url": redis_url, **(redis or {})})
    lines += _table("[api]", {"host": LOOPBACK, "port": api_port, **(api or {})})
    for token in tokens:
        lines += _table("[[api.tokens]]", token)
    lines += _table("[logging]", {"level": level, "format": log_format})
    for breaker in breakers:
        lines += _table("[[breakers]]", breaker)
    if cluster is not None:
        lines += _table("[cluster]", cluster)
    return "\n".join(lines) + "\n"


def _table(header: str, fields: Table) -> list[str]:
    return ["", header, *(f"{key} = {_toml_value(value)}" for key, value in fields.items())]


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Sidecar(Started):
    """`python -m breaker serve --config FILE`, ready when /healthz answers 200.

    The config is written at construction, so a caller may still append to it.
    `token`, when set, is the process's BREAKER_API_TOKEN and what `put` and `delete`
    send; reads go without one.
    """

    def __init__(
        self, workdir: Path, config_text: str, api_port: int, *, token: str | None = None
    ) -> None:
        self.workdir = workdir
        self.api_port = self.port = api_port
        self.token = token
        self.config = workdir / "breaker.toml"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(config_text)
        self.proc: Child | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def base_url(self) -> str:
        return self.url

    def start(
        self,
        *,
        ready_timeout: float = 20.0,
        wrapper: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Self:
        argv = [*wrapper, *python_module("breaker", "serve", "--config", str(self.config))]
        environ = {"PYTHONUNBUFFERED": "1"}
        if self.token:
            environ["BREAKER_API_TOKEN"] = self.token
        environ.update(env or {})
        self.proc = Child(argv, self.workdir / "sidecar.log", env=environ, cwd=REPO)
        await_ready(self.proc, self._healthy, ready_timeout, f"sidecar on {self.url}")
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def request(
        self, method: str, path: str, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        """One API call, with `token` as the bearer token if given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kw.setdefault("timeout", 3)
        return httpx.request(method, f"{self.url}{path}", headers=headers, **kw)

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def put(self, path: str, json: dict[str, Any]) -> httpx.Response:
        return self.request("PUT", path, self.token, json=json)

    def delete(self, path: str) -> httpx.Response:
        return self.request("DELETE", path, self.token)
