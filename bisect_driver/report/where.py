"""Where a run's work ran: its cluster's workers and hosts, builds, speculation, and the
bug's rate per host (report section "Where it ran"; report.json key ``cluster``).

Why per host: a flake's rate changes with load, and hosts of a lab differ; when more
than one host ran trials of a commit, the report shows each host's share so a reader
can see whether one host carried the evidence.  A run without ``--scheduler`` has no
such section (``cluster`` is null).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from bisect_driver.cluster.connect import CLUSTER_EVENT
from bisect_driver.cluster.speculate import SUMMARY_EVENT
from bisect_driver.probe.evidence import BugSignature, Evidence
from bisect_driver.probe.trials import TrialRunner
from bisect_driver.store.journal import Journal


@dataclass(frozen=True)
class HostRate:
    commit: str
    host: str
    reproduced: int
    trials: int

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "host": self.host,
            "reproduced": self.reproduced,
            "trials": self.trials,
        }


@dataclass(frozen=True)
class ClusterInfo:
    scheduler: str | None
    workers: tuple[dict[str, Any], ...]
    """As the run started: address, host, user, threads."""
    hosts: tuple[str, ...]
    """Hosts that ran trials or builds."""
    trials_per_worker: tuple[tuple[str, str, int], ...]
    """(worker, host, trials) over the commits of the evidence."""
    builds_on_workers: int
    speculation: str
    """The journal's summary: "started N built N used N cancelled N" ("" when none)."""
    per_host: tuple[HostRate, ...]
    """Commits whose trials ran on more than one host: each host's count."""

    def to_json(self) -> dict[str, Any]:
        return {
            "scheduler": self.scheduler,
            "workers": list(self.workers),
            "hosts": list(self.hosts),
            "trials_per_worker": [
                {"worker": w, "host": h, "trials": n} for w, h, n in self.trials_per_worker
            ],
            "builds_on_workers": self.builds_on_workers,
            "speculation": self.speculation,
            "per_host": [r.to_json() for r in self.per_host],
        }


def collect_where(
    journal: Journal,
    run_id: str,
    scheduler: str | None,
    commits: Sequence[str],
    runner: TrialRunner,
    bug: BugSignature | None,
    recipe_key: str,
) -> ClusterInfo | None:
    """None for a run whose trials and builds all ran on the driver's machine."""
    started = journal.events(run_id, CLUSTER_EVENT)
    per_worker: dict[tuple[str, str], int] = defaultdict(int)
    per_host: list[HostRate] = []
    hosts: set[str] = set()
    builds = 0
    for commit in commits:
        records = runner.records(commit)
        by_host: dict[str, list[Any]] = defaultdict(list)
        for t in records:
            if t.worker:
                per_worker[(t.worker, t.host or "?")] += 1
                by_host[t.host or "?"].append(t)
        hosts.update(by_host)
        if len(by_host) > 1:
            for host in sorted(by_host):
                ev = Evidence.from_trials(commit, by_host[host], runner.hang_as, bug)
                per_host.append(HostRate(commit, host, ev.reproduced, ev.counted))
        build = journal.build(commit, recipe_key)
        if build is not None and build.host:
            builds += 1
            hosts.add(build.host)
    if not started and not per_worker and not builds:
        return None
    workers = tuple(json.loads(started[-1][2])) if started else ()
    summary = journal.events(run_id, SUMMARY_EVENT)
    return ClusterInfo(
        scheduler=scheduler,
        workers=workers,
        hosts=tuple(sorted(hosts)),
        trials_per_worker=tuple((w, h, n) for (w, h), n in sorted(per_worker.items())),
        builds_on_workers=builds,
        speculation=summary[-1][2] if summary else "",
        per_host=tuple(per_host),
    )


def where_md(info: ClusterInfo | None) -> list[str]:
    if info is None:
        return []
    lines = [
        "",
        "## Where it ran",
        "",
        f"Dask scheduler `{info.scheduler}`; hosts: {', '.join(info.hosts) or '-'}.",
        "",
        "| worker | host | trials |",
        "|---|---|---:|",
    ]
    lines += [f"| `{w}` | {h} | {n} |" for w, h, n in info.trials_per_worker]
    lines += ["", f"Builds on workers: {info.builds_on_workers} of the commits above."]
    if info.speculation:
        lines.append(f"Speculative builds (idle workers, ahead of the bisect): {info.speculation}.")
    if info.per_host:
        lines += [
            "",
            "The bug's rate per host, for commits whose trials ran on more than one:",
            "",
            "| commit | host | reproduced | trials |",
            "|---|---|---:|---:|",
        ]
        lines += [
            f"| `{r.commit[:12]}` | {r.host} | {r.reproduced} | {r.trials} |" for r in info.per_host
        ]
    return lines


def where_html(info: ClusterInfo | None) -> list[str]:
    if info is None:
        return []
    rows = "".join(
        f"<tr><td><code>{escape(w)}</code></td><td>{escape(h)}</td><td>{n}</td></tr>"
        for w, h, n in info.trials_per_worker
    )
    parts = [
        "<h2>Where it ran</h2>",
        f"<p>Dask scheduler <code>{escape(str(info.scheduler))}</code>; hosts:"
        f" {escape(', '.join(info.hosts))}. Builds on workers: {info.builds_on_workers}."
        + (f" Speculative builds: {escape(info.speculation)}." if info.speculation else "")
        + "</p>",
        f"<table><tr><th>worker</th><th>host</th><th>trials</th></tr>{rows}</table>",
    ]
    if info.per_host:
        host_rows = "".join(
            f"<tr><td><code>{r.commit[:12]}</code></td><td>{escape(r.host)}</td>"
            f"<td>{r.reproduced}</td><td>{r.trials}</td></tr>"
            for r in info.per_host
        )
        parts += [
            "<p>The bug's rate per host:</p>",
            "<table><tr><th>commit</th><th>host</th><th>reproduced</th><th>trials</th></tr>"
            f"{host_rows}</table>",
        ]
    return parts
