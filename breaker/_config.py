"""Configuration: a TOML file, overridable by BREAKER_* environment variables.

Every key is validated up front so a typo fails at start-up with one line naming
the field, not at 3 a.m. when the breaker is needed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
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
from breaker._redis_url import parse_redis_url
from breaker.core import Policy, default_min_healthy, detection_bound

_POLICY = Policy()  # the one home of the policy defaults

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
    url: str  # the string as configured: may hold a password, so never show it; see display

    @property
    def display(self) -> str:
        """The URL with any password replaced by `***`: for the API, logs and pages."""
        return redact_url(self.url)


REDACTED = "***"
# query (or SIP URI) parameters that carry credentials: their values are hidden too
_SECRET_PARAM = re.compile(
    r"(?<=[?&;])((?:[A-Za-z0-9]*[_.-])?"
    r"(?:token|secret|pass|passwd|password|passcode|key|apikey|auth|sig|signature|credentials?))"
    r"=([^&;#]*)",
    re.IGNORECASE,
)
MAX_DISPLAY = 512  # characters of a URL shown in logs and the API


def redact_url(raw: str) -> str:
    """`raw` with the password of its userinfo (`user:password@`) and the values of
    credential-like query parameters (`?token=`, `api_key=`…) replaced by `***`.

    Works for `scheme://user:pw@host` and SIP's `sip:user:pw@host`. Control characters
    are escaped and the result is capped, so a config string cannot forge a log line.
    """
    scheme, sep, rest = raw.partition(":")
    if sep:
        slashes = "//" if rest.startswith("//") else ""
        rest = rest.removeprefix(slashes)
        authority_end = min(
            (i for i in (rest.find(c) for c in "/?#;") if i >= 0), default=len(rest)
        )
        authority, tail = rest[:authority_end], rest[authority_end:]
        if "@" in authority:
            userinfo, _, hostport = authority.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            authority = f"{user}:{REDACTED}@{hostport}" if colon else f"{userinfo}@{hostport}"
        tail = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", tail)
        raw = f"{scheme}:{slashes}{authority}{tail}"
    shown = raw.encode("unicode_escape").decode("ascii") if not raw.isprintable() else raw
    return shown if len(shown) <= MAX_DISPLAY else shown[: MAX_DISPLAY - 1] + "…"


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
    interval: Seconds = _POLICY.interval
    timeout: Seconds = 0.5
    fast_interval: Seconds | None = None  # default: timeout (confirmation probes)
    adaptive_timeout: bool = True  # wait 4 x p99 RTT, within [timeout_floor, timeout]
    timeout_floor: Seconds = 0.2
    slow: Seconds | None = None  # default: timeout / 2
    fall: int = Field(_POLICY.fall, ge=1, le=100)
    rise: int = Field(_POLICY.rise, ge=1, le=100)
    slow_start: float = Field(_POLICY.slow_start, ge=0, le=3600)
    initial_admit: int = Field(_POLICY.initial_admit, ge=1, le=99)
    retry_after_max: int = Field(_POLICY.retry_after_max, ge=1, le=3600)
    reopen_window: float = Field(_POLICY.reopen_window, ge=0)
    reopen_backoff: float = Field(_POLICY.reopen_backoff, ge=0)
    reopen_backoff_max: float = Field(_POLICY.reopen_backoff_max, ge=0)
    jitter: float = Field(_POLICY.jitter, ge=0, lt=1)
    force_max_ttl: float = Field(_POLICY.force_max_ttl, gt=0)
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

    def policy(self) -> Policy:
        """The core's Policy: every Policy field is a config key of the same name."""
        keys = {f.name for f in dataclasses.fields(Policy)} - {"fast_interval"}
        return Policy(
            **{key: getattr(self, key) for key in keys}, fast_interval=self.confirm_interval
        )

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


class PoolConfig(_Strict):
    """A pool of presence servers (a Kamailio dispatcher set): one breaker per member.

    Its verdict is derived (breaker.core._pool): closed while at least `min_healthy`
    members are closed (default: all but one), a share in between, open when no
    member can take traffic. Published to Redis under its own name like a breaker.
    """

    name: str = Field(pattern=NAME_PATTERN)
    members: tuple[str, ...] = Field(min_length=1)
    min_healthy: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check_members(self) -> Self:
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"pool {self.name!r} lists a member twice")
        if self.min_healthy is not None and self.min_healthy > len(self.members):
            raise ValueError(
                f"min_healthy ({self.min_healthy}) exceeds the {len(self.members)} members"
            )
        return self

    @property
    def healthy_needed(self) -> int:
        if self.min_healthy is not None:
            return self.min_healthy
        return default_min_healthy(len(self.members))


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
    sentinel_password_file: Path | None = None  # redis+sentinel://: the sentinels' own password
    # Accepted and ignored: events are no longer queued while Redis is away
    # (docs/configuration.md); kept so existing configs still load.
    pending_events_max: int = Field(10000, ge=10)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parse_redis_url(value)
        return value


class ClusterConfig(_Strict):
    """Several sidecars, one verdict: each is an observer voting per breaker (see docs/model.md)."""

    observer: str = Field(default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    quorum: Literal["majority", "any", "all"] | Annotated[int, Field(ge=1, le=100)] = "majority"
    vote_ttl: Seconds | None = None  # default: max(3 x the breaker's interval, 2 s)


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
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)  # every sidecar votes
    breakers: tuple[BreakerConfig, ...] = Field(default=(), min_length=1)
    pools: tuple[PoolConfig, ...] = ()

    @field_validator("breakers")
    @classmethod
    def _unique_names(cls, value: tuple[BreakerConfig, ...]) -> tuple[BreakerConfig, ...]:
        seen: set[str] = set()
        for breaker in value:
            if breaker.name in seen:
                raise ValueError(f"duplicate breaker name {breaker.name!r}")
            seen.add(breaker.name)
        return value

    @model_validator(mode="after")
    def _pools_name_breakers(self) -> Self:
        if self.pools and parse_redis_url(self.redis.url).mode == "cluster":
            raise ValueError(
                "[[pools]] need a standalone Redis or Sentinel, not redis+cluster://: a pool's "
                "verdict is derived from its members' keys, which sit in other hash slots"
            )
        names = {b.name for b in self.breakers}
        pools: set[str] = set()
        for pool in self.pools:
            if pool.name in names or pool.name in pools:
                raise ValueError(f"pool name {pool.name!r} is already a breaker or pool name")
            pools.add(pool.name)
            unknown = [m for m in pool.members if m not in names]
            if unknown:
                raise ValueError(
                    f"pool {pool.name!r}: unknown member {unknown[0]!r}; "
                    f"members must be [[breakers]] names"
                )
        return self

    def breaker(self, name: str) -> BreakerConfig | None:
        return next((b for b in self.breakers if b.name == name), None)

    def pool(self, name: str) -> PoolConfig | None:
        return next((p for p in self.pools if p.name == name), None)

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

    @model_validator(mode="after")
    def _check_state_ttl(self) -> Self:
        ttls = (
            ("cluster.vote_ttl", self.cluster.vote_ttl, "votes expire between refreshes"),
            ("redis.state_ttl", self.redis.state_ttl, "the verdict expires between writes"),
        )
        for breaker in self.breakers:
            for key, ttl, lost in ttls:
                if ttl is not None and ttl <= breaker.interval:
                    raise ValueError(
                        f"{key} ({ttl:g}s) must be longer than breakers[{breaker.name!r}]"
                        f".interval ({breaker.interval:g}s), or {lost}"
                    )
        return self


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
