"""After the answer, the backporter's deliverable: a fix for the old release, verified.

A fix hunt names the commit; a distro maintainer needs it on the release they ship.
The stages, one module each:

- ``apply``: put commits or a patch file onto REF in the tool's own checkout (never the
  user's repo), as commits with a fixed identity so a rerun finds its builds and trials;
- ``explain``: why a commit does not apply there - which commits brought the context
  lines its hunks need, which commits brought the symbols it uses that REF lacks;
- ``series``: the smallest series of prerequisites + the fix that applies onto REF;
- ``adapt``: when nothing applies, candidates written the backporter's way: hunks moved
  inside their function (``relocate``), helpers REF lacks written the old way when a
  mechanical conversion introduced them (``backmap``);
- ``verify``: REF reproduces, REF + series does not (strict test at the run's
  confidence), REF + prerequisites alone still does, and a hand-made
  ``--backport-patch`` or an adapted candidate judged the same way;
- ``deliver``: ``backport/REF/`` with the series as ``git format-patch`` files and the
  commands that reproduce the verification;
- ``model``: the typed result the report renders.
"""
