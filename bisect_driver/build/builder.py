"""Build stage: commit -> artifact directory, through the recipe, at most once.

The first stage of build -> probe -> verdict -> bisect -> report.  It owns the
policy the recipe should not care about: cache lookup, one retry of a failed
build (a compiler killed mid-build must not turn a commit into a skip), the
journal record (status, duration, attempts, fix-ups, log, binary
fingerprint), restoring the checkout after in-tree fix-ups, and turning a
failure that survives the retry into a skip reason.
"""

from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bisect_driver.plugin.recipe import (
    BuildContext,
    BuildResult,
    BuildStatus,
    Recipe,
    fingerprint,
)
from bisect_driver.store.artifacts import ArtifactCache
from bisect_driver.store.disk import check_free
from bisect_driver.store.journal import BuildRecord, Journal
from bisect_driver.store.repo import Checkout
from bisect_driver.store.runstatus import BUILDING, StatusFile


@dataclass
class BuildOutcome:
    ok: bool
    artifact_dir: Path | None
    record: BuildRecord
    cached: bool
    """True when no build ran (artifact cache hit, or a recorded failure)."""


class Builder:
    def __init__(
        self,
        journal: Journal,
        recipe: Recipe,
        checkout: Checkout,
        cache_dir: Path,
        log_dir: Path,
        timeout: float | None = None,
        cache_limit: int | None = None,
        min_free: int = 0,
        progress: Callable[[str], None] | None = None,
        status: StatusFile | None = None,
    ) -> None:
        self.journal = journal
        self.recipe = recipe
        self.key = recipe.key()
        self.checkout = checkout
        self.cache_dir = cache_dir
        self.log_dir = log_dir
        self.timeout = timeout
        self.artifacts = ArtifactCache(cache_dir / "artifacts", self.key, cache_limit)
        self.build_dir = cache_dir / "builds" / self.key
        self.min_free = min_free
        self.say = progress or (lambda _line: None)
        self.status = status
        """The run's shared status: what is being built since when, and its log (the
        live view and the heartbeat read the last make target from it)."""

    def ensure(self, commit: str) -> BuildOutcome:
        """Artifacts of ``commit``: from the cache, or built now (never built twice)."""
        record = self.journal.build(commit, self.key)
        if record is not None:
            if record.status != BuildStatus.OK:
                return BuildOutcome(False, None, record, cached=True)
            cached = self.artifacts.lookup(commit)
            if cached is not None:
                return BuildOutcome(True, cached, record, cached=True)
            # Evicted from the artifact cache: build again (the journal says it builds).
        return self._build(commit)

    def _build(self, commit: str) -> BuildOutcome:
        self.artifacts.evict()
        check_free(self.cache_dir, self.min_free, f"building {commit[:12]}")
        self._prepare_source(commit)
        start = time.monotonic()
        self.say(f"building {commit[:12]} ({self.recipe.name})")
        if self.status is not None:
            self.status.update(
                commit=commit, doing=BUILDING, doing_since=time.time(), what=self.recipe.name
            )
        result, staging, log_path = self._attempt(commit, 1)
        first_failure = None
        attempts = 1
        if result.status not in (BuildStatus.OK, BuildStatus.TIMEOUT, BuildStatus.KILLED_WORKER):
            # A timeout is not retried: it would cost the whole --build-timeout again; nor a
            # build that killed every worker given it (Dask retried it on each already).
            first_failure = f"{result.status}: {result.detail}"
            self.say(f"build of {commit[:12]} failed ({first_failure}); retrying once from clean")
            shutil.rmtree(staging, ignore_errors=True)
            attempts = 2
            result, staging, log_path = self._attempt(commit, 2)
        duration = time.monotonic() - start
        fp = None
        if result.status == BuildStatus.OK:
            main = self.recipe.main_binary()
            if main is not None:
                fp = fingerprint(staging / main)
                if fp is None:
                    result = BuildResult(
                        BuildStatus.MISSING_ARTIFACT,
                        result.fixups,
                        f"build succeeded but {main} is missing",
                    )
        record = BuildRecord(
            commit=commit,
            recipe_key=self.key,
            status=str(result.status),
            duration=duration,
            fixups=result.fixups,
            detail=result.detail,
            log_path=str(log_path) if log_path.exists() else None,
            fingerprint=fp,
            finished=time.time(),
            attempts=attempts,
            first_failure=first_failure,
            host=self.built_on,
        )
        self.say(
            f"built {commit[:12]}: {result.status} in {duration:.0f}s"
            + (f" (attempt {attempts})" if attempts > 1 else "")
        )
        if self.status is not None:
            ok = result.status == BuildStatus.OK
            self.status.update(
                doing="built" if ok else "build failed",
                doing_since=time.time(),
                what=f"{result.status} in {duration:.0f}s",
                build_log=None,
            )
        if result.status == BuildStatus.OK:
            final = self.artifacts.commit_staging(commit, staging)
            self.journal.record_build(record)
            return BuildOutcome(True, final, record, cached=False)
        shutil.rmtree(staging, ignore_errors=True)
        self.journal.record_build(record)
        return BuildOutcome(False, None, record, cached=False)

    built_on: str | None = None
    """Where the last attempt ran (a cluster host), for the journal; None: here."""

    def _prepare_source(self, commit: str) -> None:
        """Put ``commit``'s source where :meth:`_attempt` builds it: the tool's checkout."""
        self.checkout.checkout(commit)

    def _attempt(self, commit: str, attempt: int) -> tuple[BuildResult, Path, Path]:
        """One run of the recipe; a recipe that raises is a failed build, never a crash."""
        staging = self.artifacts.staging(commit)
        self.build_dir.mkdir(parents=True, exist_ok=True)
        suffix = "" if attempt == 1 else f".attempt{attempt}"
        log_path = self.log_dir / f"build-{commit[:12]}{suffix}.log"
        if self.status is not None:
            self.status.update(build_log=str(log_path))
        ctx = BuildContext(
            commit=commit,
            source_dir=self.checkout.path,
            build_dir=self.build_dir,
            output_dir=staging,
            cache_dir=self.cache_dir,
            log_path=log_path,
            timeout=self.timeout,
            attempt=attempt,
        )
        try:
            result = self.recipe.build(ctx)
        except Exception as exc:  # noqa: BLE001 - a recipe bug must not kill an overnight run
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a") as fh:
                fh.write(traceback.format_exc())
            result = BuildResult(BuildStatus.FAILED, detail=f"recipe raised {exc!r}")
        finally:
            self.checkout.restore()
        return result, staging, log_path
