"""bisect-qemu's driver: find the commit that introduced or fixed an intermittent bug.

The pipeline, one subpackage per stage, in the order a commit goes through it::

    build/    commit -> artifacts, once (build.builder; retry once, then a skip)
    probe/    artifacts -> trials, journalled (probe.trials, probe.evidence)
    verdict/  trials -> bug / clean / undecided / skip (verdict.stats, verdict.judge)
    bisect/   verdicts -> `git bisect run` -> the answer, confirmed and checked
              (bisect.direction, endpoints, gitbisect, confirm, checks, revert)
    backport/ the fix -> onto an old release: explained, a series, built, probed,
              delivered as patches (fix hunts; backport.stage)
    report/   the answer -> report.json / .md / .html (report.result, report.model and
              its renderers)

Around it: plugin/ (the layer recipes and probes import, beneath everything),
store/ (journal, artifact cache, lock, disk guard, the tool-owned checkout),
settings.py (typed, frozen run settings), context.py (one run's parts) and app/
(the command line, the commands, the run loop, unattended operation, status).
Recipes (build_recipes/) and probes (probes/) are plug-ins found by name through
entry points; nothing here imports them by path.
"""
