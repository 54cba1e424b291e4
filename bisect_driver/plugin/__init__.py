"""The plug-in layer: everything a recipe or probe may import from the driver, and nothing more.

It sits beneath every other part of bisect_driver and imports none of them,
so ``build_recipes`` and ``probes`` depend only on this layer and the driver
finds them by name (entry points) without importing them by path: no arrow
runs upward and no import cycle exists between the packages.
"""

from .base import NoOptions, Plugin
from .errors import (
    EXIT_AMBIGUOUS,
    EXIT_DISK,
    EXIT_ENDPOINTS,
    EXIT_FOUND,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_JOURNAL,
    EXIT_LOCKED,
    EXIT_UNCONFIRMED,
    EXIT_USAGE,
    BisectError,
    UserError,
)
from .host import HostCheck
from .options import option
from .probe import Outcome, Probe, TrialContext, TrialResult
from .proc import (
    ProcResult,
    die_with_parent,
    kill_group,
    register_group,
    run_group,
    unregister_group,
)
from .recipe import BuildContext, BuildResult, BuildStatus, Recipe, fingerprint

__all__ = [
    "EXIT_AMBIGUOUS",
    "EXIT_DISK",
    "EXIT_ENDPOINTS",
    "EXIT_FOUND",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_JOURNAL",
    "EXIT_LOCKED",
    "EXIT_UNCONFIRMED",
    "EXIT_USAGE",
    "BisectError",
    "BuildContext",
    "BuildResult",
    "BuildStatus",
    "HostCheck",
    "NoOptions",
    "Outcome",
    "Plugin",
    "ProcResult",
    "Probe",
    "Recipe",
    "TrialContext",
    "TrialResult",
    "UserError",
    "die_with_parent",
    "fingerprint",
    "kill_group",
    "option",
    "register_group",
    "run_group",
    "unregister_group",
]
