"""The trial's judgement: from what was observed to an :class:`Outcome`, with no I/O.

Why a module of its own: the rules (which evidence counts as the bug, which
missing data is merely "in flight", when the harness and not qemu is to blame)
are the probe's whole meaning, and they must be testable as a table without
booting a guest.  ``trial.py`` and ``probe.py`` gather the facts (processes,
the trusted qemu-img, libguestfs); this module only decides, so every rule is
written once and the I/O code cannot quietly grow a rule of its own.

The facts, in the order they are gathered:

1. how qemu ended (:class:`GuestRun`): exit status, signal, hang, whether the
   guest reached the writes and the kill was sent;
2. the trusted ``qemu-img check`` (``CheckResult``), unless the run alone decided;
3. the image's bytes compared with what the guest reported (``DataResult``), or
   why they could not be read;
4. harness failures on the way (after tenacity retries), which make a trial
   INCONCLUSIVE only when nothing else shows the bug.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from bisect_driver.plugin import Outcome

if TYPE_CHECKING:
    from .verify import CheckResult, DataResult


@dataclass
class GuestRun:
    """What happened to qemu and what the guest said (filled in by ``trial.run_guest``)."""

    returncode: int | None = None
    signal: int | None = None
    hung: bool = False
    """qemu did not exit after SIGTERM before the deadline (killed by us)."""
    boot_timeout: bool = False
    """The writes never started before the deadline (killed by us)."""
    start_failed: str | None = None
    init_seen: bool = False
    go_time: float | None = None
    kill_time: float | None = None
    exit_time: float | None = None
    reported: set[int] = field(default_factory=set)
    reported_before_kill: int = 0
    errors: list[str] = field(default_factory=list)
    alldone_before_kill: bool = False
    duration: float = 0.0
    start: float = 0.0
    abort_message: str | None = None
    """The first abort/assertion message qemu printed (see :func:`abort_message`)."""


class Judgement(NamedTuple):
    """The outcome of one trial, the one-line detail for a person, and a short signature.

    ``signature`` names *what* failed ("SIGABRT: qcow2_cache_destroy: Assertion ...",
    "image corrupt", "data lost") so that trials can be grouped by failure; it is
    set exactly when qemu was seen to fail (REPRODUCED or HANG: a hang may be
    counted as a reproduction with ``--hang-as reproduced``).
    """

    outcome: Outcome
    detail: str
    signature: str | None = None


MAX_ABORT_MESSAGE = 160
"""Enough for qcow2_cache_destroy's assertion; a signature must stay one short line."""

# glibc assert(): "qemu-system-x86_64: block/qcow2-cache.c:73: qcow2_cache_destroy:
# Assertion `c->entries[i].ref == 0' failed."  The program, file and line are dropped:
# they differ between builds of the same failure, the function and expression do not.
_GLIBC_ASSERT = re.compile(r"(?:^|\s)[^\s:]+:\d+: (?P<func>[A-Za-z_]\w*): (?P<what>Assertion .+)$")
# GLib g_assert*(): "ERROR:../block/io.c:123:bdrv_drain: assertion failed: (x)"
_GLIB_ASSERT = re.compile(r"ERROR:[^\s:]+:\d+:(?P<func>[A-Za-z_]\w*): (?P<what>.+)$")
# cpu_abort() and hw_error(): "qemu: fatal: ...", "qemu: hardware error: ..."
_QEMU_FATAL = re.compile(r"(?P<what>qemu: (?:fatal|hardware error): .+)$")
# What the guest's writer prints: "BQ-" a word and numbers, nothing else (writer.c).
# qemu's stderr and the serial console share one pipe, so an assertion qemu prints
# while the console is mid-line lands glued to that line's start ("BQ-D 1" + message):
# only what follows the protocol's own fields is searched.
_PROTOCOL = re.compile(r"BQ-(?:[A-Z]+(?: -?\d+)*)?")


def abort_message(line: str) -> str | None:
    """The abort or assertion message in one line of qemu's output, or None.

    Why only these forms: the same stream carries the guest's console, and a
    signature must come from qemu itself, never from what the guest printed
    (our ``BQ-`` protocol fields never match; text glued after them is not the
    guest's, see ``_PROTOCOL``).
    """
    text = line.strip()
    protocol = _PROTOCOL.match(text)
    if protocol:
        text = text[protocol.end() :]
    for pattern in (_GLIBC_ASSERT, _GLIB_ASSERT):
        m = pattern.search(text)
        if m:
            what = m.group("what").rstrip(".").strip()
            return f"{m.group('func')}: {what}"[:MAX_ABORT_MESSAGE]
    m = _QEMU_FATAL.search(text)
    if m:
        return m.group("what").strip()[:MAX_ABORT_MESSAGE]
    return None


def signal_name(sig: int) -> str:
    """``SIGABRT`` for 6; ``signal 40`` for a signal without a name (real-time signals)."""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def judge_run(run: GuestRun) -> Judgement | None:
    """The judgement decided by the qemu run alone, or None when the image must decide.

    A REPRODUCED answer (qemu died by a signal after our SIGTERM) is final as to
    the outcome, but the image is still examined so the detail says what it did
    to the data.
    """
    if run.start_failed:
        return Judgement(Outcome.INCONCLUSIVE, f"harness: cannot start qemu: {run.start_failed}")
    if run.hung:
        return Judgement(
            Outcome.HANG,
            "qemu did not exit after SIGTERM before the timeout (killed)",
            "hang after SIGTERM",
        )
    if run.go_time is None or run.kill_time is None:
        if run.boot_timeout:
            why = "guest did not reach the writes before the timeout"
        elif not run.init_seen:
            why = "guest never started init"
        else:
            why = "guest did not reach the writes"
        ended = (
            f"; qemu killed by signal {run.signal}"
            if run.signal
            else (f"; qemu exited {run.returncode}" if run.returncode is not None else "")
        )
        errors = f" ({'; '.join(run.errors[:2])})" if run.errors else ""
        return Judgement(Outcome.INCONCLUSIVE, why + ended + errors)
    if run.errors:
        return Judgement(
            Outcome.INCONCLUSIVE, f"guest write error before the kill: {run.errors[0]}"
        )
    if run.signal is not None:
        name = signal_name(run.signal)
        label = "" if name.startswith("signal ") else f" {name}"
        detail = f"qemu died by signal {run.signal}{label} after SIGTERM"
        signature = name
        if run.abort_message:
            detail += f": {run.abort_message}"
            signature = f"{name}: {run.abort_message}"
        return Judgement(Outcome.REPRODUCED, detail, signature)
    if run.alldone_before_kill:
        return Judgement(
            Outcome.INCONCLUSIVE, "all writes finished before the kill (nothing in flight)"
        )
    return None


def check_unreadable(check: CheckResult) -> bool:
    """The trusted check could not even open the image (no counts): its bytes cannot be read."""
    return not check.ok and check.corruptions == 0 and check.leaks == 0


def _check_signature(check: CheckResult) -> str:
    if check.corruptions:
        return "image corrupt"
    if check.leaks:
        return "leaked clusters"
    return "image unreadable"


def wants_data(
    run: GuestRun | None, check: CheckResult | None, harness_errors: Sequence[str]
) -> bool:
    """Whether reading the image's bytes can still matter to :func:`judge`.

    The I/O asks this before the slow read (qemu-img convert or libguestfs):
    not when the run alone decided (a guest that never wrote, a hang), not when
    a harness failure already leaves nothing but INCONCLUSIVE or the check's own
    finding, and not when the check could not open the image at all.
    """
    if run is None:
        return False
    first = judge_run(run)
    if first is not None and first.outcome is not Outcome.REPRODUCED:
        return False
    if first is None and harness_errors:
        return False  # INCONCLUSIVE, or the check's own finding: the bytes add nothing
    if check is None:
        return first is not None  # the check failed to run: a signal death still wants detail
    return not check_unreadable(check)


def judge(
    run: GuestRun | None,
    check: CheckResult | None = None,
    data: DataResult | None = None,
    read_error: str = "",
    harness_errors: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> Judgement:
    """Decide one trial from its facts; pure, so the rules read (and test) as a table.

    ``run`` is None when qemu never ran (the harness failed first, e.g. qemu-img
    create).  ``check`` and ``data`` are None when they were not gathered;
    ``read_error`` says why the image's bytes could not be read (a broken image:
    evidence of the bug); ``harness_errors`` are failures of our own tools after
    retries; ``notes`` are appended to the detail of an image-judged trial.

    The rules: the run decides first (:func:`judge_run`).  Otherwise the bug was
    seen if qemu died by a signal, the trusted check is not clean, the image is
    unreadable, or a chunk the guest reported complete is missing or wrong
    (chunks past the last report were in flight: not errors).  A harness failure
    makes the trial INCONCLUSIVE only when none of that was seen.
    """
    if run is None:
        why = "; ".join(f"harness: {e}" for e in harness_errors) or "harness: qemu did not run"
        return Judgement(Outcome.INCONCLUSIVE, why)
    first = judge_run(run)
    if first is not None and first.outcome is not Outcome.REPRODUCED:
        return first
    parts: list[str] = [first.detail] if first is not None else []
    signature = first.signature if first is not None else None
    reproduced = first is not None
    if check is not None and not check.ok:
        reproduced = True
        parts.append(f"trusted check: {check.detail}")
        signature = signature or _check_signature(check)
    parts.extend(f"harness: {e}" for e in harness_errors)
    if read_error:
        reproduced = True
        parts.append(read_error)
        signature = signature or "image unreadable"
    if data is not None and not data.ok:
        reproduced = True
        parts.append(data.summary())
        signature = signature or ("data lost" if data.lost else "data wrong")
    parts.extend(notes)
    if reproduced:
        return Judgement(Outcome.REPRODUCED, _join(parts), signature)
    if not harness_errors and (check is None or data is None):
        # Only a caller that skipped a step gets here; never call that CLEAN.
        missing = "image was not checked" if check is None else "image data was not read"
        parts.append(f"harness: {missing}")
    if harness_errors or check is None or data is None:
        return Judgement(Outcome.INCONCLUSIVE, _join(parts))
    parts.append(
        f"qemu exited {run.returncode} after SIGTERM at {run.reported_before_kill} "
        f"reported chunks; check ok; {len(run.reported)} reported chunks intact"
    )
    return Judgement(Outcome.CLEAN, _join(parts))


def _join(parts: Sequence[str]) -> str:
    return "; ".join(p for p in parts if p)
