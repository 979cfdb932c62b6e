"""Running a command from the checkout to completion, as the lab and bench tests do."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from testbed.procs import REPO


def run_ok(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a command from the checkout to completion; fail with its output unless it exits 0."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, (
        f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done
