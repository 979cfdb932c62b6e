"""Debian's Prometheus and Alertmanager, and a webhook receiver, for end-to-end alert tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from testbed.procs import Child, Started, free_port
from testbed.waiting import wait_until

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def shorten_for(rules: Path, target: Path, duration: str) -> Path:
    """A copy of the shipped rules with every `for:` set to `duration`; nothing else changes."""
    doc = yaml.safe_load(rules.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = duration
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def _ready(url: str, proc: Child, what: str) -> bool:
    if not proc.alive():
        raise AssertionError(f"{what} exited:\n{proc.output()[-3000:]}")
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


class _Daemon(Started):
    """A Prometheus-family daemon on a free port: a YAML config, a data dir, ready when
    /-/ready answers."""

    name = ""
    binary = ""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / f"{self.name}.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.proc: Child | None = None

    def flags(self) -> list[str]:
        return []

    def start(self) -> Self:
        argv = [self.binary, f"--config.file={self.config}", *self.flags(), "--log.level=warn"]
        self.proc = proc = Child(argv, self.workdir / f"{self.name}.log")
        ready = f"http://{self.address}/-/ready"
        wait_until(lambda: _ready(ready, proc, self.name), 30, what=self.name)
        return self


class Prometheus(_Daemon):
    """`prometheus` scraping `jobs` every `interval`, with `rules`, alerting `alertmanager`."""

    name, binary = "prometheus", PROMETHEUS

    def __init__(
        self,
        workdir: Path,
        jobs: Mapping[str, Iterable[str]],
        rules: Path,
        alertmanager: str,
        interval: str = "1s",
    ) -> None:
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
            "scrape_configs": [
                {
                    "job_name": job,
                    "scrape_timeout": interval,
                    "static_configs": [{"targets": list(targets)}],
                }
                for job, targets in jobs.items()
            ],
        }
        super().__init__(workdir, config)
        self.url = f"http://{self.address}"

    def flags(self) -> list[str]:
        return [
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
        ]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises AssertionError with Prometheus' message on an error."""
        got = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        if got.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {got.get('error')}")
        result: list[dict[str, Any]] = got["data"]["result"]
        return result

    def query_range(self, expr: str, seconds: float, step: str = "1s") -> list[dict[str, Any]]:
        now = time.time()
        got = httpx.get(
            f"{self.url}/api/v1/query_range",
            params={"query": expr, "start": now - seconds, "end": now, "step": step},
            timeout=5,
        ).json()
        if got.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {got.get('error')}")
        result: list[dict[str, Any]] = got["data"]["result"]
        return result

    def targets_up(self, job: str) -> bool:
        return any(s["value"][1] == "1" for s in self.query(f'up{{job="{job}"}}'))


@dataclass(frozen=True)
class Delivery:
    at: float  # time.monotonic() when the webhook received it
    alert: dict[str, Any]


class Webhook:
    """An HTTP server on loopback recording every alert Alertmanager posts."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.monotonic()
                with webhook._lock:
                    webhook.deliveries += [Delivery(now, a) for a in body.get("alerts", [])]
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Webhook:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def firing(self, alertname: str, after: float = 0.0, **labels: str) -> Delivery | None:
        """The first delivery at or after `after` of `alertname` firing with these labels."""
        with self._lock:
            for d in self.deliveries:
                got = d.alert.get("labels", {})
                if (
                    d.at >= after
                    and d.alert.get("status") == "firing"
                    and got.get("alertname") == alertname
                    and all(got.get(k) == v for k, v in labels.items())
                ):
                    return d
        return None

    def names(self) -> list[str]:
        with self._lock:
            return sorted({d.alert["labels"].get("alertname", "") for d in self.deliveries})


class Alertmanager(_Daemon):
    """`prometheus-alertmanager` routing everything to `webhook`, gossip off, short waits."""

    name, binary = "alertmanager", ALERTMANAGER

    def __init__(self, workdir: Path, webhook: str, group_wait: str = "1s") -> None:
        config = {
            "route": {
                "receiver": "test",
                "group_by": ["alertname", "breaker", "instance"],
                "group_wait": group_wait,
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {"name": "test", "webhook_configs": [{"url": webhook, "send_resolved": True}]}
            ],
        }
        super().__init__(workdir, config)

    def flags(self) -> list[str]:
        return [
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",  # no gossip
        ]
