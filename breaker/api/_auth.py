"""Named API tokens with roles, compared in constant time, never logged or returned."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from typing import Literal

from breaker._config import ApiConfig
from breaker._errors import ConfigError

Role = Literal["read", "operate"]


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role


@dataclass(frozen=True)
class _Token:
    principal: Principal
    secret: bytes = field(repr=False)


class TokenRegistry:
    def __init__(self, tokens: list[tuple[str, Role, str]]) -> None:
        self._tokens = [
            _Token(Principal(name, role), secret.encode("utf-8")) for name, role, secret in tokens
        ]

    def __repr__(self) -> str:  # secrets stay out of any debug output
        return f"TokenRegistry({[t.principal.name for t in self._tokens]})"

    @property
    def can_operate(self) -> bool:
        """Whether any token may force or release; read tokens alone leave writes disabled."""
        return any(t.principal.role == "operate" for t in self._tokens)

    def authenticate(self, presented: str | None) -> Principal | None:
        """Compare against every token, always, so timing says nothing about which matched."""
        if not presented:
            return None
        candidate = presented.encode("utf-8")
        found: Principal | None = None
        for token in self._tokens:
            if hmac.compare_digest(candidate, token.secret):
                found = token.principal
        return found


def load_tokens(cfg: ApiConfig) -> TokenRegistry:
    """BREAKER_API_TOKEN (or api.token_file) is the `default` operate token; api.tokens add more."""
    tokens: list[tuple[str, Role, str]] = []
    default = os.environ.get("BREAKER_API_TOKEN")
    if cfg.token_file is not None:
        default = _read_secret(cfg.token_file, "api.token_file")
    if default:
        tokens.append(("default", "operate", default))
    for token in cfg.tokens:
        if token.file is not None:
            secret = _read_secret(token.file, f"api.tokens[{token.name!r}].file")
        else:
            assert token.env is not None
            secret = os.environ.get(token.env, "").strip()
            if not secret:
                raise ConfigError(
                    f"api.tokens[{token.name!r}]: environment variable {token.env} is not set"
                )
        tokens.append((token.name, token.role, secret))
    secrets = [s for _, _, s in tokens]
    if len(set(secrets)) != len(secrets):
        raise ConfigError("api.tokens: two tokens share the same value; each needs its own")
    if any(len(s) < 16 for s in secrets):
        raise ConfigError("api tokens must be at least 16 characters long")
    return TokenRegistry(tokens)


def _read_secret(path: os.PathLike[str], what: str) -> str:
    try:
        secret = open(path, encoding="utf-8").read().strip()  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {os.fspath(path)}: {exc.strerror}") from None
    if not secret:
        raise ConfigError(f"{what}: {os.fspath(path)} is empty")
    return secret
