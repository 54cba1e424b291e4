"""Checks of an answer, each PASS / FAIL / not run with one line of evidence.

Why a module of their own: the report, the exit status and (later) the
confidence all read the same checks, so each check is computed once, here,
from the journal and git, and never re-derived from text.
"""

from __future__ import annotations

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
