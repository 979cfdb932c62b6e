"""Redis Sentinel and Redis Cluster for tests, from Debian's redis-server and redis-sentinel.

Everything listens on ephemeral loopback ports and lives in a temp dir; `stop()`
ends every process this module started (by its own process group, never by name).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from testbed.procs import Child, free_port, port_open
from testbed.redis import Redis
from testbed.waiting import wait_until

MASTER_NAME = "breaker"


def _server(workdir: Path, port: int, *extra: str) -> Redis:
    return Redis(workdir, port).start(*extra)


def _cli(port: int, *args: str, timeout: float = 20) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    ).stdout.strip()


class SentinelSet:
    """One master, one replica, three sentinels watching MASTER_NAME.

    Failover is made fast: down-after-milliseconds 1000, failover-timeout 2000.
    `tls` (cert, key; the cert is its own CA) puts every node and sentinel on TLS
    only; `password` protects master and replica, `sentinel_password` the sentinels.
    """

    def __init__(
        self,
        workdir: Path,
        down_after_ms: int = 1000,
        *,
        tls: tuple[Path, Path] | None = None,
        password: str | None = None,
        sentinel_password: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.down_after_ms = down_after_ms
        self.tls = tls
        self.password = password
        self.sentinel_password = sentinel_password
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.data: dict[int, Redis] = {}
        self.sentinels: list[Child] = []

    @property
    def url(self) -> str:
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"{scheme}://{auth}{hosts}/{MASTER_NAME}/0"

    def _tls_lines(self, port: int) -> list[str]:
        if self.tls is None:
            return [f"port {port}"]
        cert, key = self.tls
        return [
            "port 0",
            f"tls-port {port}",
            f"tls-cert-file {cert}",
            f"tls-key-file {key}",
            f"tls-ca-cert-file {cert}",
            "tls-auth-clients no",
            "tls-replication yes",
        ]

    def _server_options(self, port: int) -> list[str]:
        argv: list[str] = []
        for line in self._tls_lines(port):  # "tls-port 7000" -> "--tls-port", "7000"
            key, value = line.split(" ", 1)
            argv += [f"--{key}", value]
        if self.password:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        return [*argv, "--repl-diskless-sync-delay", "0"]  # default: wait 5 s for more replicas

    def start(self) -> SentinelSet:
        master, replica = self.data_ports
        self.data[master] = _server(
            self.workdir / f"redis-{master}", master, *self._server_options(master)
        )
        self.data[replica] = _server(
            self.workdir / f"redis-{replica}",
            replica,
            *self._server_options(replica),
            "--replicaof",
            "127.0.0.1",
            str(master),
        )
        wait_until(self._replica_in_sync, 10, what="replica in sync")
        # Each sentinel is told its id, the replica and the other sentinels up front, so
        # the set is ready at once instead of after a few hello/INFO rounds.
        ids = {port: f"{port:040x}" for port in self.sentinel_ports}
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}" / "sentinel.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            lines = [
                *self._tls_lines(port),
                "bind 127.0.0.1",
                f"dir {conf.parent}",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2",
                f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
                f"sentinel failover-timeout {MASTER_NAME} 2000",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
                f"sentinel myid {ids[port]}",
                f"sentinel known-replica {MASTER_NAME} 127.0.0.1 {replica}",
                *(
                    f"sentinel known-sentinel {MASTER_NAME} 127.0.0.1 {other} {ids[other]}"
                    for other in self.sentinel_ports
                    if other != port
                ),
            ]
            if self.password:
                lines.append(f"sentinel auth-pass {MASTER_NAME} {self.password}")
            if self.sentinel_password:
                lines += [
                    f"requirepass {self.sentinel_password}",
                    f"sentinel sentinel-pass {self.sentinel_password}",
                ]
            conf.write_text("\n".join(lines) + "\n")
            self.sentinels.append(Child(["redis-sentinel", str(conf)], conf.parent / "log"))
        for port in self.sentinel_ports:
            wait_until(lambda: self._sentinel_sees_all(port), 20, what=f"sentinel {port} ready")
        return self

    def _replica_in_sync(self) -> bool:
        try:
            info = self.client(self.data_ports[1]).info("replication")
        except redis.RedisError:
            return False
        return info.get("master_link_status") == "up"

    def _sentinel_sees_all(self, port: int) -> bool:
        if not port_open(port):
            return False
        try:
            fields = self.sentinel_client(port).sentinel_master(MASTER_NAME)
        except redis.RedisError:
            return False
        if not isinstance(fields, dict):
            return False
        return (
            int(fields.get("num-other-sentinels", 0)) == 2 and int(fields.get("num-slaves", 0)) == 1
        )

    def _client_options(self) -> dict[str, Any]:
        if self.tls is None:
            return {}
        return {"ssl": True, "ssl_ca_certs": str(self.tls[0])}

    def sentinel_client(self, port: int | None = None) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=port or self.sentinel_ports[0],
            password=self.sentinel_password,
            decode_responses=True,
            socket_timeout=2,
            **self._client_options(),
        )

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            password=self.password,
            decode_responses=True,
            socket_timeout=2,
            **self._client_options(),
        )

    def kill(self, port: int) -> None:
        """SIGKILL one data node: no goodbye, sockets reset by the kernel."""
        proc = self.data[port].proc
        assert proc is not None
        proc.signal(signal.SIGKILL)
        proc.popen.wait(5)

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.data.values():
            server.stop()


class ClusterSet:
    """A three-master Redis Cluster (no replicas), created with redis-cli --cluster create."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports = [free_port() for _ in range(3)]
        self.nodes: list[Redis] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> ClusterSet:
        for port in self.ports:
            self.nodes.append(
                _server(
                    self.workdir / f"node-{port}",
                    port,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(self.workdir / f"node-{port}" / "nodes.conf"),
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-port",  # the default, port + 10000, may be out of range
                    str(free_port()),
                )
            )
        _cli(
            self.ports[0],
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in self.ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        )
        for port in self.ports:
            wait_until(
                lambda: "cluster_state:ok" in _cli(port, "CLUSTER", "INFO"),
                20,
                what=f"cluster state ok on {port}",
            )
        return self

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(
            host="127.0.0.1", port=self.ports[0], decode_responses=True, socket_timeout=2
        )

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=2)

    def port_for(self, key: str) -> int:
        """The node whose slots hold `key`."""
        node = self.client().get_node_from_key(key)
        return int(node.port)

    def stop(self) -> None:
        for proc in self.nodes:
            proc.stop()


@contextlib.contextmanager
def sentinel_set(workdir: Path, **options: Any) -> Iterator[SentinelSet]:
    ha = SentinelSet(workdir, **options)
    try:
        yield ha.start()
    finally:
        ha.stop()


@contextlib.contextmanager
def cluster_set(workdir: Path) -> Iterator[ClusterSet]:
    cluster = ClusterSet(workdir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


class SwitchWatch(threading.Thread):
    """Records when a sentinel announces `+switch-master`, from a thread.

    Subscribed before the constructor returns, so an event that follows cannot be
    missed; `seen` is (monotonic time received, new master's port).
    """

    def __init__(self, sentinel: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.pubsub = sentinel.pubsub()
        self.pubsub.subscribe("+switch-master")
        wait_until(self._subscribed, 5, what="subscription to +switch-master")
        self.seen: tuple[float, int] | None = None
        self.stop = threading.Event()

    def _subscribed(self) -> bool:
        message = self.pubsub.get_message(timeout=0.05)
        return message is not None and message["type"] == "subscribe"

    def run(self) -> None:
        try:
            while self.seen is None and not self.stop.is_set():
                message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
                if message and message["type"] == "message":
                    # "<name> <old-ip> <old-port> <new-ip> <new-port>"
                    self.seen = time.monotonic(), int(str(message["data"]).split()[4])
        finally:
            self.pubsub.close()

    def result(self, within: float) -> tuple[float, int]:
        self.join(within)
        self.stop.set()
        if self.seen is None:
            raise AssertionError(f"no +switch-master from a sentinel within {within}s")
        return self.seen
