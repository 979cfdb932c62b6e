"""The stand-in as its own process, frozen with SIGSTOP like the real incident."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from breaker.probes import SipProbe
from testbed.procs import Child, free_port
from tests.probes.helpers import eventually, expect, make_cfg

ROOT = Path(__file__).resolve().parents[2]


def counts(path: Path) -> dict[str, object]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


async def test_sigstop_freezes_and_sigcont_resumes_the_standalone_standin(tmp_path: Path) -> None:
    port = free_port()
    count_file = tmp_path / "counts.json"
    argv = [sys.executable, "-m", "testbed.sip_standin", "--port", str(port), "--tcp",
            "--count-file", str(count_file)]  # fmt: skip
    proc = Child(argv, tmp_path / "standin.log", cwd=ROOT)
    udp = SipProbe(make_cfg(f"sip:127.0.0.1:{port}"))
    tcp = SipProbe(make_cfg(f"sip:127.0.0.1:{port};transport=tcp"))
    try:
        await eventually(lambda: counts(count_file).get("port") == port, 10, "stand-in ready")
        expect(await udp.check(), "ok")
        expect(await tcp.check(), "ok")
        proc.signal(signal.SIGSTOP)
        expect(await udp.check(), "timeout")
        expect(await tcp.check(), "timeout")
        proc.signal(signal.SIGCONT)
        expect(await udp.check(), "ok")
        expect(await tcp.check(), "ok")
        await eventually(lambda: counts(count_file).get("total") == 6, 5, "6 requests counted")
        seen = counts(count_file)
        assert seen["requests"] == {"OPTIONS": 6}, f"expected 6 OPTIONS, seen {seen}"
        assert seen["tcp_connections"] == 1, f"expected one TCP connection, seen {seen}"
        proc.signal(signal.SIGTERM)
        code = proc.popen.wait(5)
        assert code == 0, f"expected exit 0 on SIGTERM, seen {code}; output: {proc.output()}"
        assert proc.output().count("\n") == 1, f"expected one line of output: {proc.output()!r}"
    finally:
        await udp.aclose()
        await tcp.aclose()
        proc.stop()
