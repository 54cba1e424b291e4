"""Assemble one run's parts (journal, checkout, recipe, probe, stages) from its settings.

The driver, the internal ``step`` command that `git bisect run` calls, and
the ``build`` / ``probe`` / ``report`` commands all go through here, so a
step rebuilt from the journal's stored plan is exactly the run that started it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import git

from bisect_driver.bisect.confirm import confirm_run_id
from bisect_driver.build.builder import Builder
from bisect_driver.cluster.builds import BuildSubmitter, ClusterBuilder
from bisect_driver.cluster.connect import Cluster, connect
from bisect_driver.cluster.payload import Shipper
from bisect_driver.cluster.trials import ClusterTrialRunner
from bisect_driver.plugin.probe import Probe
from bisect_driver.plugin.recipe import Recipe
from bisect_driver.probe.evidence import BugSignature
from bisect_driver.probe.trials import TrialRunner
from bisect_driver.progress import Progress
from bisect_driver.settings import RunPlan, Settings
from bisect_driver.store.journal import Journal
from bisect_driver.store.repo import Checkout, checkout_for, open_user_repo
from bisect_driver.store.runstatus import StatusFile
from bisect_driver.verdict.core import BACKGROUND_EVENT, parse_background, run_policy
from bisect_driver.verdict.judge import CommitTester, ProgressFn
from bisect_driver.verdict.stats import SOFT_ALPHA


@dataclass
class RunContext:
    settings: Settings
    journal: Journal
    recipe: Recipe
    probe: Probe
    user_repo: git.Repo | None = None
    checkout: Checkout | None = None
    plan: RunPlan | None = None
    progress: Progress = field(default_factory=Progress)
    bug_end: str | None = None
    """The reproducing end, whose failures define the bug (known once the ends are tested)."""
    _cluster: Cluster | None = None
    _shipper: Shipper | None = None

    def cluster(self) -> Cluster | None:
        """The Dask cluster of ``--scheduler`` (connected and checked on first use), or
        None: everything runs on this machine."""
        if not self.settings.scheduler:
            return None
        if self._cluster is None:
            self._cluster = connect(self.settings.scheduler)
            self._shipper = Shipper(self._cluster.client)
        return self._cluster

    def close(self) -> None:
        """Let go of the cluster (its tasks of this process are released with it)."""
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = self._shipper = None

    @property
    def cache_dir(self) -> Path:
        return self.settings.cache_dir

    @property
    def run_id(self) -> str | None:
        return self.plan.run_id if self.plan else None

    @property
    def run_dir(self) -> Path:
        return self.cache_dir / "runs" / (self.run_id or "adhoc")

    @property
    def status_file(self) -> StatusFile:
        """What the run is doing now, shared with its step processes and `status`."""
        return StatusFile.of_run(self.run_dir)

    def repo(self) -> git.Repo:
        assert self.user_repo is not None, "this command opened no repository"
        return self.user_repo

    def the_checkout(self) -> Checkout:
        assert self.checkout is not None, "this command made no checkout"
        return self.checkout

    @property
    def builder(self) -> Builder:
        s = self.settings
        args = (self.journal, self.recipe, self.the_checkout(), self.cache_dir)
        kwargs = dict(
            log_dir=self.run_dir / "logs",
            timeout=s.build_timeout,
            cache_limit=s.cache_limit or None,
            min_free=s.min_free,
            progress=self.progress.line,
            status=self.status_file,
        )
        if self.cluster() is not None:
            return ClusterBuilder(*args, submitter=self.build_submitter(), **kwargs)
        return Builder(*args, **kwargs)  # type: ignore[arg-type]

    def build_submitter(self) -> BuildSubmitter:
        """How this run's builds are sent to the cluster (steps and speculation alike)."""
        cluster = self.cluster()
        assert cluster is not None and self._shipper is not None
        s = self.settings
        return BuildSubmitter(
            cluster,
            self._shipper,
            s.recipe,
            s.recipe_options,
            self.recipe.key(),
            self.the_checkout().path,
            s.build_timeout,
            s.ccache_remote,
        )

    def runner(self, use_cluster: bool = True) -> TrialRunner:
        """The probe stage; ``use_cluster=False`` for a reader of recorded trials (status,
        report) that must not connect to the run's cluster."""
        s = self.settings
        args = (self.journal, self.probe, self.recipe.key(), self.run_dir / "evidence")
        kwargs = dict(
            jobs=s.jobs,
            trial_timeout=s.trial_timeout or self.probe.default_timeout,
            hang_as=s.hang_as,
            scratch_root=self.cache_dir / "scratch",
            min_free=s.min_free,
            status=self.status_file,
        )
        cluster = self.cluster() if use_cluster else None
        runner = (
            TrialRunner(*args, **kwargs)  # type: ignore[arg-type]
            if cluster is None
            else ClusterTrialRunner(*args, cluster=cluster, probe_name=s.probe, **kwargs)
        )
        runner.bug_end = self.bug_end
        if self.plan is not None:
            # Faces of the bug are known from this run's verdicts (probe.trials).
            runner.verdict_runs = (self.plan.run_id, confirm_run_id(self.plan.run_id))
            runner.ends = (self.plan.good, self.plan.bad)
        return runner

    def define_bug(self, reproducing_end: str, runner: TrialRunner) -> BugSignature | None:
        """From now on the bug is what the reproducing end shows (all it has shown so far
        and will show).  Stored as a journal event, so the step processes and a resumed run
        count the same failures as the bug."""
        assert self.plan is not None
        self.journal.event(self.plan.run_id, BUG_EVENT, reproducing_end)
        self.bug_end = runner.bug_end = reproducing_end
        return runner.bug

    def background(self) -> tuple[int, int]:
        """The clean end's failure-rate bounds when both ends showed the bug's failure and
        were told apart by rate (bisect.endpoints), else (0, 0)."""
        if self.plan is None:
            return 0, 0
        events = self.journal.events(self.plan.run_id, BACKGROUND_EVENT)
        if not events:
            return 0, 0
        return parse_background(events[-1][2])

    def tester(self, progress_fn: ProgressFn | None = None) -> CommitTester:
        s = self.settings
        policy = run_policy(
            s.confidence,
            alpha=SOFT_ALPHA,
            max_trials=s.max_trials,
            fp=s.false_positive_rate,
            min_rate=s.min_rate,
            background=self.background(),
            steady=s.steady_rate,
        )
        return CommitTester(
            self.run_id or "adhoc", self.journal, self.builder, self.runner(), policy, progress_fn
        )


def make_context(settings: Settings, need_repo: bool = True) -> RunContext:
    """Parts for a command given on the command line."""
    journal = Journal(settings.cache_dir / "journal.sqlite3")
    ctx = RunContext(settings, journal, settings.make_recipe(), settings.make_probe())
    if need_repo:
        ctx.user_repo = open_user_repo(settings.repo)
        ctx.checkout = checkout_for(ctx.user_repo, settings.cache_dir)
    return ctx


def context_for_run(cache_dir: Path, run_id: str) -> RunContext:
    """Rebuild a run's parts from its plan in the journal (for `step`, `report`...)."""
    journal = Journal(cache_dir / "journal.sqlite3")
    plan = RunPlan.from_json(journal.run_settings(run_id))
    settings = plan.settings.replace(cache_dir=cache_dir)
    ctx = RunContext(settings, journal, settings.make_recipe(), settings.make_probe(), plan=plan)
    ctx.user_repo = open_user_repo(Path(plan.repo))
    ctx.checkout = checkout_for(ctx.user_repo, cache_dir)
    ctx.bug_end = stored_bug_end(journal, run_id)
    return ctx


BUG_EVENT = "bug-end"


def stored_bug_end(journal: Journal, run_id: str) -> str | None:
    """The run's reproducing end, whose failures define the bug (None before it is known)."""
    events = journal.events(run_id, BUG_EVENT)
    return events[-1][2] if events else None
