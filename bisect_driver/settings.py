"""Typed run settings: built once from the command line and config file, frozen after.

Why: the argparse Namespace used to travel through the driver and be read
with ``getattr(args, name, default)``, which is how a documented option
(``--min-free``) could be missing from the parser and nobody noticed.  Every
part of the driver now reads a field of :class:`Settings`, which a type
checker verifies, and each plug-in reads its own typed options.

The run id is a hash of an *allow-list* of what changes a run's result
(:data:`IDENTITY`): the ends, the plug-ins' keys and the statistics.  Adding a
new option therefore never silently splits or merges runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bisect_driver.plugin.errors import UserError
from bisect_driver.plugin.options import options_from, options_to_json
from bisect_driver.plugin.registry import load_plugin


def parse_size(text: str | int | None) -> int:
    """'20G' -> bytes; None, '' or '0' -> 0 (no limit)."""
    if text is None or text == "" or str(text) == "0":
        return 0
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = str(text).strip().lower().removesuffix("ib").rstrip("b")
    try:
        value = int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)
    except ValueError:
        raise UserError(f"invalid size {text!r} (use e.g. 500M, 20G)") from None
    if value < 0:
        raise UserError(f"invalid size {text!r}: must not be negative")
    return value


def default_cache_dir() -> Path:
    """``$BISECT_QEMU_CACHE``, else ``cache/`` beside a source checkout, else ~/.cache."""
    env = os.environ.get("BISECT_QEMU_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").exists() and os.access(root, os.W_OK):
        return root / "cache"
    return Path.home() / ".cache" / "bisect-qemu"


HANG_AS = ("inconclusive", "reproduced")


@dataclass(frozen=True)
class Settings:
    """Everything a run (or a single `build` / `probe` command) was asked to do."""

    # where
    repo: Path = Path(".")
    cache_dir: Path = field(default_factory=default_cache_dir)
    cache_limit: int = 30 << 30
    """Artifact cache size in bytes before LRU eviction (0 = no limit)."""
    min_free: int = 1 << 30
    """Free bytes the cache's file system must keep before a build or batch of trials."""
    # build
    recipe: str = "qemu"
    recipe_options: Any = None
    build_timeout: float = 3600.0
    # probe
    probe: str = "qcow2-sigterm"
    probe_options: Any = None
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    trial_timeout: float | None = None
    hang_as: str = "inconclusive"
    # statistics
    confidence: float = 0.99
    false_positive_rate: float = 0.0
    max_trials: int = 200
    min_rate: float | None = None
    """Floor of a bug-carrying commit's rate; None: a sixth of the reproducing end's rate."""
    steady_rate: bool = False
    """The user says the bug's rate does not drift along the range (core.Policy.steady)."""
    # the bisect
    good: str | None = None
    bad: str | None = None
    first_parent: bool = False
    no_confirm: bool = False
    backport_onto: tuple[str, ...] = ()
    backport_patch: tuple[Path, ...] = ()
    """Hand-made backports to verify onto each --backport-onto REF."""
    verify_backport: bool = True
    """Build and probe the backport series (the default; --no-verify-backport skips it)."""
    report_dir: Path | None = None
    # beyond one machine
    scheduler: str | None = None
    """A Dask scheduler's address (--scheduler, $DASK_SCHEDULER_ADDRESS, config key
    ``scheduler``): trials and builds run on its workers (bisect_driver.cluster).  None:
    on this machine, as always."""
    ccache_remote: str | None = None
    """ccache's remote storage URL for builds on workers (``file://``, ``redis://``,
    ``http://``): compiler caching across hosts."""

    def recipe_class(self) -> Any:
        return load_plugin("recipe", self.recipe)

    def probe_class(self) -> Any:
        return load_plugin("probe", self.probe)

    def make_recipe(self) -> Any:
        return self.recipe_class()(self.recipe_options)

    def make_probe(self) -> Any:
        return self.probe_class()(self.probe_options)

    # -- storage ---------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("recipe_options", "probe_options"):
                value = options_to_json(value) if value is not None else {}
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(x) if isinstance(x, Path) else x for x in value]
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        """Settings stored with a run (``resume``, the ``step`` command, ``report``)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("repo", "cache_dir", "report_dir"):
            if values.get(name) is not None:
                values[name] = Path(values[name])
        values["backport_onto"] = tuple(values.get("backport_onto") or ())
        values["backport_patch"] = tuple(Path(x) for x in values.get("backport_patch") or ())
        recipe_cls = load_plugin("recipe", values.get("recipe", cls.recipe))
        probe_cls = load_plugin("probe", values.get("probe", cls.probe))
        values["recipe_options"] = options_from(
            recipe_cls.Options, values.get("recipe_options") or {}
        )
        values["probe_options"] = options_from(probe_cls.Options, values.get("probe_options") or {})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


IDENTITY = (
    "first_parent",
    "hang_as",
    "trial_timeout",
    "confidence",
    "false_positive_rate",
    "max_trials",
    "min_rate",
    "steady_rate",
)
"""Settings that change what a run computes (besides the ends and the plug-in keys)."""


def make_run_id(
    settings: Settings, good_sha: str, bad_sha: str, recipe_key: str, probe_key: str
) -> str:
    """Hash of what changes the result: the ends (as SHAs, however they were spelled), the
    recipe's and probe's keys, and the :data:`IDENTITY` settings."""
    ident = {
        "good": good_sha,
        "bad": bad_sha,
        "recipe": [settings.recipe, recipe_key],
        "probe": [settings.probe, probe_key],
        **{name: getattr(settings, name) for name in IDENTITY},
    }
    blob = json.dumps(ident, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunPlan:
    """What a run resolved before any work: stored with it, read by every later command."""

    run_id: str
    repo: str
    """The user's repository, absolute."""
    good: str
    bad: str
    good_ref: str
    bad_ref: str
    range_size: int
    expected_verdicts: int
    recipe_key: str
    probe_key: str
    command_line: str
    settings: Settings

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["settings"] = self.settings.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunPlan:
        if "settings" not in data or "args" in data:
            raise UserError(
                f"run {data.get('run_id', '?')} was recorded by an older bisect-qemu and cannot"
                " be resumed or reported by this one; start it again (its trials are reused)"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["settings"] = Settings.from_json(data["settings"])
        return cls(**values)
