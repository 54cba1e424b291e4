"""Visible while it works (issue 13): the live panel on a terminal, heartbeat lines in a
log, and `bisect-qemu status` from another shell, all fed by the run's status file.

No assertion here is about time: the slow builds and trials only leave the heartbeat
room to speak, and each check counts lines or looks for text once the run has ended.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import flaky_args

from bisect_driver.app.live import render
from bisect_driver.build.logtail import last_target
from bisect_driver.plugin.errors import EXIT_FOUND, EXIT_INTERRUPTED
from bisect_driver.progress import HEARTBEAT_ENV, Heartbeat, activity_line
from bisect_driver.store.runstatus import (
    BUILDING,
    TRIALS,
    RunStatus,
    StatusFile,
    VerdictLine,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")


def plain(text: str) -> str:
    """Terminal output without its escape sequences."""
    return ANSI.sub("", text).replace("\r", "\n")


def with_build_cmd(args: list[str], cmd: str) -> list[str]:
    args = list(args)
    args[args.index("--build-cmd") + 1] = cmd
    return args


def with_probe_cmd(args: list[str], cmd: str) -> list[str]:
    args = list(args)
    args[args.index("--probe-cmd") + 1] = cmd
    return args


def wait_for(cond, timeout: float = 300.0) -> None:
    """Poll until ``cond()`` holds (a generous bound, not a timing assertion)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def run_dir(cache: Path) -> Path:
    runs = [p for p in (cache / "runs").iterdir() if p.name != "adhoc"]
    assert len(runs) == 1, runs
    return runs[0]


# --- the parts, without a run -------------------------------------------------------


def test_last_target_reads_the_shapes_of_build_output(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("=== configure: ./configure\nok\n")
    assert last_target(log) == "configure"
    log.write_text("  GEN   config-host.h\n  CC    block/qcow2.o\nsome warning\n")
    assert last_target(log) == "block/qcow2.o"
    log.write_text("cc -O2 -c -o util/cutils.o util/cutils.c\n")
    assert last_target(log) == "util/cutils.o"
    log.write_text("[12/340] Compiling C object libqemu.a.p/block_qcow2.c.o\n")
    assert last_target(log) == "libqemu.a.p/block_qcow2.c.o"
    # a recipe that streams its running step into <log>.step (the QEMU recipe)
    log.with_name("build.log.step").write_text("  LINK  qemu-img\n")
    assert last_target(log) == "qemu-img"
    assert last_target(tmp_path / "missing.log") is None
    assert last_target(None) is None


def test_status_file_keeps_fields_and_survives_garbage(tmp_path: Path) -> None:
    status = StatusFile(tmp_path / "run" / "status.json")
    assert status.read() is None
    status.start(RunStatus(run_id="r1", pid=os.getpid(), started=1.0, title="a..b"))
    status.update(commit="c" * 40, doing=BUILDING, doing_since=2.0)
    for i in range(12):
        status.add_verdict(VerdictLine(float(i), f"{i:040x}", "clean", 0, 6))
    st = status.read()
    assert st is not None
    assert (st.run_id, st.title, st.commit, st.doing) == ("r1", "a..b", "c" * 40, BUILDING)
    assert len(st.verdicts) == 8 and st.verdicts[-1].commit == f"{11:040x}"
    assert not list(status.path.parent.glob(".status-*"))  # no temporary file left
    status.path.write_text("{not json")
    assert status.read() is None
    status.update(phase="bisecting")  # a broken file is replaced, never a crash
    assert status.read() is not None


def test_activity_line_and_panel_say_what_runs(tmp_path: Path) -> None:
    log = tmp_path / "build-1.log"
    log.write_text("  CC    block/qcow2.o\n")
    now = 1000.0
    building = RunStatus(
        run_id="abcdef123456",
        started=now - 300,
        updated=now,
        commit="1c8a881daaca" + "0" * 28,
        doing=BUILDING,
        doing_since=now - 130,
        build_log=str(log),
        steps_done=3,
        steps_left=5,
        eta_at=now + 600,
        title="v1.0..v1.1.0 (2713 commits), fix hunt",
        phase="bisecting",
        verdicts=(VerdictLine(now - 10, "9" * 40, "bug", 1, 2, "decided"),),
    )
    assert (
        activity_line(building, now)
        == "still building 1c8a881daaca: 2m10s, last target block/qcow2.o"
    )
    trials = RunStatus(
        commit="1c8a881daaca" + "0" * 28,
        doing=TRIALS,
        doing_since=now - 40,
        trials_done=6,
        reproduced=2,
        other=0,
    )
    assert activity_line(trials, now) == (
        "trials on 1c8a881daaca: 6 done, 2 reproduced, 0 other failures"
    )
    from rich.console import Console

    console = Console(record=True, width=100)
    console.print(render(building, now))
    screen = console.export_text()
    assert "3 of ~8" in screen and "ETA 10m00s" in screen
    assert "building 1c8a881daaca: 2m10s, last target block/qcow2.o" in screen
    assert "999999999999 bug 1/2 reproduced" in screen
    assert "v1.0..v1.1.0" in screen


def test_heartbeat_speaks_only_while_something_runs(tmp_path: Path) -> None:
    status = StatusFile(tmp_path / "status.json")
    status.start(RunStatus(commit="a" * 40, doing="built", doing_since=time.time()))
    said: list[str] = []
    with Heartbeat(said.append, status.read, interval=0.2):
        time.sleep(0.5)  # not busy: nothing to say
        quiet = list(said)
        status.update(doing=TRIALS, doing_since=time.time(), trials_done=4, reproduced=1)
        wait_for(lambda: len(said) >= 2, timeout=60)
    assert quiet == []
    assert said[0].startswith("trials on aaaaaaaaaaaa: 4 done, 1 reproduced")


# --- whole runs on generated projects -----------------------------------------------


def read_pty(master: int, proc: subprocess.Popen) -> bytes:
    """Everything the child writes to the terminal, until it exits."""
    out = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
        elif proc.poll() is not None:
            break
    return bytes(out)


@pytest.mark.slow
def test_live_view_on_a_terminal(make_flaky, tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: the panel is drawn (steps, commit, trials, verdicts)
    and the steps' event lines, which come from a subprocess, print above it."""
    repo = make_flaky(commits=8, change_at=4, rate=0.5)
    cache = tmp_path / "cache"
    args = flaky_args(repo, cache)
    # the ends' first batch is slow, so that the panel shows trials running
    ends = f"{repo.old}|{repo.new}"
    args = with_probe_cmd(
        args,
        f"case $BISECT_COMMIT in {ends}) [ $BISECT_TRIAL -lt 2 ] && sleep 2;; esac; ./probe.sh",
    )
    master, slave = os.openpty()
    env = dict(os.environ, COLUMNS="110", LINES="40", TERM="xterm-256color")
    env.pop(HEARTBEAT_ENV, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bisect_driver", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    try:
        raw = read_pty(master, proc)
        stdout = proc.stdout.read().decode() if proc.stdout else ""
        assert proc.wait(timeout=600) == EXIT_FOUND, plain(raw.decode(errors="replace"))[-3000:]
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert stdout.strip() == repo.answer  # stdout stays the answer alone
    screen = plain(raw.decode(errors="replace"))
    assert "\x1b[" in raw.decode(errors="replace")  # drawn in place, not plain lines
    assert re.search(r"╭─ bisect-qemu [0-9a-f]{12} running", screen)
    assert re.search(r"╭─ bisect-qemu [0-9a-f]{12} done", screen)  # the final panel
    assert re.search(r"steps\s+\d+ of ~\d+", screen)
    assert re.search(r"now\s+trials on [0-9a-f]{12}: \d+ done, \d+ reproduced, \d+ other", screen)
    assert re.search(
        r"verdicts\s+\d\d:\d\d:\d\d [0-9a-f]{12} (bug|clean) \d+/\d+ reproduced", screen
    )
    assert f"done: {repo.answer[:12]}" in screen
    # a step subprocess's line, piped and printed above the panel
    assert re.search(r"\d\d:\d\d:\d\d step [0-9a-f]{12}: judging", screen)
    assert "still building" not in screen  # heartbeats are for logs; the panel is live


@pytest.mark.slow
def test_heartbeat_lines_in_a_log(make_flaky, tmp_path: Path) -> None:
    """stderr to a file: a heartbeat at least every $BISECT_QEMU_HEARTBEAT seconds during
    a slow build (in a step subprocess) and a slow batch of trials (at the ends)."""
    repo = make_flaky(commits=6, change_at=3, rate=0.5)
    cache = tmp_path / "cache"
    ends = f"{repo.old}|{repo.new}"
    args = flaky_args(repo, cache)
    args = with_build_cmd(args, f"case $BISECT_COMMIT in {ends}) ;; *) sleep 4;; esac; make -s")
    args = with_probe_cmd(
        args,
        f"case $BISECT_COMMIT in {ends}) [ $BISECT_TRIAL -lt 2 ] && sleep 4;; esac; ./probe.sh",
    )
    log = tmp_path / "night.log"
    with open(log, "w") as err:
        done = subprocess.run(
            [sys.executable, "-m", "bisect_driver", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=dict(os.environ, **{HEARTBEAT_ENV: "1"}),
            timeout=600,
        )
    text = log.read_text()
    assert done.returncode == EXIT_FOUND, text[-3000:]
    assert "\x1b[" not in text  # a log gets plain lines
    builds = re.findall(r"^\d\d:\d\d:\d\d still building ([0-9a-f]{12}): ", text, re.M)
    step_builds = [sha for sha in builds if sha not in (repo.old[:12], repo.new[:12])]
    assert step_builds, text
    assert max(step_builds.count(sha) for sha in set(step_builds)) >= 2, text
    trials = re.findall(
        r"^\d\d:\d\d:\d\d trials on ([0-9a-f]{12}): \d+ done, \d+ reproduced,"
        r" \d+ other failures",
        text,
        re.M,
    )
    assert trials.count(repo.old[:12]) >= 2 or trials.count(repo.new[:12]) >= 2, text
    # the same lines are in the run's own log
    assert "still building" in (run_dir(cache) / "driver.log").read_text()


@pytest.mark.slow
def test_status_shows_the_current_then_the_last_activity(make_flaky, cli, tmp_path: Path) -> None:
    """From another shell, while a step builds, `status` shows the commit, the build's
    elapsed time and last make target; after an interrupt, the last activity."""
    repo = make_flaky(commits=8, change_at=4, rate=0.5)
    cache = tmp_path / "cache"
    ends = f"{repo.old}|{repo.new}"
    args = with_build_cmd(
        flaky_args(repo, cache),
        f"case $BISECT_COMMIT in {ends}) ;; *) echo '  CC    live/target.o'; sleep 600;; esac;"
        " make -s",
    )
    out = tmp_path / "run.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bisect_driver", *args],
        stdout=open(out, "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def building_a_step() -> bool:
            runs = cache / "runs"
            if not runs.is_dir() or not any(p.name != "adhoc" for p in runs.iterdir()):
                return False
            st = StatusFile.of_run(run_dir(cache)).read()
            return (
                st is not None
                and st.doing == BUILDING
                and st.commit not in (repo.old, repo.new)
                and last_target(st.build_log) == "live/target.o"
            )

        wait_for(building_a_step)
        st = StatusFile.of_run(run_dir(cache)).read()
        assert st is not None and st.commit is not None
        r = cli("status", "--cache-dir", str(cache))
        assert r.status == 0, r.err
        now = " ".join(r.out.split())  # the panel may wrap
        assert "running" in now
        assert f"now building {st.commit[:12]}: " in now, r.out
        assert "last target live/target.o" in now, r.out
        assert re.search(r"steps \d+ of ~\d+", now), r.out
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=120) == EXIT_INTERRUPTED
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    r = cli("status", "--cache-dir", str(cache))
    after = " ".join(r.out.split())
    assert r.status == 0 and "interrupted" in after, r.out
    assert f"last building {st.commit[:12]}: " in after, r.out
    assert re.search(r"\d\d:\d\d:\d\d │ [0-9a-f]{12} │", r.out)  # the verdicts so far
