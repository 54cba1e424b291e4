"""The one base of every plug-in (recipe or probe): name, options, settings, key, host checks.

Why one base: recipes and probes are both chosen by name, both take typed
options of their own, and both must say exactly what changes their output, so
that builds and trials are reused only where they mean the same thing.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .host import HostCheck
from .options import ArgumentContainer, add_options, options_from, options_to_json


@dataclass(frozen=True)
class NoOptions:
    """For a plug-in without options of its own."""


class Plugin(ABC):
    """Base of :class:`~bisect_driver.plugin.recipe.Recipe` and
    :class:`~bisect_driver.plugin.probe.Probe`."""

    kind: ClassVar[str]
    """"recipe" or "probe": the entry-point group and the option prefix."""
    name: ClassVar[str]
    version: ClassVar[int] = 1
    """Bump when a change to the plug-in's code changes what it produces."""
    Options: ClassVar[type] = NoOptions
    """The frozen dataclass of the plug-in's own options (see plugin.options.option)."""

    def __init__(self, options: Any = None, **overrides: Any) -> None:
        opts = options if options is not None else self.Options()
        if overrides:
            opts = dataclasses.replace(opts, **overrides)
        self.options = opts

    @classmethod
    def add_arguments(cls, container: ArgumentContainer) -> None:
        """Add the plug-in's options to ``container`` (a parser or one argument group)."""
        add_options(container, cls.Options, cls.kind)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Any:
        """The plug-in from options parsed by :meth:`add_arguments`."""
        return cls(options_from(cls.Options, vars(args), cls.kind))

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any], where: str = "") -> Any:
        """The plug-in from options stored with a run or read from a config file."""
        return cls(options_from(cls.Options, stored, None, where))

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that changes what this plug-in produces: it feeds :meth:`key`."""

    def key(self) -> str:
        """Hash of name, version and settings: keys builds / trials so they are reused
        only under the same meaning."""
        blob = json.dumps(
            {"name": self.name, "version": self.version, "settings": self.settings()},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def stored_options(self) -> dict[str, Any]:
        return options_to_json(self.options)

    def host_checks(self) -> list[HostCheck]:
        """What `bisect-qemu doctor` verifies on this host for this plug-in."""
        return []
