"""Typed plug-in options: one frozen dataclass per plug-in, declared once.

Why one declaration: the same field is a command-line option, a TOML config
key, a value stored with the run (so ``resume`` and the ``step`` command
rebuild the plug-in exactly) and a typed attribute the plug-in reads.  Writing
it once means an option cannot exist in one place and be missing in another
(the way ``--min-free`` once was documented but never parsed).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .errors import UserError


class ArgumentContainer(Protocol):
    """What an option is added to: a parser or one argument group (never nested groups)."""

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action: ...


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    parse: Callable[[str], Any] | None = None,
    choices: Sequence[str] | None = None,
    repeatable: bool = False,
) -> Any:
    """A dataclass field that is also a command-line option.

    ``flag`` defaults to ``--field-name``; ``parse`` converts (and validates)
    the text given on the command line or in a config file; ``repeatable``
    makes a tuple of every occurrence.
    """
    meta = {"flag": flag, "help": help, "parse": parse, "choices": choices, "repeat": repeatable}
    if isinstance(default, list | tuple):
        return dataclasses.field(default_factory=lambda: tuple(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def option_fields(options_type: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(options_type) if "help" in f.metadata]


def dest_of(prefix: str, f: dataclasses.Field[Any]) -> str:
    return f"{prefix}__{f.name}"


def _hints(options_type: type) -> dict[str, Any]:
    return typing.get_type_hints(options_type)


def _base_type(hint: Any) -> Any:
    """``int | None`` -> int, ``tuple[str, ...]`` -> str."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(args[0])
    if origin is tuple:
        return typing.get_args(hint)[0]
    return hint


def _converter(f: dataclasses.Field[Any], hint: Any) -> Callable[[str], Any]:
    if f.metadata.get("parse") is not None:
        return f.metadata["parse"]  # type: ignore[no-any-return]
    base = _base_type(hint)
    if base in (int, float, Path):
        return base  # type: ignore[no-any-return]
    return str


def add_options(container: ArgumentContainer, options_type: type, prefix: str) -> None:
    """Add every option field of ``options_type`` to ``container`` (no groups are created)."""
    hints = _hints(options_type)
    for f in option_fields(options_type):
        kwargs: dict[str, Any] = {
            "dest": dest_of(prefix, f),
            "help": f.metadata["help"],
            "default": None,  # "not given": the dataclass default applies
        }
        hint = hints[f.name]
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _type_for_argparse(_converter(f, hint))
            kwargs["metavar"] = f.name.upper()
            if f.metadata.get("choices"):
                kwargs["choices"] = f.metadata["choices"]
                kwargs.pop("metavar")
            if f.metadata.get("repeat"):
                kwargs["action"] = "append"
        container.add_argument(flag_of(f), **kwargs)


def _type_for_argparse(conv: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return conv(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    convert.__name__ = getattr(conv, "__name__", "value")
    return convert


def options_from(
    options_type: type, given: Mapping[str, Any], prefix: str | None = None, where: str = ""
) -> Any:
    """Build ``options_type`` from parsed values (``prefix__name`` keys) or stored/config
    values (plain ``name`` keys).  Values from a file are converted like command-line text."""
    hints = _hints(options_type)
    values: dict[str, Any] = {}
    for f in option_fields(options_type):
        key = dest_of(prefix, f) if prefix else f.name
        if key not in given or given[key] is None:
            continue
        value = given[key]
        conv = _converter(f, hints[f.name])
        if f.metadata.get("repeat"):
            items = value if isinstance(value, list | tuple) else [value]
            value = tuple(_convert(conv, v, f, where) for v in items)
        elif hints[f.name] is bool:
            value = bool(value)
        else:
            value = _convert(conv, value, f, where)
        values[f.name] = value
    return options_type(**values)


def _convert(conv: Callable[[str], Any], value: Any, f: dataclasses.Field[Any], where: str) -> Any:
    if isinstance(value, Path) or not isinstance(value, str | int | float):
        return value
    try:
        return conv(str(value)) if conv is not str else str(value)
    except (ValueError, UserError, argparse.ArgumentTypeError) as exc:
        raise UserError(f"{where}{flag_of(f)}: {exc}") from None


def options_to_json(options: Any) -> dict[str, Any]:
    """Options as stored with a run (paths as text, tuples as lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        out[f.name] = value
    return out


def options_to_argv(options: Any) -> list[str]:
    """The command-line words that give ``options`` again (fields left at their default
    are left out): how a printed command reproduces a run's plug-in settings."""
    words: list[str] = []
    for f in option_fields(type(options)):
        value = getattr(options, f.name)
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        if value == default or value is None:
            continue
        flag = flag_of(f)
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag.removeprefix("--"))
        elif isinstance(value, list | tuple):
            for item in value:
                words.append(f"{flag}={item}")
        else:
            words.append(f"{flag}={value}")
    return words
