"""One exception hierarchy for everything breaker reports to a user.

BreakerError               a problem the user can fix; printed as one line
├── ConfigError            the config file or environment is invalid
├── ClientError            talking to the sidecar's HTTP API failed
│   ├── Unreachable        no answer (connection refused, timeout)
│   ├── Unauthorized       401: missing or wrong token
│   ├── Forbidden          403: the token's role may not do this
│   └── UnknownBreaker     404: no breaker by that name
└── StoreUnavailable       Redis cannot be reached right now
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
