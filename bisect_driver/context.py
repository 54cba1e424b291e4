"""Assemble one run's parts (journal, checkout, recipe, probe, stages) from its settings.

The driver, the internal ``step`` command that `git bisect run` calls, and
the ``build`` / ``probe`` / ``report`` commands all go through here, so a
step rebuilt from the journal's stored settings is exactly the run that
started it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git

from build_recipes.base import Recipe
from probes.base import Probe

from .build import Builder
from .errors import UserError
from .gitops import Checkout, checkout_for, open_user_repo
from .journal import Journal
from .plugins import load_plugin
from .progress import Progress
from .tester import CommitTester, Policy
from .trials import TrialRunner

# Options that never change what a run computes, so they stay out of its id.
TRANSIENT = {
    "command",
    "report_dir",
    "jobs",
    "cache_dir",
    "quiet",
    "cache_limit",
    "repo",
    "no_confirm",
    "backport_onto",
    "verify_backport",
    "n",
    "ref",
    "force",
    "run_id",
    "keep",
    "seed",
    "good",
    "bad",
    "guest_command",
    "min_free",
    "config",
}


def default_cache_dir() -> Path:
    """``$BISECT_QEMU_CACHE``, else ``cache/`` beside a source checkout, else ~/.cache."""
    env = os.environ.get("BISECT_QEMU_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").exists() and os.access(root, os.W_OK):
        return root / "cache"
    return Path.home() / ".cache" / "bisect-qemu"


def plugin_classes(recipe: str, probe: str) -> tuple[type[Recipe], type[Probe]]:
    return (
        load_plugin("recipe", "build_recipes", recipe, "RECIPE"),
        load_plugin("probe", "probes", probe, "PROBE"),
    )


def jsonable_args(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for key, value in vars(args).items():
        if isinstance(value, Path):
            value = str(value)
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return out


def make_run_id(settings: dict[str, Any]) -> str:
    # The command line is how the run was asked for, not what it computes: `resume`
    # and a differently spelled command must find the same run.
    # How the ends were spelled is display only: the SHAs identify the run.
    display = ("args", "created", "command_line", "good_ref", "bad_ref")
    ident = {k: v for k, v in settings.items() if k not in display}
    ident["args"] = {k: v for k, v in settings["args"].items() if k not in TRANSIENT}
    blob = json.dumps(ident, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class RunContext:
    args: argparse.Namespace
    cache_dir: Path
    journal: Journal
    recipe: Recipe
    probe: Probe
    user_repo: git.Repo | None = None
    checkout: Checkout | None = None
    run_id: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)
    _tester: CommitTester | None = None

    @property
    def run_dir(self) -> Path:
        name = self.run_id or "adhoc"
        return self.cache_dir / "runs" / name

    @property
    def builder(self) -> Builder:
        assert self.checkout is not None
        return Builder(
            self.journal,
            self.recipe,
            self.checkout,
            self.cache_dir,
            self.run_dir / "logs",
            timeout=self.args.build_timeout,
            cache_limit=parse_size(self.args.cache_limit),
            min_free=parse_size(getattr(self.args, "min_free", None)) or 0,
        )

    def runner(self) -> TrialRunner:
        timeout = self.args.trial_timeout or getattr(self.probe, "default_timeout", 300.0)
        return TrialRunner(
            self.journal,
            self.probe,
            self.recipe.key(),
            self.run_dir / "evidence",
            jobs=self.args.jobs,
            trial_timeout=timeout,
            hang_as=self.args.hang_as,
            scratch_root=self.cache_dir / "scratch",
            min_free=parse_size(getattr(self.args, "min_free", None)) or 0,
        )

    def tester(self, progress_fn=None) -> CommitTester:
        policy = Policy(
            alpha=self.settings.get("alpha", 0.001),
            fp=self.args.false_positive_rate,
            max_trials=self.args.max_trials,
        )
        return CommitTester(
            self.run_id or "adhoc", self.journal, self.builder, self.runner(), policy, progress_fn
        )


def parse_size(text: str | None) -> int | None:
    """'20G' -> bytes; None or '0' -> no limit."""
    if not text or text == "0":
        return None
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().rstrip("b")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise UserError(f"invalid size {text!r} (use e.g. 500M, 20G)") from None


def make_context(args: argparse.Namespace, need_repo: bool = True) -> RunContext:
    """Parts for a command given on the command line."""
    cache_dir = (
        Path(args.cache_dir).expanduser().resolve() if args.cache_dir else default_cache_dir()
    )
    recipe_cls, probe_cls = plugin_classes(args.recipe, args.probe)
    recipe = recipe_cls.from_args(args)
    probe = probe_cls.from_args(args)
    journal = Journal(cache_dir / "journal.sqlite3")
    ctx = RunContext(args, cache_dir, journal, recipe, probe)
    if need_repo:
        ctx.user_repo = open_user_repo(Path(args.repo).expanduser())
        ctx.checkout = checkout_for(ctx.user_repo, cache_dir)
    return ctx


def context_for_run(cache_dir: Path, run_id: str) -> RunContext:
    """Rebuild a run's parts from its settings in the journal (for `step`, `report`...)."""
    journal = Journal(cache_dir / "journal.sqlite3")
    settings = journal.run_settings(run_id)
    args = argparse.Namespace(**settings["args"])
    recipe_cls, probe_cls = plugin_classes(args.recipe, args.probe)
    ctx = RunContext(
        args,
        cache_dir,
        journal,
        recipe_cls.from_args(args),
        probe_cls.from_args(args),
        run_id=run_id,
        settings=settings,
    )
    ctx.user_repo = open_user_repo(Path(settings["repo"]))
    ctx.checkout = checkout_for(ctx.user_repo, cache_dir)
    return ctx
