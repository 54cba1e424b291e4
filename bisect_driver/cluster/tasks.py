"""What runs on a worker: one trial, or one build, each inside a guard process.

The functions here are what the driver submits; they take plain data (specs as dicts,
:class:`~bisect_driver.cluster.payload.PayloadRef` for directories) and return plain
data, so they need nothing from the driver's disk.  A worker records nothing: it hands
back what it saw and the driver writes the journal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bisect_driver.cluster.payload import (
    PayloadRef,
    materialise,
    pack,
    worker_cache_root,
)
from bisect_driver.plugin.proc import die_with_parent

GUARD_GRACE = 120.0
"""Seconds a guard may take beyond its trial's or build's own timeout before the worker
stops it (the probe and the recipe enforce their own timeouts; this is the backstop)."""
EVIDENCE_MAX = 4 << 20
"""Bytes of a trial's kept logs sent back to the driver (the rest is cut, with a note)."""
LOG_MAX = 4 << 20
"""Bytes of a build log sent back (its end: where the error is)."""


def where() -> dict[str, str]:
    """This worker's address and host, for the journal."""
    try:
        from distributed import get_worker

        address = str(get_worker().address)
    except ValueError:  # not inside a worker (tests call the tasks directly)
        address = f"local-{os.getpid()}"
    return {"worker": address, "host": socket.gethostname()}


def run_guarded(spec: dict[str, Any], work: Path, timeout: float | None) -> dict[str, Any]:
    """Run ``spec`` in a guard process; its answer, or ``{"guard_error": why}``."""
    spec = dict(spec, parent=os.getpid())
    spec_path, out_path, log_path = work / "spec.json", work / "result.json", work / "guard.log"
    spec_path.write_text(json.dumps(spec))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bisect_driver.cluster.guard", str(spec_path), str(out_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(signal.SIGTERM),  # this thread waits for it below
        )
        try:
            proc.wait(None if timeout is None else timeout + GUARD_GRACE)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the guard kills what is below it
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return {"guard_error": f"guard still running {GUARD_GRACE:.0f}s after its timeout"}
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    if proc.returncode != 0 or not out_path.exists():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        return {"guard_error": f"guard exit {proc.returncode}: {' | '.join(tail)[:400]}"}
    answer: dict[str, Any] = json.loads(out_path.read_text())
    return answer


def _scratch(prefix: str) -> Path:
    root = worker_cache_root() / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def run_trial(
    spec: dict[str, Any],
    artifact: PayloadRef,
    kit: PayloadRef | None,
    artifact_data: bytes | None = None,
    kit_data: bytes | None = None,
) -> dict[str, Any]:
    """One trial of a built commit: its result, its kept logs, and where it ran.  The
    ``*_data`` are the payloads' bytes while some worker may lack them (payload)."""
    artifact_dir, fetched_artifact = materialise(artifact, artifact_data)
    kit_dir, fetched_kit = materialise(kit, kit_data) if kit is not None else (None, False)
    work = _scratch("trial-")
    try:
        (work / "work").mkdir()
        ctx = dict(
            spec["ctx"],
            artifact_dir=str(artifact_dir),
            work_dir=str(work / "work"),
            evidence_dir=str(work / "evidence"),
        )
        full = dict(
            spec,
            mode="trial",
            ctx=ctx,
            kit_dir=str(kit_dir) if kit_dir else None,
            cache_dir=str(worker_cache_root() / "cache"),
        )
        answer = run_guarded(full, work, float(ctx["timeout"]))
        evidence = _collect(work / "evidence")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fetched = [r.digest for r, f in ((artifact, fetched_artifact), (kit, fetched_kit)) if f and r]
    return {**where(), "result": answer, "evidence": evidence, "fetched": fetched}


def _collect(evidence_dir: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    budget = EVIDENCE_MAX
    if not evidence_dir.is_dir():
        return out
    for path in sorted(evidence_dir.rglob("*")):
        if not path.is_file() or budget <= 0:
            continue
        data = path.read_bytes()
        if len(data) > budget:
            data = data[-budget:]
        budget -= len(data)
        out[path.relative_to(evidence_dir).as_posix()] = data
    return out


@contextlib.contextmanager
def build_dir_for(recipe_key: str) -> Iterator[Path]:
    """The worker's persistent build directory for a recipe (nearby commits rebuild
    incrementally, as on the driver); a second build at once on this host takes another."""
    root = worker_cache_root() / "builds"
    root.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        path = root / f"{recipe_key}.{n}"
        fh = open(root / f"{recipe_key}.{n}.lock", "a")  # noqa: SIM115 - held while building
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            n += 1
            continue
        try:
            path.mkdir(exist_ok=True)
            yield path
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
        return


def sync_tree(src: Path, dest: Path, manifest: Path) -> int:
    """Make ``dest`` hold ``src``'s files as ``git checkout`` would: a file whose content
    (or mode, or link target) changed is rewritten and gets a new mtime; an unchanged file
    keeps its mtime; a file the last source had and this one lacks is removed; files the
    build wrote (not in any source) stay.  Returns how many files were written.

    Why not a fresh copy per build: an out-of-tree build directory records its source
    path, so the path must stay; and ``git archive`` gives every file the commit's time,
    older than any object built, so make would rebuild nothing after a change."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(manifest.read_text().splitlines()) if manifest.exists() else set()
    now: set[str] = set()
    written = 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        target = dest / rel
        if path.is_dir() and not path.is_symlink():
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()
            target.mkdir(exist_ok=True)
            continue
        now.add(rel)
        if path.is_symlink():
            link = os.readlink(path)
            if target.is_symlink() and os.readlink(target) == link:
                continue
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            target.symlink_to(link)
            written += 1
            continue
        mode = path.stat().st_mode & 0o777
        if (
            target.is_file()
            and not target.is_symlink()
            and target.stat().st_size == path.stat().st_size
            and target.read_bytes() == path.read_bytes()
        ):
            if target.stat().st_mode & 0o777 != mode:
                target.chmod(mode)
            continue
        if target.is_symlink() or (target.exists() and not target.is_file()):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        shutil.copyfile(path, target)  # a new mtime: make sees the change
        target.chmod(mode)
        written += 1
    for rel in sorted(before - now):
        gone = dest / rel
        if gone.is_symlink() or gone.is_file():
            gone.unlink()
    manifest.write_text("\n".join(sorted(now)) + "\n")
    return written


def build_commit(spec: dict[str, Any], source: PayloadRef, source_data: bytes) -> dict[str, Any]:
    """One build of a commit from its shipped source: the result, the artifacts (a
    :func:`~bisect_driver.cluster.payload.pack` tar) on success, the log, where it ran."""
    started = time.monotonic()
    source_dir, fetched = materialise(source, source_data)
    work = _scratch("build-")
    try:
        out_dir = work / "out"
        out_dir.mkdir()
        log_path = work / "build.log"
        env = {}
        if "CCACHE_DIR" not in os.environ:
            # ccache's default is under $HOME, which a worker's user may not have
            env["CCACHE_DIR"] = str(worker_cache_root() / "cache" / "ccache")
        if spec.get("ccache_remote"):
            env["CCACHE_REMOTE_STORAGE"] = str(spec["ccache_remote"])
        with build_dir_for(spec["recipe_key"]) as build_dir:
            # The build dir's own source tree, at a path that stays (see sync_tree).
            src = build_dir.with_name(build_dir.name + ".src")
            manifest = build_dir.with_name(build_dir.name + ".tracked")
            if spec["attempt"] > 1:  # a retry starts clean: build dir and tree
                for path in (build_dir, src):
                    shutil.rmtree(path, ignore_errors=True)
                manifest.unlink(missing_ok=True)
                build_dir.mkdir()
            sync_tree(source_dir, src, manifest)
            full = {
                "mode": "build",
                "recipe": spec["recipe"],
                "recipe_options": spec["recipe_options"],
                "ctx": {
                    "commit": spec["commit"],
                    "source_dir": str(src),
                    "build_dir": str(build_dir),
                    "output_dir": str(out_dir),
                    "cache_dir": str(worker_cache_root() / "cache"),
                    "log_path": str(log_path),
                    "timeout": spec.get("timeout"),
                    "env": env,
                    "attempt": spec["attempt"],
                },
            }
            answer = run_guarded(full, work, spec.get("timeout"))
        artifacts = pack(out_dir) if answer.get("status") == "ok" else None
        log = log_path.read_bytes()[-LOG_MAX:] if log_path.exists() else b""
    finally:
        shutil.rmtree(work, ignore_errors=True)
        # A commit's source is built once (a retry fetches it again): not worth keeping.
        shutil.rmtree(source_dir, ignore_errors=True)
    return {
        **where(),
        "result": answer,
        "artifacts": artifacts,
        "log": log,
        "duration": time.monotonic() - started,
        "fetched": [source.digest] if fetched else [],
    }
