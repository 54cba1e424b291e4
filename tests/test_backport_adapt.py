"""Adapted backports on generated C projects: real builds (cc), real flaky probes.

Each project is a program whose shutdown sometimes leaves requests pending (about half the
runs exit 1, which the probe reports as a crash); the fix drains them.  Between the old
release and the fix, a chain of five commits rewrites the line next to the fix's place
(``level = 1`` ... ``level = 5``), so the fix does not apply to the release and no series
of prerequisites does either (the search gives up after its rounds): the backporter's case.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import git
import pytest
from conftest import read_report, tool_args
from test_backport import PROBE, Repo
from test_revert import commit_files, git_

from bisect_driver.backport.adapt import adapt
from bisect_driver.backport.backmap import conversion_in, defined_in, substitution
from bisect_driver.backport.explain import missing_symbols
from bisect_driver.backport.model import BackportResult, Candidate, Mapping, Placement, Trial
from bisect_driver.backport.relocate import (
    HunkText,
    apply_edits,
    definitions,
    function_of,
    place_hunk,
)
from bisect_driver.backport.stage import adapted_check
from bisect_driver.bisect.checks import CheckStatus
from bisect_driver.plugin.errors import EXIT_FOUND
from bisect_driver.report.backport_html import backport_html
from bisect_driver.report.text import backport_lines
from bisect_driver.store.repo import Checkout

MAIN = """#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "helpers.h"
int pending;
static int level;
{extra}
static void start(void)
{{
    srand((unsigned)time(NULL) ^ ((unsigned)getpid() << 8));
    pending = rand() % 100 < 50 ? 3 : 0;
}}

void shutdown_all(void)
{{
{shutdown}    close_all();
}}

int main(void)
{{
    start();
    shutdown_all();
    return pending ? 1 : 0;
}}
"""

HELPERS_H = """void close_all(void);
void flush_all(void);
void sync_a(void);
void sync_b(void);
{decls}"""

HELPERS_C = """#include "helpers.h"
extern int pending;
void close_all(void) {{ }}
void flush_all(void) {{ {flush} }}

void sync_a(void)
{{
    {sync}();
}}

void sync_b(void)
{{
    {sync}();
}}
{defs}"""

DRAIN = "    pending = 0; /* drain */\n"


class Project(Repo):
    """A generated project: every commit writes the whole tree from a few knobs."""

    def __init__(self, path: Path, flush: str = "pending = 0;") -> None:
        super().__init__(path)
        self.flush = flush

    def commit(  # type: ignore[override]
        self,
        msg: str,
        shutdown: str = "",
        extra: str = "",
        decls: str = "",
        defs: str = "",
        sync: str = "flush_all",
    ) -> str:
        files = {
            "main.c": MAIN.format(shutdown=shutdown, extra=extra),
            "helpers.h": HELPERS_H.format(decls=decls),
            "helpers.c": HELPERS_C.format(flush=self.flush, sync=sync, defs=defs),
            "probe.sh": PROBE,
        }
        return self.commit_tree(msg, files)

    def chain(self, **kw: str) -> str:
        """Five commits each rewriting the line before the fix's place; returns the
        shutdown text the fix builds on."""
        for k in range(1, 6):
            self.commit(f"Shutdown level {k}", shutdown=f"    level = {k};\n", **kw)
        return "    level = 5;\n"


def run(cli, project: Project, tmp_path: Path, *extra: str) -> tuple[object, dict]:
    args = tool_args(
        project.path,
        project.shas[0],
        project.shas[-1],
        tmp_path / "cache",
        "cc -o prog *.c",
        ["prog", "probe.sh"],
    )
    r = cli(*args, "--report-dir", str(tmp_path / "report"), *extra)
    return r, read_report(tmp_path / "report")


def backport(data: dict) -> dict:
    return data["backports"][0]


def check(data: dict, prefix: str) -> dict:
    return next(c for c in data["checks"] if c["name"].startswith(prefix))


def body_of(text: str, name: str) -> str:
    lines = text.split("\n")
    ((lo, hi),) = definitions(lines, name)
    return "\n".join(lines[lo : hi + 1])


# -- end to end ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_fix_whose_context_moved_inside_its_function(cli, tmp_path: Path) -> None:
    """The fix's neighbour line came from a chain no series can bring; the candidate puts
    the drain before close_all() in shutdown_all(), builds, and the probe finds it clean.
    Delivered as adapted-1.patch: machine-adapted, from which commit, what was verified,
    and it applies with git am onto the release."""
    p = Project(tmp_path / "user")
    p.commit("Initial import")
    base = p.chain()
    fix = p.commit("Drain pending requests on shutdown", shutdown=base + DRAIN)
    p.commit("Unrelated", shutdown=base + DRAIN, extra="/* later */")
    r, data = run(cli, p, tmp_path)
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == fix
    b = backport(data)
    assert b["series_status"] != "applies"
    assert b["adapt_status"] == "candidates", b["adapt_detail"]
    first = b["candidates"][0]
    assert first["status"] == "PASS", first
    assert first["trial"]["verdict"] == "clean" and first["trial"]["reproduced"] == 0
    assert "reproduces" in first["detail"]  # REF itself first
    (placed,) = first["placements"]
    assert "shutdown_all()" in placed["where"] and "before `close_all();`" in placed["where"]
    assert check(data, "adapted backport onto")["status"] == "PASS"
    out = Path(b["out_dir"])
    patch = out / "adapted-1.patch"
    text = patch.read_text()
    assert "Machine-adapted by bisect-qemu" in text and f"from commit {fix}" in text
    assert "MACHINE-ADAPTED" in text and "clean (0/" in text and "git worktree add" in text
    assert "adapted-1.patch" in (out / "VERIFY.md").read_text()
    # The delivered file is what a maintainer runs: git am onto the release, and the drain
    # lands inside shutdown_all().
    work = tmp_path / "maint"
    subprocess.run(["git", "clone", "-q", str(p.path), str(work)], check=True)
    git_(work, "checkout", "-q", p.shas[0])
    git_(work, "am", "-q", str(patch))
    assert "pending = 0; /* drain */" in body_of((work / "main.c").read_text(), "shutdown_all")
    # VERIFY.md's rerun with the delivered file: git am makes the candidate's own commit, so
    # its build and trials are reused, and it passes as a hand-made patch.
    again = tmp_path / "again"
    r2, data2 = run(cli, p, tmp_path, "--report-dir", str(again), "--backport-patch", str(patch))
    assert r2.status == EXIT_FOUND, r2.err
    (judged,) = read_report(again)["backports"][0]["patches"]
    assert judged["status"] == "PASS" and judged["trial"]["commit"] == first["commit"]
    # Shown in both reports, the HTML one as HTML (no Markdown left in a <pre>).
    md = (tmp_path / "report" / "report.md").read_text()
    assert "#### `adapted-1.patch`: **PASS**" in md
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<h4><code>adapted-1.patch</code>: <strong>PASS</strong></h4>" in page
    assert "## Backport onto" not in page and "<table class='side'>" in page


@pytest.mark.slow
@pytest.mark.parametrize("helper_drains", [True, False])
def test_a_fix_that_uses_a_helper_from_a_conversion_commit(
    cli, tmp_path: Path, helper_drains: bool
) -> None:
    """drain_all() came with a commit that replaced flush_all() by it at every call site:
    the candidate writes flush_all().  Where flush_all() drains, that candidate passes;
    where it does not (drain_all() did more than the old name), it builds, the probe sees
    the bug stay, and nothing is delivered."""
    p = Project(tmp_path / "user", flush="pending = 0;" if helper_drains else "")
    decl, define = "void drain_all(void);\n", "\nvoid drain_all(void) { flush_all(); }\n"
    if not helper_drains:
        define = "\nvoid drain_all(void) { flush_all(); pending = 0; }\n"
    p.commit("Initial import")
    conv = p.commit(
        "Convert flush_all() calls to drain_all()", decls=decl, defs=define, sync="drain_all"
    )
    kw = {"decls": decl, "defs": define, "sync": "drain_all"}
    base = p.chain(**kw)
    fix = p.commit("Drain on shutdown", shutdown=base + "    drain_all();\n", **kw)
    p.commit("Unrelated", shutdown=base + "    drain_all();\n", extra="/* later */", **kw)
    r, data = run(cli, p, tmp_path)
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == fix
    b = backport(data)
    assert b["adapt_status"] == "candidates", b["adapt_detail"]
    first = b["candidates"][0]
    (mapping,) = first["mappings"]
    assert (mapping["name"], mapping["old"], mapping["commit"]) == ("drain_all", "flush_all", conv)
    assert mapping["sites"] == 2
    assert "+    flush_all();" in first["diff"] and "drain_all" not in first["diff"]
    out = Path(b["out_dir"])
    if helper_drains:
        assert first["status"] == "PASS", first
        assert (out / "adapted-1.patch").exists()
        assert check(data, "adapted backport onto")["status"] == "PASS"
    else:
        assert first["status"] == "does not fix", first
        assert first["trial"]["reproduced"] > 0
        assert not list(out.glob("adapted-*"))
        assert check(data, "adapted backport onto")["status"] == "FAIL"
        assert "does not fix" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.slow
def test_look_alike_context_in_another_function_is_not_used(cli, tmp_path: Path) -> None:
    """reset_all() has the fix's context line for line (``level = 5; close_all();``), and
    ``patch --fuzz 3`` puts the hunk there, where it fixes nothing.  The candidate stays in
    shutdown_all(), the function the hunk header names, and passes."""
    reset = "\nvoid reset_all(void)\n{\n    level = 5;\n    close_all();\n}\n"
    p = Project(tmp_path / "user")
    p.commit("Initial import", extra=reset)
    base = p.chain(extra=reset)
    fix = p.commit("Drain pending requests on shutdown", shutdown=base + DRAIN, extra=reset)
    p.commit("Unrelated", shutdown=base + DRAIN, extra=reset + "/* later */")
    # The trap is real: textual fuzz lands in reset_all().
    fix_patch = git_(p.path, "format-patch", "-1", "--stdout", fix) + "\n"
    trap = tmp_path / "trap"
    subprocess.run(["git", "clone", "-q", str(p.path), str(trap)], check=True)
    git_(trap, "checkout", "-q", p.shas[0])
    if shutil.which("patch"):
        subprocess.run(
            ["patch", "-p1", "--fuzz", "3", "-s"],
            cwd=trap,
            input=fix_patch,
            text=True,
            check=True,
            capture_output=True,
        )
        text = (trap / "main.c").read_text()
        assert "drain" in body_of(text, "reset_all") and "drain" not in body_of(
            text, "shutdown_all"
        )
    r, data = run(cli, p, tmp_path)
    assert r.status == EXIT_FOUND, r.err
    b = backport(data)
    cands = b["candidates"]
    assert cands and all("reset_all" not in c["diff"].split("@@")[-1] for c in cands)
    first = cands[0]
    assert first["status"] == "PASS", first
    work = tmp_path / "maint"
    subprocess.run(["git", "clone", "-q", str(p.path), str(work)], check=True)
    git_(work, "checkout", "-q", p.shas[0])
    git_(work, "am", "-q", first["file"])
    text = (work / "main.c").read_text()
    assert "drain" in body_of(text, "shutdown_all") and "drain" not in body_of(text, "reset_all")


@pytest.mark.slow
def test_a_fix_that_cannot_be_adapted_says_so(cli, tmp_path: Path) -> None:
    """drain_all() is new behaviour (its commit added it and converted nothing): there is
    no old name, so no candidate; the report says why, and the exit status is as before."""
    p = Project(tmp_path / "user")
    decl, define = "void drain_all(void);\n", "\nvoid drain_all(void) { pending = 0; }\n"
    p.commit("Initial import")
    helper = p.commit("Add drain_all()", decls=decl, defs=define)
    base = p.chain(decls=decl, defs=define)
    fix = p.commit(
        "Drain on shutdown", shutdown=base + "    drain_all();\n", decls=decl, defs=define
    )
    p.commit(
        "Unrelated", shutdown=base + "    drain_all();\n", decls=decl, defs=define, extra="/**/"
    )
    r, data = run(cli, p, tmp_path)
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == fix
    b = backport(data)
    assert b["adapt_status"] == "cannot be adapted" and b["candidates"] == []
    assert "drain_all" in b["adapt_detail"] and helper[:12] in b["adapt_detail"]
    assert "not by a mechanical conversion" in b["adapt_detail"]
    c = check(data, "adapted backport onto")
    assert c["status"] == "not run" and "cannot be adapted" in c["detail"]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Adapted backport: **cannot be adapted**" in md
    assert not list(Path(b["out_dir"]).glob("adapted-*"))


# -- the pieces, on text ----------------------------------------------------------------


OLD_C = """int other(void)
{
    level = 5;
    close_all();
}

void shutdown_all(void)
{
    if (x) {
        close_all();
    }
}
"""


def hunk(header: str, lines: list[str], old_start: int = 20) -> HunkText:
    return HunkText("main.c", header, old_start, old_start, lines)


def test_function_of_reads_the_hunk_header() -> None:
    assert function_of("@@ -816,6 +816,8 @@ void bdrv_close(BlockDriverState *bs)") == "bdrv_close"
    assert function_of("@@ -1,2 +1,3 @@ static int coroutine_fn f (int x)") == "f"
    assert function_of("@@ -1,2 +1,3 @@ struct BlockDriverState {") is None
    assert function_of("@@ -1,2 +1,3 @@") is None


def test_definitions_skip_prototypes_and_calls() -> None:
    text = "void f(void);\nint g(void)\n{\n    f();\n}\nvoid f(void)\n{\n    if (1) { }\n}\n"
    assert definitions(text.split("\n"), "f") == [(5, 8)]
    assert definitions(text.split("\n"), "g") == [(1, 4)]


def test_a_change_is_anchored_inside_the_named_function_only() -> None:
    h = hunk(
        "@@ -20,4 +20,5 @@ void shutdown_all(void)",
        [" {", "     level = 5;", "+    drain();", "     close_all();", " }"],
    )
    places, why = place_hunk(OLD_C, h)
    assert not why and len(places) == 1
    new = apply_edits(OLD_C, list(places[0].edits))
    assert "drain" not in body_of(new, "other")
    # Anchored on close_all() inside shutdown_all(), indented as that line is there.
    assert "    if (x) {\n        drain();\n        close_all();" in new


def test_no_anchor_inside_the_function_means_no_place() -> None:
    h = hunk(
        "@@ -20,4 +20,5 @@ void shutdown_all(void)",
        ["     level = 5;", "+    drain();", "     level = 6;"],
    )
    places, why = place_hunk(OLD_C, h)
    assert places == [] and "shutdown_all()" in why
    h2 = hunk("@@ -1,2 +1,3 @@ void missing(void)", ["     close_all();", "+    drain();"])
    places, why = place_hunk(OLD_C, h2)
    assert places == [] and "no function missing()" in why


def test_lone_braces_do_not_anchor() -> None:
    h = hunk("@@ -20,2 +20,3 @@ void shutdown_all(void)", ["     }", "+    drain();", " }"])
    places, _ = place_hunk(OLD_C, h)
    assert places == []


def test_removed_lines_must_be_there() -> None:
    h = hunk(
        "@@ -20,3 +20,3 @@ void shutdown_all(void)",
        ["     if (x) {", "-        close_all();", "+        close_all(1);", "     }"],
    )
    places, _ = place_hunk(OLD_C, h)
    assert len(places) == 1
    assert "close_all(1);" in body_of(apply_edits(OLD_C, list(places[0].edits)), "shutdown_all")
    gone = hunk("@@ -20,1 +20,1 @@ void shutdown_all(void)", ["-    level = 5;", "+    x;"])
    assert place_hunk(OLD_C, gone)[0] == []  # level = 5 is only in other()


CONVERSION = """diff --git a/a.c b/a.c
--- a/a.c
+++ b/a.c
@@ -3 +3 @@ void a(void)
-    flush();
+    drain();
@@ -9,0 +10,4 @@ void b(void)
+void drain(void)
+{
+    flush();
+}
@@ -20,2 +24,3 @@ void c(void)
-    if (x)
-        flush();
+    if (x) {
+        drain();
+    }
"""


def test_a_mechanical_conversion_is_recognised() -> None:
    assert conversion_in(CONVERSION, "drain") == ("flush", 2)
    assert substitution("    flush(a, b);", "    drain(a, b);", "drain") == "flush"
    assert substitution("    flush(a, b);", "    drain(a, c);", "drain") is None


def test_anything_but_a_conversion_gives_no_mapping() -> None:
    reworded = CONVERSION + "@@ -60 +64 @@\n-    flush(a);\n+    drain(b);\n"
    assert conversion_in(reworded, "drain") is None  # more than the name changed
    one_site = CONVERSION.split("@@ -20,2")[0]
    assert conversion_in(one_site, "drain") == ("flush", 1)  # a small tree's one call site
    mixed = CONVERSION + "@@ -40 +44 @@\n-    sync();\n+    drain();\n"
    assert conversion_in(mixed, "drain") is None  # two different old names
    other = CONVERSION + "@@ -50 +54 @@\n-    x = 1;\n+    x = drain() + 1;\n"
    assert conversion_in(other, "drain") is None  # brought in another way too
    assert conversion_in("@@ -1,0 +1 @@\n+void drain(void) { }\n", "drain") is None


def test_adapt_on_a_generated_repo_without_building(tmp_path: Path) -> None:
    """adapt() alone: one candidate, committed onto the release with the fix's author and a
    message that names what moved and what was mapped; the same commit on a second call."""
    p = Project(tmp_path / "user")
    decl, define = "void drain_all(void);\n", "\nvoid drain_all(void) { flush_all(); }\n"
    p.commit("Initial import")
    conv = p.commit("Convert", decls=decl, defs=define, sync="drain_all")
    base = p.chain(decls=decl, defs=define, sync="drain_all")
    fix = p.commit(
        "Drain", shutdown=base + "    drain_all();\n", decls=decl, defs=define, sync="drain_all"
    )
    clone = tmp_path / "clone"
    git.Repo.clone_from(str(p.path), str(clone))
    symbols = missing_symbols(git.Repo(clone), p.shas[0], fix)
    a = adapt(Checkout(clone), "REL", p.shas[0], fix, symbols)
    assert a.status == "candidates", a.detail
    (c,) = a.candidates
    msg = git_(clone, "log", "-1", "--format=%an%n%B", str(c.commit))
    assert msg.startswith("Later Dev\nDrain")
    assert f"from commit {fix}" in msg and f"{conv[:12]} (Convert)" in msg
    assert "drain_all -> flush_all" in msg
    again = adapt(Checkout(clone), "REL", p.shas[0], fix, symbols)
    assert again.candidates[0].commit == c.commit


def sample_result() -> BackportResult:
    trial = Trial("v1.0 + adapted-1.patch", "c" * 40, "clean", 0, 30, 0.007, "", "clean")
    cand = Candidate(
        1,
        [Placement("block.c", "@@ -816,6 +816,8 @@ void f(void)", "line 702 of f()", "@@ x\n+y")],
        [Mapping("new_name", "old_name", "a" * 40, "convert <script>alert(1)</script>", 11)],
        diff="diff --git a/block.c b/block.c\n+" + "x" * 300,
        commit="c" * 40,
        status="PASS",
        detail="v1.0 reproduces (9/10); v1.0 + adapted-1.patch clean (0/30, error <= 0.0071)",
        trial=trial,
        file="/r/backport/v1.0/adapted-1.patch",
    )
    return BackportResult(
        "v1.0",
        "b" * 40,
        "d" * 40,
        False,
        series_status="too long",
        adapt_status="candidates",
        adapt_detail="1 candidate",
        candidates=[cand],
    )


def test_candidates_survive_the_json_round_trip() -> None:
    b = sample_result()
    assert BackportResult.from_json(json.loads(json.dumps(b.to_json()))) == b


def test_the_html_backport_section_is_html() -> None:
    """Headings, lists and code as HTML (not Markdown in a fixed-width box); the diff beside
    the fix's hunk; a commit subject cannot inject markup; long lines wrap."""
    page = backport_html(sample_result())
    assert page.startswith("<section class='backport'>")
    assert "<h2>Backport onto v1.0" in page and "<h4>" in page and "<li>" in page
    assert "## Backport" not in page and "**" not in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<table class='side'>" in page and "x" * 300 in page
    md = "\n".join(backport_lines(sample_result()))
    assert "#### `adapted-1.patch`: **PASS**" in md and "```diff" in md


def test_the_report_page_wraps_the_backport_section() -> None:
    css = (Path(__file__).parents[1] / "bisect_driver/report/html.py").read_text()
    assert ".backport pre{white-space:pre-wrap" in css


def test_checks_say_pass_fail_or_why_not() -> None:
    b = sample_result()
    assert adapted_check(b).status is CheckStatus.PASS
    b.candidates[0].status = "does not fix"
    assert adapted_check(b).status is CheckStatus.FAIL
    b.candidates[0].status = "not run"
    assert adapted_check(b).status is CheckStatus.NOT_RUN
    b.candidates, b.adapt_status, b.adapt_detail = [], "cannot be adapted", "the fix uses x"
    c = adapted_check(b)
    assert c.status is CheckStatus.NOT_RUN and "cannot be adapted: the fix uses x" in c.detail


@pytest.mark.slow
def test_no_verify_backport_makes_candidates_without_building_them(cli, tmp_path: Path) -> None:
    p = Project(tmp_path / "user")
    p.commit("Initial import")
    base = p.chain()
    p.commit("Drain pending requests on shutdown", shutdown=base + DRAIN)
    p.commit("Unrelated", shutdown=base + DRAIN, extra="/* later */")
    r, data = run(cli, p, tmp_path, "--no-verify-backport")
    assert r.status == EXIT_FOUND, r.err
    (c,) = backport(data)["candidates"]
    assert c["status"] == "not run" and "not verified" in c["detail"] and c["trial"] is None
    assert "+    pending = 0; /* drain */" in c["diff"]
    assert not list(Path(backport(data)["out_dir"]).glob("adapted-*"))


def test_a_helper_added_after_the_named_function_goes_right_after_it() -> None:
    h = hunk(
        "@@ -20,3 +20,7 @@ void shutdown_all(void)",
        ["         close_all();", "     }", " }", "+", "+static void drain(void)", "+{", "+}"],
    )
    places, why = place_hunk(OLD_C, h)
    assert not why and len(places) == 1
    new = apply_edits(OLD_C, list(places[0].edits))
    assert new.endswith("    }\n}\n\nstatic void drain(void)\n{\n}\n")
    assert "right after the function's closing brace" in places[0].where


def test_a_crlf_file_stays_crlf() -> None:
    old = OLD_C.replace("\n", "\r\n")
    h = hunk(
        "@@ -20,4 +20,5 @@ void shutdown_all(void)",
        ["     if (x) {", "+        drain();", "         close_all();"],
    )
    (place,), _ = place_hunk(old, h)
    new = apply_edits(old, list(place.edits))
    assert "    if (x) {\r\n        drain();\r\n        close_all();\r\n" in new


def test_a_change_after_a_label_belongs_to_the_enclosing_function() -> None:
    """git's header names the last column-0 line above the hunk: here the label ``retry:``.
    The function is the one enclosing the change in the fix's parent."""
    parent = "int f(void)\n{\nretry:\n    a();\n    b();\n    c();\n    d();\n}\n"
    old = "int f(void)\n{\nretry:\n    a();\n    b();\n    d();\n}\nint g(void)\n{\n    b();\n}\n"
    h = HunkText(
        "main.c",
        "@@ -4,4 +4,5 @@ retry:",
        4,
        4,
        ["     a();", "     b();", "+    x();", "     c();", "     d();"],
        parent,
    )
    (place,), why = place_hunk(old, h)
    assert not why and "of f()" in place.where
    assert apply_edits(old, list(place.edits)).startswith(
        "int f(void)\n{\nretry:\n    a();\n    b();\n    x();\n    d();"
    )
    h.parent = None  # without the parent: the header names no function, and the lines differ
    assert place_hunk(old, h)[0] == []


def test_names_the_tree_only_uses_come_from_outside_it(tmp_path: Path) -> None:
    """g_assert_not_reached is glib's: QEMU's first use of it came with some commit, which
    says nothing about v1.0 lacking it.  Only a name the tree defines or declares can be
    missing from the old release."""
    repo = tmp_path / "r"
    repo.mkdir()
    git_(repo, "init", "-q")
    text = (
        "#define FOO 1\nint bar(void)\n{\n    int loc = 0;\n    ext_call();\n}\n"
        "struct baz { int m; };\ntypedef struct { int x; } qux;\nenum { ENUMV,\n};\n"
        "static int\ngnu (int y)\n{\n}\n"
    )
    commit_files(repo, {"a.c": text}, "one", 1_600_000_000)
    r = git.Repo(repo)
    for name in ("FOO", "bar", "loc", "baz", "qux", "ENUMV", "gnu", "m"):
        assert defined_in(r, "HEAD", name), name
    assert not defined_in(r, "HEAD", "ext_call")


def test_the_changes_of_one_hunk_keep_their_order() -> None:
    """x() ties between before z() and after a(); y() must follow z(): only the placement
    that keeps x() before y() is made."""
    old = "void f(void)\n{\n    z();\n    c();\n    a();\n}\n"
    h = hunk(
        "@@ -1,5 +1,7 @@ void f(void)",
        ["     a();", "+    x();", "     z();", "+    y();", "     c();"],
    )
    (place,), _ = place_hunk(old, h)
    new = apply_edits(old, list(place.edits))
    assert "{\n    x();\n    z();\n    y();\n    c();\n    a();\n}" in new, new


@pytest.mark.slow
def test_a_candidate_that_does_not_build_is_shown_not_delivered(cli, tmp_path: Path) -> None:
    """The fix clears a local the chain declared in shutdown_all(); the release has the
    name only as a member elsewhere (so it is not "missing"), and the candidate placed in
    shutdown_all() does not compile: shown as "does not build", nothing delivered."""
    member = "struct unrelated { int ready; };\n"
    p = Project(tmp_path / "user")
    p.commit("Initial import", decls=member)
    for k in range(1, 6):
        p.commit(f"Shutdown level {k}", shutdown=f"    int ready = {k};\n", decls=member)
    base = "    int ready = 5;\n"
    fix = p.commit(
        "Drain when ready",
        shutdown=base + "    pending = ready - ready; /* drain */\n",
        decls=member,
    )
    p.commit(
        "Unrelated",
        shutdown=base + "    pending = ready - ready; /* drain */\n",
        decls=member,
        extra="/**/",
    )
    r, data = run(cli, p, tmp_path)
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == fix
    b = backport(data)
    (c,) = b["candidates"]
    assert c["status"] == "does not build", c
    assert "does not build" in c["detail"]
    assert check(data, "adapted backport onto")["status"] == "FAIL"
    assert not list(Path(b["out_dir"]).glob("adapted-*"))
    assert (
        "#### `adapted-1.patch`: **does not build**"
        in (tmp_path / "report" / "report.md").read_text()
    )


def test_a_header_file_hunk_is_used_as_it_is_or_not_at_all() -> None:
    """git's header for a hunk in a list of prototypes names a prototype; there is no
    function to put lines in, so the hunk goes where its whole old side is, verbatim."""
    parent = "void a(void);\nvoid b(void);\n"
    lines = [" void a(void);", " void b(void);", "+void c(void);"]
    h = HunkText("x.h", "@@ -1,2 +1,3 @@ void a(void);", 1, 1, lines, parent)
    (place,), why = place_hunk("/* x */\n" + parent, h)
    assert "as it is" in place.where
    assert apply_edits("/* x */\n" + parent, list(place.edits)).endswith("void c(void);\n")
    places, why = place_hunk("void a(void);\nvoid z(void);\n", h)
    assert places == [] and "in no function" in why


def test_a_definition_is_found_in_any_file_and_in_the_whole_tree_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """defined_in searches the definition patterns only in the files that name the word:
    a file name with glob characters is taken literally, a definition in the second of two
    files naming it is found, and past MAX_PATHS files it searches the whole tree, with
    the same answers."""
    from bisect_driver.backport import backmap

    repo = tmp_path / "r"
    repo.mkdir()
    git_(repo, "init", "-q")
    commit_files(
        repo,
        {
            "use.c": "void g(void)\n{\n    helper();\n}\n",
            "b[1]*.c": "int helper(void)\n{\n    return 0;\n}\n",
            "other.c": "int helper_two(void);\n",
        },
        "one",
        1_600_000_000,
    )
    r = git.Repo(repo)
    for cap in (backmap.MAX_PATHS, 0):
        monkeypatch.setattr(backmap, "MAX_PATHS", cap)
        assert defined_in(r, "HEAD", "helper"), cap
        assert defined_in(r, "HEAD", "helper_two"), cap
        assert not defined_in(r, "HEAD", "g_absent"), cap
        assert not defined_in(r, "HEAD", "help"), cap  # only a part of a longer name


def test_the_batched_lookups_agree_with_one_lookup_each(tmp_path: Path) -> None:
    """symbols_in (one grep for all names) gives what has_symbol gives name by name, also
    for a name that is only the start of a longer one; ancestors_among (one rev-list) what
    is_ancestor gives commit by commit."""
    from bisect_driver.backport.explain import has_symbol, symbols_in
    from bisect_driver.store.repo import ancestors_among, is_ancestor

    repo = tmp_path / "r"
    repo.mkdir()
    git_(repo, "init", "-q")
    shas = [
        commit_files(repo, {"a.c": "int foo_bar;\n"}, "one", 1_600_000_000),
        commit_files(repo, {"b.c": "void foo(void);\nreturn foo_bar;\n"}, "two", 1_600_000_100),
    ]
    git_(repo, "checkout", "-q", "-b", "side", shas[0])
    shas.append(commit_files(repo, {"c.c": "int side_only;\n"}, "side", 1_600_000_200))
    r = git.Repo(repo)
    names = ["foo", "foo_bar", "side_only", "bar", "absent_name"]
    for tree in shas:
        got = symbols_in(r, tree, names)
        assert got == {n for n in names if has_symbol(r, tree, n)}, tree
    assert symbols_in(r, shas[1], names) == {"foo", "foo_bar"}
    assert symbols_in(r, shas[0], names) == {"foo_bar"}
    assert symbols_in(r, shas[1], []) == set()
    for tip in shas:
        expected = {c for c in shas if is_ancestor(r, c, tip)}
        assert ancestors_among(r, shas, tip) == expected, tip
    assert ancestors_among(r, shas, shas[1]) == {shas[0], shas[1]}
    assert ancestors_among(r, [], shas[1]) == set()
