"""bench/real_run.py's measure(): a bench stopped by SIGTERM stops the run it measures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {bench!r})
from real_run import measure
work = Path({work!r})
measure("stopped", ["sh", "-c", "sleep 300 & echo $! > pid; wait"], work, work / "logs")
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _wait_for(cond, limit_s: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``cond`` until it holds or ``limit_s`` passed (a wait, not a timing check)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs /usr/bin/time")
def test_a_bench_stopped_by_sigterm_stops_the_run_it_measures(tmp_path: Path) -> None:
    code = DRIVER.format(bench=str(BENCH), work=str(tmp_path))
    bench = subprocess.Popen([sys.executable, "-c", code])
    pid_file = tmp_path / "pid"
    try:
        assert _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
        child = int(pid_file.read_text())
        assert _alive(child)
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=60) == 128 + signal.SIGTERM
        assert _wait_for(lambda: not _alive(child)), "the measured run outlived the bench"
    finally:
        if bench.poll() is None:
            bench.kill()
        if pid_file.exists() and pid_file.read_text().strip():
            child = int(pid_file.read_text())
            if _alive(child):
                os.kill(child, signal.SIGKILL)
