"""Run one preparation beside the ends' builds, and wait for it only when trials need it.

A cold run used to prepare the probe first (the qcow2 probe: build the guest kit, then a
test boot under KVM that runs into its timeout here) and only then start building the two
ends. Neither needs the other until the first trial, so the preparation runs on a thread
while the builds go on. It is one light job beside one build (make -j2): the guest kit is a
copy and a cpio, the test boot one qemu process, so two cores are not oversubscribed by
more than one process for a few seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class InBackground:
    """``fn()`` on a thread; :meth:`wait` returns when it is done and re-raises its error."""

    def __init__(self, fn: Callable[[], None], name: str = "prepare") -> None:
        self._error: BaseException | None = None

        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                self._error = exc

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def wait(self, reraise: bool = True) -> None:
        self._thread.join()
        if self._error is not None and reraise:
            error, self._error = self._error, None
            raise error
