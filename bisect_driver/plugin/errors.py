"""Exit statuses and the errors that map onto them.

Every way the tool can end has its own status, so an overnight wrapper script
can tell "found it" from "ambiguous" from "your input was wrong" without
parsing text.  The table is repeated in README.md ("Exit status").
"""

from __future__ import annotations

EXIT_FOUND = 0  # exactly one candidate commit
EXIT_AMBIGUOUS = 1  # a candidate set (skipped commits border the answer) or no answer
EXIT_USAGE = 2  # bad input: options, refs, repo, config
EXIT_ENDPOINTS = 3  # the two ends behave alike, or an end cannot be built/tested
EXIT_INTERRUPTED = 4  # stopped by a signal; rerun the same command to resume
EXIT_LOCKED = 5  # another run holds the cache lock
EXIT_JOURNAL = 6  # the journal is unreadable or corrupt
EXIT_DISK = 7  # not enough free disk to go on; rerun to resume after freeing space
EXIT_UNCONFIRMED = 8  # an answer, but a check failed or the confidence was not reached
EXIT_CLUSTER = 9  # the Dask scheduler is unreachable, lost, or its workers refused; rerun
EXIT_INTERNAL = 70  # a bug in the tool (traceback in the driver log)


class BisectError(Exception):
    """An error that ends the run with a one-line message and ``exit_status``."""

    exit_status = EXIT_INTERNAL


class UserError(BisectError):
    """Bad input: unknown ref, bad option value, missing or dirty repo..."""

    exit_status = EXIT_USAGE


class EndpointError(BisectError):
    """The ends of the range cannot be told apart (or cannot be built/tested)."""

    exit_status = EXIT_ENDPOINTS


class LockedError(BisectError):
    exit_status = EXIT_LOCKED


class JournalError(BisectError):
    exit_status = EXIT_JOURNAL


class ClusterError(BisectError):
    """The cluster cannot serve the run: scheduler unreachable or lost, no workers, a
    worker with another bisect-qemu.  Nothing recorded is lost: rerun to resume."""

    exit_status = EXIT_CLUSTER


class Interrupted(BisectError):
    exit_status = EXIT_INTERRUPTED
