"""A real Dask cluster on this machine, as a lab would run one (tests and benches).

It starts ``dask scheduler`` and ``dask worker`` processes, loopback only.  The workers
must not read the driver's files: they run as ``nobody`` (the driver's repository, cache
and report live in a folder only root can enter), from a virtual environment that user
can read.  A checkout in a folder ``nobody`` cannot enter (root's home) cannot serve:
the workers then run as root in a private mount namespace where that folder is an empty
tmpfs.  Either way a worker is a plain ``dask worker ADDRESS`` process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nobody_can_run_python() -> bool:
    res = subprocess.run(
        ["runuser", "-u", "nobody", "--", str(VENV_BIN / "python"), "-c", "import bisect_driver"],
        capture_output=True,
    )
    return res.returncode == 0


@dataclass
class DaskCluster:
    private: Path
    """The driver's folder (mode 0700): the workers cannot read it."""
    nworkers: int = 2
    extra_worker_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    scheme: str = "tcp"
    scheduler_args: list[str] = field(default_factory=list)
    address: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bq-dask-logs-")))
    shared: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bq-dask-")))
    as_nobody: bool = True
    force_namespace: bool = False
    """Workers as root in a private mount namespace even when nobody could run them (the
    qcow2 probe's guestfs reads the host kernel, which only root may)."""
    hidden: list[Path] = field(default_factory=list)
    """More folders the workers must not see (in the namespace mode: the user's repo)."""

    def start(self) -> DaskCluster:
        """Start the scheduler and workers; if any of it fails, stop what did start."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> DaskCluster:
        self.private.mkdir(parents=True, exist_ok=True)
        self.private.chmod(0o700)
        self.shared.chmod(0o755)
        self.logs.chmod(0o777)
        # $BQ_TEST_WORKERS=namespace tries the fallback where nobody could run them too
        forced = self.force_namespace or os.environ.get("BQ_TEST_WORKERS") == "namespace"
        self.as_nobody = not forced and nobody_can_run_python()
        port = free_port()
        self.address = f"{self.scheme}://127.0.0.1:{port}"
        log = open(self.logs / "scheduler.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs.append(
            subprocess.Popen(
                [
                    str(VENV_BIN / "dask"),
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-dashboard",
                    *self.scheduler_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(os.environ, **self.env),
            )
        )
        for i in range(self.nworkers):
            self.add_worker(f"w{i + 1}")
        self.wait_for(self.nworkers)
        return self

    def add_worker(self, name: str) -> subprocess.Popen[bytes]:
        local = self.shared / name
        local.mkdir(exist_ok=True)
        cache = self.shared / f"{name}-cache"
        cache.mkdir(exist_ok=True)
        env = dict(
            os.environ,
            HOME=str(local),
            BISECT_QEMU_WORKER_CACHE=str(cache),
            DASK_TEMPORARY_DIRECTORY=str(local),
            **self.env,
        )
        env.pop("BISECT_QEMU_CACHE", None)
        cmd = [
            str(VENV_BIN / "dask"),
            "worker",
            self.address,
            "--name",
            name,
            "--nthreads",
            "1",
            "--nworkers",
            "1",
            "--no-dashboard",
            "--local-directory",
            str(local),
            *self.extra_worker_args,
        ]
        if self.as_nobody:
            for path in (local, cache):
                shutil.chown(path, "nobody", "nogroup")
            cmd = ["runuser", "-u", "nobody", "--", "env", f"HOME={local}", *cmd]
        else:
            mounts = " && ".join(f"mount -t tmpfs none {p}" for p in [self.private, *self.hidden])
            hide = f'{mounts} && exec "$@"'
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", hide, "sh", *cmd]
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.workers.append(proc)
        return proc

    def client(self):  # type: ignore[no-untyped-def]
        from distributed import Client

        return Client(self.address, timeout=20, set_as_default=False)

    def wait_for(self, n: int, timeout: float = 60) -> None:
        if n < 1:
            return
        c = self.client()
        try:
            c.wait_for_workers(n, timeout=timeout)
        finally:
            c.close()

    def worker_pids(self) -> dict[str, int]:
        """Worker name -> pid of its worker process (the one to kill -9)."""
        c = self.client()
        try:
            info = c.scheduler_info(n_workers=-1)["workers"]
            pids = c.run(os.getpid)
            return {info[a]["name"]: int(pid) for a, pid in pids.items() if a in info}
        finally:
            c.close()

    def stop(self) -> None:
        for proc in [*self.workers, *self.procs]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in [*self.workers, *self.procs]:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.shared, ignore_errors=True)

    def log_text(self) -> str:
        return "\n".join(
            f"== {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in self.logs.iterdir()
        )


if __name__ == "__main__":  # python tests/dask_cluster.py PRIVATE: a cluster until Ctrl-C
    cl = DaskCluster(Path(sys.argv[1])).start()
    print(cl.address, "as nobody" if cl.as_nobody else "in a mount namespace", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        cl.stop()
