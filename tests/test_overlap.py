"""The probe's preparation runs beside the ends' builds (bisect_driver/app/overlap.py)."""

from __future__ import annotations

import threading

import pytest

from bisect_driver.app.overlap import InBackground


def test_preparation_runs_beside_the_caller_and_its_error_reaches_the_waiter() -> None:
    started, release = threading.Event(), threading.Event()

    def prepare() -> None:
        started.set()
        release.wait(10)
        raise RuntimeError("no guest kernel")

    job = InBackground(prepare)
    assert started.wait(10)  # it runs while the caller goes on (the builds)
    release.set()
    with pytest.raises(RuntimeError, match="no guest kernel"):
        job.wait()
    job.wait()  # reported once


def test_waiting_without_reraise_keeps_the_callers_own_error() -> None:
    job = InBackground(lambda: (_ for _ in ()).throw(OSError("kit")))
    job.wait(reraise=False)  # the caller is already raising its own error
