"""`[redis] url`: one Redis, a Sentinel-managed master, or a Redis Cluster.

    redis://[[user]:password@]host[:port][/db]          one server (rediss:// for TLS)
    unix://[[user]:password@]/path/to/socket[?db=N]     one server on a socket
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/MASTER_NAME[/db]
    redis+cluster://[[user]:password@]host[:port][,host[:port]...]

`rediss+sentinel://` and `rediss+cluster://` use TLS to every node (sentinels
included). Pure parsing, no I/O: used by the config validator and by the client
factory, so a bad URL fails at start-up with one line, never with the password in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)
SENTINEL_PORT = 26379
REDIS_PORT = 6379

Mode = Literal["single", "sentinel", "cluster"]

_HOSTPORT = re.compile(
    r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9.\-_]+))(?::(?P<port>\d+))?$"
)
_MASTER = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True, slots=True)
class RedisUrl:
    mode: Mode
    tls: bool
    nodes: tuple[tuple[str, int], ...] = ()  # sentinels or cluster seed nodes
    master: str = ""  # Sentinel's name for the master
    db: int = 0
    username: str | None = None
    password: str | None = None


def url_scheme(raw: str) -> str:
    return raw.partition("://")[0].lower() if "://" in raw else ""


def parse_redis_url(raw: str) -> RedisUrl:
    """Parse and check; ValueError with one line (never the password) if it is wrong."""
    scheme = url_scheme(raw)
    if scheme not in SCHEMES:
        forms = ", ".join(f"{s}://" for s in SCHEMES)
        raise ValueError(f"scheme must be {forms}; got {scheme!r}")
    tls = scheme.startswith("rediss")
    if scheme in ("redis", "rediss", "unix"):
        return RedisUrl("single", tls)
    mode: Mode = "sentinel" if scheme.endswith("+sentinel") else "cluster"
    rest = raw.split("://", 1)[1]
    rest = rest.split("#", 1)[0]
    if "?" in rest:
        raise ValueError(f"{scheme}:// takes no query string; use the [redis] options")
    userinfo, _, hosts_and_path = rest.rpartition("@")
    hosts, _, path = hosts_and_path.partition("/")
    username = password = None
    if userinfo:
        user, sep, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if sep else None
    default_port = SENTINEL_PORT if mode == "sentinel" else REDIS_PORT
    nodes = tuple(_hostport(item, default_port, scheme) for item in hosts.split(","))
    parts = [p for p in path.split("/") if p]
    if mode == "cluster":
        if parts and parts != ["0"]:
            raise ValueError("redis+cluster:// has no database number (Cluster has only db 0)")
        return RedisUrl(mode, tls, nodes, username=username, password=password)
    if not parts:
        raise ValueError(
            "redis+sentinel:// needs the master's name: redis+sentinel://host:port,.../MASTER_NAME"
        )
    if len(parts) > 2 or not _MASTER.match(parts[0]):
        raise ValueError(f"cannot read MASTER_NAME[/db] in the path of the {scheme}:// URL")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError(f"database number must be an integer, got {parts[1]!r}")
        db = int(parts[1])
    return RedisUrl(mode, tls, nodes, parts[0], db, username, password)


def _hostport(item: str, default_port: int, scheme: str) -> tuple[str, int]:
    match = _HOSTPORT.match(item.strip())
    if not match:
        raise ValueError(f"cannot read host[:port] {item.strip()!r} in the {scheme}:// URL")
    host = match.group("v6") or match.group("host")
    port = int(match.group("port")) if match.group("port") else default_port
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range in the {scheme}:// URL")
    return host, port
