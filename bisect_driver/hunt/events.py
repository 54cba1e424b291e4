"""The hunt reports what happens to one event sink (mozregression's handler model).

The driver's sink (app.driver.RunEvents) turns the events into the log, the live panel,
`bisect-qemu status` and the journal's run row; the calibration simulator's sink keeps
nothing.  The hunt itself never writes a log line or a status file: it only tells.
"""

from __future__ import annotations

from typing import Protocol

from bisect_driver.bisect.endpoints import Endpoints


class HuntEvents(Protocol):
    def say(self, message: str) -> None:
        """One line for the person watching (and the driver log)."""

    def phase(self, phase: str) -> None:
        """The hunt moved on: "testing the ends", "bisecting", "confirming the answer"."""

    def ends_decided(self, ends: Endpoints) -> None:
        """Both ends are judged: the hunt's direction is known."""


class QuietEvents:
    """A sink that keeps nothing (simulations, tests)."""

    def say(self, message: str) -> None:
        pass

    def phase(self, phase: str) -> None:
        pass

    def ends_decided(self, ends: Endpoints) -> None:
        pass
