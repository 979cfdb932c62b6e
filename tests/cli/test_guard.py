"""`breaker guard` against a real sidecar: refuse while open, one instance, stop on open."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from testbed.waiting import wait_until
from tests.cli.harness import (
    INTERVAL,
    ROOT,
    Stack,
    breaker_cmd,
    gone,
    one_line,
    read_pids,
    run_cli,
)

SLACK = 1.5  # seconds: CLI start-up and a busy 2-core box
POLL = 1.0  # the guard's default re-read period


def start_guard(sidecar: Stack, out: Path, *args: str) -> subprocess.Popen[bytes]:
    sink = out.open("wb")
    try:
        return subprocess.Popen(
            breaker_cmd("guard", *args),
            env=sidecar.env(),
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    finally:
        sink.close()


def finish(proc: subprocess.Popen[bytes], within: float = 15) -> int:
    try:
        return proc.wait(within)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def kill_all(pids: list[int]) -> None:
    """SIGKILL the job's processes that are still there; never a pid already gone (this
    box's pid_max is 32768: a gone pid may soon be another test's process)."""
    for pid in pids:
        if not gone(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_guard_refuses_to_start_while_the_breaker_is_forced_open(
    sidecar: Stack, tmp_path: Path
) -> None:
    sidecar.force("presence", "open", reason="presence upgrade")
    marker = tmp_path / "ran"
    done = run_cli(["guard", "presence", "--", "touch", str(marker)], sidecar.env())
    assert done.returncode == 75, f"expected 75 (EX_TEMPFAIL), got {done.returncode}"
    assert not marker.exists(), "the job must not have started"
    line = one_line(done.stderr)
    assert line.startswith("breaker guard: presence is open (forced: presence upgrade)"), line
    assert line.endswith("; not started"), line
    quiet = run_cli(["guard", "presence", "-q", "--", "touch", str(marker)], sidecar.env())
    assert (quiet.returncode, quiet.stderr) == (75, ""), "--quiet drops the routine line"


def test_guard_passes_the_exit_code_and_stdio_through(sidecar: Stack) -> None:
    done = subprocess.run(
        breaker_cmd(
            "guard", "presence", "--", "sh", "-c", 'read x; echo "got $x"; echo oops >&2; exit 7'
        ),
        env=sidecar.env(),
        cwd=ROOT,
        input="hello\n",
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 7, f"the job's exit code, got {done.returncode}: {done.stderr}"
    assert done.stdout == "got hello\n" and done.stderr == "oops\n"


def test_two_guards_on_one_lock_run_one_job(sidecar: Stack, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    job = ["--", "sh", "-c", f"echo $$ > {pidfile}; sleep 300"]
    first = start_guard(sidecar, tmp_path / "first.out", "presence", *job)
    pids: list[int] = []
    try:
        pids = read_pids(pidfile, 1)
        started = time.monotonic()
        second = run_cli(["guard", "presence", *job], sidecar.env())
        took = time.monotonic() - started
        assert second.returncode == 73, f"expected 73 (lock held), got {second.returncode}"
        assert took < 5, f"the second guard must exit at once, took {took:.1f}s"
        line = one_line(second.stderr)
        assert "another instance holds the lock breaker:{presence}:guard:sh" in line, line
        assert read_pids(pidfile, 1) == pids, "the second guard must not have run its job"
        first.send_signal(signal.SIGTERM)  # forwarded to the job
        assert finish(first) == 143, "a job ended by the forwarded SIGTERM exits 128 + 15"
        wait_until(lambda: gone(pids[0]), 5, what="the first job to be gone")
        assert sidecar.redis.cli("EXISTS", "breaker:{presence}:guard:sh") == "0", "lock released"
    finally:
        finish(first, 0.1) if first.poll() is None else None
        kill_all(pids)


def test_breaker_opening_mid_run_stops_the_job_and_its_children(
    sidecar: Stack, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    script = (
        f"sleep 300 & echo $! >> {pidfile}; sleep 300 & echo $! >> {pidfile}; "
        f"echo $$ >> {pidfile}; wait"
    )
    guard = start_guard(
        sidecar, tmp_path / "guard.out", "presence", "--grace", "2s", "--", "sh", "-c", script
    )
    pids: list[int] = []
    try:
        pids = read_pids(pidfile, 3)
        assert not any(gone(p) for p in pids)
        sidecar.force("presence", "open", reason="stop the batch")
        opened = time.monotonic()
        code = finish(guard)
        took = time.monotonic() - opened
        wait_until(lambda: all(gone(p) for p in pids), 5, what=f"all of {pids} gone")
    finally:
        kill_all(pids)
    output = (tmp_path / "guard.out").read_text()
    assert code == 79, f"expected 79 (stopped: breaker opened), got {code}: {output}"
    bound = POLL + 2.0  # one re-read, then the grace period
    assert took < bound + SLACK, (
        f"expected the job stopped within {bound}s (+slack), took {took:.1f}s"
    )
    assert "presence is open (forced: stop the batch)" in output and "SIGTERM now" in output


def test_frozen_presence_server_stops_a_running_job(sidecar: Stack, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    guard = start_guard(
        sidecar,
        tmp_path / "guard.out",
        "mwi",
        "--grace",
        "1s",
        "--",
        "sh",
        "-c",
        f"echo $$ > {pidfile}; exec sleep 300",
    )
    pids: list[int] = []
    try:
        pids = read_pids(pidfile, 1)
        sidecar.standins["mwi"].freeze()
        frozen = time.monotonic()
        code = finish(guard)
        took = time.monotonic() - frozen
    finally:
        kill_all(pids)
    output = (tmp_path / "guard.out").read_text()
    assert code == 79, f"expected 79, got {code}: {output}"
    detection = 2 * INTERVAL + 0.1  # fall x interval + timeout
    bound = detection + POLL + 1.0
    assert took < bound + SLACK, f"expected stopped within {bound:.1f}s (+slack), took {took:.1f}s"
    assert "mwi is open (timeout)" in output, output
    assert gone(pids[0])


def test_job_ignoring_sigterm_is_killed_after_the_grace(sidecar: Stack, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    script = f"trap '' TERM; sleep 300 & echo $! >> {pidfile}; echo $$ >> {pidfile}; wait"
    guard = start_guard(
        sidecar, tmp_path / "guard.out", "presence", "--grace", "1s", "--", "sh", "-c", script
    )
    pids: list[int] = []
    try:
        pids = read_pids(pidfile, 2)
        sidecar.force("presence", "open")
        opened = time.monotonic()
        code = finish(guard)
        took = time.monotonic() - opened
        wait_until(lambda: all(gone(p) for p in pids), 5, what="SIGKILLed job gone")
    finally:
        kill_all(pids)
    assert code == 79
    assert 1.0 <= took < POLL + 1.0 + SLACK, f"SIGKILL after the 1s grace, took {took:.1f}s"


def test_sigkilled_guard_lock_expires_by_itself(sidecar: Stack, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    job = ["--lock-ttl", "2s", "--", "sh", "-c", f"echo $$ > {pidfile}; exec sleep 300"]
    first = start_guard(sidecar, tmp_path / "first.out", "presence", *job)
    pids: list[int] = []
    try:
        pids = read_pids(pidfile, 1)
        first.send_signal(signal.SIGKILL)  # the guard only: no chance to release anything
        first.wait(5)
        killed = time.monotonic()
        assert run_cli(["guard", "presence", *job], sidecar.env()).returncode == 73
        wait_until(lambda: gone(pids[0]), 5, what="the orphaned job killed with its guard")
        wait_until(
            lambda: sidecar.redis.cli("EXISTS", "breaker:{presence}:guard:sh") == "0",
            5,
            what="the lock to expire",
        )
        expired = time.monotonic() - killed
        assert expired <= 2.0 + SLACK, f"lock TTL is 2s, it lived {expired:.1f}s"
        again = run_cli(
            ["guard", "presence", "--lock-ttl", "2s", "--", "sh", "-c", "exit 0"], sidecar.env()
        )
        assert again.returncode == 0, again.stderr
    finally:
        kill_all(pids)


def test_sigint_and_sigterm_are_forwarded_to_the_job(sidecar: Stack, tmp_path: Path) -> None:
    for sig, name in ((signal.SIGINT, "INT"), (signal.SIGTERM, "TERM")):
        ready = tmp_path / f"ready-{name}"
        script = (
            f"trap 'echo got {name}; exit 3' {name}; touch {ready}; while :; do sleep 0.05; done"
        )
        guard = start_guard(
            sidecar, tmp_path / f"{name}.out", "presence", "--no-lock", "--", "sh", "-c", script
        )
        wait_until(ready.exists, 10, what=f"job ready for SIG{name}")
        guard.send_signal(sig)
        assert finish(guard) == 3, f"the job's own exit code after SIG{name}"
        assert f"got {name}" in (tmp_path / f"{name}.out").read_text()


def test_unreachable_redis_refuses_with_69_without_starting(sidecar: Stack, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    env = sidecar.env(BREAKER_REDIS_URL="redis://127.0.0.1:1/0")
    done = run_cli(["guard", "presence", "--", "touch", str(marker)], env)
    assert done.returncode == 69, f"expected 69 (state unknown), got {done.returncode}"
    assert not marker.exists()
    line = one_line(done.stderr)
    assert "state of presence unknown (Redis unreachable" in line and "not started" in line, line


def test_unreachable_redis_with_on_unknown_run_starts_the_job(
    sidecar: Stack, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    env = sidecar.env(BREAKER_REDIS_URL="redis://127.0.0.1:1/0")
    done = run_cli(["guard", "presence", "--on-unknown", "run", "--", "touch", str(marker)], env)
    assert done.returncode == 0, done.stderr
    assert marker.exists(), "--on-unknown run starts the job"
    assert "running anyway (--on-unknown run)" in done.stderr


def test_breaker_without_a_verdict_is_unknown(sidecar: Stack, tmp_path: Path) -> None:
    """No hash in Redis is what a dead sidecar looks like once the hash's TTL ran out."""
    marker = tmp_path / "ran"
    refused = run_cli(["guard", "ghost", "--", "touch", str(marker)], sidecar.env())
    assert refused.returncode == 69 and not marker.exists()
    assert "no verdict in Redis at breaker:{ghost}" in one_line(refused.stderr)
    ran = run_cli(
        ["guard", "ghost", "--on-unknown", "run", "--", "touch", str(marker)], sidecar.env()
    )
    assert ran.returncode == 0 and marker.exists()


def test_missing_command_is_127_and_usage_errors_are_one_line(sidecar: Stack) -> None:
    missing = run_cli(["guard", "presence", "--", "no-such-command-here"], sidecar.env())
    assert missing.returncode == 127
    assert (
        one_line(missing.stderr)
        == "breaker guard: cannot run 'no-such-command-here': command not found"
    )
    for args, expected in (
        (["guard", "presence"], "Missing argument"),
        (["guard", "presence", "--grace", "soon", "--", "true"], "Invalid value for '--grace'"),
        (["guard", "presence", "--on-unknown", "maybe", "--", "true"], "'--on-unknown'"),
        (["guard", "presence", "--poll", "5s", "--", "true"], "'--poll'"),
    ):
        done = run_cli(args, sidecar.env())
        assert done.returncode == 2, (args, done.stderr)
        assert expected in one_line(done.stderr), done.stderr
