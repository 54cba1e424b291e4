"""Find a recipe or probe plug-in by name, through entry points.

Plug-ins are chosen by name on the command line (``--recipe qemu``,
``--probe qcow2-sigterm``).  Names are registered as entry points in the
groups ``bisect_qemu.recipes`` and ``bisect_qemu.probes`` (pyproject.toml), so
the driver never imports a plug-in package by its path and another package can
add plug-ins by declaring entry points of its own.  A plug-in not installed as
a package can still be named ``package.module:Class`` (imported from
``sys.path``).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from .errors import UserError

GROUPS = {"recipe": "bisect_qemu.recipes", "probe": "bisect_qemu.probes"}


def names(kind: str) -> list[str]:
    """Names of the installed plug-ins of ``kind``."""
    return sorted(ep.name for ep in entry_points(group=GROUPS[kind]))


def load_plugin(kind: str, name: str) -> Any:
    """The plug-in class registered as ``name`` (or ``module:Class``)."""
    if ":" in name:
        module_name, attr = name.split(":", 1)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise UserError(f"unknown {kind} {name!r}: no module {module_name}") from None
            raise
        try:
            cls = getattr(module, attr)
        except AttributeError:
            raise UserError(f"{kind} module {module_name!r} has no {attr}") from None
    else:
        found = [ep for ep in entry_points(group=GROUPS[kind]) if ep.name == name]
        if not found:
            known = ", ".join(names(kind)) or "none installed"
            raise UserError(f"unknown {kind} {name!r} (known: {known})")
        cls = found[0].load()
    if getattr(cls, "kind", None) != kind:
        raise UserError(f"{name!r} is not a {kind} plug-in")
    return cls
