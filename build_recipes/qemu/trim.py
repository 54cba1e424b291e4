"""Build what the probe needs and no more: configure options that leave out the rest.

Every build of an overnight run compiles QEMU's display, audio, networking and guest-agent
code although the qcow2 probe boots a headless guest (``-nodefaults -display none``) with one
disk and no network. Leaving them out makes each build shorter (docs/qemu-builds.md has
the measurement) and, as a side effect, some era fix-ups stop applying at all (VirtFS is
what needs ``sys/sysmacros.h``).

Kept as data, like the fix-ups: each entry is a configure option and what it leaves out,
and it is used only where the tree's own configure accepts it (its ``case`` label), so
the same table is right for every commit of the range. Never here: anything of the block
layer (its drivers, ``--disable-linux-aio``, the tools qemu-img and qemu-io), TCG or KVM,
or the code under test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Trim:
    option: str
    leaves_out: str


TRIMS: tuple[Trim, ...] = (
    Trim("--disable-sdl", "the SDL display"),
    Trim("--disable-vnc", "the VNC server and its encoders"),
    Trim("--disable-curses", "the curses display"),
    Trim("--disable-spice", "the SPICE display and channels"),
    Trim("--disable-opengl", "OpenGL display code"),
    Trim("--disable-brlapi", "the braille display"),
    Trim("--audio-drv-list=", "host audio drivers (the audio core stays)"),
    Trim("--disable-slirp", "user-mode networking (the guest has no NIC)"),
    Trim("--disable-vde", "VDE networking"),
    Trim("--disable-vhost-net", "vhost-net"),
    Trim("--disable-bluez", "Bluetooth emulation"),
    Trim("--disable-xen", "the Xen back-ends"),
    Trim("--disable-smartcard", "smartcard emulation"),
    Trim("--disable-smartcard-nss", "the NSS smartcard back-end"),
    Trim("--disable-usb-redir", "USB redirection"),
    Trim("--disable-virtfs", "VirtFS (9p file sharing)"),
    Trim("--disable-guest-agent", "qemu-ga, the guest agent (a separate binary)"),
)


def accepted(configure_text: str, option: str) -> bool:
    """Whether this configure has a ``case`` label for ``option`` (alone or among others:
    ``  --disable-vnc)`` or ``  --a|--disable-vnc|--b)``)."""
    label = re.escape(option + "*" if option.endswith("=") else option)
    pattern = rf"^[ \t]*(?:[^)\n]*\|[ \t]*)?{label}[ \t]*(?:\|[^)\n]*)?\)"
    return re.search(pattern, configure_text, re.M) is not None


def trim_args(source_dir: Path) -> list[str]:
    """The TRIMS this tree's configure accepts, in table order."""
    try:
        text = (source_dir / "configure").read_text(errors="replace")
    except OSError:
        return []
    return [t.option for t in TRIMS if accepted(text, t.option)]
