"""The scheduler's address, the connection to it, and which workers may serve a run.

Why a check of every worker: a worker with another bisect-qemu (another probe, another
recipe) would record trials that the driver's statistics do not describe, and nothing
in the trial would show it.  So a worker whose install differs is refused, by name,
before any work is sent (the check repeats in every step process: workers come and go).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from bisect_driver.cluster.identity import describe_here, install_identity
from bisect_driver.plugin.errors import ClusterError

CLUSTER_EVENT = "cluster"
"""Journal event: the workers (address, host, user, threads) that served a run."""
CONNECT_TIMEOUT = 10.0
"""Seconds to reach the scheduler before the run stops with one line."""
WORKER_WAIT = 60.0
"""Seconds to wait for a first worker (a lab's workers may start after the driver)."""


@dataclass(frozen=True)
class WorkerInfo:
    address: str
    host: str
    user: str
    pid: int
    nthreads: int


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


class Cluster:
    """One process's connection: a ``distributed.Client`` and the workers it checked."""

    def __init__(self, client: Any, address: str, workers: dict[str, WorkerInfo]) -> None:
        self.client = client
        self.address = address
        self.workers = workers

    @property
    def slots(self) -> int:
        """Trials (or builds) the cluster runs at once: its workers' threads."""
        return max(1, sum(w.nthreads for w in self.workers.values()))

    def refresh(self) -> dict[str, WorkerInfo]:
        """Check the workers again (one replaced after a crash is checked like the first)."""
        self.workers = check_workers(self.client, self.address)
        return self.workers

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)


def connect(
    address: str, timeout: float = CONNECT_TIMEOUT, worker_wait: float = WORKER_WAIT
) -> Cluster:
    """Connect and check the workers; :class:`ClusterError` (one line) when it cannot.

    ``tls://`` addresses take their certificates from the Dask configuration
    (``distributed.comm.tls.*``, e.g. ``$DASK_DISTRIBUTED__COMM__TLS__CA_FILE``), as
    ``dask scheduler`` and ``dask worker`` do."""
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, ValueError, TypeError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: {one_line(exc)};"
            " start it (or give another --scheduler) and rerun: what was recorded is kept"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=worker_wait)
        except (TimeoutError, OSError) as exc:
            raise ClusterError(
                f"the Dask scheduler at {address} has no workers (waited {worker_wait:.0f}s):"
                f" start `dask worker {address}` on the hosts ({one_line(exc)})"
            ) from None
        workers = check_workers(client, address)
    except BaseException:
        with contextlib.suppress(Exception):
            client.close(timeout=5)  # type: ignore[no-untyped-call]
        raise
    return Cluster(client, address, workers)


def check_workers(client: Any, address: str) -> dict[str, WorkerInfo]:
    """Every worker's identity; :class:`ClusterError` naming a worker that differs."""
    mine = install_identity()
    try:
        answers = client.run(describe_here, on_error="return")
        info = client.scheduler_info(n_workers=-1)["workers"]
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"lost the Dask scheduler at {address}: {one_line(exc)}") from None
    workers = {}
    for addr, answer in sorted(answers.items()):
        host = info.get(addr, {}).get("host", addr)
        if isinstance(answer, BaseException):
            raise ClusterError(
                f"worker {addr} on {host} cannot run bisect-qemu ({one_line(answer)}):"
                " install the same version there"
            )
        if answer["identity"] != mine:
            raise ClusterError(
                f"worker {addr} on {answer['host']} runs bisect-qemu {answer['identity']},"
                f" this driver {mine}: install the same version there"
            )
        workers[addr] = WorkerInfo(
            addr,
            str(answer["host"]),
            str(answer["user"]),
            int(answer["pid"]),
            int(info.get(addr, {}).get("nthreads", 1)),
        )
    return workers
