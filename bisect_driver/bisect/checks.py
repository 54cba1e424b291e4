"""Checks of an answer, each PASS / FAIL / not run with one line of evidence.

Why a module of their own: the report, the exit status and (later) the
confidence all read the same checks, so each check is computed once, here,
from the journal and git, and never re-derived from text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import git

from bisect_driver.store.journal import Journal


class CheckStatus(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    NOT_RUN = "not run"


@dataclass
class Check:
    name: str
    status: CheckStatus
    detail: str = ""
    gates: bool = False
    """A check of the answer itself (identical binaries, the revert): when it FAILs the
    answer is not confirmed and the run exits 8.  Backport checks do not gate."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "detail": self.detail,
            "gates": self.gates,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Check:
        return cls(
            data["name"],
            CheckStatus(data["status"]),
            data.get("detail", ""),
            bool(data.get("gates", False)),
        )


FINGERPRINT = "candidate's binary differs from its parent's"


def fingerprint_check(journal: Journal, repo: git.Repo, recipe_key: str, cand: str) -> Check:
    """A candidate whose binary equals its parent's cannot have changed the behaviour."""
    mine = journal.build(cand, recipe_key)
    parents = repo.commit(cand).parents
    if not mine or not mine.fingerprint or not parents:
        return Check(FINGERPRINT, CheckStatus.NOT_RUN, "no fingerprint recorded", gates=True)
    theirs = journal.build(parents[0].hexsha, recipe_key)
    if not theirs or not theirs.fingerprint:
        return Check(FINGERPRINT, CheckStatus.NOT_RUN, "parent not built", gates=True)
    if mine.fingerprint == theirs.fingerprint:
        return Check(
            FINGERPRINT,
            CheckStatus.FAIL,
            "identical binaries: a no-op answer is almost certainly wrong",
            gates=True,
        )
    return Check(
        FINGERPRINT,
        CheckStatus.PASS,
        f"{mine.fingerprint[:12]} vs {theirs.fingerprint[:12]}",
        gates=True,
    )


def no_independent_check(checks: Sequence[Check]) -> str | None:
    """The summary's sentence for an answer none of whose independent checks could run.

    Independent checks are the gating ones (``Check.gates``: the fingerprint, the revert):
    the strict retest of the candidate and its parent re-asks the bisect's own question,
    these ask another.  When every one of them is not run, nothing but the bisect's
    statistics backs the answer, and a reader of the first paragraph must not have to find
    that in the checks table.  None when one of them PASSed or FAILed, or when there is
    none at all (an older journal without the ``gates`` flag: nothing to say either way).
    """
    gating = [c for c in checks if c.gates]
    if not gating or any(c.status is not CheckStatus.NOT_RUN for c in gating):
        return None
    why = "; ".join(f"{c.name}: {c.detail}" if c.detail else c.name for c in gating)
    return (
        f"No independent check could run ({why}): the answer rests on the bisect's"
        " statistics alone."
    )
