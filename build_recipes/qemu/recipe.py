"""Build QEMU of the v1.0..v1.1.0 era (x86_64-softmmu, qemu-img, qemu-io) on a modern host.

How one build goes (see ``docs/qemu-builds.md`` for measurements):

1. Fix-ups (``fixups.py``) are detected by the content of the checkout and
   applied *outside* it: a converted copy of the Python 2 scripts in the cache,
   a compat include directory, and a Python shim given to configure as
   ``--python``.  The checkout stays clean, so ``git reset --hard`` after the
   build costs nothing and the next commit's incremental build only recompiles
   what the commit changed.
2. configure runs in the persistent out-of-tree build directory, but only when
   that directory was never configured or was configured with other arguments
   (a stamp file records them).  When ``configure`` itself changes between
   commits, QEMU's Makefile replays the recorded configure command by itself;
   the shim's path is constant and its behaviour comes from the environment, so
   the replayed command is still right.
3. When what QEMU's Makefile does not track changed since the build dir's last build
   (any file under ``scripts/``, or ``VERSION``), the generated C is made again in
   place (``regen.py``; configure runs again for VERSION): files that come out the same
   keep their old times, so only what a changed one feeds is recompiled.
   ``bench/qemu_incremental_proof.py`` shows the binaries equal a clean build's.
4. ``make -jN`` with ccache under ``cache_dir/ccache``.
5. If that fails (or leaves artifacts missing) in a build directory that held an
   earlier build, the directory is emptied and the build is tried once more:
   a stale tree must not turn a good commit into a skip.
6. The artifacts are copied into ``output_dir`` in the layout the probe expects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bisect_driver.plugin import (
    BuildContext,
    BuildResult,
    BuildStatus,
    HostCheck,
    Recipe,
    fingerprint,
    option,
)
from bisect_driver.plugin.errors import UserError
from bisect_driver.plugin.host import tool_check
from bisect_driver.plugin.proc import ProcResult, run_group

from ..fixup import FixUp, load_fixup_file, merge_fixups
from ..logparse import classify_make, configure_error
from . import fixups as fx
from .regen import STASH as REGEN_STASH
from .regen import regenerate
from .trim import TRIMS, trim_args

DEFAULT_PYTHON = "/usr/bin/python3"
DEFAULT_TARGETS = "x86_64-softmmu"

# artifact path in output_dir -> path in the build directory
ARTIFACTS: dict[str, str] = {
    "bin/qemu-system-x86_64": "x86_64-softmmu/qemu-system-x86_64",
    "bin/qemu-img": "qemu-img",
    "bin/qemu-io": "qemu-io",
}
CONFIGURE_STAMP = ".bisect-qemu-configure.json"
SHIM_SOURCE = Path(fx.shim.__file__)


class _Failure(Exception):
    """Ends one build attempt with a class and a one-line detail."""

    def __init__(self, status: BuildStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Log:
    """The build log: every step's output appended to ``ctx.log_path`` with a header.

    Each step streams into a side file first (run_group truncates its log), so a
    log of a killed build still shows what the step printed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def note(self, text: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"=== {text}\n")

    def run(self, title: str, cmd: list[str], **kwargs: Any) -> ProcResult:
        self.note(f"{title}: {shlex.join(cmd)}")
        step = self.path.with_name(self.path.name + ".step")
        result = run_group(cmd, log_path=step, **kwargs)
        with open(self.path, "a") as fh:
            fh.write(result.output)
            if not result.output.endswith("\n"):
                fh.write("\n")
            state = "timed out" if result.timed_out else f"exit {result.returncode}"
            if result.signal:
                state = f"signal {result.signal}"
            fh.write(f"=== {title}: {state} after {result.duration:.1f} s\n")
        step.unlink(missing_ok=True)
        return result


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


@dataclass(frozen=True)
class QemuOptions:
    fixups_file: Path | None = option(
        None,
        "Python file defining FIXUPS = [FixUp(...)]; replaces built-in fix-ups of the same"
        " name and adds the others",
    )
    without_fixup: tuple[str, ...] = option(
        (), "do not apply this fix-up (repeatable)", repeatable=True
    )
    configure_arg: tuple[str, ...] = option(
        (),
        "extra argument for QEMU's configure (repeatable), e.g. --configure-arg=--disable-vnc",
        repeatable=True,
    )
    target_list: str = option(
        DEFAULT_TARGETS, f"configure --target-list; must include x86_64-softmmu ({DEFAULT_TARGETS})"
    )
    make_jobs: int = option(2, "make -jN (default 2)", parse=_positive_int)
    ccache: bool = option(True, "compile through ccache (cache under CACHE/ccache; default: on)")
    host_python: str = option(
        DEFAULT_PYTHON,
        f"Python 3 with lib2to3 that converts and runs QEMU's build scripts ({DEFAULT_PYTHON})",
    )
    trim: bool = option(
        True,
        "leave out what the probe never touches: display, audio, network back-ends, guest"
        " agent... (build_recipes/qemu/trim.py; default: on)",
    )


class QemuRecipe(Recipe):
    """QEMU v1.0..v1.1.0: qemu-system-x86_64, qemu-img, qemu-io and pc-bios/."""

    name = "qemu"
    version = 2  # a failed build is retried by the driver (attempt 2 starts from an empty dir)
    Options = QemuOptions
    options: QemuOptions

    def __init__(self, options: QemuOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        o = self.options
        targets = [t for t in o.target_list.split(",") if t]
        if "x86_64-softmmu" not in targets:
            raise UserError("--target-list must include x86_64-softmmu (the probe runs it)")
        if o.make_jobs < 1:
            raise UserError("--make-jobs must be at least 1")
        self.target_list = ",".join(targets)
        self.configure_args = list(o.configure_arg)
        self.make_jobs = o.make_jobs
        self.ccache = o.ccache
        self.python = o.host_python
        self.cc = "gcc"
        self.fixups_file = Path(o.fixups_file) if o.fixups_file else None
        self._fixups_file_digest: str | None = None
        extra: list[FixUp] = []
        if self.fixups_file is not None:
            try:
                self._fixups_file_digest = hashlib.sha256(self.fixups_file.read_bytes()).hexdigest()
                extra = load_fixup_file(self.fixups_file)
            except OSError as exc:
                raise UserError(
                    f"--fixups-file {self.fixups_file}: {exc.strerror or exc}"
                ) from None
            except Exception as exc:  # the user's file: any error is a usage error
                raise UserError(f"--fixups-file {self.fixups_file}: {exc}") from None
        merged = merge_fixups(list(fx.BUILTIN_FIXUPS), extra)
        self.without_fixups = sorted(set(o.without_fixup))
        unknown = set(self.without_fixups) - {f.name for f in merged}
        if unknown:
            raise UserError(
                f"--without-fixup: unknown fix-up {', '.join(sorted(unknown))} "
                f"(known: {', '.join(f.name for f in merged)})"
            )
        self._fixups = [f for f in merged if f.name not in self.without_fixups]
        self._user_fixup_names = {f.name for f in extra}

    # --- plug-in interface --------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        # make_jobs and ccache do not change what is built, so they stay out of the key.
        return {
            "target_list": self.target_list,
            "configure_args": self.configure_args,
            "fixups": [f.name for f in self._fixups],
            "fixups_file_sha256": self._fixups_file_digest,
            "python": self.python,
            "cc": self.cc,
            "trim": [t.option for t in TRIMS] if self.options.trim else [],
        }

    def main_binary(self) -> str:
        return "bin/qemu-system-x86_64"

    def fixups(self) -> list[FixUp]:
        return list(self._fixups)

    # --- building -----------------------------------------------------------------

    def build(self, ctx: BuildContext) -> BuildResult:
        start = time.monotonic()
        deadline = start + ctx.timeout if ctx.timeout else None
        log = _Log(ctx.log_path)
        log.note(f"qemu recipe v{self.version}: commit {ctx.commit} in {ctx.source_dir}")
        ctx.build_dir.mkdir(parents=True, exist_ok=True)
        ctx.output_dir.mkdir(parents=True, exist_ok=True)

        env_ctx = dataclasses.replace(ctx, env=dict(ctx.env))
        env_ctx.env[fx.HOST_PYTHON] = self.python
        try:
            applied, lines = self._apply_fixups(env_ctx)
        except _Failure as failure:
            log.note(f"FAILED ({failure.status}): {failure.detail}")
            return BuildResult(failure.status, [], failure.detail)
        for line in lines:
            log.note(f"fix-up {line}")

        inputs = _generator_inputs(ctx)
        stale = _stale_reason(ctx.build_dir)
        if ctx.attempt > 1:
            stale = "the driver retries a failed build from scratch"
        if stale:
            log.note(f"starting from an empty build directory: {stale}")
            _empty_dir(ctx.build_dir)
        incremental = any(ctx.build_dir.iterdir())
        changed = _untracked_changes(ctx.build_dir, inputs) if incremental else []
        env_ctx.env[_INPUTS_KEY] = json.dumps(inputs, sort_keys=True)
        result = self._attempt(env_ctx, log, deadline, incremental, changed)
        result.fixups = applied
        log.note(f"result: {result.status}: {result.detail} ({time.monotonic() - start:.1f} s)")
        return result

    def _apply_fixups(self, ctx: BuildContext) -> tuple[list[str], list[str]]:
        """Apply the fix-ups that detect they apply; a failing one is a PREPARE failure."""
        names: list[str] = []
        lines: list[str] = []
        for fixup in self._fixups:
            try:
                if not fixup.applies(ctx):
                    continue
                what = fixup.apply(ctx)
            except Exception as exc:  # noqa: BLE001 - any fix-up error ends this build only
                raise _Failure(
                    BuildStatus.PREPARE, f"fix-up {fixup.name} failed: {exc!r}"[:300]
                ) from exc
            names.append(fixup.name)
            lines.append(fixup.name if not what else f"{fixup.name}: {what}")
        return names, lines

    def _attempt(
        self,
        ctx: BuildContext,
        log: _Log,
        deadline: float | None,
        incremental: bool,
        changed: list[str],
    ) -> BuildResult:
        mode = "incremental" if incremental else "clean"
        try:
            env = self._env(ctx)
            shim = self._install_shim(ctx)
            args = self._configure_command(ctx, shim)
            stamp = ctx.build_dir / CONFIGURE_STAMP
            configured = (ctx.build_dir / "config-host.mak").is_file() and _read_stamp(stamp).get(
                "args"
            ) == args
            if "VERSION" in changed:
                configured = False  # configure is what copies VERSION into config-host.mak
            if not configured:
                stamp.unlink(missing_ok=True)
                result = log.run(
                    "configure", args, cwd=ctx.build_dir, env=env, timeout=_left(deadline)
                )
                if result.timed_out:
                    raise _Failure(BuildStatus.TIMEOUT, "configure did not finish in time")
                if not result.ok:
                    raise _Failure(
                        BuildStatus.CONFIGURE,
                        configure_error(result.output, [str(ctx.source_dir), str(ctx.build_dir)]),
                    )
            inputs = json.loads(ctx.env.get(_INPUTS_KEY, "{}"))
            make = ["make", f"-j{self.make_jobs}"]
            if changed:
                self._regenerate(ctx, log, deadline, env, make, changed)
            # Written only now: a dir whose regeneration was cut short has no record and is
            # emptied by the next build.
            stamp.write_text(json.dumps({"args": args, "inputs": inputs}, indent=1) + "\n")
            result = log.run("make", make, cwd=ctx.build_dir, env=env, timeout=_left(deadline))
            if result.timed_out:
                raise _Failure(BuildStatus.TIMEOUT, f"make did not finish in time ({mode})")
            if not result.ok:
                status, detail = classify_make(
                    result.output, [str(ctx.source_dir), str(ctx.build_dir)]
                )
                raise _Failure(status, detail)
            built = self._collect(ctx)
        except _Failure as failure:
            _empty_dir(ctx.output_dir)
            return BuildResult(failure.status, [], failure.detail)
        what = "configure + make" if not configured else "make"
        return BuildResult(BuildStatus.OK, [], f"{mode} build ({what}): {built}")

    def _regenerate(
        self,
        ctx: BuildContext,
        log: _Log,
        deadline: float | None,
        env: dict[str, str],
        make: list[str],
        changed: list[str],
    ) -> None:
        """Remake the generated C that QEMU's Makefile cannot know is stale (``regen.py``)."""
        log.note(
            f"{' and '.join(changed)} changed since this build dir's last build (QEMU's"
            " Makefile does not track them): regenerating its generated C"
        )

        def run(title: str, cmd: list[str], cwd: Path) -> ProcResult:
            result = log.run(title, cmd, cwd=cwd, env=env, timeout=_left(deadline))
            if result.timed_out:
                raise _Failure(BuildStatus.TIMEOUT, "regenerating did not finish in time")
            return result

        try:
            report = regenerate(ctx.build_dir, make[:1], run)  # make[:1]: one job
        except OSError as exc:
            # The driver retries a failed incremental build from an empty build dir.
            raise _Failure(BuildStatus.FAILED, f"regenerating failed: {exc}") from exc
        log.note(report.summary())

    def _env(self, ctx: BuildContext) -> dict[str, str]:
        """The build environment: the caller's, minus what would change Python or messages."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(ctx.env)
        env["LC_ALL"] = "C"  # error lines are parsed
        # Never write __pycache__ into the checkout (git reset --hard keeps untracked files).
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if self.ccache:
            env["CCACHE_DIR"] = str(ctx.cache_dir / "ccache")
            # QEMU compiles with -g, and ccache then hashes the working directory: a
            # build in another directory (another recipe key) would miss every object.
            # The price is a DW_AT_comp_dir that may name another build directory.
            env["CCACHE_NOHASHDIR"] = "1"
        return env

    def _install_shim(self, ctx: BuildContext) -> Path:
        """Write the --python shim (``shim.py`` behind a ``#!`` for the host Python)."""
        text = f"#!{self.python}\n" + SHIM_SOURCE.read_text()
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        path = fx.recipe_cache(ctx) / "bin" / f"python-shim-{digest}"
        fx.write_if_changed(path, text, mode=0o755)
        return path

    def _configure_command(self, ctx: BuildContext, shim: Path) -> list[str]:
        cc = f"ccache {self.cc}" if self.ccache else self.cc
        args = [
            str(ctx.source_dir / "configure"),
            f"--target-list={self.target_list}",
            f"--python={shim}",
            f"--cc={cc}",
            # -Werror is the default for x.y.50 snapshots; today's gcc warns a lot more.
            "--disable-werror",
            "--disable-docs",
        ]
        cflags = ctx.env.get(fx.EXTRA_CFLAGS, "").strip()
        if cflags:
            args.append(f"--extra-cflags={cflags}")
        if self.options.trim:
            args += trim_args(ctx.source_dir)
        args += shlex.split(ctx.env.get(fx.EXTRA_CONFIGURE_ARGS, ""))
        return args + self.configure_args

    def _collect(self, ctx: BuildContext) -> str:
        """Copy binaries and firmware into output_dir; MISSING_ARTIFACT if one is absent."""
        missing = [rel for rel in ARTIFACTS.values() if not (ctx.build_dir / rel).is_file()]
        if missing:
            raise _Failure(
                BuildStatus.MISSING_ARTIFACT,
                f"make succeeded but did not produce {', '.join(missing)}",
            )
        for dest, rel in ARTIFACTS.items():
            target = ctx.output_dir / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ctx.build_dir / rel, target)
        bios = ctx.source_dir / "pc-bios"
        out_bios = ctx.output_dir / "pc-bios"
        out_bios.mkdir(parents=True, exist_ok=True)
        if bios.is_dir():
            # What `make install` puts in the data dir: the top-level blobs and keymaps/.
            for item in bios.iterdir():
                if item.is_file():
                    shutil.copy2(item, out_bios / item.name)
            if (bios / "keymaps").is_dir():
                shutil.copytree(bios / "keymaps", out_bios / "keymaps")
        blobs = sum(1 for p in out_bios.iterdir() if p.is_file())
        size = (ctx.output_dir / self.main_binary()).stat().st_size
        return f"qemu-system-x86_64 {size / 1e6:.1f} MB, qemu-img, qemu-io, {blobs} pc-bios files"

    # --- doctor -------------------------------------------------------------------

    def host_checks(self) -> list[HostCheck]:
        checks = [
            _tool_check("gcc", [self.cc, "--version"]),
            _tool_check("make", ["make", "--version"]),
            _tool_check("pkg-config", ["pkg-config", "--version"]),
        ]
        if self.ccache:
            checks.append(_tool_check("ccache", ["ccache", "--version"]))
        checks += [
            _tool_check("glib-2.0 dev", ["pkg-config", "--modversion", "glib-2.0"]),
            _tool_check("zlib dev", ["pkg-config", "--modversion", "zlib"]),
            _tool_check("python3", [self.python, "--version"]),
            _tool_check(
                "lib2to3",
                [self.python, "-W", "ignore", "-c", "import lib2to3.main; print('importable')"],
                hint="QEMU's Python 2 build scripts are converted with lib2to3 "
                "(removed in Python 3.13: use --host-python with a 3.12 or older)",
            ),
            _tool_check(
                "sys/sysmacros.h",
                [
                    "sh",
                    "-c",
                    "printf '#include <sys/sysmacros.h>\\n' | " + self.cc + " -E - >/dev/null",
                ],
            ),
        ]
        return checks


_tool_check = tool_check


def _left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(deadline - time.monotonic(), 0.1)


def _read_stamp(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


_INPUTS_KEY = "BISECT_QEMU_GENERATOR_INPUTS"


def _generator_inputs(ctx: BuildContext) -> dict[str, str]:
    """What QEMU's Makefile fails to track: a change here needs its generated C redone.

    The generated qapi/trace/config/hxtool files depend on their schema or ``.hx``
    input but not on the generator's code: ``scripts/qapi.py``, the tracetool package
    (a shell script before 650ab98d1), ``create_config``, ``hxtool``.  So the key is the
    content of every file under ``scripts/``.  QEMU_VERSION is read by configure from
    VERSION, which no rule depends on.
    """
    version = ctx.source_dir / "VERSION"
    return {
        "scripts/": fingerprint(ctx.source_dir / "scripts") or "",
        "VERSION": version.read_text(errors="replace").strip() if version.is_file() else "",
    }


def _stale_reason(build_dir: Path) -> str | None:
    """Why the build dir cannot be reused at all, or None."""
    if not build_dir.is_dir() or not any(build_dir.iterdir()):
        return None
    if not _read_stamp(build_dir / CONFIGURE_STAMP):
        return "it holds no record of a finished configure"
    if (build_dir / REGEN_STASH).exists():
        return "an earlier regeneration of its generated C was cut short"
    return None


def _untracked_changes(build_dir: Path, inputs: dict[str, str]) -> list[str]:
    """The generator inputs that differ from the build dir's last build."""
    old = _read_stamp(build_dir / CONFIGURE_STAMP).get("inputs", {})
    return [key for key, value in inputs.items() if old.get(key) != value]


def _empty_dir(path: Path) -> None:
    """Remove everything inside ``path`` but keep ``path`` (the driver owns it)."""
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


__all__ = ["ARTIFACTS", "QemuRecipe"]
