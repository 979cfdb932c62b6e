"""Configuration: a TOML file, overridable by BREAKER_* environment variables.

Every key is validated up front so a typo fails at start-up with one line naming
the field, not at 3 a.m. when the breaker is needed.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from breaker._errors import ConfigError
from breaker.core import detection_bound

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
DEFAULT_DEAD_CODES = (408, 500, 503, 504)

Seconds = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    """Where and how to probe, parsed from the `target` string."""

    kind: Literal["sip", "http", "tcp"]
    host: str
    port: int | None  # None: SIP resolves it per RFC 3263 (SRV), HTTP from the scheme
    transport: Literal["udp", "tcp", "tls"] | None = None  # SIP only
    url: str  # the string as configured

    @property
    def host_is_literal_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_target(raw: str) -> Target:
    """Parse `sip:`/`sips:` URIs, `http(s)://` URLs and `tcp://host:port`."""
    raw = raw.strip()
    lower = raw.lower()
    if lower.startswith(("sip:", "sips:")):
        return _parse_sip_target(raw)
    if lower.startswith(("http://", "https://")):
        parts = urlsplit(raw)
        if not parts.hostname:
            raise ValueError(f"no host in HTTP target {raw!r}")
        return Target(kind="http", host=parts.hostname, port=parts.port, url=raw)
    if lower.startswith("tcp://"):
        parts = urlsplit(raw)
        if not parts.hostname or parts.port is None:
            raise ValueError(f"TCP target {raw!r} needs host and port: tcp://host:port")
        return Target(kind="tcp", host=parts.hostname, port=parts.port, url=raw)
    raise ValueError(f"target {raw!r} must start with sip:, sips:, http://, https:// or tcp://")


_SIP_HOSTPORT = re.compile(
    r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9.\-_]+))(?::(?P<port>\d+))?$"
)


def _parse_sip_target(raw: str) -> Target:
    scheme, _, rest = raw.partition(":")
    secure = scheme.lower() == "sips"
    hostport, *params = rest.split(";")
    if "@" in hostport:
        hostport = hostport.rsplit("@", 1)[1]
    match = _SIP_HOSTPORT.match(hostport)
    if not match:
        raise ValueError(f"cannot read host[:port] in SIP target {raw!r}")
    host = match.group("v6") or match.group("host")
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} out of range in {raw!r}")
    transport: Literal["udp", "tcp", "tls"] = "tls" if secure else "udp"
    for param in params:
        key, _, value = param.partition("=")
        if key.lower() == "transport":
            value = value.lower()
            if value not in ("udp", "tcp", "tls"):
                raise ValueError(f"transport must be udp, tcp or tls in {raw!r}")
            transport = value  # type: ignore[assignment]
    return Target(kind="sip", host=host, port=port, transport=transport, url=raw)


class BreakerConfig(_Strict):
    """One breaker: a target to probe and the policy that turns probes into a verdict."""

    name: str = Field(pattern=NAME_PATTERN)
    target: Target
    interval: Seconds = 1.0
    timeout: Seconds = 0.5
    fast_interval: Seconds | None = None  # default: timeout (confirmation probes)
    adaptive_timeout: bool = True  # wait 4 x p99 RTT, within [timeout_floor, timeout]
    timeout_floor: Seconds = 0.2
    slow: Seconds | None = None  # default: timeout / 2
    fall: int = Field(3, ge=1, le=100)
    rise: int = Field(2, ge=1, le=100)
    slow_start: float = Field(30.0, ge=0, le=3600)
    initial_admit: int = Field(10, ge=1, le=99)
    retry_after_max: int = Field(60, ge=1, le=3600)
    reopen_window: float = Field(300.0, ge=0)
    reopen_backoff: float = Field(5.0, ge=0)
    reopen_backoff_max: float = Field(120.0, ge=0)
    jitter: float = Field(0.2, ge=0, lt=1)
    force_max_ttl: float = Field(86400.0, gt=0)
    # SIP probe
    method: Literal["OPTIONS", "PUBLISH"] = "OPTIONS"
    event: str = "message-summary"
    probe_user: str = Field("breaker-probe", pattern=r"^[A-Za-z0-9_.!~*'()&=+$,;?/-]+$")
    alive_codes: tuple[int, ...] | None = None  # None: any final response not in dead_codes
    dead_codes: tuple[int, ...] = DEFAULT_DEAD_CODES
    # HTTP probe
    expect_status: tuple[int, ...] = (200, 204)
    # Passive signal from Kamailio: an interval whose failure ratio exceeds this is a failure.
    passive_failure_ratio: float | None = Field(None, gt=0, lt=1)
    passive_min_requests: int = Field(20, ge=1)

    @field_validator("target", mode="before")
    @classmethod
    def _parse_target(cls, value: Any) -> Any:
        return parse_target(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_timing(self) -> Self:
        if self.timeout >= self.interval:
            raise ValueError(
                f"timeout ({self.timeout}s) must be shorter than interval ({self.interval}s): "
                "probes must not overlap"
            )
        if self.fast_interval is not None and self.fast_interval > self.interval:
            raise ValueError(
                f"fast_interval ({self.fast_interval}s) must not exceed interval "
                f"({self.interval}s): it is the faster cadence used to confirm a failure"
            )
        if self.slow is not None and self.slow > self.timeout:
            raise ValueError(f"slow ({self.slow}s) must not exceed timeout ({self.timeout}s)")
        return self

    @property
    def slow_threshold(self) -> float:
        return self.slow if self.slow is not None else self.timeout / 2

    @property
    def confirm_interval(self) -> float:
        """`fast_interval`, by default `timeout`: the soonest a confirmation can follow
        a failed probe without overlapping it."""
        return self.fast_interval if self.fast_interval is not None else self.timeout

    @property
    def detection_bound(self) -> float:
        """Worst case from lock-up to open: one interval, `fall - 1` confirmations, a timeout."""
        return detection_bound(self.interval, self.confirm_interval, self.timeout, self.fall)


class RedisConfig(_Strict):
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field("breaker:", pattern=r"^[A-Za-z0-9_.:-]*$")
    password_file: Path | None = None  # alternative to a password in the URL
    state_ttl: float | None = Field(None, ge=1)  # default: max(3 x interval, 2 s)
    log_maxlen: int = Field(10000, ge=100)
    connect_timeout: Seconds = 0.5
    command_timeout: Seconds = 0.5
    ssl_ca_file: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    pending_events_max: int = Field(10000, ge=10)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"scheme must be redis://, rediss:// or unix://, got {scheme!r}")
        return value


class TokenConfig(_Strict):
    """A named API token. Its value comes from a file or an environment variable, never the TOML."""

    name: str = Field(pattern=NAME_PATTERN)
    role: Literal["read", "operate"] = "operate"
    file: Path | None = None
    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.file is None) == (self.env is None):
            raise ValueError(f"token {self.name!r} needs exactly one of file or env")
        return self


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, lt=65536)
    open_reads: bool = True  # reads (status, allow, history) need no token
    token_file: Path | None = None  # alternative to BREAKER_API_TOKEN
    tokens: tuple[TokenConfig, ...] = ()


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"


class Settings(BaseSettings):
    """The whole configuration. Environment variables win over the file."""

    model_config = SettingsConfigDict(
        env_prefix="BREAKER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    redis: RedisConfig = RedisConfig()
    api: ApiConfig = ApiConfig()
    logging: LoggingConfig = LoggingConfig()
    breakers: tuple[BreakerConfig, ...] = Field(default=(), min_length=1)

    @field_validator("breakers")
    @classmethod
    def _unique_names(cls, value: tuple[BreakerConfig, ...]) -> tuple[BreakerConfig, ...]:
        seen: set[str] = set()
        for breaker in value:
            if breaker.name in seen:
                raise ValueError(f"duplicate breaker name {breaker.name!r}")
            seen.add(breaker.name)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives through init kwargs (see load_settings); env overrides it.
        return (env_settings, init_settings)

    def breaker(self, name: str) -> BreakerConfig | None:
        return next((b for b in self.breakers if b.name == name), None)


# Environment variables that are not settings (secrets, paths, client options).
_NOT_SETTINGS = {
    "BREAKER_CONFIG",
    "BREAKER_API_TOKEN",
    "BREAKER_URL",
    "BREAKER_REDIS_PASSWORD",
}


def load_settings(path: Path | str | None = None) -> Settings:
    """Read, merge and validate; raise ConfigError with one line on any problem."""
    path = Path(path or os.environ.get("BREAKER_CONFIG", "breaker.toml"))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k in _NOT_SETTINGS}
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc, data)}") from None
    finally:
        os.environ.update(saved)


def describe_validation_error(exc: ValidationError, data: dict[str, Any] | None = None) -> str:
    """The first error as `field.path: message`, naming breakers by name rather than index."""
    error = exc.errors()[0]
    parts: list[str] = []
    node: Any = data
    for loc in error["loc"]:
        if isinstance(loc, int) and isinstance(node, list) and loc < len(node):
            item = node[loc]
            name = item.get("name") if isinstance(item, dict) else None
            parts[-1] = f"{parts[-1]}[{name!r}]" if name else f"{parts[-1]}[{loc}]"
            node = item
            continue
        parts.append(str(loc))
        node = node.get(loc) if isinstance(node, dict) else None
    field = ".".join(parts) or "config"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against docs/configuration.md)"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{field}: {message}{suffix}"
