"""schemathesis 4 against a live sidecar: every answer conforms to the OpenAPI schema.

All checks, all phases (stateful included), with and without a token, with open_reads
both ways. Bounded by tests/api/schemathesis.toml (few examples, deterministic).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from testbed.procs import free_port
from testbed.redis import Redis
from tests.support.sidecar import TOKEN, Sidecar

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
PHASES = "examples,coverage,fuzzing,stateful"


def run_schemathesis(schema: Path, url: str, token: str | None) -> tuple[int, str]:
    argv = [
        str(SCHEMATHESIS),
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        str(schema),
        "--url",
        url,
        "--checks",
        "all",
        "--phases",
        PHASES,
        "--workers",
        "1",
        "--request-timeout",
        "5",
    ]
    if token is not None:
        argv += ["-H", f"Authorization: Bearer {token}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=schema.parent)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("open_reads", [True, False], ids=["open-reads", "closed-reads"])
def test_schemathesis_finds_no_failure_against_a_live_sidecar(
    tmp_path: Path, redis_server: Redis, open_reads: bool
) -> None:
    target = f"http://ops:s3cret@127.0.0.1:{free_port()}/health"  # refused: the breaker opens
    sidecar = Sidecar(tmp_path, redis_server.url, target, open_reads=open_reads).start()
    try:
        # With open_reads off the schema itself needs a token: fetch it once, with one.
        answer = httpx.get(
            f"{sidecar.url}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        )
        assert answer.status_code == 200, f"expected the schema, got {answer.status_code}"
        schema = tmp_path / "openapi.json"
        schema.write_bytes(answer.content)
        for token in (TOKEN, None):
            code, output = run_schemathesis(schema, sidecar.url, token)
            cases = re.search(r"(\d+) generated", output)
            label = f"open_reads={open_reads} token={'yes' if token else 'no'}"
            assert code == 0 and cases, (
                f"{label}: expected 0 failures, schemathesis said:\n{output}"
            )
            print(f"schemathesis {label}: {cases.group(1)} cases")
    finally:
        sidecar.stop()
