"""Lock-up to pager, with real parts: stand-ins, sidecar, Kamailio proxy, Prometheus,
Alertmanager and a webhook receiver, all on loopback.

Prometheus runs the shipped rules with only `for:` shortened to 0s, scraping every second.
One set of processes serves the whole module (it has to fit the suite's time budget), so
the tests run in file order: scrape, lock-up, guard, dashboard, and last the sidecar kill.
Printed numbers (pytest -s) are the measurements quoted in docs/metrics.md.
BREAKER_E2E_FOR=shipped keeps the shipped `for:` (minutes: a measurement, not a test run):

    BREAKER_E2E_FOR=shipped pytest -s --timeout 600 tests/alerts/test_alerting_e2e.py \
        -k "scrapes or frozen or killed"
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from testbed.procs import free_port
from testbed.redis import Redis
from testbed.waiting import wait_until
from tests.cli.harness import Standin
from tests.kamailio.harness import Kamailio
from tests.kamailio.sip import SipClient
from tests.support.fleet import FleetSidecar, sip_target
from tests.support.kamailio_metrics import metrics_proxy
from tests.support.monitoring import Alertmanager, Prometheus, Webhook, shorten_for
from tests.support.sidecar import TOKEN

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "breaker.rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "breaker-dashboard.json"
SHIPPED_FOR = os.environ.get("BREAKER_E2E_FOR") == "shipped"
# scrape 1 s + evaluation 1 s + group_wait 1 s, on a loaded 2-core box (+ the longest `for:`)
ALERT_WAIT = 30.0 + (300.0 if SHIPPED_FOR else 0.0)


@dataclass
class Stack:
    redis: Redis
    presence: Standin
    blf: Standin
    sidecar: FleetSidecar
    proxy: Kamailio
    metrics_port: int
    webhook: Webhook
    alertmanager: Alertmanager
    prometheus: Prometheus


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("alerting")
    stops: list[object] = []
    try:
        redis = Redis(work / "redis").start()
        stops.append(redis)
        presence = Standin(work, "presence")
        stops.append(presence.proc)
        blf = Standin(work, "blf")
        stops.append(blf.proc)
        targets = {"presence": sip_target(presence.port), "blf": sip_target(blf.port)}
        sidecar = FleetSidecar(work / "sidecar", redis.url, targets).start()
        stops.append(sidecar)
        metrics_port = free_port()
        proxy = metrics_proxy(work / "proxy", presence.port, redis.port, metrics_port).start()
        stops.append(proxy)
        webhook = Webhook().start()
        stops.append(webhook)
        alertmanager = Alertmanager(work / "alertmanager", webhook.url).start()
        stops.append(alertmanager)
        rules = RULES if SHIPPED_FOR else shorten_for(RULES, work / "rules.yml", "0s")
        prometheus = Prometheus(
            work / "prometheus",
            {
                "breaker": [f"127.0.0.1:{sidecar.port}"],
                "kamailio": [f"127.0.0.1:{metrics_port}"],
            },
            rules,
            alertmanager.address,
        ).start()
        stops.append(prometheus)
        yield Stack(
            redis,
            presence,
            blf,
            sidecar,
            proxy,
            metrics_port,
            webhook,
            alertmanager,
            prometheus,
        )
    finally:
        for part in reversed(stops):
            part.stop()  # type: ignore[attr-defined]


def test_prometheus_scrapes_the_sidecar_and_the_proxy(stack: Stack) -> None:
    for job in ("breaker", "kamailio"):
        wait_until(lambda: stack.prometheus.targets_up(job), 20, what=f"{job} up")
    wait_until(
        lambda: stack.prometheus.query('breaker_state{name="presence",state="closed"} == 1'),
        10,
        what="presence closed in Prometheus",
    )


def test_frozen_server_delivers_the_open_alert_naming_the_breaker(stack: Stack) -> None:
    frozen_at = time.monotonic()
    stack.presence.freeze()
    try:
        found = wait_until(
            lambda: stack.webhook.firing("BreakerOpen", after=frozen_at, breaker="presence"),
            ALERT_WAIT,
            what="BreakerOpen{breaker=presence} at the webhook",
        )
        # while open, the proxy answers locally: the dashboard's 503/s panel has data
        with SipClient(stack.proxy.address) as client:
            got = client.send_all([client.mwi_publish(f"mbox{i}") for i in range(20)])
        codes = {r.code for r in got.values()}
    finally:
        stack.presence.resume()
    delay = found.at - frozen_at
    print(f"\nlock-up -> BreakerOpen at the webhook (shipped for: {SHIPPED_FOR}): {delay:.2f} s")
    assert found.alert["labels"]["severity"] == "page", found.alert
    assert found.alert["annotations"]["runbook_url"] == "docs/runbook.md#breakeropen"
    assert not stack.webhook.firing("BreakerOpen", breaker="blf"), "blf never opened"
    assert codes <= {503}, f"expected local 503s from the proxy while open, got {codes}"


def test_refused_guard_run_delivers_the_guard_alert(stack: Stack) -> None:
    force = httpx.put(
        f"{stack.sidecar.url}/v1/breakers/blf/force",
        json={"state": "open", "ttl": 120, "reason": "e2e guard test"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=2,
    )
    assert force.status_code == 200, force.text
    wait_until(
        lambda: stack.redis.cli("HGET", "breaker:{blf}", "state") == "open", 5, what="blf open"
    )
    started = time.monotonic()
    job = subprocess.run(
        [sys.executable, "-m", "breaker", "guard", "blf", "--", "true"],
        env={"BREAKER_REDIS_URL": stack.redis.url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert job.returncode == 75, f"expected exit 75 (refused: open), got {job.returncode}"
    found = wait_until(
        lambda: stack.webhook.firing(
            "BreakerGuardRefusing", after=started, breaker="blf", outcome="refused_open"
        ),
        ALERT_WAIT,
        what="BreakerGuardRefusing{breaker=blf,outcome=refused_open} at the webhook",
    )
    print(f"\nrefused guard run -> BreakerGuardRefusing at the webhook: {found.at - started:.2f} s")
    httpx.delete(
        f"{stack.sidecar.url}/v1/breakers/blf/force",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=2,
    )


def panel_queries() -> list[tuple[str, str]]:
    """(where, expr) for every panel target and annotation, Grafana variables substituted."""
    dashboard = json.loads(DASHBOARD.read_text())

    def substitute(expr: str) -> str:
        return expr.replace("$__rate_interval", "1m").replace("$breaker", "presence|blf")

    queries = [
        (f"panel {p['title']!r} {t['refId']}", substitute(t["expr"]))
        for p in dashboard["panels"]
        for t in p["targets"]
    ]
    for a in dashboard["annotations"]["list"]:
        queries.append((f"annotation {a['name']!r}", substitute(a["expr"])))
    return queries


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    """Runs after the tests above on the same stack: their freeze and force give the
    failure and annotation panels their data."""
    with SipClient(stack.proxy.address) as client:  # forwarded/s needs forwarded requests
        client.send_all([client.mwi_publish(f"mbox{i}") for i in range(20)])
    names: set[str] = set()

    def both_breakers_scraped() -> bool:
        variable = stack.prometheus.query("group by (name) (breaker_state)")
        names.update(s["metric"]["name"] for s in variable)
        return names == {"presence", "blf"}

    try:
        wait_until(both_breakers_scraped, 15, interval=0.5, what="the breaker variable")
    except AssertionError:
        raise AssertionError(f"breaker variable: expected presence and blf, {names}") from None
    empty: list[str] = []

    def all_have_data() -> bool:
        empty.clear()
        for where, expr in panel_queries():
            # annotations mark past forces: look back over the test's two minutes
            found = (
                stack.prometheus.query_range(expr, 120)
                if where.startswith("annotation")
                else stack.prometheus.query(expr)
            )
            if not found:
                empty.append(f"{where}: {expr}")
        return not empty

    try:
        wait_until(all_have_data, 15, interval=0.5, what="every dashboard query to return data")
    except AssertionError:
        raise AssertionError(f"expected data from every dashboard query; empty: {empty}") from None


def test_killed_sidecar_delivers_the_sidecar_down_alert(stack: Stack) -> None:
    assert stack.sidecar.proc is not None
    killed_at = time.monotonic()
    stack.sidecar.proc.signal(signal.SIGKILL)
    down = wait_until(
        lambda: stack.webhook.firing("BreakerSidecarDown", after=killed_at),
        ALERT_WAIT,
        what="BreakerSidecarDown at the webhook",
    )
    print(f"\nsidecar killed -> BreakerSidecarDown at the webhook: {down.at - killed_at:.2f} s")
    # the verdict hash expires (state TTL 2 s) and the proxy falls back: that pages too
    fallback = wait_until(
        lambda: stack.webhook.firing(
            "KamailioBreakerFallback", after=killed_at, breaker="presence"
        ),
        ALERT_WAIT,
        what="KamailioBreakerFallback at the webhook",
    )
    print(
        f"sidecar killed -> KamailioBreakerFallback at the webhook: {fallback.at - killed_at:.2f} s"
    )
    assert down.alert["labels"]["instance"] == f"127.0.0.1:{stack.sidecar.port}", down.alert
