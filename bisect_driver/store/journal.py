"""The journal: every build, trial and verdict, durably, in one SQLite file.

Why SQLite: an overnight run may lose power at any moment; each record is one
transaction, so after a crash the journal holds exactly the trials that
finished, never half of one.  Evidence is keyed by what produced it (commit,
recipe key, probe key), so a rerun - or another run over an overlapping range
with the same recipe and probe - reuses it instead of repeating it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bisect_driver.plugin.errors import JournalError

SCHEMA_VERSION = 4
"""2 added builds.attempts and builds.first_failure (a failed build is retried once);
3 added trials.signature and trials.is_bug (what a reproduction saw, and whether the
probe itself called it the bug: docs/statistics.md, "Signatures: what counts as the bug");
4 added trials.worker, trials.host, builds.host and builds.speculative (where a trial or
build ran on a Dask cluster, and whether a build was started before a step asked for it:
docs/cluster.md)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs(
    run_id TEXT PRIMARY KEY, settings TEXT NOT NULL, created REAL NOT NULL,
    status TEXT NOT NULL, direction TEXT, result TEXT);
CREATE TABLE IF NOT EXISTS builds(
    commit_sha TEXT NOT NULL, recipe_key TEXT NOT NULL, status TEXT NOT NULL,
    duration REAL, fixups TEXT, detail TEXT, log_path TEXT, fingerprint TEXT,
    finished REAL, attempts INTEGER DEFAULT 1, first_failure TEXT, host TEXT,
    speculative INTEGER DEFAULT 0,
    PRIMARY KEY(commit_sha, recipe_key));
CREATE TABLE IF NOT EXISTS trials(
    id INTEGER PRIMARY KEY, commit_sha TEXT NOT NULL, recipe_key TEXT NOT NULL,
    probe_key TEXT NOT NULL, idx INTEGER NOT NULL, outcome TEXT NOT NULL,
    exit_status INTEGER, signal INTEGER, duration REAL, started REAL, seed INTEGER,
    detail TEXT, log_path TEXT, signature TEXT, is_bug INTEGER, worker TEXT, host TEXT,
    UNIQUE(commit_sha, recipe_key, probe_key, idx));
CREATE TABLE IF NOT EXISTS verdicts(
    run_id TEXT NOT NULL, commit_sha TEXT NOT NULL, verdict TEXT NOT NULL,
    trials INTEGER, reproduced INTEGER, error REAL, reason TEXT, decided REAL,
    PRIMARY KEY(run_id, commit_sha));
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY, run_id TEXT, time REAL NOT NULL, kind TEXT NOT NULL,
    message TEXT);
CREATE INDEX IF NOT EXISTS trials_by_commit ON trials(commit_sha, recipe_key, probe_key);
"""


@dataclass
class BuildRecord:
    commit: str
    recipe_key: str
    status: str
    duration: float
    fixups: list[str]
    detail: str
    log_path: str | None
    fingerprint: str | None
    finished: float
    attempts: int = 1
    """Builds run for this record: 2 when the first failed and was retried."""
    first_failure: str | None = None
    """Why the first attempt failed, when there was a retry."""
    host: str | None = None
    """The cluster host that built it (None: this machine, without --scheduler)."""
    speculative: bool = False
    """Built on an idle worker before any step asked for it (cluster.speculate)."""


@dataclass
class TrialRecord:
    commit: str
    idx: int
    outcome: str
    exit_status: int | None
    signal: int | None
    duration: float
    started: float
    seed: int | None
    detail: str
    log_path: str | None
    signature: str | None = None
    """What a reproduction saw (``TrialResult.signature``); None when it said nothing."""
    is_bug: bool | None = None
    """The probe's own verdict (``TrialResult.is_bug``): False = another failure, never counted
    as this bug; None = the probe gave none, so the signature is compared with the
    reproducing end's.  A column of its own rather than a prefix on the signature, so
    signatures stay comparable and a query can count other failures directly."""
    worker: str | None = None
    """The Dask worker that ran it (None: this machine, without --scheduler)."""
    host: str | None = None
    """That worker's host name: flake rates change with load, so the report shows the rate
    per host when trials ran on more than one."""


@dataclass
class VerdictRecord:
    commit: str
    verdict: str
    trials: int
    reproduced: int
    error: float
    reason: str
    decided: float


class Journal:
    """Thin, typed access to the journal database (thread-safe within a process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._trial_cache: dict[tuple[str, str, str], tuple[int, list[TrialRecord]]] = {}
        self._writes = 0
        """This connection's commits (see version())."""
        """(commit, recipe key, probe key) -> (last rowid read, the trials): see trials()."""
        try:
            self._db = sqlite3.connect(
                path, timeout=60, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout=60000")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise JournalError(
                    f"journal {path} is corrupt ({check}); move it aside to start over"
                )
            self._db.executescript(SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                version = int(row[0])
                migrations = {
                    1: self._migrate_from_1,
                    2: self._migrate_from_2,
                    3: self._migrate_from_3,
                }
                if version not in migrations:
                    raise JournalError(
                        f"journal {path} has schema {row[0]}, this tool reads {SCHEMA_VERSION}"
                    )
                # One step at a time, each in its own transaction and each setting
                # the version it reached: a crash between steps resumes from there.
                while version < SCHEMA_VERSION:
                    migrations[version]()
                    version += 1
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {path} is unreadable or corrupt: {exc}") from None

    def _migrate_from_1(self) -> None:
        """Schema 1 -> 2: builds gain the retry columns; every record stays."""
        with self.transaction() as db:
            cols = {r[1] for r in db.execute("PRAGMA table_info(builds)").fetchall()}
            if "attempts" not in cols:
                db.execute("ALTER TABLE builds ADD COLUMN attempts INTEGER DEFAULT 1")
            if "first_failure" not in cols:
                db.execute("ALTER TABLE builds ADD COLUMN first_failure TEXT")
            db.execute("UPDATE meta SET value='2' WHERE key='schema' AND value='1'")

    def _migrate_from_2(self) -> None:
        """Schema 2 -> 3: trials gain signature and is_bug; every record stays.

        Old trials get NULL for both: no signature matches any bug, so the
        evidence they gave is counted exactly as before.
        """
        with self.transaction() as db:
            cols = {r[1] for r in db.execute("PRAGMA table_info(trials)").fetchall()}
            if "signature" not in cols:
                db.execute("ALTER TABLE trials ADD COLUMN signature TEXT")
            if "is_bug" not in cols:
                db.execute("ALTER TABLE trials ADD COLUMN is_bug INTEGER")
            db.execute("UPDATE meta SET value='3' WHERE key='schema' AND value='2'")

    def _migrate_from_3(self) -> None:
        """Schema 3 -> 4: trials and builds say where they ran; every record stays (NULL:
        on the driver's machine, which is where every earlier record was made)."""
        with self.transaction() as db:
            cols = {r[1] for r in db.execute("PRAGMA table_info(trials)").fetchall()}
            for col in ("worker", "host"):
                if col not in cols:
                    db.execute(f"ALTER TABLE trials ADD COLUMN {col} TEXT")
            cols = {r[1] for r in db.execute("PRAGMA table_info(builds)").fetchall()}
            if "host" not in cols:
                db.execute("ALTER TABLE builds ADD COLUMN host TEXT")
            if "speculative" not in cols:
                db.execute("ALTER TABLE builds ADD COLUMN speculative INTEGER DEFAULT 0")
            db.execute("UPDATE meta SET value='4' WHERE key='schema' AND value='3'")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._writes += 1

    def version(self) -> tuple[int, int]:
        """Changes whenever the journal may have: sqlite's ``data_version`` (bumped by other
        connections' commits: the step processes, a resumed run) and this connection's own
        commits.  Lets a reader cache what it derived from the journal (probe.trials:
        the bug's faces) without re-reading it at every decision."""
        with self._lock:
            data_version = self._db.execute("PRAGMA data_version").fetchone()[0]
            return int(data_version), self._writes

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- runs ---------------------------------------------------------------
    def ensure_run(self, run_id: str, settings: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs(run_id, settings, created, status) VALUES(?,?,?,?)",
                (run_id, json.dumps(settings, sort_keys=True), time.time(), "started"),
            )

    def set_run_settings(self, run_id: str, settings: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET settings=? WHERE run_id=?",
                (json.dumps(settings, sort_keys=True), run_id),
            )

    def run_settings(self, run_id: str) -> dict[str, Any]:
        rows = self._query("SELECT settings FROM runs WHERE run_id=?", (run_id,))
        if not rows:
            raise JournalError(f"no run {run_id} in journal {self.path}")
        settings: dict[str, Any] = json.loads(rows[0][0])
        return settings

    def set_run(self, run_id: str, **fields: Any) -> None:
        allowed = {"status", "direction", "result"}
        assert set(fields) <= allowed, fields
        with self.transaction() as db:
            for key, value in fields.items():
                if key == "result" and not isinstance(value, str):
                    value = json.dumps(value)
                db.execute(f"UPDATE runs SET {key}=? WHERE run_id=?", (value, run_id))

    def run_row(self, run_id: str) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT run_id, settings, created, status, direction, result FROM runs WHERE run_id=?",
            (run_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return {
            "run_id": r[0],
            "settings": json.loads(r[1]),
            "created": r[2],
            "status": r[3],
            "direction": r[4],
            "result": json.loads(r[5]) if r[5] else None,
        }

    def runs(self) -> list[dict[str, Any]]:
        ids = [r[0] for r in self._query("SELECT run_id FROM runs ORDER BY created")]
        return [row for i in ids if (row := self.run_row(i))]

    # -- builds -------------------------------------------------------------
    def record_build(self, rec: BuildRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO builds(commit_sha, recipe_key, status, duration, fixups,"
                " detail, log_path, fingerprint, finished, attempts, first_failure, host,"
                " speculative) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.commit,
                    rec.recipe_key,
                    rec.status,
                    rec.duration,
                    json.dumps(rec.fixups),
                    rec.detail,
                    rec.log_path,
                    rec.fingerprint,
                    rec.finished,
                    rec.attempts,
                    rec.first_failure,
                    rec.host,
                    int(rec.speculative),
                ),
            )

    def build(self, commit: str, recipe_key: str) -> BuildRecord | None:
        rows = self._query(
            "SELECT commit_sha, recipe_key, status, duration, fixups, detail, log_path,"
            " fingerprint, finished, attempts, first_failure, host, speculative FROM builds"
            " WHERE commit_sha=? AND recipe_key=?",
            (commit, recipe_key),
        )
        if not rows:
            return None
        r = rows[0]
        return BuildRecord(
            r[0],
            r[1],
            r[2],
            r[3],
            json.loads(r[4] or "[]"),
            r[5],
            r[6],
            r[7],
            r[8],
            r[9] or 1,
            r[10],
            r[11],
            bool(r[12]),
        )

    # -- trials -------------------------------------------------------------
    def record_trial(self, recipe_key: str, probe_key: str, rec: TrialRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO trials(commit_sha, recipe_key, probe_key, idx, outcome, exit_status,"
                " signal, duration, started, seed, detail, log_path, signature, is_bug, worker,"
                " host) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.commit,
                    recipe_key,
                    probe_key,
                    rec.idx,
                    rec.outcome,
                    rec.exit_status,
                    rec.signal,
                    rec.duration,
                    rec.started,
                    rec.seed,
                    rec.detail,
                    rec.log_path,
                    rec.signature,
                    None if rec.is_bug is None else int(rec.is_bug),
                    rec.worker,
                    rec.host,
                ),
            )

    def trials(self, commit: str, recipe_key: str, probe_key: str) -> list[TrialRecord]:
        """The recorded trials of ``commit`` under these keys, in index order (the list
        is this journal's own: read it, never change it).

        Read incrementally: trials are only ever appended (never changed or deleted), so
        this process keeps what it read and asks sqlite only for rows added since (by any
        process: the step processes record beside the driver).  Every decision reads its
        commit's evidence afresh, and re-reading hundreds of rows each time made the
        reads, not the statistics, the cost of a decision."""
        key = (commit, recipe_key, probe_key)
        with self._lock:
            return self._trials(key)

    def _trials(self, key: tuple[str, str, str]) -> list[TrialRecord]:
        commit, recipe_key, probe_key = key
        last, cached = self._trial_cache.get(key, (0, []))
        rows = self._query(
            "SELECT rowid, commit_sha, idx, outcome, exit_status, signal, duration, started,"
            " seed, detail, log_path, signature, is_bug, worker, host FROM trials"
            " WHERE commit_sha=? AND recipe_key=? AND probe_key=? AND rowid>? ORDER BY rowid",
            (commit, recipe_key, probe_key, last),
        )
        if not rows:
            return cached
        fresh = [
            TrialRecord(
                commit=r[1],
                idx=r[2],
                outcome=r[3],
                exit_status=r[4],
                signal=r[5],
                duration=r[6],
                started=r[7],
                seed=r[8],
                detail=r[9],
                log_path=r[10],
                signature=r[11],
                is_bug=None if r[12] is None else bool(r[12]),
                worker=r[13],
                host=r[14],
            )
            for r in rows
        ]
        merged = sorted([*cached, *fresh], key=lambda t: t.idx)
        self._trial_cache[key] = (rows[-1][0], merged)
        return merged

    # -- verdicts -----------------------------------------------------------
    def record_verdict(self, run_id: str, rec: VerdictRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO verdicts VALUES(?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    rec.commit,
                    rec.verdict,
                    rec.trials,
                    rec.reproduced,
                    rec.error,
                    rec.reason,
                    rec.decided,
                ),
            )

    def verdict(self, run_id: str, commit: str) -> VerdictRecord | None:
        rows = self._query(
            "SELECT commit_sha, verdict, trials, reproduced, error, reason, decided"
            " FROM verdicts WHERE run_id=? AND commit_sha=?",
            (run_id, commit),
        )
        return VerdictRecord(*rows[0]) if rows else None

    def verdicts(self, run_id: str) -> list[VerdictRecord]:
        rows = self._query(
            "SELECT commit_sha, verdict, trials, reproduced, error, reason, decided"
            " FROM verdicts WHERE run_id=? ORDER BY decided",
            (run_id,),
        )
        return [VerdictRecord(*r) for r in rows]

    def delete_verdict(self, run_id: str, commit: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM verdicts WHERE run_id=? AND commit_sha=?", (run_id, commit))

    # -- events -------------------------------------------------------------
    def event(self, run_id: str | None, kind: str, message: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO events(run_id, time, kind, message) VALUES(?,?,?,?)",
                (run_id, time.time(), kind, message),
            )

    def events(self, run_id: str, kind: str | None = None) -> list[tuple[float, str, str]]:
        if kind is None:
            return self._query(
                "SELECT time, kind, message FROM events WHERE run_id=? ORDER BY id", (run_id,)
            )
        return self._query(
            "SELECT time, kind, message FROM events WHERE run_id=? AND kind=? ORDER BY id",
            (run_id, kind),
        )
