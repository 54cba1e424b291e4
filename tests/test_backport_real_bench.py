"""bench/backport_real.py without QEMU: its summary of a report, read through the product's
model, and its refusals (the real runs stay by hand: CI has no QEMU)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import backport_real  # noqa: E402
from test_backport_adapt import sample_result  # noqa: E402

TIME_LOG = """built cccccccccccc: ok in 56s
\tUser time (seconds): 237.34
\tSystem time (seconds): 30.78
\tElapsed (wall clock) time (h:mm:ss or m:ss): 2:31.36
\tMaximum resident set size (kbytes): 427268
\tExit status: 0
"""


def test_summarise_prints_each_candidate_with_its_evidence(tmp_path: Path, capsys) -> None:
    report = tmp_path / "report"
    report.mkdir()
    data = {"candidate": {"commit": "d" * 40}, "backports": [sample_result().to_json()]}
    (report / "report.json").write_text(json.dumps(data))
    log = tmp_path / "time.log"
    log.write_text(TIME_LOG)
    assert backport_real.main(["--summarise", str(report), "--time-log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "| by hand | 2 min 31.4 s | 237 | 31 | 417 MB | 0 | dddddddddddd |" in out
    assert "series **too long**; adapted: **candidates**" in out
    assert "| adapted-1.patch | PASS | 56 s | clean (0/30, error <= 0.007) |" in out
    assert "`new_name` -> `old_name` (aaaaaaaaaaaa, 11 sites)" in out
    assert "Delivered: /r/backport/v1.0/adapted-1.patch" in out


def test_refusals(tmp_path: Path) -> None:
    assert backport_real.main(["--summarise", str(tmp_path)]) == 2  # no --time-log
    assert backport_real.main([]) == 2  # neither a run nor a summary
    args = ["--qemu", str(tmp_path), "--cache-dir", str(tmp_path)]
    assert backport_real.main(args) == 2  # the cold run needs a fresh cache dir


def test_adapt_survey_counts_what_it_tried(tmp_path: Path, capsys) -> None:
    """bench/adapt_survey.py on a generated project: the fix gets a candidate, the chain's
    first commit (it only adds lines next to nothing the release has) is counted too."""
    import adapt_survey
    from test_backport_adapt import DRAIN, Project

    p = Project(tmp_path / "user")
    p.commit("Initial import")
    base = p.chain()
    p.commit("Drain pending requests on shutdown", shutdown=base + DRAIN)
    argv = ["--repo", str(p.path), "--onto", p.shas[0], "--range", f"{p.shas[0]}..{p.shas[-1]}"]
    assert adapt_survey.main([*argv, "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{p.shas[-1][:12]} candidates: 1 candidate" in out
    assert out.strip().endswith("candidates: 1")
    assert adapt_survey.main([*argv[:4], "--range", "nosuch..ref"]) == 2
