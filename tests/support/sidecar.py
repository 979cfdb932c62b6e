"""A real `breaker serve` process with one breaker and its own config, for end-to-end tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed.procs import free_port
from testbed.sidecar import Sidecar as _Sidecar
from testbed.sidecar import sidecar_toml

TOKEN = "e2e-operate-token-0123456789"
FAST = {"interval": 0.2, "timeout": 0.1, "fall": 3, "rise": 2, "slow_start": 2.0}


class Sidecar(_Sidecar):
    """Breaker `presence` on `target` (or one breaker per name in a mapping), fast timers
    unless `breaker` says otherwise."""

    def __init__(
        self,
        workdir: Path,
        redis_url: str,
        target: str | Mapping[str, str],
        *,
        redis: dict[str, str] | None = None,  # more [redis] keys, e.g. ssl_ca_file
        open_reads: bool = True,
        cluster: Mapping[str, object] | None = None,
        **breaker: Any,
    ) -> None:
        port = free_port()
        targets = {"presence": target} if isinstance(target, str) else target
        text = sidecar_toml(
            redis_url=redis_url,
            api_port=port,
            breakers=[{"name": n, "target": t, **FAST, **breaker} for n, t in targets.items()],
            redis=redis,
            api={"open_reads": open_reads},
            cluster=cluster,
        )
        super().__init__(workdir, text, port, token=TOKEN)
