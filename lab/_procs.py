"""The lab's process helpers, which now live in `testbed/` (shared with bench/ and tests/).

Re-exported here so `from lab._procs import …` keeps working; new code imports testbed.
"""

from __future__ import annotations

from testbed.cpu import TICKS, group_cpu_seconds, process_cpu_seconds
from testbed.kamailio import (
    KAMAILIO_CONFIG_DIR,
    PRESENCE_CFG,
    PROXY_CFG,
    SQLITE_SCHEMA_DIR,
    Define,
    Kamailio,
    create_presence_db,
    define_args,
    presence_server,
    proxy_defines,
    quoted,
    sip_ping,
)
from testbed.procs import (
    LOOPBACK,
    REPO,
    Child,
    LabError,
    await_ready,
    free_port,
    port_open,
    python_module,
    require,
)
from testbed.redis import Redis
from testbed.sidecar import Sidecar, sidecar_toml
from testbed.sipp import SippRun, run_sipp
from testbed.waiting import wait_until

__all__ = [
    "KAMAILIO_CONFIG_DIR",
    "LOOPBACK",
    "PRESENCE_CFG",
    "PROXY_CFG",
    "REPO",
    "SQLITE_SCHEMA_DIR",
    "TICKS",
    "Child",
    "Define",
    "Kamailio",
    "LabError",
    "Redis",
    "Sidecar",
    "SippRun",
    "await_ready",
    "create_presence_db",
    "define_args",
    "free_port",
    "group_cpu_seconds",
    "port_open",
    "presence_server",
    "process_cpu_seconds",
    "proxy_defines",
    "python_module",
    "quoted",
    "require",
    "run_sipp",
    "sidecar_toml",
    "sip_ping",
    "wait_until",
]
