"""Find a recipe or probe plug-in by name.

Plug-ins are chosen by name on the command line (``--recipe qemu``,
``--probe qcow2-sigterm``).  A name is looked up among the modules of the
``build_recipes`` / ``probes`` packages (``-`` becomes ``_``); a user's own
plug-in is named as ``package.module:Class`` and imported from ``sys.path``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import UserError


def load_plugin(kind: str, package: str, name: str, attr: str) -> Any:
    """Return the plug-in class ``attr`` of module ``package.name`` (or ``mod:Class``)."""
    if ":" in name:
        module_name, attr = name.split(":", 1)
    else:
        module_name = f"{package}.{name.replace('-', '_')}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UserError(f"unknown {kind} {name!r}") from None
        raise
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserError(f"{kind} module {module_name!r} has no {attr}") from None
