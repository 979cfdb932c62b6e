"""Linux prctl: the guard as subreaper of its job, and the job's leader dying with the guard."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        func: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return func


def become_subreaper() -> None:
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def die_with_parent() -> Callable[[], None] | None:
    """Linux: the job's leader gets SIGKILL if the guard dies (even by SIGKILL), so a
    crashed guard does not leave an unlocked job running. Its own children are not
    covered; use `exec` in wrapper scripts, or run under systemd for full cover."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the guard died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec
