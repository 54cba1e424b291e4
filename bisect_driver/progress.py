"""Progress for a person at a terminal, plain lines for an overnight log.

On a terminal, rich draws the status (range left, steps left, current commit,
trials and reproductions, time left); otherwise every event is one
timestamped line, so ``bisect-qemu ... > night.log`` stays readable.  Output
goes to stderr: stdout of `git bisect run` is parsed by the driver.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console


class Progress:
    def __init__(self, log_path: Path | None = None, quiet: bool = False) -> None:
        self.console = Console(stderr=True, highlight=False)
        self.fancy = self.console.is_terminal
        self.log_path = log_path
        self.quiet = quiet

    def line(self, message: str, style: str | None = None) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d')} {stamp} {message}\n")
        if self.quiet:
            return
        if self.fancy:
            self.console.print(f"[dim]{stamp}[/dim] {message}", style=style)
        else:
            print(f"{stamp} {message}", file=sys.stderr, flush=True)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
