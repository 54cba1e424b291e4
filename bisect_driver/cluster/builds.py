"""The build stage on a cluster: the same builder, with the build sent to a worker.

The commit's source reaches the worker as its ``git archive`` (no shared file system,
no checkout there), the recipe builds it there with its fix-ups (inside a guard process,
so a killed worker leaves no compiler behind), and the artifacts come back into the
driver's content-addressed cache.  The journal records where it was built.  The task's
key is the same for a step's build and a speculative one (cluster.speculate), so a step
that asks for a commit an idle worker is already building waits for that build.
"""

from __future__ import annotations

import contextlib
import gzip
import subprocess
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

from bisect_driver.build.builder import Builder, BuildOutcome
from bisect_driver.cluster import tasks
from bisect_driver.cluster.connect import Cluster, one_line
from bisect_driver.cluster.payload import PayloadRef, Shipper, locked, unpack
from bisect_driver.cluster.trials import scheduler_gone
from bisect_driver.plugin.errors import ClusterError
from bisect_driver.plugin.options import options_to_json
from bisect_driver.plugin.recipe import BuildResult, BuildStatus

RESEND_MAX = 2
"""Times a build the scheduler dropped while connected is sent again."""
BUILD_PRIORITY = 0
"""Dask priority of a build a step waits for (speculative builds: below it)."""
SPECULATIVE_PRIORITY = -10


def build_key(recipe_key: str, commit: str, attempt: int) -> str:
    """One Dask key per (recipe, commit, attempt): a step and the speculator share it."""
    return f"bq-build-{recipe_key}-{commit}-a{attempt}"


def source_of(repo_path: Path, commit: str) -> bytes:
    """``git archive`` of ``commit``, gzip'd (what :func:`payload.unpack` reads)."""
    tar = subprocess.run(
        ["git", "archive", "--format=tar", commit],
        cwd=repo_path,
        capture_output=True,
        check=True,
    ).stdout
    return gzip.compress(tar, compresslevel=1)


@contextlib.contextmanager
def build_lock(cache_dir: Path, recipe_key: str, commit: str) -> Iterator[None]:
    """Held while a commit's build is awaited and recorded: the step and the speculator
    never both record one build."""
    with locked(cache_dir / "locks" / f"build-{recipe_key}-{commit}.lock"):
        yield


class BuildSubmitter:
    """Makes and submits a commit's build task (a step's and the speculator's alike)."""

    def __init__(
        self,
        cluster: Cluster,
        shipper: Shipper,
        recipe_name: str,
        recipe_options: Any,
        recipe_key: str,
        repo_path: Path,
        timeout: float | None,
        ccache_remote: str | None,
    ) -> None:
        self.cluster = cluster
        self.shipper = shipper
        self.recipe_name = recipe_name
        self.recipe_options = options_to_json(recipe_options) if recipe_options is not None else {}
        self.recipe_key = recipe_key
        self.repo_path = repo_path
        self.timeout = timeout
        self.ccache_remote = ccache_remote

    def source(self, commit: str) -> PayloadRef:
        digest = f"src-{commit}"
        shipped = self.shipper.shipped(digest)
        if shipped is not None:
            return shipped
        return self.shipper.ship_bytes(digest, source_of(self.repo_path, commit))

    def submit(self, commit: str, attempt: int, priority: int) -> Any:
        spec = {
            "recipe": self.recipe_name,
            "recipe_options": self.recipe_options,
            "recipe_key": self.recipe_key,
            "commit": commit,
            "attempt": attempt,
            "timeout": self.timeout,
            "ccache_remote": self.ccache_remote,
        }
        source = self.source(commit)
        return self.cluster.client.submit(
            tasks.build_commit,
            spec,
            source,
            self.shipper.data(source),
            key=build_key(self.recipe_key, commit, attempt),
            pure=False,
            priority=priority,
            retries=0,
        )


def take_answer(answer: dict[str, Any], staging: Path, log_path: Path) -> BuildResult:
    """The worker's answer into the driver's staging dir and log; its result."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# built on {answer.get('host')} ({answer.get('worker')})\n".encode()
    log_path.write_bytes(header + (answer.get("log") or b""))
    out = answer["result"]
    if "guard_error" in out:
        return BuildResult(BuildStatus.FAILED, detail=f"on {answer['host']}: {out['guard_error']}")
    result = BuildResult(BuildStatus(out["status"]), list(out["fixups"]), str(out["detail"]))
    if result.status == BuildStatus.OK and answer.get("artifacts"):
        unpack(answer["artifacts"], staging)
    return result


class ClusterBuilder(Builder):
    """:class:`Builder` whose builds run on the cluster's workers."""

    def __init__(self, *args: Any, submitter: BuildSubmitter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.submitter = submitter

    def ensure(self, commit: str) -> BuildOutcome:
        with build_lock(self.cache_dir, self.key, commit):
            return super().ensure(commit)

    def _prepare_source(self, commit: str) -> None:
        """Nothing to check out here: the worker gets ``git archive`` of the commit."""

    def _attempt(self, commit: str, attempt: int) -> tuple[BuildResult, Path, Path]:
        from distributed.scheduler import KilledWorker

        staging = self.artifacts.staging(commit)
        suffix = "" if attempt == 1 else f".attempt{attempt}"
        log_path = self.log_dir / f"build-{commit[:12]}{suffix}.log"
        if self.status is not None:
            self.status.update(build_log=str(log_path))
        resent = 0
        while True:
            try:
                answer = self.submitter.submit(commit, attempt, BUILD_PRIORITY).result()
                break
            except KilledWorker as exc:
                self.built_on = None
                detail = f"the build killed every worker that ran it ({one_line(exc)})"
                return BuildResult(BuildStatus.KILLED_WORKER, detail=detail), staging, log_path
            except (CancelledError, OSError, TimeoutError) as exc:
                if scheduler_gone(self.submitter.cluster.client, exc):
                    raise ClusterError(
                        f"lost the Dask scheduler at {self.submitter.cluster.address}"
                        f" ({one_line(exc)}); what was recorded is kept: rerun the same"
                        " command to resume"
                    ) from None
                # Connected still: the task was dropped (its source's only copy was on a
                # worker that died: "lost dependencies"), so send it again, a few times.
                if resent >= RESEND_MAX:
                    self.built_on = None
                    detail = f"the build was lost with its worker {resent + 1} times"
                    return BuildResult(BuildStatus.KILLED_WORKER, detail=detail), staging, log_path
                resent += 1
        self.built_on = answer.get("host")
        return take_answer(answer, staging, log_path), staging, log_path
