"""A probe whose answers the test decides: for service/API behaviour that isn't about SIP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from breaker._config import BreakerConfig, Settings
from breaker.probes import ProbeResult


class ScriptedProbe:
    def __init__(self, cfg: BreakerConfig) -> None:
        self.cfg = cfg
        self.ok = True
        self.reason = "timeout"
        self.calls = 0

    async def check(self) -> ProbeResult:
        self.calls += 1
        if self.ok:
            return ProbeResult(True, "ok", 0.001, time.time(), "scripted")
        return ProbeResult(False, self.reason, None, time.time(), "scripted")

    async def aclose(self) -> None:
        pass


class ScriptedProbes:
    """probe_factory for Service: remembers the probe it made for each breaker."""

    def __init__(self) -> None:
        self.by_name: dict[str, ScriptedProbe] = {}

    def __call__(self, cfg: BreakerConfig) -> ScriptedProbe:
        probe = ScriptedProbe(cfg)
        self.by_name[cfg.name] = probe
        return probe


def settings_for(redis_url: str, **breaker: Any) -> Settings:
    fields: dict[str, Any] = {
        "name": "presence",
        "target": "sip:127.0.0.1:5070",
        "interval": 0.1,
        "timeout": 0.05,
        "fall": 2,
        "rise": 2,
        "slow_start": 1.0,
    }
    fields.update(breaker)
    return Settings(redis={"url": redis_url}, breakers=[fields])  # type: ignore[arg-type]


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
