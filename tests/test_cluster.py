"""Beyond one machine: a hunt whose trials and builds run on a real Dask cluster.

The slow tests start `dask scheduler` and `dask worker` processes on this machine
(tests/dask_cluster.py) whose user cannot read the driver's repository, cache or report,
and run the tool as a user would, as a separate process.  The fast ones check the pure
parts: the speculative-build planner, the payloads, the guard, the panel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import dask
import pytest
from dask_cluster import DaskCluster, free_port
from hypothesis import given, settings
from hypothesis import strategies as st

from bisect_driver.app.cluster_session import _what
from bisect_driver.app.flaky_project import FlakyRepo, FlakySpec, generate
from bisect_driver.app.live import render
from bisect_driver.cluster import plan
from bisect_driver.cluster.payload import (
    PayloadMissing,
    PayloadRef,
    has_payloads,
    materialise,
    pack,
    unpack,
)
from bisect_driver.plugin.errors import EXIT_CLUSTER, EXIT_FOUND
from bisect_driver.store.runstatus import RunStatus

TOOL = [sys.executable, "-m", "bisect_driver"]
SLOW_PROBE = "sleep 0.3; ./probe.sh"
BUILD = "ccache cc -O1 -pthread -c flaky.c -o flaky.o && cc -pthread -o flaky flaky.o"
"""Compile through ccache (it caches compiles, not links), so --ccache-remote has work."""
"""A trial long enough that a worker killed while trials run is killed mid-trial."""


def hunt_args(repo: FlakyRepo, cache: Path, address: str, *extra: str) -> list[str]:
    return [
        *TOOL,
        "--repo", str(repo.path),
        "--good", repo.old,
        "--bad", repo.new,
        "--cache-dir", str(cache),
        "--build-cmd", BUILD,
        "--artifact", "flaky",
        "--artifact", "probe.sh",
        "--probe-cmd", SLOW_PROBE,
        "--scheduler", address,
        *extra,
    ]  # fmt: skip


def journal(cache: Path) -> sqlite3.Connection:
    return sqlite3.connect(cache / "journal.sqlite3", timeout=30)


def trial_count(cache: Path) -> int:
    try:
        with journal(cache) as db:
            return int(db.execute("SELECT COUNT(*) FROM trials").fetchone()[0])
    except sqlite3.Error:
        return 0


def wait_for_trials(proc: subprocess.Popen[str], cache: Path, n: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while trial_count(cache) < n:
        assert proc.poll() is None, f"the run ended early: {proc.communicate()}"
        assert time.monotonic() < deadline, "no trials recorded"
        time.sleep(0.2)


def nothing_lost_or_repeated(cache: Path) -> dict[str, int]:
    """Per commit, the recorded trial indices are exactly 0..n-1: a trial whose worker died
    ran again under its own index, and no index was recorded twice."""
    per: dict[str, list[int]] = defaultdict(list)
    with journal(cache) as db:
        for commit, idx in db.execute("SELECT commit_sha, idx FROM trials"):
            per[commit].append(idx)
    for commit, idxs in per.items():
        assert sorted(idxs) == list(range(len(idxs))), (commit, sorted(idxs))
    return {c: len(i) for c, i in per.items()}


def pids_with_cwd_under(root: Path) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd.startswith(str(root)):
            found.add(int(entry))
    return found


def make_repo(private: Path, **kw: object) -> FlakyRepo:
    spec = dict(commits=40, change_at=30, rate=0.5, seed=3)
    spec.update(kw)
    return generate(private / "repo", FlakySpec(**spec))  # type: ignore[arg-type]


def report_of(cache: Path) -> dict:  # type: ignore[type-arg]
    (report,) = cache.glob("runs/*/report.json")
    return json.loads(report.read_text())


DRIVERS: list[subprocess.Popen[str]] = []


def start_driver(args: list[str]) -> subprocess.Popen[str]:
    """The tool as a process of its own; killed at the test's end if it still runs."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    DRIVERS.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _no_driver_left() -> Iterator[None]:
    """A test that fails while its run goes on leaves no driver (git and the step die with
    it: their PDEATHSIG), so nothing records into a later test's journal."""
    yield
    while DRIVERS:
        proc = DRIVERS.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def private(tmp_path: Path) -> Path:
    path = tmp_path / "driver"
    path.mkdir(mode=0o700)
    return path


# -- the hunt on two workers that cannot read the driver's files ---------------------------


@pytest.mark.slow
def test_hunt_on_two_workers_survives_a_killed_worker(private: Path) -> None:
    repo = make_repo(private)
    cache = private / "cache"
    cluster = DaskCluster(private).start()
    remote = cluster.shared / "ccache-remote"
    remote.mkdir()
    if cluster.as_nobody:
        shutil.chown(remote, "nobody", "nogroup")
    try:
        # the workers cannot read what the driver keeps (nobody: no permission; in a mount
        # namespace: the folder is an empty tmpfs there)
        probe = cluster.client().submit(Path.read_bytes, repo.path / "flaky.c", pure=False)
        with pytest.raises((PermissionError, FileNotFoundError)):
            probe.result(timeout=60)
        args = hunt_args(repo, cache, cluster.address, "--ccache-remote", f"file://{remote}")
        proc = start_driver(args)
        wait_for_trials(proc, cache, 30)
        w1_cache = cluster.shared / "w1-cache"
        deadline = time.monotonic() + 60
        while not (running := pids_with_cwd_under(w1_cache / "payloads")):
            assert time.monotonic() < deadline, "worker w1 never ran a trial"
            time.sleep(0.02)
        first_w1 = {a for a, w in _addresses(cluster).items() if w == "w1"}
        os.kill(cluster.worker_pids()["w1"], signal.SIGKILL)  # mid-trial: its probe runs
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in running):
            assert time.monotonic() < deadline, f"probe processes outlived their worker: {running}"
            time.sleep(0.1)
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == EXIT_FOUND, err[-3000:] + cluster.log_text()
        assert out.strip().splitlines()[-1] == repo.shas[30]
        counts = nothing_lost_or_repeated(cache)
        assert sum(counts.values()) >= 30
        with journal(cache) as db:
            where = db.execute(
                "SELECT worker, host, COUNT(*) FROM trials GROUP BY worker"
            ).fetchall()
            builds = db.execute("SELECT host, speculative FROM builds").fetchall()
        assert all(w and h for w, h, _n in where), where  # every trial ran on a worker
        workers = {w for w, _h, _n in where}
        assert workers & first_w1 and workers - first_w1  # both workers ran trials
        assert builds and all(host for host, _s in builds)  # every build ran on a worker
        assert any(remote.rglob("*")), "ccache's remote storage got nothing"
        with journal(cache) as db:
            sent = db.execute("SELECT message FROM events WHERE kind='payload'").fetchall()
        assert sent and len(sent) == len(set(sent))  # each payload reached a worker once
        assert not pids_with_cwd_under(cluster.shared / "w1-cache" / "payloads")
        assert not pids_with_cwd_under(cluster.shared / "w2-cache" / "payloads")
        report = report_of(cache)
        assert report["cluster"]["hosts"], report.get("cluster")
        md = next(cache.glob("runs/*/report.md")).read_text()
        assert "## Where it ran" in md and "| trials |" in md
    finally:
        cluster.stop()


def _addresses(cluster: DaskCluster) -> dict[str, str]:
    c = cluster.client()
    try:
        return {a: w["name"] for a, w in c.scheduler_info(n_workers=-1)["workers"].items()}
    finally:
        c.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_idle_workers_build_ahead_of_the_bisect(private: Path) -> None:
    """While one worker builds (slowly), the other builds the commits the bisect visits
    next; a step that reaches one finds it built, and the journal and report say so."""
    repo = make_repo(private, commits=16, change_at=11)
    cache = private / "cache"
    cluster = DaskCluster(private).start()
    try:
        args = hunt_args(repo, cache, cluster.address, "--no-verify-backport")
        # make, in the worker's persistent tree: a stale object would make the candidate's
        # binary its parent's, and the run's identical-binaries check would fail (exit 8)
        args[args.index(BUILD)] = "sleep 3 && make -s"
        res = subprocess.run(args, capture_output=True, text=True, timeout=900)
        assert res.returncode == EXIT_FOUND, res.stderr[-3000:]
        assert res.stdout.strip().splitlines()[-1] == repo.shas[11]
        with journal(cache) as db:
            speculative = {
                c for (c,) in db.execute("SELECT commit_sha FROM builds WHERE speculative=1")
            }
            visited = {c for (c,) in db.execute("SELECT commit_sha FROM verdicts")}
            (summary,) = db.execute("SELECT message FROM events WHERE kind='speculation'")
        assert speculative & visited, (speculative, visited)  # built ahead, then used
        used = int(summary[0].split(" used ")[1].split()[0])
        assert used == len(speculative & {c for c in visited})
        assert "speculative builds:" in res.stderr
        assert "Speculative builds" in next(cache.glob("runs/*/report.md")).read_text()
    finally:
        cluster.stop()


# -- faults -----------------------------------------------------------------------------------


def test_unreachable_scheduler_is_one_line_and_exit_9(tmp_path: Path) -> None:
    repo = generate(tmp_path / "repo", FlakySpec(commits=6, change_at=3))
    address = f"tcp://127.0.0.1:{free_port()}"
    res = subprocess.run(
        hunt_args(repo, tmp_path / "cache", address), capture_output=True, text=True, timeout=120
    )
    assert res.returncode == EXIT_CLUSTER
    lines = [line for line in res.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and f"cannot reach the Dask scheduler at {address}" in lines[0]
    assert trial_count(tmp_path / "cache") == 0


@pytest.mark.parametrize("how", ["environment", "config"])
def test_scheduler_from_environment_or_config(tmp_path: Path, how: str) -> None:
    """$DASK_SCHEDULER_ADDRESS and the config key ``scheduler`` point a run at a cluster as
    --scheduler does (here one that is not there: the run says so, exit 9)."""
    repo = generate(tmp_path / "repo", FlakySpec(commits=6, change_at=3))
    address = f"tcp://127.0.0.1:{free_port()}"
    args = hunt_args(repo, tmp_path / "cache", "x")
    del args[args.index("--scheduler") : args.index("--scheduler") + 2]
    env = dict(os.environ)
    if how == "environment":
        env["DASK_SCHEDULER_ADDRESS"] = address
    else:
        config = tmp_path / "bq.toml"
        config.write_text(f'scheduler = "{address}"\n')
        args += ["--config", str(config)]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == EXIT_CLUSTER, res.stderr
    assert f"cannot reach the Dask scheduler at {address}" in res.stderr


def test_ccache_remote_needs_a_scheduler(tmp_path: Path) -> None:
    repo = generate(tmp_path / "repo", FlakySpec(commits=6, change_at=3))
    args = hunt_args(repo, tmp_path / "cache", "x", "--ccache-remote", "file:///tmp/x")
    args.remove("--scheduler")
    args.remove("x")
    res = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--ccache-remote needs --scheduler" in res.stderr


@pytest.mark.slow
def test_a_worker_with_another_bisect_qemu_is_refused_by_name(private: Path) -> None:
    cluster = DaskCluster(private, nworkers=0).start()
    try:
        other = cluster.shared / "other-install"
        for name in ("bisect_driver", "build_recipes", "probes"):
            src = Path(__import__(name).__file__).parent
            shutil.copytree(src, other / name, ignore=shutil.ignore_patterns("__pycache__"))
        with open(other / "bisect_driver" / "__init__.py", "a") as fh:
            fh.write("# another release\n")
        for path in [other, *other.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        cluster.env = {"PYTHONPATH": str(other)}
        cluster.add_worker("w-old")
        cluster.wait_for(1)
        repo = make_repo(private, commits=6, change_at=3)
        res = subprocess.run(
            hunt_args(repo, private / "cache", cluster.address),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == EXIT_CLUSTER, res.stderr
        (line,) = [x for x in res.stderr.splitlines() if "error" in x]
        assert "runs bisect-qemu" in line and "install the same version there" in line
        assert trial_count(private / "cache") == 0
    finally:
        cluster.stop()


@pytest.mark.slow
def test_a_trial_that_kills_its_workers_makes_its_commit_a_skip(private: Path) -> None:
    repo = make_repo(private)
    victim = subprocess.run(
        ["git", "rev-list", "--bisect", repo.new, "--not", repo.old],
        cwd=repo.path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The probe kills the worker that runs it (its grandparent: worker -> guard -> sh) at
    # one commit, as an out-of-memory kill of the worker would.
    killer = (
        f'if [ "$BISECT_COMMIT" = {victim} ]; then'
        " kill -9 $(awk '{print $4}' /proc/$PPID/stat); sleep 30; fi; ./probe.sh"
    )
    cluster = DaskCluster(
        private, env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
    ).start()
    try:
        args = hunt_args(repo, private / "cache", cluster.address, "--no-verify-backport")
        args[args.index(SLOW_PROBE)] = killer
        res = subprocess.run(args, capture_output=True, text=True, timeout=900)
        assert res.returncode in (EXIT_FOUND, 1), res.stderr[-3000:]
        with journal(private / "cache") as db:
            rows = db.execute(
                "SELECT verdict, reason FROM verdicts WHERE commit_sha=?", (victim,)
            ).fetchall()
        assert rows and rows[0][0] == "skip", rows
        reason = rows[0][1]
        assert "killed every worker that ran it" in reason or "lost with its worker" in reason
        assert repo.shas[30] in res.stdout
    finally:
        cluster.stop()


@pytest.mark.slow
def test_a_lost_scheduler_stops_the_run_and_a_rerun_resumes(private: Path) -> None:
    repo = make_repo(private)
    cache = private / "cache"
    cluster = DaskCluster(private).start()
    try:
        args = hunt_args(repo, cache, cluster.address, "--no-verify-backport")
        proc = start_driver(args)
        wait_for_trials(proc, cache, 20)
        os.killpg(cluster.procs[0].pid, signal.SIGKILL)  # the scheduler
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == EXIT_CLUSTER, err[-3000:]
        last = [x for x in err.splitlines() if x.startswith("bisect-qemu: error")]
        # lost during a step, or between two (the next step cannot reach it): either way
        # one line that says to rerun
        assert last and "rerun" in last[-1]
        assert "lost the Dask scheduler" in last[-1] or "cannot reach" in last[-1]
        before = nothing_lost_or_repeated(cache)
    finally:
        cluster.stop()
    cluster = DaskCluster(private).start()
    try:
        args[args.index("--scheduler") + 1] = cluster.address
        res = subprocess.run(args, capture_output=True, text=True, timeout=900)
        assert res.returncode == EXIT_FOUND, res.stderr[-3000:]
        assert res.stdout.strip().splitlines()[-1] == repo.shas[30]
        after = nothing_lost_or_repeated(cache)
        assert all(after[c] >= n for c, n in before.items())  # kept, and continued from
    finally:
        cluster.stop()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_driver_records_nothing_afterwards(private: Path, sig: int) -> None:
    repo = make_repo(private)
    cache = private / "cache"
    cluster = DaskCluster(private).start()
    try:
        args = hunt_args(repo, cache, cluster.address, "--no-verify-backport")
        proc = start_driver(args)
        wait_for_trials(proc, cache, 12)
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        time.sleep(3)
        settled = trial_count(cache)
        time.sleep(8)
        assert trial_count(cache) == settled  # no step or task went on recording
        steps = subprocess.run(
            ["pgrep", "-f", f"bisect_driver step --cache-dir {cache}"], capture_output=True
        )
        assert steps.returncode == 1, steps.stdout
        nothing_lost_or_repeated(cache)
    finally:
        cluster.stop()


@pytest.mark.slow
def test_tls_scheduler_and_workers(private: Path) -> None:
    certs = Path(__import__("tempfile").mkdtemp(prefix="bq-tls-"))
    certs.chmod(0o755)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    for f in certs.iterdir():
        f.chmod(0o644)
    tls = {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}
    for role in ("SCHEDULER", "WORKER", "CLIENT"):
        tls[f"DASK_DISTRIBUTED__COMM__TLS__{role}__CERT"] = str(certs / "cert.pem")
        tls[f"DASK_DISTRIBUTED__COMM__TLS__{role}__KEY"] = str(certs / "key.pem")
    tls["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"] = str(certs / "cert.pem")
    cluster = DaskCluster(private, env=tls, scheme="tls", scheduler_args=["--protocol", "tls"])
    try:
        os.environ.update(tls)
        dask.config.refresh()  # this process's own client (the cluster's start) reads it
        cluster.start()
        repo = make_repo(private, commits=12, change_at=8)
        res = subprocess.run(
            hunt_args(repo, private / "cache", cluster.address, "--no-verify-backport"),
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(os.environ, **tls),
        )
        assert res.returncode == EXIT_FOUND, res.stderr[-3000:]
        assert res.stdout.strip().splitlines()[-1] == repo.shas[8]
        assert cluster.address.startswith("tls://")
    finally:
        for key in tls:
            os.environ.pop(key, None)
        cluster.stop()
        dask.config.refresh()
        shutil.rmtree(certs, ignore_errors=True)


# -- the planner of speculative builds (pure) -----------------------------------------------


def linear_next_of(commits: list[str]):  # type: ignore[no-untyped-def]
    """git's choice on a linear history: the midpoint of what is left (commits oldest
    first; the new end is among them, the olds are before)."""

    def next_of(olds: frozenset[str], new: str) -> str | None:
        lo = max((commits.index(o) for o in olds), default=-1) + 1
        hi = commits.index(new)
        if hi - lo < 1:
            return None
        return commits[lo + (hi - lo) // 2]

    return next_of


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 300), st.integers(1, 6))
def test_lookahead_walks_the_bisect_tree_nearest_first(n: int, depth: int) -> None:
    commits = [f"c{i:03d}" for i in range(n)]
    next_of = linear_next_of(commits)
    state = plan.BisectState(frozenset({commits[0]}), commits[-1], None)
    first = next_of(state.olds, state.new)
    assert first is not None
    state = plan.BisectState(state.olds, state.new, first)
    seen = list(plan.lookahead(next_of, state, max_depth=depth))
    assert len(seen) == len(set(seen)) and first not in seen
    assert len(seen) <= 2 ** (depth + 1) - 2
    inside = set(commits[1:-1])
    assert set(seen) <= inside
    if n > 6:
        # level one: the next step whichever way the current one goes
        assert seen[:2] == [next_of(state.olds | {first}, state.new), next_of(state.olds, first)]


def test_lookahead_predicts_what_git_bisect_checks_out(tmp_path: Path) -> None:
    repo = generate(tmp_path / "repo", FlakySpec(commits=30, change_at=20))
    next_of = plan.git_next_of(repo.path)
    state = plan.BisectState(frozenset({repo.old}), repo.new, None)
    (first,) = list(plan.lookahead(next_of, state, max_depth=1))
    git = ["git", "-C", str(repo.path)]
    subprocess.run([*git, "bisect", "start", repo.new, repo.old], check=True, capture_output=True)
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        assert head.stdout.strip() == first
        after = list(plan.lookahead(next_of, plan.BisectState(state.olds, state.new, first), 1))
        subprocess.run([*git, "bisect", "bad"], check=True, capture_output=True)
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        assert head.stdout.strip() == after[1]  # judged new: the second branch
        assert plan.bisect_state(repo.path, ("good", "bad")) is not None
    finally:
        subprocess.run([*git, "bisect", "reset"], capture_output=True)
    assert plan.bisect_state(repo.path, ("good", "bad")) is None


def test_idle_slots_and_to_build() -> None:
    assert plan.idle_slots(4, 1, 3) == 3
    assert plan.idle_slots(4, 1, 0) == 0  # free only since this look: a gap between batches
    assert plan.idle_slots(4, 5, 4) == 0
    picked = plan.to_build(iter("abcdef"), lambda c: c == "b", {"c"}, 2)
    assert picked == ["a", "d"]
    assert plan.to_build(iter("abc"), lambda c: False, set(), 0) == []


def test_sync_tree_keeps_mtimes_of_unchanged_files(tmp_path: Path) -> None:
    from bisect_driver.cluster.tasks import sync_tree

    a, b, dest, manifest = tmp_path / "a", tmp_path / "b", tmp_path / "tree", tmp_path / "m"
    for root, text in ((a, "one"), (b, "two")):
        (root / "sub").mkdir(parents=True)
        (root / "same.c").write_text("int x;\n")
        (root / "changed.c").write_text(text)
        (root / "link").symlink_to("same.c" if root == a else "changed.c")
    (a / "sub" / "removed.h").write_text("gone in b")
    (b / "sub" / "added.h").write_text("new in b")
    assert sync_tree(a, dest, manifest) == 4
    (dest / "same.o").write_text("built")  # an output the build wrote: not a source file
    old = {p: (dest / p).stat().st_mtime_ns for p in ("same.c", "changed.c")}
    time.sleep(0.02)
    assert sync_tree(b, dest, manifest) == 3  # changed.c, link, added.h
    assert (dest / "same.c").stat().st_mtime_ns == old["same.c"]
    assert (dest / "changed.c").stat().st_mtime_ns > old["changed.c"]
    assert (dest / "changed.c").read_text() == "two" and os.readlink(dest / "link") == "changed.c"
    assert not (dest / "sub" / "removed.h").exists() and (dest / "sub" / "added.h").exists()
    assert (dest / "same.o").read_text() == "built"


# -- payloads and the guard ------------------------------------------------------------------


def test_payload_round_trip_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISECT_QEMU_WORKER_CACHE", str(tmp_path / "worker"))
    src = tmp_path / "art"
    (src / "sub").mkdir(parents=True)
    (src / "flaky").write_bytes(b"\x7fELF")
    (src / "flaky").chmod(0o755)
    (src / "sub" / "probe.sh").write_text("#!/bin/sh\n")
    (src / "link").symlink_to("flaky")
    data = pack(src)
    ref = PayloadRef("d1", "key", len(data))
    with pytest.raises(PayloadMissing):
        materialise(ref, None)
    path, fetched = materialise(ref, data)
    assert fetched and (path / "flaky").read_bytes() == b"\x7fELF"
    assert os.access(path / "flaky", os.X_OK) and os.readlink(path / "link") == "flaky"
    assert materialise(ref, None) == (path, False)  # kept by digest: not sent again
    assert has_payloads(["d1", "d2"]) == ["d1"]


def test_unpack_refuses_members_that_leave_their_folder(tmp_path: Path) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="leaves"):
        unpack(buf.getvalue(), tmp_path / "dest")
    assert not (tmp_path / "escape").exists()


GUARDED = """
import json, sys
from pathlib import Path
from bisect_driver.cluster.tasks import run_guarded
work = Path(sys.argv[1])
spec = {"mode": "trial", "probe": "command",
        "probe_options": {"probe_cmd": sys.argv[2], "signature": ""},
        "kit_dir": None, "cache_dir": str(work / "cache"),
        "ctx": {"commit": "c" * 40, "artifact_dir": str(work), "index": 0,
                "work_dir": str(work), "evidence_dir": str(work / "ev"), "timeout": 60, "seed": 1}}
print(json.dumps(run_guarded(spec, work, 60)))
"""


def test_a_trial_dies_with_its_worker(tmp_path: Path) -> None:
    """The guard: a worker killed with -9 takes its trial's processes with it, however
    deep they are (here a shell's background children, detached from the shell)."""
    cmd = "sh -c 'sleep 300 & sleep 300'"
    worker = subprocess.Popen([sys.executable, "-c", GUARDED, str(tmp_path), cmd])
    deadline = time.monotonic() + 30
    while len(_sleepers(tmp_path)) < 2:
        assert time.monotonic() < deadline, "the trial never started"
        time.sleep(0.05)
    worker.kill()
    worker.wait()
    deadline = time.monotonic() + 10
    while _sleepers(tmp_path):
        assert time.monotonic() < deadline, f"left behind: {_sleepers(tmp_path)}"
        time.sleep(0.1)


def _sleepers(cwd: Path) -> set[int]:
    return {
        p
        for p in pids_with_cwd_under(cwd)
        if Path(f"/proc/{p}/comm").read_text().strip() == "sleep" and _alive(p)
    }


def test_a_guarded_trial_answers_its_result(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-c", GUARDED, str(tmp_path), "echo boom; exit 1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    answer = json.loads(res.stdout)
    assert answer["outcome"] == "reproduced" and answer["detail"] == "boom"


# -- the panel -------------------------------------------------------------------------------


def test_panel_shows_the_workers() -> None:
    from rich.console import Console

    st = RunStatus(
        run_id="r1",
        started=time.time(),
        workers=("tcp://10.0.0.2:4000 (lab2): trials of 0123456789ab", "tcp://x (lab3): idle"),
    )
    console = Console(width=120, record=True)
    console.print(render(st))
    text = console.export_text()
    assert "workers" in text and "trials of 0123456789ab" in text and "lab3): idle" in text
    assert RunStatus.from_json(st.to_json()).workers == st.workers
    assert _what("bq-trial-0123456789ab-7-99") == "trials of 0123456789ab"
    assert _what("bq-build-k1-" + "a" * 40 + "-a1") == "build of aaaaaaaaaaaa"
