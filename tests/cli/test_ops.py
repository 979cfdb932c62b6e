"""status / check / force / release / history as an operator runs them, against a real sidecar."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from testbed.procs import free_port
from testbed.waiting import wait_until
from tests.cli.harness import (
    ALICE,
    OPERATE,
    ROOT,
    VIEWER,
    Stack,
    breaker_cmd,
    one_line,
    run_cli,
)

BOX = set("╭╮╰╯│─")


def history(sidecar: Stack, name: str, *extra: str) -> list[dict[str, object]]:
    done = run_cli(["history", name, "--json", *extra], sidecar.env())
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


# ---------------------------------------------------------------- status


def test_status_exits_0_when_all_closed_and_json_lists_every_breaker(sidecar: Stack) -> None:
    done = run_cli(["status", "--json"], sidecar.env())
    assert done.returncode == 0, f"all closed must exit 0: {done.stdout}{done.stderr}"
    data = json.loads(done.stdout)
    assert data["all_closed"] is True and data["redis_up"] is True
    assert [b["name"] for b in data["breakers"]] == ["mwi", "presence"]
    presence = data["breakers"][1]
    assert presence["state"] == "closed" and presence["admit"] == 100
    assert presence["forced"] is None
    assert presence["last_probe"]["ok"] is True and presence["last_probe"]["rtt_ms"] > 0


def test_status_exits_1_and_shows_the_force_when_a_breaker_is_not_closed(sidecar: Stack) -> None:
    sidecar.force("mwi", "open", ttl=600, reason="mwi upgrade")
    as_json = run_cli(["status", "--json"], sidecar.env())
    table = run_cli(["status"], sidecar.env())
    assert (as_json.returncode, table.returncode) == (1, 1), "some breaker open must exit 1"
    mwi = json.loads(as_json.stdout)["breakers"][0]
    assert mwi["state"] == "open" and mwi["admit"] == 0
    assert mwi["forced"]["by"] == "default" and mwi["forced"]["reason"] == "mwi upgrade"
    row = next(line for line in table.stdout.splitlines() if line.startswith("mwi"))
    assert "open (forced)" in row and "by default until" in row and "mwi upgrade" in row, row
    presence = next(line for line in table.stdout.splitlines() if line.startswith("presence"))
    assert "closed" in presence and "ok " in presence and " ms" in presence, presence


def test_status_of_one_breaker_judges_only_that_one(sidecar: Stack) -> None:
    sidecar.force("mwi", "open")
    done = run_cli(["status", "presence", "--json"], sidecar.env())
    assert done.returncode == 0, done.stdout
    assert [b["name"] for b in json.loads(done.stdout)["breakers"]] == ["presence"]


def test_status_of_an_unknown_breaker_is_one_line_exit_2(sidecar: Stack) -> None:
    done = run_cli(["status", "nope"], sidecar.env())
    assert done.returncode == 2 and done.stdout == ""
    assert one_line(done.stderr) == "breaker: unknown breaker 'nope'; known: mwi, presence"


def test_status_watch_redraws_on_the_event_not_the_poll(sidecar: Stack) -> None:
    """With --interval 60s only a breaker:events message can explain a prompt update."""
    out = sidecar.workdir / "watch.out"
    with out.open("w") as sink:
        watch = subprocess.Popen(
            breaker_cmd("status", "--watch", "--json", "--interval", "60s"),
            env=sidecar.env(),
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: '"all_closed": true' in out.read_text(), 10, what="first view")
        sidecar.force("presence", "open", reason="watch me")
        forced_at = time.monotonic()
        wait_until(lambda: '"all_closed": false' in out.read_text(), 5, what="redraw after force")
        took = time.monotonic() - forced_at
        watch.send_signal(signal.SIGINT)
        code = watch.wait(10)
    finally:
        watch.kill()
        watch.wait()
    assert took < 3, f"expected a redraw on the event within 3s, took {took:.1f}s"
    assert code == 1, f"Ctrl-C exits with the last view's code (1: not all closed), got {code}"
    last = json.loads(out.read_text().strip().splitlines()[-1])
    assert last["breakers"][1]["forced"]["reason"] == "watch me"


def test_status_watch_without_redis_polls_the_api(sidecar: Stack) -> None:
    out = sidecar.workdir / "poll.out"
    env = sidecar.env()
    del env["BREAKER_REDIS_URL"]
    with out.open("w") as sink:
        watch = subprocess.Popen(
            breaker_cmd("status", "mwi", "--watch", "--json", "--interval", "0.2s"),
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: '"all_closed": true' in out.read_text(), 10, what="first view")
        sidecar.force("mwi", "open")
        wait_until(lambda: '"all_closed": false' in out.read_text(), 5, what="polled redraw")
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(10) == 1
    finally:
        watch.kill()
        watch.wait()


# ---------------------------------------------------------------- check


def test_check_is_quiet_and_exits_0_when_closed_1_when_open(sidecar: Stack) -> None:
    closed = run_cli(["check", "presence", "--key", "sip:alice@example.net"], sidecar.env())
    sidecar.force("presence", "open", reason="drill")
    opened = run_cli(["check", "presence", "--key", "sip:alice@example.net"], sidecar.env())
    assert (closed.returncode, opened.returncode) == (0, 1)
    assert closed.stdout + closed.stderr + opened.stdout + opened.stderr == "", "quiet by default"


def test_check_verbose_prints_one_line_and_json_the_answer(sidecar: Stack) -> None:
    sidecar.force("presence", "open", reason="drill")
    verbose = run_cli(["check", "presence", "-v"], sidecar.env())
    as_json = run_cli(["check", "presence", "--json"], sidecar.env())
    assert verbose.returncode == 1 and as_json.returncode == 1
    assert one_line(verbose.stdout).startswith("presence: not allowed (open, retry after ")
    answer = json.loads(as_json.stdout)
    assert answer["allowed"] is False and answer["state"] == "open" and answer["admit"] == 0
    assert answer["retry_after"] >= 1
    closed = run_cli(["check", "mwi", "-v"], sidecar.env())
    assert closed.returncode == 0 and one_line(closed.stdout) == "mwi: allowed (closed)"


def test_check_exits_2_with_one_line_when_the_sidecar_is_unreachable(sidecar: Stack) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run_cli(["check", "presence", "--url", url], sidecar.env())
    assert done.returncode == 2 and done.stdout == ""
    line = one_line(done.stderr)
    assert line.startswith(f"breaker: cannot reach the sidecar at {url}: "), line
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- force / release / history


def test_force_release_history_round_trip_with_actor_and_reason(sidecar: Stack) -> None:
    token_file = sidecar.workdir / "alice.token"
    token_file.write_text(ALICE + "\n")
    forced = run_cli(
        [
            "force",
            "presence",
            "open",
            "--for",
            "30m",
            "--reason",
            "presence upgrade",
            "--token-file",
            str(token_file),
        ],
        sidecar.env(),
    )
    assert forced.returncode == 0, forced.stderr
    said = forced.stdout.splitlines()[0]
    assert said.startswith("presence forced open by alice until "), said
    assert said.endswith("(in 30m): presence upgrade") or "(in 29m" in said, said
    assert sidecar.state("presence") == "open"
    assert sidecar.hash_field("presence", "forced_by") == "alice"

    released = run_cli(["release", "presence", "--token", ALICE], sidecar.env())
    assert released.returncode == 0, released.stderr
    assert one_line(released.stdout).startswith("presence released (was forced open by alice)")
    assert sidecar.state("presence") == "closed"

    events = [
        e for e in history(sidecar, "presence", "--since", "1h") if e["event"] != "transition"
    ]
    assert [(e["event"], e["actor"]) for e in events[-2:]] == [
        ("force", "alice"),
        ("release", "alice"),
    ]
    force = events[-2]
    assert force["reason"] == "presence upgrade" and force["forced"] == "open"
    assert 1799 <= float(str(force["ttl"])) <= 1800, force
    table = run_cli(["history", "presence"], sidecar.env())
    assert table.returncode == 0
    forces = [line for line in table.stdout.splitlines() if line.split()[3:4] == ["force"]]
    row = forces[-1]  # oldest first: the last force is ours
    assert "alice" in row and "presence upgrade" in row and "for 30m" in row, row


def test_force_expiry_is_recorded_with_the_sidecar_as_actor(sidecar: Stack) -> None:
    forced = run_cli(
        ["force", "mwi", "closed", "--for", "1s", "--reason", "short drill"],
        sidecar.env(BREAKER_API_TOKEN=OPERATE),
    )
    assert forced.returncode == 0, forced.stderr
    wait_until(
        lambda: any(e["event"] == "expire" for e in history(sidecar, "mwi", "--since", "1m")),
        5,
        what="an expire event in the history",
    )
    events = [e for e in history(sidecar, "mwi", "--since", "1m") if e["event"] != "transition"]
    force, expire = events[-2], events[-1]
    assert (force["event"], force["actor"], force["reason"]) == ("force", "default", "short drill")
    assert (expire["event"], expire["actor"]) == ("expire", "sidecar")
    assert float(str(expire["at"])) >= float(str(force["until"])) - 0.01


def test_force_without_a_reason_is_refused_in_one_line(sidecar: Stack) -> None:
    env = sidecar.env(BREAKER_API_TOKEN=OPERATE)
    missing = run_cli(["force", "presence", "open", "--for", "30m"], env)
    blank = run_cli(["force", "presence", "open", "--for", "30m", "--reason", "  "], env)
    assert (missing.returncode, blank.returncode) == (2, 2)
    assert "Missing option '--reason'" in one_line(missing.stderr)
    assert "'--reason'" in one_line(blank.stderr) and "must not be empty" in blank.stderr
    assert sidecar.state("presence") == "closed", "a refused force must change nothing"


def test_bad_duration_is_one_line_naming_the_option(sidecar: Stack) -> None:
    done = run_cli(
        ["force", "presence", "open", "--for", "5x", "--reason", "x"],
        sidecar.env(BREAKER_API_TOKEN=OPERATE),
    )
    assert done.returncode == 2 and done.stdout == ""
    line = one_line(done.stderr)
    assert line.startswith("breaker: Invalid value for '--for': '5x' is not a duration"), line
    assert not BOX & set(done.stderr), "usage errors are plain lines, not rich boxes"


def test_read_token_gets_403_in_one_line_without_the_token(sidecar: Stack) -> None:
    done = run_cli(
        ["force", "presence", "open", "--for", "1m", "--reason", "x", "--token", VIEWER],
        sidecar.env(),
    )
    assert done.returncode == 2 and done.stdout == ""
    line = one_line(done.stderr)
    assert line == "breaker: 403 forbidden: token 'viewer' has role read; operate is needed"
    assert VIEWER not in done.stderr
    assert sidecar.state("presence") == "closed"


def test_wrong_or_missing_token_is_401_in_one_line(sidecar: Stack) -> None:
    wrong = run_cli(["release", "presence"], sidecar.env(BREAKER_API_TOKEN="not-a-real-token-xyz"))
    missing = run_cli(["release", "presence"], sidecar.env())
    for done in (wrong, missing):
        assert done.returncode == 2
        line = one_line(done.stderr)
        assert line.startswith("breaker: 401 unauthorized: "), line
        assert "BREAKER_API_TOKEN" in line
    assert "not-a-real-token-xyz" not in wrong.stderr


def test_unknown_breaker_and_unreachable_sidecar_are_one_line(sidecar: Stack) -> None:
    env = sidecar.env(BREAKER_API_TOKEN=OPERATE)
    unknown = run_cli(["force", "nope", "open", "--for", "1m", "--reason", "x"], env)
    assert unknown.returncode == 2
    assert one_line(unknown.stderr) == "breaker: unknown breaker 'nope'; known: mwi, presence"
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["status"], ["history", "presence"], ["release", "presence"]):
        done = run_cli([*args, "--url", url], env)
        assert done.returncode == 2, args
        assert one_line(done.stderr).startswith(f"breaker: cannot reach the sidecar at {url}")
        assert OPERATE not in done.stderr


def test_usage_errors_are_one_plain_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    for args, expected in (
        (["status", "--bogus"], "breaker: No such option: --bogus"),
        (["nope"], "breaker: No such command 'nope'."),
        (["force", "presence", "sideways", "--for", "1m", "--reason", "x"], "'sideways'"),
        (["history", "presence", "--since", "yesterday"], "Invalid value for '--since'"),
    ):
        done = run_cli(args, env)
        assert done.returncode == 2, args
        assert expected in one_line(done.stderr), done.stderr
        assert not BOX & set(done.stderr), done.stderr
