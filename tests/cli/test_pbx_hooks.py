"""The shell hooks in docs/pbx-hooks.md marked *tested*, extracted from the doc and run as
written against a real sidecar (curl) and a Redis holding a hand-written verdict."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from breaker.core import admitted
from testbed.procs import free_port
from testbed.redis import Redis
from tests.cli.harness import ROOT, Stack

DOC = ROOT / "docs" / "pbx-hooks.md"
AOR = "sip:alice+1@example.net"


def hook(name: str, tmp_path: Path) -> Path:
    """The ```sh block right after `<!-- test: NAME -->`, as an executable file."""
    match = re.search(rf"<!-- test: {name} -->\n```sh\n(.*?)\n```", DOC.read_text(), re.S)
    assert match, f"no block marked 'test: {name}' in {DOC}"
    path = tmp_path / f"{name}.sh"
    path.write_text(match.group(1) + "\n")
    path.chmod(0o755)
    return path


def run(script: Path, aor: str, **env: str) -> int:
    base = {"PATH": "/usr/bin:/bin"}
    return subprocess.run([str(script), aor], env={**base, **env}, timeout=10).returncode


def test_curl_hook_answers_like_breaker_check(sidecar: Stack, tmp_path: Path) -> None:
    script = hook("curl-allow", tmp_path)
    assert run(script, AOR, BREAKER_URL=sidecar.url) == 0, "closed: send"
    sidecar.force("presence", "open", reason="hook test")
    assert run(script, AOR, BREAKER_URL=sidecar.url) == 1, "open: hold back"
    dead = f"http://127.0.0.1:{free_port()}"
    assert run(script, AOR, BREAKER_URL=dead) == 2, "no sidecar: cannot tell"


@pytest.mark.parametrize("state", ["closed", "open"])
def test_redis_hook_reads_the_verdict(redis_server: Redis, tmp_path: Path, state: str) -> None:
    redis_server.cli("HSET", "breaker:{presence}", "state", state, "admit", "0", "retry_after", "5")
    expected = 0 if state == "closed" else 1
    assert run(hook("redis-hmget", tmp_path), AOR, REDIS_URL=redis_server.url) == expected


def test_redis_hook_admits_the_same_aors_as_the_api(redis_server: Redis, tmp_path: Path) -> None:
    script = hook("redis-hmget", tmp_path)
    redis_server.cli("HSET", "breaker:{presence}", "state", "half_open", "admit", "50")
    aors = [f"sip:user{i}@example.net" for i in range(12)]
    seen = [run(script, aor, REDIS_URL=redis_server.url) == 0 for aor in aors]
    assert seen == [admitted(50, aor) for aor in aors], "crc32 share must match the API's"
    assert any(seen) and not all(seen), "the sample should cover both answers"


def test_redis_hook_without_a_verdict_or_redis_cannot_tell(
    redis_server: Redis, tmp_path: Path
) -> None:
    script = hook("redis-hmget", tmp_path)
    assert run(script, AOR, REDIS_URL=redis_server.url) == 2, "no hash: sidecar dead"
    dead = f"redis://127.0.0.1:{free_port()}/0"
    assert run(script, AOR, REDIS_URL=dead) == 2, "no Redis"
