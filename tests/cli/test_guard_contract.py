"""`breaker guard` as a consumer of the Redis contract alone: the verdict hash is written
by hand here, so the sidecar's death, Redis going away, a silent change (no event) and
the half_open share can be staged exactly."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from breaker.core import admitted
from testbed.redis import Redis
from testbed.waiting import wait_until
from tests.cli.harness import ROOT, breaker_cmd, gone, one_line, read_pids

HASH = "breaker:{presence}"
SLACK = 1.5
POLL = 1.0


def write_verdict(redis: Redis, state: str, admit: int) -> None:
    redis.cli(
        "HSET",
        HASH,
        "state",
        state,
        "admit",
        str(admit),
        "epoch",
        "1",
        "reason",
        "by hand",
        "retry_after",
        "5",
        "contract",
        "1",
    )


def env_for(redis: Redis) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "BREAKER_REDIS_URL": redis.url}


class Guarded:
    """A guard running a job that records its pid and then waits for ever."""

    def __init__(self, redis: Redis, workdir: Path, *args: str) -> None:
        self.out = workdir / "guard.out"
        self.pidfile = workdir / "pid"
        self.beats = workdir / "beats"
        script = (
            f"echo $$ > {self.pidfile}; while :; do date +%s.%N >> {self.beats}; sleep 0.1; done"
        )
        with self.out.open("wb") as sink:
            self.proc = subprocess.Popen(
                breaker_cmd("guard", "presence", *args, "--", "sh", "-c", script),
                env=env_for(redis),
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.job = read_pids(self.pidfile, 1)[0]

    def output(self) -> str:
        return self.out.read_text()

    def wait(self, within: float = 15) -> int:
        return self.proc.wait(within)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not gone(self.job):
            subprocess.run(["kill", "-9", str(self.job)], check=False)


StartGuard = Callable[..., Guarded]


@pytest.fixture
def start_guard(redis_server: Redis, tmp_path: Path) -> Iterator[StartGuard]:
    """Start a guard (with these options) on a closed breaker; stopped after the test."""
    made: list[Guarded] = []

    def start(*args: str) -> Guarded:
        write_verdict(redis_server, "closed", 100)
        made.append(Guarded(redis_server, tmp_path, *args))
        return made[-1]

    try:
        yield start
    finally:
        for g in made:
            g.close()


def test_silent_change_is_seen_by_the_poll_within_a_second(
    redis_server: Redis, start_guard: StartGuard
) -> None:
    """No event is published here: only the re-read at least every second can notice."""
    g = start_guard("--grace", "1s")
    write_verdict(redis_server, "open", 0)
    changed = time.monotonic()
    code = g.wait()
    took = time.monotonic() - changed
    assert code == 79, g.output()
    assert took < POLL + SLACK, f"expected a stop within one poll ({POLL}s), took {took:.1f}s"
    assert gone(g.job)


def test_verdict_vanishing_mid_run_stops_the_job_after_the_grace(
    redis_server: Redis, start_guard: StartGuard
) -> None:
    """The hash expires 2 s after the sidecar dies; then the state is unknown."""
    g = start_guard("--grace", "1s")
    redis_server.cli("DEL", HASH)
    deleted = time.monotonic()
    code = g.wait()
    took = time.monotonic() - deleted
    output = g.output()
    assert code == 80, f"expected 80 (stopped: state unknown), got {code}: {output}"
    assert 1.0 <= took < POLL + 1.0 + SLACK, f"unknown tolerated for the 1s grace, took {took:.1f}s"
    assert "no verdict in Redis at breaker:{presence}" in output
    assert "stopping in" in output, "the guard says when it will stop"
    assert gone(g.job)


def test_redis_going_away_mid_run_stops_the_job_after_the_grace(
    redis_server: Redis, start_guard: StartGuard
) -> None:
    g = start_guard("--grace", "1s")
    redis_server.stop()
    code = g.wait()
    assert code == 80, g.output()
    assert "Redis unreachable" in g.output()
    assert gone(g.job)


def test_on_unknown_run_keeps_the_job_running_without_a_verdict(
    redis_server: Redis, start_guard: StartGuard
) -> None:
    g = start_guard("--grace", "0.2s", "--on-unknown", "run")
    redis_server.cli("DEL", HASH)
    wait_until(lambda: "running anyway" in g.output(), 5, what="the guard to notice")
    noticed = time.monotonic()
    # The job's own heartbeats are the clock: it must keep beating well past grace + poll.
    wait_until(
        lambda: _last_beat(g.beats) > time.time() - 0.5 and time.monotonic() - noticed > 2.5,
        10,
        what="the job to keep running 2.5s after the state became unknown",
    )
    assert g.proc.poll() is None, f"--on-unknown run must not stop the job: {g.output()}"
    write_verdict(redis_server, "closed", 100)
    wait_until(lambda: "state known again" in g.output(), 5, what="the guard to see it back")


def _last_beat(path: Path) -> float:
    try:
        return float(path.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return 0.0


def test_lock_taken_over_by_another_holder_stops_the_job(
    redis_server: Redis, start_guard: StartGuard
) -> None:
    g = start_guard("--lock-ttl", "1.5s", "--lock", "jobs:vm-presence")
    assert redis_server.cli("EXISTS", "jobs:vm-presence") == "1", "--lock KEY is the key used"
    redis_server.cli("SET", "jobs:vm-presence", "someone-else", "PX", "60000")
    code = g.wait()
    assert code == 80, g.output()
    assert "lost the lock jobs:vm-presence to another instance" in g.output()
    assert redis_server.cli("GET", "jobs:vm-presence") == "someone-else", "not ours to release"


def _key(admit: int, inside: bool) -> str:
    return next(k for k in (f"job-{i}" for i in range(10_000)) if admitted(admit, k) is inside)


def test_half_open_runs_a_job_whose_key_is_admitted_and_refuses_the_rest(
    redis_server: Redis,
) -> None:
    write_verdict(redis_server, "half_open", 40)
    inside, outside = _key(40, True), _key(40, False)
    ran, refused = (
        subprocess.run(
            breaker_cmd("guard", "presence", "--key", key, "--", "sh", "-c", "exit 0"),
            env=env_for(redis_server),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
        for key in (inside, outside)
    )
    assert ran.returncode == 0, ran.stderr
    assert refused.returncode == 75
    line = one_line(refused.stderr)
    assert f"presence is half_open at 40% (by hand) and key '{outside}' is outside" in line, line


def _awaiting_accept(port: int) -> int:
    """Connections to the listening `port` that its (frozen) server has not accepted."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, _, state, queues = line.split()[:5]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
            return int(queues.split(":")[1], 16)
    return 0


def test_signal_while_waiting_for_redis_exits_128_plus_n_without_starting_the_job(
    redis_server: Redis, tmp_path: Path
) -> None:
    """Frozen Redis: the guard is stuck in its start-up reads when the signal comes."""
    write_verdict(redis_server, "closed", 100)
    marker = tmp_path / "ran"
    assert redis_server.proc is not None
    redis_server.proc.freeze()
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            guard = subprocess.Popen(
                breaker_cmd("guard", "presence", "--", "touch", str(marker)),
                env=env_for(redis_server),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                wait_until(
                    lambda: _awaiting_accept(redis_server.port) > 0,
                    10,
                    what="the guard to connect to the frozen Redis",
                )
                guard.send_signal(sig)
                signalled = time.monotonic()
                _, err = guard.communicate(timeout=10)
            finally:
                if guard.poll() is None:
                    guard.kill()
                    guard.wait()
            took = time.monotonic() - signalled
            name = signal.Signals(sig).name
            assert guard.returncode == 128 + sig, (
                f"expected exit {128 + sig} after {name}, got {guard.returncode}: {err}"
            )
            assert one_line(err) == f"breaker guard: {name} before the job started; not started"
            assert not marker.exists(), f"the job must not start after {name}"
            assert took < 2.5, f"the guard must give up the start-up at once, took {took:.1f}s"
            redis_server.proc.thaw()  # let the frozen connections go before the next round
            wait_until(
                lambda: _awaiting_accept(redis_server.port) == 0, 5, what="Redis to catch up"
            )
            redis_server.proc.freeze()
    finally:
        redis_server.proc.thaw()


def test_signal_the_moment_the_job_starts_is_forwarded_to_it(
    redis_server: Redis, tmp_path: Path
) -> None:
    """The job signals its guard as its very first act: the guard must already be
    listening, and pass the signal on, not die of it or drop it."""
    write_verdict(redis_server, "closed", 100)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        name = signal.Signals(sig).name[3:]
        script = f"kill -{name} $PPID; trap 'exit 3' {name}; while :; do sleep 0.05; done"
        done = subprocess.run(
            breaker_cmd("guard", "presence", "--no-lock", "--", "sh", "-c", script),
            env=env_for(redis_server),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
        # 3: the job's trap ran; 128 + N: the signal came before the trap was set
        assert done.returncode in (3, 128 + sig), (
            f"expected the job's own 3 or {128 + sig} after SIG{name}, got {done.returncode}: "
            f"{done.stderr}"
        )
