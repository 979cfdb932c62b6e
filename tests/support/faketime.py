"""libfaketime for a child process: step its wall clock while it runs, monotonic untouched.

FAKETIME_DONT_FAKE_MONOTONIC=1 models what NTP does to a host: CLOCK_REALTIME jumps,
CLOCK_MONOTONIC does not. The offset file is re-read on every call (no cache).
"""

from __future__ import annotations

from pathlib import Path

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


class WallClock:
    def __init__(self, workdir: Path) -> None:
        self.file = workdir / "faketime"
        self.set(0)

    def set(self, offset_seconds: int) -> None:
        """Make the child's wall clock read real time + offset from now on."""
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"{offset_seconds:+d}\n")
        tmp.replace(self.file)  # atomic: the child never reads a half-written file

    @property
    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
