"""Write a run's report: report.json for machines, report.md to paste, report.html to look at.

The report is collected afresh from the journal and git each time (see
report.collect), so `bisect-qemu report` can regenerate it at any moment, also
for a run that is still going or was interrupted.  The JSON schema is in
docs/report.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bisect_driver.context import RunContext
from bisect_driver.report.collect import collect
from bisect_driver.report.html import render_html
from bisect_driver.report.markdown import render_md
from bisect_driver.report.model import render_json


@dataclass(frozen=True)
class ReportFiles:
    """Where the three renderings were written (the driver prints the markdown's path)."""

    json_path: Path
    md_path: Path
    html_path: Path


def _atomic_write(path: Path, text: str) -> None:
    """Write beside, then rename: a reader (or a crash) never sees half a report."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)


def write_report(ctx: RunContext, report_dir: Path) -> ReportFiles:
    """Collect the run's report and write its three renderings into ``report_dir``."""
    report = collect(ctx)
    report_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        report_dir / "report.json", report_dir / "report.md", report_dir / "report.html"
    )
    _atomic_write(files.json_path, render_json(report))
    md = render_md(report)
    _atomic_write(files.md_path, md)
    _atomic_write(files.html_path, render_html(report))
    return files
