"""Generate a small C project whose history holds a real, timing-dependent crash.

Used by ``bisect-qemu demo`` and by the tests: a bisect driver for flaky bugs
must be tested on flaky bugs.  The program starts a writer thread that
alternates idle and busy phases over an mmap'ed buffer; on SIGTERM the buggy
shutdown unmaps the buffer at once, so if the writer is mid-burst it touches
unmapped memory and the process dies of SIGSEGV.  The fixed shutdown stops
the writer and joins it first.  Nothing is simulated: whether a trial crashes
depends on where the writer is when the signal lands, so the reproduction
rate is roughly the busy share of the writer's cycle.

Two optional complications, both off by default (the default project is
byte-identical to what it always was):

- ``other_crash``: in a range of commits the shutdown also asserts that the
  writer is not flushing, and the writer flushes for a share ``other_rate`` of
  its idle time, so a SIGTERM that lands mid-flush aborts (SIGABRT after
  glibc's "Assertion ... failed." line) instead of reaching the bug.  A second
  real timing window, not a coin toss: the driver must tell this other
  failure from the bug's SIGSEGV by its signature.
- ``near_rate``/``near_span``: the bug-carrying commits next to the change
  reproduce at another rate (a drifting rate, as when a fix is prepared over
  several commits).
"""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

PROGRAM = r"""/* flaky: a worker writes bursts into a buffer; SIGTERM shuts down. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BUSY_US {busy_us}
#define IDLE_US {idle_us}
#define BUF_SIZE (1 << 20)

static volatile char *buf;
static volatile int stop;

static long now_us(void) {{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}}

static void *writer(void *arg) {{
    (void)arg;
    unsigned long i = 0;
    while (!stop) {{
        usleep(IDLE_US);
        if (stop)
            break;
        long end = now_us() + BUSY_US;
        while (now_us() < end) {{
            buf[(i++ * 4096) % BUF_SIZE] = (char)i; /* the write "in flight" */
            usleep(20); /* leave the CPU to the signal handler, as real I/O would */
        }}
    }}
    return NULL;
}}

static void shutdown_writer(pthread_t t) {{
{shutdown}
}}

int main(void) {{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    buf = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return 2;
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    printf("ready\n");
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    shutdown_writer(t);
    printf("clean exit\n");
    return 0;
}}
"""

BUGGY_SHUTDOWN = """    /* free the buffer straight away: the writer may still be using it */
    munmap((void *)buf, BUF_SIZE);
    stop = 1;
    pthread_join(t, NULL);"""

FIXED_SHUTDOWN = """    /* drain first: stop the writer and wait for it before freeing */
    stop = 1;
    pthread_join(t, NULL);
    munmap((void *)buf, BUF_SIZE);"""

MAKEFILE = """flaky: flaky.c
\tcc -O1 -pthread -o flaky flaky.c
"""

# One trial: start, wait until ready, SIGTERM at a random moment, judge the exit.
PROBE = r"""#!/bin/sh
# exit 0: clean shutdown; 1: crashed (bug reproduced); 125: could not tell
./flaky > "${BISECT_WORK_DIR:-/tmp}/out.txt" 2>&1 &
pid=$!
i=0
while ! grep -q ready "${BISECT_WORK_DIR:-/tmp}/out.txt" 2>/dev/null; do
  i=$((i+1)); [ $i -gt 200 ] && { kill -9 $pid; exit 125; }
  sleep 0.01
done
sleep 0.0$(( (${BISECT_SEED:-$$} % 90) + 10 ))
kill -TERM $pid
wait $pid
st=$?
[ $st -eq 0 ] && exit 0
[ $st -eq 139 ] && { echo "crashed: SIGSEGV"; exit 1; }
echo "unexpected status $st"; exit 2
"""

# The other-crash variant (only with FlakySpec.other_crash; the default stays as it was).
OTHER_INCLUDE = ("#include <pthread.h>\n", "#include <assert.h>\n#include <pthread.h>\n")
OTHER_STATE = (
    "static volatile int stop;\n",
    "static volatile int stop;\n"
    "static volatile int flushing; /* the writer is flushing what it wrote */\n",
)
OTHER_IDLE = (
    "        usleep(IDLE_US);\n",
    "        flushing = 1;\n"
    "        usleep(FLUSH_US);\n"
    "        flushing = 0;\n"
    "        usleep(IDLE_US - FLUSH_US);\n",
)
OTHER_SHUTDOWN = (
    "static void shutdown_writer(pthread_t t) {\n",
    "static void shutdown_writer(pthread_t t) {\n"
    "    assert(!flushing); /* a shutdown mid-flush would lose the flush: another bug */\n",
)
PROBE_ABORT = (
    '[ $st -eq 139 ] && { echo "crashed: SIGSEGV"; exit 1; }\n',
    '[ $st -eq 134 ] && { sed -n "/Assertion/p" "${BISECT_WORK_DIR:-/tmp}/out.txt";'
    ' echo "crashed: SIGABRT"; exit 1; }\n'
    '[ $st -eq 139 ] && { echo "crashed: SIGSEGV"; exit 1; }\n',
)


def _replace_once(text: str, old_new: tuple[str, str]) -> str:
    old, new = old_new
    if text.count(old) != 1:  # pragma: no cover - a template edit that broke a variant
        raise AssertionError(f"template changed: {old!r}")
    return text.replace(old, new)


def probe_script(spec: FlakySpec) -> str:
    """probe.sh: with ``other_crash`` it also reports SIGABRT (exit status 134) as a crash."""
    return _replace_once(PROBE, PROBE_ABORT) if spec.other_crash else PROBE


@dataclass
class FlakySpec:
    commits: int = 100
    change_at: int = 60
    """Index (1-based, among the generated commits after the root) of the fix/regression."""
    direction: str = "fix"  # "fix": buggy before change_at; "regression": buggy from it
    rate: float = 0.25
    """Approximate crash rate of a buggy commit (busy share of the writer's cycle)."""
    unbuildable: list[int] = field(default_factory=list)
    """Commit indices that do not compile."""
    cycle_us: int = 4000
    seed: int = 0
    merge_change: bool = False
    """Make the change on a side branch (a preparatory commit, then the change) and
    merge it at ``change_at``: the answer is the side commit, brought in by a merge."""
    conflicting_change: bool = False
    """Let the change commit also touch NOTES, so it does not cherry-pick onto the old end."""
    other_crash: tuple[int, int] | None = None
    """Commits [a, b) whose program can also die of another bug: on SIGTERM mid-flush it
    aborts (``flaky: flaky.c:NN: shutdown_writer: Assertion `!flushing' failed.``, SIGABRT,
    probe output ``crashed: SIGABRT``), while this bug is the SIGSEGV."""
    other_rate: float = 0.5
    """Approximate abort rate in the ``other_crash`` commits (the flushing share of the
    writer's cycle; at most its idle share, so ``rate + other_rate`` should stay below 1)."""
    near_rate: float | None = None
    """Rate of the ``near_span`` bug-carrying commits next to the change (just before a fix,
    just after a regression); None = ``rate`` everywhere."""
    near_span: int = 5

    def rate_at(self, index: int) -> float:
        """The crash rate of commit ``index`` if it carries the bug."""
        if self.near_rate is None:
            return self.rate
        if self.direction == "fix":
            near = self.change_at - self.near_span <= index < self.change_at
        else:
            near = self.change_at <= index < self.change_at + self.near_span
        return self.near_rate if near else self.rate

    def other_at(self, index: int) -> bool:
        """Whether commit ``index`` can also crash for the other reason."""
        return self.other_crash is not None and self.other_crash[0] <= index < self.other_crash[1]


@dataclass
class FlakyRepo:
    path: Path
    shas: list[str]
    """shas[0] is the root (old end); shas[i] is commit i."""
    spec: FlakySpec
    side: list[str] = field(default_factory=list)
    """With ``merge_change``: the side branch's commits (the last one is the change)."""

    @property
    def old(self) -> str:
        return self.shas[0]

    @property
    def new(self) -> str:
        return self.shas[-1]

    @property
    def answer(self) -> str:
        """The commit that changed the behaviour (the side commit for a merged change)."""
        return self.side[-1] if self.side else self.shas[self.spec.change_at]

    @property
    def merge(self) -> str | None:
        return self.shas[self.spec.change_at] if self.side else None

    def buggy(self, index: int) -> bool:
        before = index < self.spec.change_at
        return before if self.spec.direction == "fix" else not before


def _git(path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=path, check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def program_source(spec: FlakySpec, buggy: bool, broken: bool, index: int | None = None) -> str:
    """flaky.c of one commit; ``index`` (None = no commit in particular) selects the
    near-change rate and the other crash."""
    rate = spec.rate if index is None else spec.rate_at(index)
    busy = max(1, int(spec.cycle_us * rate))
    idle = max(1, spec.cycle_us - busy)
    src = PROGRAM.format(
        busy_us=busy, idle_us=idle, shutdown=BUGGY_SHUTDOWN if buggy else FIXED_SHUTDOWN
    )
    if index is not None and spec.other_at(index):
        flush = max(1, min(int(spec.cycle_us * spec.other_rate), idle - 1))
        src = _replace_once(
            src, ("#define BUF_SIZE", f"#define FLUSH_US {flush}\n#define BUF_SIZE")
        )
        for edit in (OTHER_INCLUDE, OTHER_STATE, OTHER_IDLE, OTHER_SHUTDOWN):
            src = _replace_once(src, edit)
    if broken:
        src = src.replace("int main(void) {", "int main(void) { this does not compile;", 1)
    return src


def generate(path: Path, spec: FlakySpec) -> FlakyRepo:
    """Create the repo at ``path``: a root commit plus ``spec.commits`` commits."""
    if not 1 <= spec.change_at <= spec.commits:
        raise ValueError("change_at must be within 1..commits")
    for name in ("rate", "other_rate", "near_rate"):
        value = getattr(spec, name)
        if value is not None and not 0 < value < 1:
            raise ValueError(f"{name} must be between 0 and 1")
    if spec.near_span < 0:
        raise ValueError("near_span must not be negative")
    path.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="Flaky Dev",
        GIT_AUTHOR_EMAIL="dev@example.invalid",
        GIT_COMMITTER_NAME="Flaky Dev",
        GIT_COMMITTER_EMAIL="dev@example.invalid",
    )
    _git(path, "init", "-q", "-b", "main")
    rng = random.Random(spec.seed)
    (path / "Makefile").write_text(MAKEFILE)
    (path / "probe.sh").write_text(probe_script(spec))
    (path / "probe.sh").chmod(0o755)
    (path / ".gitignore").write_text("flaky\n")
    shas: list[str] = []
    side: list[str] = []
    for i in range(spec.commits + 1):
        buggy = (i < spec.change_at) if spec.direction == "fix" else (i >= spec.change_at)
        broken = i in spec.unbuildable
        stamp = f"{1_600_000_000 + i * 3600} +0000"
        env_i = dict(env, GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
        change_msg = (
            "Drain the writer before freeing its buffer"
            if spec.direction == "fix"
            else "Free the buffer earlier on shutdown"
        )
        if i == spec.change_at and spec.merge_change:
            _git(path, "checkout", "-q", "-b", "side", env=env_i)
            (path / "SIDE").write_text("preparation\n")
            _git(path, "add", "-A", env=env_i)
            _git(path, "commit", "-q", "-m", "Prepare the shutdown path", env=env_i)
            side.append(_git(path, "rev-parse", "HEAD"))
            (path / "flaky.c").write_text(program_source(spec, buggy, broken, i))
            _git(path, "add", "-A", env=env_i)
            _git(path, "commit", "-q", "-m", change_msg, env=env_i)
            side.append(_git(path, "rev-parse", "HEAD"))
            _git(path, "checkout", "-q", "main", env=env_i)
            _git(path, "merge", "-q", "--no-ff", "-m", "Merge branch 'side'", "side", env=env_i)
            shas.append(_git(path, "rev-parse", "HEAD"))
            continue
        (path / "flaky.c").write_text(program_source(spec, buggy, broken, i))
        if i != spec.change_at or spec.conflicting_change:
            (path / "NOTES").write_text(f"change {i}: {rng.getrandbits(64):016x}\n")
        if i == 0:
            msg = "Initial import of flaky"
        elif i == spec.change_at:
            msg = change_msg
        elif broken:
            msg = f"Work in progress {i} (does not build)"
        else:
            msg = f"Unrelated change {i}"
        _git(path, "add", "-A", env=env_i)
        _git(path, "commit", "-q", "-m", msg, env=env_i)
        shas.append(_git(path, "rev-parse", "HEAD"))
    return FlakyRepo(path, shas, spec, side)
