"""What a trial starts dies with it, even on ``kill -9`` of bisect-qemu.

Children run in sessions of their own, so no signal to the driver reaches them and
a driver killed with -9 runs none of its clean-up.  Two defences: the kernel kills
each trial's direct child (qemu itself in the qcow2 probe, the group leader of
``run_group``) when the driver dies (``proc.die_with_parent``, a parent-death
signal); what that leader started is registered in ``cache/live`` and reaped by
the next command.

The qemu test needs the real CLI, a real qemu and a real ``kill -9``.  Its "build"
is a committed shell script that makes an artifact dir of Debian's QEMU
(symlinks), so no QEMU is compiled here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bisect_driver.plugin.proc import kill_group, reap_stale_groups

REAL_QEMU = Path("/usr/bin/qemu-system-x86_64")
REAL_QEMU_IMG = Path("/usr/bin/qemu-img")

NEEDS_QEMU = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (REAL_QEMU.is_file() and REAL_QEMU_IMG.is_file()),
        reason="needs Debian's qemu-system-x86 and qemu-utils",
    ),
    pytest.mark.skipif(not list(Path("/boot").glob("vmlinuz-*")), reason="needs a guest kernel"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (guest writer)"),
    pytest.mark.skipif(not Path("/bin/busybox").is_file(), reason="needs busybox-static"),
]


def needs_qemu(fn):  # type: ignore[no-untyped-def]
    for mark in reversed(NEEDS_QEMU):
        fn = mark(fn)
    return fn


BUILD_SH = r"""#!/bin/sh
# The build step: an artifact dir in the qemu recipe's layout, made of Debian's QEMU.
set -e
rm -rf bin pc-bios
mkdir bin pc-bios
ln -s /usr/bin/qemu-system-x86_64 bin/qemu-system-x86_64
ln -s /usr/bin/qemu-img bin/qemu-img
# Absolute links, one per file: the artifact is copied with its symlinks as they
# are, and some firmware files are relative links into a sibling directory.
for d in /usr/share/qemu /usr/share/seabios; do
    [ -d "$d" ] || continue
    for f in "$d"/*; do
        name=${f##*/}
        [ -e "pc-bios/$name" ] || ln -s "$(readlink -f "$f")" "pc-bios/$name"
    done
done
"""


def bisect_qemu() -> list[str]:
    """The installed command (what a user runs); ``python -m`` where it is not installed."""
    script = Path(sys.executable).with_name("bisect-qemu")  # not resolved: the venv's bin
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bisect_driver"]


def make_repo(path: Path) -> Path:
    path.mkdir()
    (path / "build.sh").write_text(BUILD_SH)
    (path / ".gitignore").write_text("/bin/\n/pc-bios/\n")
    ident = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for args in (["init", "-q"], ["add", "."], [*ident, "commit", "-qm", "build step"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)
    return path


def processes_mentioning(text: str) -> dict[int, list[str]]:
    """Live processes (not zombies: their cmdline is empty) with ``text`` in an argument."""
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        argv = raw.rstrip(b"\0").decode(errors="replace").split("\0") if raw else []
        if any(text in arg for arg in argv):
            found[int(entry.name)] = argv
    return found


def alive(pid: int) -> bool:
    """Running: neither gone nor a zombie (an orphan's zombie may wait long for its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def started() -> Iterator[tuple[list[subprocess.Popen[bytes]], list[str]]]:
    """What the test starts, killed on the way out whatever happened: the Popen
    objects, and marks (unique tmp paths) whose processes are killed by pid."""
    procs: list[subprocess.Popen[bytes]] = []
    marks: list[str] = []
    yield procs, marks
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for mark in marks:
        for pid in processes_mentioning(mark):
            if pid != os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def wait_for_qemu(scratch: Path, driver: subprocess.Popen[bytes], log: Path) -> int:
    """The pid of the trial's qemu (its image lies under the cache's scratch dir)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for pid, argv in processes_mentioning(str(scratch)).items():
            if Path(argv[0]).name == "qemu-system-x86_64":
                return pid
        if driver.poll() is not None:
            pytest.fail(f"bisect-qemu ended before qemu started:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"no qemu under {scratch} after 300 s:\n{log.read_text()[-3000:]}")


def gone_within(pid: int, seconds: float) -> bool:
    """Poll until ``pid`` no longer runs (no claim on how fast: only an upper bound)."""
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


@needs_qemu
def test_qemu_dies_with_a_driver_killed_with_9(
    tmp_path: Path, started: tuple[list[subprocess.Popen[bytes]], list[str]]
) -> None:
    procs, marks = started
    repo = make_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    marks.append(f"{tmp_path}/")  # every process of this test names a path in here
    common = [
        "--repo", str(repo),
        "--recipe", "shell",
        "--build-cmd", "sh build.sh",
        "--artifact", "bin",
        "--artifact", "pc-bios",
        "--probe", "qcow2-sigterm",
        "--accel", "tcg",
        "--cache-dir", str(cache),
    ]  # fmt: skip
    log = tmp_path / "probe.log"
    with open(log, "wb") as out:
        driver = subprocess.Popen(
            [*bisect_qemu(), "probe", "HEAD", "-n", "4", "--jobs", "1", *common],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our kill -9 is the only signal it gets
        )
    procs.append(driver)

    qemu = wait_for_qemu(cache / "scratch", driver, log)
    time.sleep(0.5)  # past the registration that follows qemu's start
    assert (cache / "live" / str(qemu)).is_file(), "qemu's group is not registered in cache/live"
    os.kill(driver.pid, signal.SIGKILL)  # the driver alone, as the OOM killer would
    driver.wait(timeout=30)
    assert gone_within(qemu, 10), f"qemu {qemu} outlived the driver killed with -9"

    # The next command drops the stale registration (its pid is no longer that qemu).
    nxt = subprocess.run(
        [*bisect_qemu(), "build", "HEAD", *common], capture_output=True, text=True, timeout=300
    )
    assert nxt.returncode == 0, nxt.stdout + nxt.stderr
    assert not (cache / "live" / str(qemu)).exists()
    assert not [argv for argv in processes_mentioning(str(cache)).values() if "qemu" in argv[0]], (
        "a qemu of this cache is still running"
    )


DRIVER = """
import sys, threading
from concurrent.futures import ThreadPoolExecutor
from bisect_driver.plugin.proc import run_group

# as trials run: run_group in a pool's worker thread, which waits for the child
with ThreadPoolExecutor(2) as pool:
    job = pool.submit(run_group, sys.argv[1:])
    # another thread ending must not matter (the parent-death signal is per thread)
    other = threading.Thread(target=lambda: None)
    other.start()
    other.join()
    job.result()
"""


def start_driver(live: Path, cmd: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """A python process running ``cmd`` through run_group; the pid of cmd's leader
    (from its registration in ``live``)."""
    env = dict(os.environ, BISECT_QEMU_LIVE_DIR=str(live))
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, *cmd], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [int(p.name) for p in live.glob("*") if p.name.isdigit() and p.read_text()]
        if found:
            return driver, found[0]
        assert driver.poll() is None, "the driver ended before its child started"
        time.sleep(0.05)
    pytest.fail("run_group's child was never registered")


def test_run_groups_child_dies_with_a_driver_killed_with_9(
    tmp_path: Path,
    started: tuple[list[subprocess.Popen[bytes]], list[str]],
    request: pytest.FixtureRequest,
) -> None:
    procs, _ = started
    live = tmp_path / "live"
    driver, child = start_driver(live, ["sleep", "60"])
    procs.append(driver)
    request.addfinalizer(lambda: kill_group(child))  # the group: whatever the test saw
    time.sleep(0.5)
    assert alive(child), "the child died while its driver lives"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    assert gone_within(child, 10), f"run_group's child {child} outlived the driver"
    # The next command finds only a stale registration: nothing to kill, and it is dropped.
    assert reap_stale_groups(live) == []
    assert not list(live.iterdir())


def test_what_the_dead_leader_started_is_reaped_by_the_next_command(
    tmp_path: Path,
    started: tuple[list[subprocess.Popen[bytes]], list[str]],
    request: pytest.FixtureRequest,
) -> None:
    """The parent-death signal kills only the leader (here a shell, as in front of a
    --probe-cmd); its own child stays in the registered group, leaderless."""
    procs, _ = started
    live = tmp_path / "live"
    pidfile = tmp_path / "orphan.pid"
    driver, leader = start_driver(live, ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"])
    procs.append(driver)
    request.addfinalizer(lambda: kill_group(leader))
    deadline = time.monotonic() + 30
    while not pidfile.is_file() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline, "the shell never started its child"
        time.sleep(0.05)
    orphan = int(pidfile.read_text())
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    assert gone_within(leader, 10), "the leader outlived the driver"
    assert alive(orphan)
    assert reap_stale_groups(live) == [leader]
    assert gone_within(orphan, 10), f"the next command left {orphan} running"
