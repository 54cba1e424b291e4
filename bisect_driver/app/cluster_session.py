"""A run's time on the cluster: connect, name the workers, speculate, show, let go.

The driver wraps its hunt in :func:`cluster_session`.  It connects (an unreachable
scheduler or a refused worker stops the run here, before any work, with one line),
records which workers and hosts serve the run (the report names them), starts the
speculative builds and keeps the run's status file told what each worker is doing
(the live panel and ``bisect-qemu status`` show it).  Without ``--scheduler`` it does
nothing.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator

from bisect_driver.bisect.direction import Direction
from bisect_driver.cluster.connect import CLUSTER_EVENT, Cluster, one_line
from bisect_driver.cluster.speculate import Speculator
from bisect_driver.context import RunContext
from bisect_driver.store.runstatus import BUILDING

WORKERS_EVERY_S = 2.0


def workers_line(cluster: Cluster) -> str:
    hosts = sorted({w.host for w in cluster.workers.values()})
    return (
        f"cluster {cluster.address}: {len(cluster.workers)} workers on"
        f" {', '.join(hosts)} ({cluster.slots} trials or builds at once)"
    )


def worker_states(cluster: Cluster) -> list[str]:
    """One line per worker: where, and what it runs now (a trial or build of a commit)."""
    processing = cluster.client.processing()
    lines = []
    for addr in sorted(processing):
        keys = [str(k) for k in processing[addr]]
        info = cluster.workers.get(addr)
        host = info.host if info else addr
        doing = ", ".join(sorted({_what(k) for k in keys})) if keys else "idle"
        lines.append(f"{addr} ({host}): {doing}")
    return lines


def _what(key: str) -> str:
    """A task key (cluster.trials / cluster.builds) as a few words."""
    parts = key.split("-")
    if key.startswith("bq-trial-") and len(parts) > 3:
        return f"trials of {parts[2]}"
    if key.startswith("bq-build-") and len(parts) > 4:
        return f"build of {parts[-2][:12]}"
    return key[:40]


def _building(ctx: RunContext) -> bool:
    now = ctx.status_file.read()
    return now is not None and now.doing == BUILDING


@contextlib.contextmanager
def cluster_session(ctx: RunContext) -> Iterator[None]:
    cluster = ctx.cluster()
    if cluster is None or ctx.plan is None:
        yield
        return
    plan = ctx.plan
    ctx.progress.line(workers_line(cluster))
    ctx.journal.event(
        plan.run_id,
        CLUSTER_EVENT,
        json.dumps(
            [
                {"worker": w.address, "host": w.host, "user": w.user, "threads": w.nthreads}
                for w in cluster.workers.values()
            ]
        ),
    )

    def terms() -> tuple[str, str] | None:
        row = ctx.journal.run_row(plan.run_id) or {}
        try:
            return Direction(row.get("direction") or "").terms
        except ValueError:
            return None

    builder = ctx.builder
    speculator = Speculator(
        ctx.journal,
        plan.run_id,
        ctx.recipe,
        ctx.build_submitter(),
        builder.artifacts,
        ctx.cache_dir,
        ctx.run_dir / "logs",
        ctx.the_checkout().path,
        terms,
        ctx.settings.first_parent,
        ctx.progress.line,
        ends=(plan.good, plan.bad),
        waiting_on_build=lambda: _building(ctx),
    ).start()
    stop = threading.Event()

    def show() -> None:
        while not stop.wait(WORKERS_EVERY_S):
            try:
                ctx.status_file.update(workers=tuple(worker_states(cluster)))
            except Exception as exc:  # noqa: BLE001 - the panel must never stop a run
                ctx.progress.line(f"cannot show the workers: {one_line(exc)}")
                stop.wait(30)

    shower = threading.Thread(target=show, name="workers", daemon=True)
    shower.start()
    try:
        yield
    finally:
        stop.set()
        shower.join(timeout=10)
        speculator.stop()
        ctx.close()
