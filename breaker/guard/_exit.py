"""What `breaker guard` exits with when it decides, and what each outcome is counted as."""

from __future__ import annotations

from enum import IntEnum

from breaker.core._guard import Cause


class ExitCode(IntEnum):
    """What `breaker guard` exits with when it, not the job, decides the outcome."""

    UNKNOWN = 69  # EX_UNAVAILABLE: state unknown, not started (--on-unknown refuse)
    LOCKED = 73  # EX_CANTCREAT: another instance holds the lock, not started
    OPEN = 75  # EX_TEMPFAIL: the breaker does not let traffic through, not started
    STOPPED_OPEN = 79  # the breaker opened while the job ran; the job was stopped
    STOPPED_UNKNOWN = 80  # state unknown longer than the grace, or lock lost; job stopped
    NOT_EXECUTABLE = 126  # as the shell: the command exists but cannot be run
    NOT_FOUND = 127  # as the shell: no such command


# `breaker_guard_runs_total{outcome}`: what each ExitCode the guard decided is counted as
OUTCOMES: dict[int, str] = {
    ExitCode.OPEN: "refused_open",
    ExitCode.LOCKED: "refused_locked",
    ExitCode.UNKNOWN: "refused_unknown",
    ExitCode.STOPPED_OPEN: "stopped_open",
    ExitCode.STOPPED_UNKNOWN: "stopped_unknown",
}
REFUSED = {Cause.OPEN: ExitCode.OPEN, Cause.UNKNOWN: ExitCode.UNKNOWN}
STOPPED = {Cause.OPEN: ExitCode.STOPPED_OPEN, Cause.UNKNOWN: ExitCode.STOPPED_UNKNOWN}
