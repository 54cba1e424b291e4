"""Prove that regenerating in place gives the binaries a clean build gives (issue 13).

When QEMU's build scripts (``scripts/``) or ``VERSION`` change between two commits, the
qemu recipe keeps the build dir and regenerates the generated C in it
(``build_recipes/qemu/regen.py``) instead of emptying it.  For each commit pair A -> B
this script, in one build dir path and one checkout path (so that no path differs):

1. builds A;
2. **regenerated**: builds B on top of it with the recipe as shipped;
3. **naive** (the control): builds B on top of a copy of A's build dir with the
   regeneration switched off, i.e. plain ``make`` as QEMU's Makefile would do it;
4. **clean**: empties the build dir and builds B with ccache disabled
   (``CCACHE_DISABLE=1``), the reference.

Each build's fingerprint is the SHA-256 of ``qemu-system-x86_64``, ``qemu-img`` and
``qemu-io`` after ``objcopy --strip-all --remove-section=.note.gnu.build-id``: the code
and data, not the debug info (whose ``DW_AT_comp_dir`` ccache may take from another
build dir, see docs/qemu-builds.md) nor the build-id (a hash that covers the debug info).
A pair passes when regenerated == clean.  The naive column shows what the regeneration
prevents: where it differs from clean, plain make would have tested a stale binary.

Run by hand with a QEMU clone that has the v1.0 and v1.1.0 tags (README.md says how);
CI has no QEMU source.  About 2 min per pair on 2 cores.

    .venv/bin/python bench/qemu_incremental_proof.py --qemu /work/qemu \
        --work /tmp/incproof [--out docs/results/incremental-proof.md]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qemu_checkout_build import build_commit, git, tool_clone  # noqa: E402

import build_recipes.qemu.recipe as recipe_module  # noqa: E402
from bisect_driver.plugin import BuildStatus  # noqa: E402
from build_recipes.qemu import QemuRecipe  # noqa: E402

# (A, B, why).  The first five are the consecutive builds of the cold real run
# (docs/results/README.md) that started from an empty build dir before this change; the
# others are the range's kinds of untracked generator change, each on its own.
PAIRS: list[tuple[str, str, str]] = [
    ("v1.0", "v1.1.0", "cold run: the two ends (scripts/ and VERSION)"),
    ("v1.1.0", "7c51c1aa03a5", "cold run: step 1, backwards (scripts/ and VERSION)"),
    ("7c51c1aa03a5", "8e01f355db4c", "cold run: step 2 (scripts/)"),
    ("8e01f355db4c", "2ff0f668512b", "cold run: step 3 (scripts/)"),
    ("d7dd65bae3fc", "1042ec94b19e", "cold run: step 6 (scripts/)"),
    ("v1.0", "4eb2d2d90", "VERSION only: 1.0 -> 1.0.50"),
    ("b7d66a761^", "b7d66a761", "the shell tracetool changes its output"),
    ("650ab98d1^", "c419e62a0", "tracetool: shell script -> Python package"),
    ("eb72952b8^", "eb72952b8", "create_config changes"),
    ("c9da228b4^", "c9da228b4", "scripts/qapi.py changes (imported by the generators)"),
]
ARTIFACTS = ("qemu-system-x86_64", "qemu-img", "qemu-io")


@dataclass
class Row:
    a: str
    b: str
    why: str
    changed: str
    regen_s: float
    regen_compiles: int
    regen_summary: str
    regen_fp: str
    naive_fp: str
    clean_s: float
    clean_compiles: int
    clean_fp: str

    @property
    def same(self) -> bool:
        return bool(self.regen_fp) and self.regen_fp == self.clean_fp


def fingerprint(out: Path) -> str:
    """SHA-256 over the three binaries' code and data (see the module docstring)."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ARTIFACTS:
            stripped = Path(tmp) / name
            subprocess.run(
                [
                    "objcopy",
                    "--strip-all",
                    "--remove-section=.note.gnu.build-id",
                    str(out / "bin" / name),
                    str(stripped),
                ],
                check=True,
            )
            digest.update(name.encode() + b"\0" + stripped.read_bytes())
    return digest.hexdigest()[:16]


class Bench:
    def __init__(self, qemu: Path, work: Path) -> None:
        self.work = work
        self.src = work / "src"
        self.build_dir = work / "build"
        self.cache = work / "cache"
        self.logs = work / "logs"
        for d in (self.build_dir, self.cache, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        tool_clone(qemu, self.src)
        self.recipe = QemuRecipe(make_jobs=2)
        self.n = 0

    def rev(self, ref: str) -> str:
        return git(self.src, "rev-parse", f"{ref}^{{commit}}")

    def build(
        self, commit: str, label: str, *, regenerate: bool = True
    ) -> tuple[float, int, str, str]:
        """Build ``commit`` in the build dir; (seconds, compiles, fingerprint, log text)."""
        self.n += 1
        out = self.work / "out"
        log_path = self.logs / f"{self.n:02d}-{commit[:12]}-{label}.log"
        original = recipe_module._untracked_changes
        if not regenerate:
            recipe_module._untracked_changes = lambda *_: []  # plain make: the control
        try:
            built = build_commit(
                self.recipe, self.src, commit, self.build_dir, self.cache, out, log_path
            )
        finally:
            recipe_module._untracked_changes = original
        log = log_path.read_text()
        compiles = len(re.findall(r"^\s+CC\s", log, re.M))
        result = built.result
        if result.status is not BuildStatus.OK:
            print(f"  {label} {commit[:12]}: {result.status}: {result.detail}", flush=True)
            return built.seconds, compiles, "", log
        return built.seconds, compiles, fingerprint(out), log

    def empty_build_dir(self) -> None:
        shutil.rmtree(self.build_dir)
        self.build_dir.mkdir()

    def pair(self, a_ref: str, b_ref: str, why: str) -> Row:
        a, b = self.rev(a_ref), self.rev(b_ref)
        print(f"{a_ref} -> {b_ref}: {why}", flush=True)
        self.build(a, "A")
        saved = self.work / "build-A"
        shutil.rmtree(saved, ignore_errors=True)
        shutil.copytree(self.build_dir, saved, symlinks=True)  # copies keep mtimes
        regen_s, regen_cc, regen_fp, log = self.build(b, "regenerated")
        summary = next((ln[4:] for ln in log.splitlines() if "regenerated files:" in ln), "")
        changed = next(
            (ln[4:].split(" changed since")[0] for ln in log.splitlines() if "changed since" in ln),
            "nothing untracked",
        )
        shutil.rmtree(self.build_dir)
        saved.rename(self.build_dir)
        _, _, naive_fp, _ = self.build(b, "naive", regenerate=False)
        self.empty_build_dir()
        os.environ["CCACHE_DISABLE"] = "1"
        try:
            clean_s, clean_cc, clean_fp, _ = self.build(b, "clean")
        finally:
            del os.environ["CCACHE_DISABLE"]
        row = Row(
            a_ref, b_ref, why, changed, round(regen_s, 1), regen_cc, summary, regen_fp,
            naive_fp, round(clean_s, 1), clean_cc, clean_fp,
        )  # fmt: skip
        verdict = "SAME" if row.same else "DIFFERENT"
        print(
            f"  regenerated {regen_fp} ({regen_s:.1f} s, {regen_cc} compiles), clean {clean_fp}"
            f" ({clean_s:.1f} s, {clean_cc}), naive {naive_fp}: {verdict}",
            flush=True,
        )
        return row


def render(rows: list[Row], command: str) -> str:
    lines = [
        "# Regenerating in place vs a clean build: binary fingerprints (issue 13)",
        "",
        "```",
        command,
        "```",
        "",
        "| A -> B | why | untracked change | regenerated: s, compiles | clean (no ccache):"
        " s, compiles | regenerated == clean | naive make == clean |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.a} -> {r.b} | {r.why} | {r.changed} | {r.regen_s}, {r.regen_compiles} |"
            f" {r.clean_s}, {r.clean_compiles} | {'yes' if r.same else '**no**'}"
            f" (`{r.regen_fp}`) | {'yes' if r.naive_fp == r.clean_fp else '**no**'}"
            f" (`{r.naive_fp}`) |"
        )
    same = sum(r.same for r in rows)
    stale = sum(r.naive_fp != r.clean_fp for r in rows)
    lines += [
        "",
        f"{same} of {len(rows)} pairs: the regenerated build's binaries equal the clean"
        f" build's. Plain make (no regeneration) differed from the clean build in {stale}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qemu", type=Path, required=True, help="a QEMU clone with v1.0, v1.1.0")
    parser.add_argument("--work", type=Path, required=True, help="scratch dir (builds, ccache)")
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    parser.add_argument("--only", type=int, nargs="*", help="pair numbers (0-based) to run")
    args = parser.parse_args()
    bench = Bench(args.qemu.resolve(), args.work.resolve())
    pairs = [PAIRS[i] for i in args.only] if args.only else PAIRS
    rows = [bench.pair(*p) for p in pairs]
    (args.work / "rows.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    command = "python bench/qemu_incremental_proof.py " + " ".join(sys.argv[1:])
    text = render(rows, command)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if all(r.same for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
