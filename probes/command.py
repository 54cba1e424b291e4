"""The generic probe: the user's ``--probe-cmd``, one trial per run.

Exit 0 = bug not seen, 1 = bug reproduced, 125 = this trial could not tell;
anything else (including death by a signal) is a probe error, recorded but
never counted.  The command runs through the shell with the artifact
directory as its working directory and ``BISECT_COMMIT``,
``BISECT_ARTIFACT_DIR``, ``BISECT_TRIAL``, ``BISECT_SEED`` and
``BISECT_WORK_DIR`` in its environment.

A reproduction also says *what* failed (``TrialResult.signature``), so that a
crash for another reason is not taken for the bug (docs/statistics.md,
"Signatures: what counts as the bug"): with ``--signature REGEX`` it is the
first output line matching REGEX, and ``TrialResult.is_bug`` says whether one
matched; otherwise (and when none matched) it is every output line that names
a failure (an assertion, a signal by name, a sanitizer or panic headline, the
probe's own reason line; :data:`FAILURE_LINES`), with what differs between runs
of one failure (pids, addresses, timestamps, scratch paths) replaced but
never a signal ("signal 11" becomes SIGSEGV, "signal 6" SIGABRT), so that two
runs of the same failure get the same signature and two different crashes
with the same last line do not (:func:`default_signature`).
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bisect_driver.plugin import (
    Outcome,
    Probe,
    TrialContext,
    TrialResult,
    UserError,
    option,
    run_group,
)

EXIT_OUTCOMES = {0: Outcome.CLEAN, 1: Outcome.REPRODUCED, 125: Outcome.INCONCLUSIVE}

SIGNATURE_MAX = 200
"""A signature is one short line: it is stored with every reproduction and shown in reports."""

SIGNATURE_RULE = 2
"""Version of :func:`default_signature`'s rule, part of the probe's key without
``--signature`` (1, the last line with every number replaced by ``N``, had no
key entry).  Bump it when the rule changes what a failure's signature is."""


def _signal_name(number: int) -> str | None:
    """``SIGSEGV`` for 11, as this host numbers them (the trials run here); None for a
    number that is no standard signal (then the text stays as it is)."""
    if not 1 <= number <= 31:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


FAILURE_LINES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # C/C++ assert(), glibc's "prog: file.c:42: func: Assertion `x' failed.", Rust's
    # assert!/assert_eq! ("assertion failed", "assertion `left == right` failed"),
    # Python/Java AssertionError, gtest's "Assertion failed".
    ("assertion", re.compile(r"(?i)\bassert(?:ion)?\b.*\bfail|\bAssertionError\b")),
    # Sanitizer headlines (ASan/TSan/MSan/LSan/HWASan ERROR, WARNING, SUMMARY) and
    # UBSan's "file.c:12:5: runtime error: ...": one line that says what went wrong.
    ("sanitizer", re.compile(r"\b(?:ERROR|WARNING|SUMMARY): \w*Sanitizer\b|\bruntime error:")),
    # valgrind's headlines ("==1234== Invalid read of size 4").
    (
        "valgrind",
        re.compile(
            r"==\d+== (?:Invalid (?:read|write|free)|Mismatched free|Conditional jump"
            r"|Use of uninitialised|Process terminating|Syscall param)"
        ),
    ),
    # Go ("panic: ...", "fatal error: ..."), Rust ("thread 'main' panicked at ..."),
    # the kernel's panic.
    ("panic", re.compile(r"^\s*panic: |\bpanicked at\b|^\s*fatal error: |\bKernel panic\b")),
    # Kernel oopses and reports (also in a guest's console log).
    (
        "kernel",
        re.compile(
            r"\bBUG: |\bOops\b|\bgeneral protection fault\b|\b(?:KASAN|KCSAN|UBSAN): "
            r"|\bkernel BUG at\b|\bUnable to handle kernel\b|\bsegfault at\b"
        ),
    ),
    # glibc's heap and stack checks ("*** stack smashing detected ***: terminated",
    # "double free or corruption (out)", "free(): invalid pointer", "malloc(): ...").
    (
        "libc",
        re.compile(
            r"\*\*\* .*(?:detected|terminated) \*\*\*|\bdouble free\b|\bstack smashing\b"
            r"|\b(?:free|malloc|realloc|calloc|munmap_chunk|malloc_consolidate)\(\): "
            r"|\bcorrupted (?:size|double-linked|top size|unsorted)"
        ),
    ),
    # The shell's (and libc's) words for a death by signal: "Segmentation fault (core
    # dumped)", "Aborted", "./probe.sh: line 3: 1234 Killed ./prog".
    (
        "signal words",
        re.compile(
            r"\b(?:Segmentation fault|Aborted|Bus error|Illegal instruction"
            r"|Floating point exception|Trace/breakpoint trap|Bad system call|core dumped)\b"
            r"|(?:^|\d\s+)(?:Killed|Terminated)\b"
        ),
    ),
    # C++ and JVM deaths by exception.
    (
        "uncaught exception",
        re.compile(r"\bterminate called\b|^Exception in thread\b|\b[Uu]nhandled exception\b"),
    ),
    # A probe's own reason line: "crashed: SIGSEGV", "FAIL: data lost", "fatal: ...".
    (
        "probe reason",
        re.compile(
            r"^\s*(?i:crash(?:ed)?|fail(?:ed|ure)?|fatal|abort(?:ed)?|bug|reproduced)\s*[:!]"
            r"|^\s*(?:FAIL(?:ED|URE)?|ERROR)\b"
        ),
    ),
)
"""Lines that name a failure, by kind (the name is for people reading this table).

Why a table of patterns and not the last line: a reason printed early (an
assertion, the first line of a sanitizer report, a panic) is what tells two
crashes apart, and the last line is often the same for both ("killed by signal
N", "exit 1").  Why these and not every line: a signature is compared across
trials and commits, so it must hold only what *names* the failure; ordinary
output (progress, warnings, timings) would make one failure look like many.
Two more kinds are found outside this table: a line naming a signal (by name
or number) that is not about sending one (:data:`_SIGNAL`), and a Python
traceback's exception line (the first unindented line after ``Traceback``).
"""

_SIGNAL = re.compile(
    r"\bSIG(?:HUP|INT|QUIT|ILL|TRAP|ABRT|IOT|BUS|FPE|KILL|USR1|SEGV|USR2|PIPE|ALRM|TERM"
    r"|STKFLT|XCPU|XFSZ|VTALRM|PROF|IO|POLL|PWR|SYS|EMT|RTMIN(?:\+\d+)?|RTMAX(?:-\d+)?)\b"
)
"""A signal that kills by default, by name: a line naming one names how a process died
(unless :data:`_SENDING`).  SIGCHLD, SIGCONT, SIGWINCH, SIGURG and the stop signals
kill nothing, so a line naming only them names no failure."""

_SENDING = re.compile(
    r"(?i)\b(?:send|sends|sending|sent|raise[sd]?|ignor\w*|block\w*|install\w*|handler)\b"
    r"|\bkill\s+-|\bterminating on (?:signal|SIG)"
)
"""A line that talks about sending or handling a signal (a probe's own "sending SIGTERM",
qemu's normal "terminating on signal 15 from pid N") names no failure."""

_SIGNAL_NUMBER = re.compile(r"(?i)\b(?:signal|sig|signo|si_signo)\b\s*[:=#]?\s*(\d{1,2})\b")
"""``signal 11``, ``sig=6``, ``signal: 11``: a number that is a signal, named instead."""

_EXIT_BY_SIGNAL = re.compile(
    r"(?i)\b(?:exit(?:ed)?(?:\s+with)?(?:\s+(?:status|code|value))?|status"
    r"|return(?:ed)?(?:\s+code)?|rc|returncode)\s*[:=]?\s*(-?\d{1,3})\b"
)
"""An exit status 128+N (the shell's) or -N (Python's subprocess): death by signal N."""

_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):")

RUN_VARYING: tuple[tuple[re.Pattern[str], str], ...] = (
    # Source locations: "file.c:42:", "src/main.rs:4:5": signatures are compared across
    # commits, and an edit above the failing line moves it; the function, expression and
    # message still name the failure.
    (re.compile(r"(\.[A-Za-z][A-Za-z0-9+]{0,4}):\d+(?::\d+)?\b"), r"\1:<line>"),
    # Timestamps: dates, times of day, kernel log stamps, Unix epoch seconds.
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        ),
        "<date>",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"\[\s*\d+\.\d+\]"), "[<time>]"),
    (re.compile(r"\b1[5-9]\d{8}(?:\.\d+)?\b"), "<time>"),
    # Durations ("after 45.6 s", "took 12ms").
    (
        re.compile(r"\b\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|sec|secs|seconds?|min|minutes?)\b"),
        "<duration>",
    ),
    # Process and thread ids: ASan's/valgrind's "==1234==", "pid 1234", "pid=1234",
    # "PID: 1234", "(process 1234)", "tid 7", "LWP 7", syslog's "prog[1234]:", the
    # shell's "line 3:  1234 Segmentation fault", Rust's "thread 'main' (1234)".
    (re.compile(r"==\d+=="), "==<pid>=="),
    (re.compile(r"(?i)(\b(?:pid|process)\b[\s:=#]*)\d+"), r"\1<pid>"),
    (re.compile(r"(?i)(\b(?:tid|lwp|thread id)\b[\s:=#]*)\d+"), r"\1<tid>"),
    (re.compile(r"(\w)\[\d+\](?=:)"), r"\1[<pid>]"),
    (re.compile(r"(\bline \d+:\s+)\d+(?=\s)"), r"\1<pid>"),
    (re.compile(r"(\bthread '[^']*' \()\d+(?=\))"), r"\1<tid>"),
    # Scratch paths: mkdtemp/mktemp names are random per run.
    (re.compile(r"(?:/var)?/tmp/[^\s:'\"`,;)]*|/dev/shm/[^\s:'\"`,;)]*"), "<tmp>"),
    (re.compile(r"\btmp\.[A-Za-z0-9]{6,}"), "tmp.<rand>"),
    # Long bare hex (64-bit addresses in kernel reports, hashes).
    (re.compile(r"\b[0-9a-fA-F]{12,}\b"), "<hex>"),
)
"""What differs between runs of one failure, and what it becomes (applied in order).

Only these are replaced: a number that stays the same across runs of one
failure (a signal, an exit status, an error code, a size) is part of what the
failure is.  Hexadecimal addresses (``0x`` and at least 0x10000) are replaced
too, by :func:`_address`; small hex values (``addr=0x0``, ``code=0x1``) stay.
"""

_HEX = re.compile(r"\b0[xX][0-9a-fA-F]+\b")
_DIGITS = re.compile(r"[0-9]+")


def _address(match: re.Match[str]) -> str:
    """A hex value at least 0x10000 is an address (ASLR moves it); a smaller one stays."""
    return "<addr>" if int(match.group(0), 16) >= 0x10000 else match.group(0)


def _named_signals(line: str) -> str:
    """Signal numbers replaced by names: "killed by signal 11" -> "killed by SIGSEGV",
    "exit status 139" -> "exit status 139 (SIGSEGV)"."""

    def by_number(m: re.Match[str]) -> str:
        name = _signal_name(int(m.group(1)))
        return name if name is not None else m.group(0)

    line = _SIGNAL_NUMBER.sub(by_number, line)

    def by_status(m: re.Match[str]) -> str:
        status = int(m.group(1))
        name = _signal_name(status - 128 if status > 128 else -status)
        if name is None or name in line:
            return m.group(0)
        return f"{m.group(0)} ({name})"

    return _EXIT_BY_SIGNAL.sub(by_status, line)


def _run_invariant(line: str, varying: Mapping[re.Pattern[str], str]) -> str:
    """``line`` with what differs between runs of one failure replaced (``varying`` first,
    then :data:`RUN_VARYING`), signal numbers named, and runs of blanks made one space."""
    for pattern, placeholder in varying.items():
        line = pattern.sub(placeholder, line)
    line = _named_signals(line)
    line = _HEX.sub(_address, line)
    for pattern, replacement in RUN_VARYING:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


_SIGNAL_WORDS = {
    "Segmentation fault": "SIGSEGV",
    "Aborted": "SIGABRT",
    "Bus error": "SIGBUS",
    "Illegal instruction": "SIGILL",
    "Floating point exception": "SIGFPE",
    "Trace/breakpoint trap": "SIGTRAP",
    "Bad system call": "SIGSYS",
    "Killed": "SIGKILL",
    "Terminated": "SIGTERM",
}
"""The shell's words for a death by signal, and the signal each names."""


def _only_signal(line: str) -> str | None:
    """The signal a line names when it says nothing else: a shell's report of a child's
    death ("Segmentation fault (core dumped)", "./probe.sh: line 3: 1234 Aborted")."""
    if _SIGNAL.search(_named_signals(line)):
        return None
    if any(p.search(line) for name, p in FAILURE_LINES if name != "signal words"):
        return None
    return next((sig for word, sig in _SIGNAL_WORDS.items() if word in line), None)


def _names_failure(line: str) -> bool:
    """Whether ``line`` names a failure (:data:`FAILURE_LINES`, or a signal not being sent)."""
    if any(p.search(line) for _, p in FAILURE_LINES):
        return True
    named = _named_signals(line)
    return bool(_SIGNAL.search(named)) and not (_SENDING.search(line) or _SENDING.search(named))


def failure_lines(output: str) -> list[str]:
    """The lines of ``output`` that name a failure, raw, in order.

    A Python traceback contributes its exception line (the first unindented
    line after ``Traceback (most recent call last):``); a Rust panic whose
    headline ends in ``:`` (Rust >= 1.73 puts the message on the next line)
    contributes both lines as one.
    """
    lines = output.splitlines()
    found: list[str] = []
    in_traceback = False
    for i, line in enumerate(lines):
        if _TRACEBACK.match(line):
            in_traceback = True
            continue
        if in_traceback:
            if line.strip() and not line[0].isspace():
                in_traceback = False
                found.append(line)
            continue
        if not _names_failure(line):
            continue
        if "panicked at" in line and line.rstrip().endswith(":") and i + 1 < len(lines):
            line = f"{line.rstrip()} {lines[i + 1].strip()}"
        found.append(line)
    return found


def default_signature(output: str, varying: Mapping[str, str] | None = None) -> str | None:
    """What failed, from the whole of ``output``: every line that names a failure.

    The lines :func:`failure_lines` finds, each with what differs between runs
    of one failure replaced (pids, addresses, timestamps, scratch paths:
    :data:`RUN_VARYING`) and signal numbers named ("signal 11" and "signal 6"
    stay two failures: SIGSEGV and SIGABRT), distinct, in order, joined with
    `` | `` and cut to :data:`SIGNATURE_MAX`.  A shell's report of a child's
    death ("Segmentation fault", "Aborted") is left out when another line names
    the same signal ("crashed: SIGSEGV"): the shell prints it or not depending
    on when it waits for the child (seen on the generated project: one failure
    became two signatures), while the probe's own line is always there.
    ``varying`` maps further text
    known to differ per trial or per commit (the trial's scratch dir, the
    commit's artifact dir, the commit, the seed) to a placeholder: without
    that, a path with the commit in it would make every commit's failure
    another signature.

    When no line names a failure: the last non-empty line, normalised the same
    way and then with its remaining digit runs replaced by ``N`` (a probe's
    free-form last line carries counters that differ per run; a signal in it
    is already a name by then, so SIGSEGV and SIGABRT stay apart).  None when
    there is no output at all (such a reproduction matches any bug).
    """
    subst = {
        re.compile(rf"(?<![0-9A-Za-z]){re.escape(text)}(?![0-9A-Za-z])"): placeholder
        for text, placeholder in (varying or {}).items()
        if text
    }
    entries: dict[str, str | None] = {}  # entry -> the signal it alone names
    for line in failure_lines(output):
        entry = _run_invariant(line, subst)
        if entry and entry not in entries:
            entries[entry] = _only_signal(line)
    named = [
        entry
        for entry, only in entries.items()
        if only is None or not any(only in other for other in entries if other != entry)
    ]
    if named:
        return " | ".join(named)[:SIGNATURE_MAX]
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return None
    return _DIGITS.sub("N", _run_invariant(lines[-1], subst))[:SIGNATURE_MAX]


def trial_varying(ctx: TrialContext) -> dict[str, str]:
    """Text in a trial's output that differs per trial or per commit, with its placeholder
    (longest first, so a path is replaced before the commit inside it): the trial's scratch
    dir, the commit's artifact and evidence dirs, the commit (full, 12 and 7 characters)
    and the seed (when it has at least 5 digits: a short one could be any small number,
    a signal's for one)."""
    return {
        str(ctx.work_dir): "<work>",
        str(ctx.evidence_dir): "<evidence>",
        str(ctx.artifact_dir): "<artifacts>",
        ctx.commit: "<commit>",
        ctx.commit[:12]: "<commit>",
        ctx.commit[:7]: "<commit>",
        **({str(ctx.seed): "<seed>"} if ctx.seed >= 10_000 else {}),
    }


def _regex(text: str) -> str:
    """``--signature``: checked when given, so a typo fails before any build."""
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return text


def match_signature(output: str, pattern: str) -> str | None:
    """The first line of ``output`` in which ``pattern`` is found (``re.search``), stripped."""
    regex = re.compile(pattern)
    for line in output.splitlines():
        if regex.search(line):
            return line.strip()[:SIGNATURE_MAX]
    return None


def signature_extra(
    output: str, pattern: str, varying: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``TrialResult.extra`` of a reproduction: its signature and, with a pattern, the verdict.

    ``bug`` is present only when ``pattern`` is given (the user said what the
    bug looks like); without it the driver compares signatures with the
    reproducing end's instead.  ``varying``: see :func:`default_signature`.
    """
    extra: dict[str, Any] = {}
    matched = match_signature(output, pattern) if pattern else None
    signature = matched if matched is not None else default_signature(output, varying)
    if signature is not None:
        extra["signature"] = signature
    if pattern:
        extra["bug"] = matched is not None
    return extra


@dataclass(frozen=True)
class CommandOptions:
    probe_cmd: str = option(
        "", "command probe: one trial; exit 0 clean, 1 reproduced, 125 cannot tell"
    )
    signature: str = option(
        "",
        "command probe: regular expression naming the bug; a trial that exits 1 without an"
        " output line matching it is another failure, recorded but never counted",
        parse=_regex,
    )


class CommandProbe(Probe):
    name = "command"
    Options = CommandOptions
    options: CommandOptions

    def __init__(self, options: CommandOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        if not self.options.probe_cmd:
            raise UserError("--probe command needs --probe-cmd")

    @property
    def command(self) -> str:
        return self.options.probe_cmd

    def settings(self) -> dict[str, Any]:
        # --signature changes what counts, so it changes the key.  Without it the
        # default signature decides what counts, so its rule is in the key: trials
        # recorded under the old last-line rule ("killed by signal N") would never
        # match new ones ("killed by SIGSEGV"), and a resumed run's reproducing end
        # would make every later reproduction "another failure".  With --signature
        # the probe's own verdict decides and the default signature is only shown.
        settings: dict[str, Any] = {"probe_cmd": self.command}
        if self.options.signature:
            settings["signature"] = self.options.signature
        else:
            settings["signature_rule"] = SIGNATURE_RULE
        return settings

    def run_trial(self, ctx: TrialContext) -> TrialResult:
        env = dict(
            os.environ,
            BISECT_COMMIT=ctx.commit,
            BISECT_ARTIFACT_DIR=str(ctx.artifact_dir),
            BISECT_TRIAL=str(ctx.index),
            BISECT_SEED=str(ctx.seed),
            BISECT_WORK_DIR=str(ctx.work_dir),
        )
        log = ctx.work_dir / "probe.log"
        res = run_group(
            self.command,
            shell=True,
            cwd=ctx.artifact_dir,
            env=env,
            timeout=ctx.timeout,
            log_path=log,
        )
        tail = res.output.strip().splitlines()[-1:] if res.output.strip() else []
        detail = tail[0][:200] if tail else ""
        if res.timed_out:
            outcome = Outcome.HANG
            detail = f"timed out after {ctx.timeout}s"
        elif res.signal is not None:
            outcome = Outcome.ERROR
            detail = f"probe command killed by signal {res.signal}"
        else:
            outcome = EXIT_OUTCOMES.get(
                -1 if res.returncode is None else res.returncode, Outcome.ERROR
            )
            if outcome == Outcome.ERROR:
                detail = f"probe exit {res.returncode}: {detail}"
        extra: dict[str, Any] = {}
        if outcome == Outcome.REPRODUCED:
            extra = signature_extra(res.output, self.options.signature, trial_varying(ctx))
        log_path = None
        if outcome in (Outcome.REPRODUCED, Outcome.ERROR, Outcome.HANG):
            ctx.evidence_dir.mkdir(parents=True, exist_ok=True)
            kept = ctx.evidence_dir / f"trial-{ctx.index}.log"
            kept.write_text(res.output)
            log_path = str(kept)
        return TrialResult(
            outcome,
            duration=res.duration,
            exit_status=res.returncode,
            signal=res.signal,
            detail=detail,
            log_path=log_path,
            signature=extra.get("signature"),
            is_bug=extra.get("bug"),
        )
