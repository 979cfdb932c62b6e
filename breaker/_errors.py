"""One exception hierarchy for everything breaker reports to a user.

BreakerError               a problem the user can fix; printed as one line
├── ConfigError            the config file or environment is invalid
├── ClientError            talking to the sidecar's HTTP API failed
│   ├── Unreachable        no answer (connection refused, timeout)
│   ├── Unauthorized       401: missing or wrong token
│   ├── Forbidden          403: the token's role may not do this
│   └── UnknownBreaker     404: no breaker by that name
├── StoreUnavailable       Redis cannot be reached right now
└── GuardError             `breaker guard` decided the outcome; carries exit_code
    ├── GuardRefused       the job was not started (open, lock held, state unknown)
    └── GuardStopped       the job was stopped while running

Also raised, outside the tree on purpose:
- `breaker.core.InvalidForce` (a ValueError): the pure core imports only the standard
  library. Service.force raises it; the API answers 422, the CLI prints its message.
- `ValueError` from constructors given impossible arguments (a probe for the wrong
  target kind): a programming error, not a user's.
Probes never raise: their internal signals (FramingError, _Failure…) end as a failed
ProbeResult. Callers catch what `breaker.client` re-exports, never this module.
"""

from __future__ import annotations


class BreakerError(Exception):
    """Base class: its message is a complete sentence for the user."""


class ConfigError(BreakerError):
    pass


class ClientError(BreakerError):
    pass


class Unreachable(ClientError):
    pass


class Unauthorized(ClientError):
    pass


class Forbidden(ClientError):
    pass


class UnknownBreaker(ClientError):
    pass


class StoreUnavailable(BreakerError):
    """`kind` names the cause (unreachable, auth, readonly, oom, noperm, ...) for logs."""

    def __init__(self, message: str, kind: str = "unreachable") -> None:
        super().__init__(message)
        self.kind = kind


class GuardError(BreakerError):
    """The guard decided the outcome; `exit_code` is what `breaker guard` exits with.

    str() of it is the one line the guard printed.
    """

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class GuardRefused(GuardError):
    """The job was not started: breaker open, lock held elsewhere, or state unknown."""


class GuardStopped(GuardError):
    """The job was stopped while running: breaker opened, state unknown, or lock lost."""
