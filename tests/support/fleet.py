"""A sidecar watching several SIP stand-ins (tests/cli/harness.Standin, SIGSTOP-able)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.sidecar import Sidecar


def sip_target(port: int) -> str:
    return f"sip:127.0.0.1:{port};transport=udp"


class FleetSidecar(Sidecar):
    """A real `breaker serve` with one breaker per target; `open_reads` as given."""

    def __init__(
        self,
        workdir: Path,
        redis_url: str,
        targets: dict[str, str],
        open_reads: bool = True,
        **breaker: Any,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (first, first_target), *others = targets.items()
        super().__init__(workdir, redis_url, first_target, **breaker)
        text = self.config.read_text().replace('name = "presence"', f'name = "{first}"', 1)
        if not open_reads:
            text = text.replace("[api]\n", "[api]\nopen_reads = false\n", 1)
        block = text[text.index("[[breakers]]") :]
        for name, target in others:
            text += (
                block.replace(f'name = "{first}"', f'name = "{name}"', 1)
                .replace(first_target, target, 1)
                .rstrip("\n")
                + "\n"
            )
        self.config.write_text(text)
