"""What the backport stage found for one REF: stored in the run's result, rendered by the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Blame:
    """A context line a hunk needs that the tree lacks, and the commit that brought it."""

    path: str
    line: str
    commit: str
    subject: str


@dataclass
class Symbol:
    """An identifier the fix uses that REF lacks, and the commit that introduced it."""

    name: str
    commit: str | None
    subject: str = ""


@dataclass
class HunkConflict:
    path: str
    header: str
    """The hunk's ``@@ ... @@`` line."""
    blames: list[Blame] = field(default_factory=list)


@dataclass
class Explanation:
    """Why ``commit`` does not apply onto a tree."""

    commit: str
    hunks: list[HunkConflict] = field(default_factory=list)
    symbols: list[Symbol] = field(default_factory=list)

    def prerequisites(self) -> list[str]:
        """Every commit named, in first-seen order."""
        out: list[str] = []
        for h in self.hunks:
            for b in h.blames:
                if b.commit not in out:
                    out.append(b.commit)
        for s in self.symbols:
            if s.commit and s.commit not in out:
                out.append(s.commit)
        return out


@dataclass
class SeriesCommit:
    commit: str
    subject: str
    why: str
    """"the fix", or why it is a prerequisite (the context or symbol it brings)."""


@dataclass
class Trial:
    """A tree that was built and probed: what it is, its verdict and its evidence."""

    label: str
    commit: str
    """The commit in the tool's checkout (REF itself, or a commit made there)."""
    verdict: str
    reproduced: int
    trials: int
    error: float
    detail: str = ""
    expected: str = ""
    """The verdict that would verify the backport ("bug" or "clean")."""

    @property
    def ok(self) -> bool:
        return self.verdict == self.expected


@dataclass
class PatchResult:
    """A hand-made ``--backport-patch FILE`` onto REF."""

    path: str
    status: str
    """PASS (builds, the bug is gone), FAIL (the bug stays), or not run (why in detail)."""
    detail: str
    trial: Trial | None = None


@dataclass
class Mapping:
    """A symbol REF lacks, written the old way: ``commit`` converted ``old`` into ``name``."""

    name: str
    old: str
    commit: str
    subject: str
    sites: int
    """Call sites ``commit`` converted (the evidence that it was mechanical)."""


@dataclass
class Placement:
    """Where one hunk of the fix went in a candidate, beside the hunk as the fix has it."""

    path: str
    header: str
    """The fix's ``@@ ... @@`` line (it names the function)."""
    where: str
    original: str
    """The hunk as the fix has it (header and lines)."""


@dataclass
class Candidate:
    """A machine-adapted backport of the fix onto REF, and what building and probing it said."""

    number: int
    placements: list[Placement] = field(default_factory=list)
    mappings: list[Mapping] = field(default_factory=list)
    diff: str = ""
    """REF -> the candidate (``git diff``)."""
    commit: str | None = None
    """REF + the candidate, committed in the tool's checkout."""
    status: str = "not run"
    """PASS | does not apply | does not build | does not fix | not run | not tried."""
    detail: str = ""
    trial: Trial | None = None
    file: str | None = None
    """``adapted-N.patch`` in backport/REF/ (a PASS only)."""

    @property
    def name(self) -> str:
        return f"adapted-{self.number}.patch"


@dataclass
class BackportResult:
    ref: str
    ref_sha: str
    candidate: str
    direct: bool
    """The fix alone cherry-picks cleanly onto REF."""
    explanations: list[Explanation] = field(default_factory=list)
    series: list[SeriesCommit] = field(default_factory=list)
    series_status: str = ""
    """applies | does not apply | too long | not searched."""
    series_detail: str = ""
    trials: list[Trial] = field(default_factory=list)
    """REF, REF + prerequisites (when any), REF + series."""
    verified: bool = False
    """REF reproduces, REF + series builds and is clean at the run's confidence (and REF +
    the prerequisites alone still reproduces)."""
    verify_detail: str = ""
    patches: list[PatchResult] = field(default_factory=list)
    out_dir: str | None = None
    """Where the format-patch files and VERIFY.md were written."""
    adapt_status: str = ""
    """Why adapted candidates were (not) made: "" when not needed (a series applies),
    "candidates", or "cannot be adapted"."""
    adapt_detail: str = ""
    candidates: list[Candidate] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BackportResult:
        def trial(t: dict[str, Any] | None) -> Trial | None:
            return Trial(**t) if t else None

        return cls(
            ref=data["ref"],
            ref_sha=data["ref_sha"],
            candidate=data["candidate"],
            direct=bool(data.get("direct")),
            explanations=[
                Explanation(
                    e["commit"],
                    [
                        HunkConflict(h["path"], h["header"], [Blame(**b) for b in h["blames"]])
                        for h in e.get("hunks", [])
                    ],
                    [Symbol(**s) for s in e.get("symbols", [])],
                )
                for e in data.get("explanations", [])
            ],
            series=[SeriesCommit(**s) for s in data.get("series", [])],
            series_status=data.get("series_status", ""),
            series_detail=data.get("series_detail", ""),
            trials=[Trial(**t) for t in data.get("trials", [])],
            verified=bool(data.get("verified")),
            verify_detail=data.get("verify_detail", ""),
            patches=[
                PatchResult(p["path"], p["status"], p["detail"], trial(p.get("trial")))
                for p in data.get("patches", [])
            ],
            out_dir=data.get("out_dir"),
            adapt_status=data.get("adapt_status", ""),
            adapt_detail=data.get("adapt_detail", ""),
            candidates=[
                Candidate(
                    number=c["number"],
                    placements=[Placement(**p) for p in c.get("placements", [])],
                    mappings=[Mapping(**m) for m in c.get("mappings", [])],
                    diff=c.get("diff", ""),
                    commit=c.get("commit"),
                    status=c.get("status", "not run"),
                    detail=c.get("detail", ""),
                    trial=trial(c.get("trial")),
                    file=c.get("file"),
                )
                for c in data.get("candidates", [])
            ],
        )
