"""The process that holds one trial or one build on a worker.

Why a process of its own: a worker killed with -9 cannot clean up, and a trial's
processes (a shell, the qemu it started) would go on running on that host.  The worker
starts this guard with PR_SET_PDEATHSIG=SIGTERM, and the guard makes itself a child
subreaper: every process the trial starts stays below it, even when its parent exits,
and when the worker dies the guard kills them all before it goes.  It also keeps a
probe or recipe that crashes the interpreter from taking the worker with it.

Usage (by :mod:`bisect_driver.cluster.tasks`): ``python -m bisect_driver.cluster.guard
SPEC.json RESULT.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from bisect_driver.plugin.proc import PR_SET_CHILD_SUBREAPER, set_on_self


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_descendants() -> None:
    """SIGKILL everything below this process, until nothing is left (as a subreaper,
    orphans of killed parents come back here and are found on the next pass)."""
    me = os.getpid()
    for _ in range(50):
        pids = descendants(me)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap()
        time.sleep(0.02)
    _reap()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _on_parent_death(_signum: int, _frame: FrameType | None) -> None:
    kill_descendants()
    os._exit(128 + signal.SIGTERM)


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["mode"] == "trial":
        return _trial(spec)
    if spec["mode"] == "build":
        return _build(spec)
    raise ValueError(f"unknown guard mode {spec['mode']!r}")


def _trial(spec: dict[str, Any]) -> dict[str, Any]:
    from bisect_driver.plugin.options import options_from
    from bisect_driver.plugin.probe import TrialContext
    from bisect_driver.plugin.registry import load_plugin

    cls = load_plugin("probe", spec["probe"])
    probe = cls(options_from(cls.Options, spec["probe_options"]))
    kit_dir = Path(spec["kit_dir"]) if spec.get("kit_dir") else None
    probe.use_kit(kit_dir, Path(spec["cache_dir"]))
    c = spec["ctx"]
    ctx = TrialContext(
        commit=c["commit"],
        artifact_dir=Path(c["artifact_dir"]),
        index=int(c["index"]),
        work_dir=Path(c["work_dir"]),
        evidence_dir=Path(c["evidence_dir"]),
        timeout=float(c["timeout"]),
        seed=int(c["seed"]),
    )
    result = probe._safe_trial(ctx)
    out = asdict(result)
    out["outcome"] = str(result.outcome)
    out["extra"] = _jsonable(result.extra)
    return out


def _build(spec: dict[str, Any]) -> dict[str, Any]:
    from bisect_driver.plugin.options import options_from
    from bisect_driver.plugin.recipe import BuildContext, BuildResult, BuildStatus
    from bisect_driver.plugin.registry import load_plugin

    cls = load_plugin("recipe", spec["recipe"])
    recipe = cls(options_from(cls.Options, spec["recipe_options"]))
    c = spec["ctx"]
    ctx = BuildContext(
        commit=c["commit"],
        source_dir=Path(c["source_dir"]),
        build_dir=Path(c["build_dir"]),
        output_dir=Path(c["output_dir"]),
        cache_dir=Path(c["cache_dir"]),
        log_path=Path(c["log_path"]),
        timeout=c["timeout"],
        env=dict(c["env"]),
        attempt=int(c["attempt"]),
    )
    try:
        result = recipe.build(ctx)
    except Exception as exc:  # noqa: BLE001 - a recipe bug is a failed build, as on the driver
        import traceback

        ctx.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(ctx.log_path, "a") as fh:
            fh.write(traceback.format_exc())
        result = BuildResult(BuildStatus.FAILED, detail=f"recipe raised {exc!r}")
    main = recipe.main_binary()
    return {
        "status": str(result.status),
        "fixups": list(result.fixups),
        "detail": result.detail,
        "main_binary": main,
    }


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        return str(value)


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    signal.signal(signal.SIGTERM, _on_parent_death)
    set_on_self(PR_SET_CHILD_SUBREAPER, 1)
    spec = json.loads(spec_path.read_text())
    if spec.get("parent") and os.getppid() != spec["parent"]:
        return 128 + signal.SIGTERM  # the worker died before we could watch it
    try:
        out = run_spec(spec)
    finally:
        kill_descendants()
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
