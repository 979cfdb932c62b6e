"""The prober against a real Kamailio presence server (presence + presence_mwi).

Never skipped: without Kamailio and its presence modules the module fails at import,
so CI cannot pass quietly (scripts/bootstrap.sh installs them). Presence keeps its
table in memory (publ_cache=2), so a restart forgets publications: the 412 path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from breaker.probes import SipProbe
from testbed.procs import Child, free_port
from tests.probes.helpers import expect, explain, make_cfg

ProbeFactory = Callable[..., SipProbe]

MODULE_DIRS = [
    Path("/usr/lib/x86_64-linux-gnu/kamailio/modules"),
    Path("/usr/lib/kamailio/modules"),
    Path("/usr/lib64/kamailio/modules"),
    Path("/usr/local/lib64/kamailio/modules"),
]
MODULES = next((d for d in MODULE_DIRS if (d / "presence_mwi.so").exists()), None)

# No skip: CI installs Kamailio, and a missing module must fail loudly, not pass quietly.
assert MODULES is not None, "kamailio-presence-modules is not installed (bash scripts/bootstrap.sh)"

CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
mpath="{modules}/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "presence.so"
loadmodule "presence_mwi.so"
modparam("presence", "publ_cache", 2)
modparam("presence", "subs_db_mode", 0)
modparam("presence", "server_address", "sip:127.0.0.1:{port}")
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("OPTIONS") && $rU == $null) {{ sl_send_reply("200", "OK"); exit; }}
    if (is_method("PUBLISH")) {{
        if (!t_newtran()) {{ sl_reply_error(); exit; }}
        handle_publish();
        t_release();
        exit;
    }}
    sl_send_reply("404", "Not here");
}}
"""


class Kamailio:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "kamailio.cfg"
        self.config.write_text(CONFIG.format(port=self.port, modules=MODULES))
        self.proc: Child | None = None

    async def start(self) -> None:
        argv = ["kamailio", "-f", str(self.config), "-DD", "-E", "-m", "32", "-M", "4",
                "-Y", str(self.workdir)]  # fmt: skip
        self.proc = Child(argv, self.workdir / "kamailio.log", cwd=self.workdir)
        ready = SipProbe(make_cfg(f"sip:127.0.0.1:{self.port}"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        seen = ""
        try:
            while loop.time() < deadline:
                if not self.proc.alive():
                    raise AssertionError(f"kamailio exited: {self.proc.output()[-2000:]}")
                result = await ready.check()
                if result.ok:
                    return
                seen = f"{result.reason}: {result.detail}"
                await asyncio.sleep(0.05)  # poll interval while it binds its sockets
            raise AssertionError(f"kamailio did not answer OPTIONS within 10 s; last: {seen}")
        finally:
            await ready.aclose()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


@pytest.fixture
async def kamailio(tmp_path: Path) -> AsyncIterator[Kamailio]:
    server = Kamailio(tmp_path)
    try:
        await server.start()
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("transport", ["", ";transport=tcp"], ids=["udp", "tcp"])
async def test_kamailio_answers_options_200(
    kamailio: Kamailio, sip_probe: ProbeFactory, transport: str
) -> None:
    result = await sip_probe(make_cfg(f"sip:127.0.0.1:{kamailio.port}{transport}")).check()
    expect(result, "ok")
    assert result.detail.startswith("SIP/2.0 200"), explain(result)


@pytest.mark.parametrize("transport", ["", ";transport=tcp"], ids=["udp", "tcp"])
async def test_kamailio_presence_accepts_publish_and_refreshes(
    kamailio: Kamailio, sip_probe: ProbeFactory, transport: str
) -> None:
    cfg = make_cfg(f"sip:127.0.0.1:{kamailio.port}{transport}", method="PUBLISH", timeout=0.45)
    probe = sip_probe(cfg)
    etags = []
    for i in range(4):
        result = await probe.check()
        assert result.ok and result.detail.startswith("SIP/2.0 200"), (
            f"probe {i}: {explain(result)}"
        )
        etags.append(probe.etag)
    assert all(etags), f"expected an SIP-ETag every time, seen {etags}"
    assert dict(probe.publishes) == {"initial": 1, "refresh": 3}, dict(probe.publishes)


async def test_kamailio_restart_412_leads_to_a_new_initial_publish(
    kamailio: Kamailio, sip_probe: ProbeFactory
) -> None:
    cfg = make_cfg(f"sip:127.0.0.1:{kamailio.port}", method="PUBLISH", timeout=0.45)
    probe = sip_probe(cfg)
    expect(await probe.check(), "ok")
    kamailio.stop()
    await kamailio.start()  # in-memory presence: the publication is gone
    result = await probe.check()
    expect(result, "ok")
    assert dict(probe.publishes) == {"initial": 2, "refresh": 1, "412": 1}, dict(probe.publishes)
