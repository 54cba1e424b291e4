"""Choose KVM or TCG by booting the guest kit once, and remember the answer.

Why boot instead of checking /dev/kvm: a /dev/kvm that opens fine can still be
useless.  On a nested paravirtual KVM (kvm-pvm) a stock kernel crawls through
its decompressor for minutes or dies with "KVM internal error".  Only a real
boot to our init proves KVM works, and a short timeout bounds the cost of
finding out; the answer is cached per host kernel and guest kit, so the probe
pays it once.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from bisect_driver.plugin.proc import run_group

from .guest import GuestKit, boot_args

TRUSTED_QEMU = Path("/usr/bin/qemu-system-x86_64")
DETECT_TIMEOUT = 25.0
"""A working KVM boots our kit in ~1 s; TCG needs ~6 s.  Past this, KVM is no use."""


def kvm_device_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def kvm_boots(kit: GuestKit, qemu: Path = TRUSTED_QEMU, timeout: float = DETECT_TIMEOUT) -> bool:
    """Does the kit's kernel reach our init under ``-enable-kvm`` within ``timeout``?"""
    cmd = [
        str(qemu),
        "-enable-kvm",
        *boot_args(kit, 128, "console=ttyS0 panic=1 quiet bq.mode=ping"),
    ]
    res = run_group(cmd, timeout=timeout)
    return "BQ-UP" in res.output


def detect_accel(cache_dir: Path, kit: GuestKit, qemu: Path = TRUSTED_QEMU) -> str:
    """``"kvm"`` if KVM boots the kit, else ``"tcg"``; cached in ``cache_dir``."""
    if not kvm_device_usable() or not qemu.is_file():
        return "tcg"
    key = f"{platform.release()}-{kit.key}"
    cache_file = cache_dir / "guest" / "accel.json"
    try:
        cached = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cached = {}
    if key in cached:
        return str(cached[key])
    accel = "kvm" if kvm_boots(kit, qemu) else "tcg"
    cached[key] = accel
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(cached, indent=2) + "\n")
    os.replace(tmp, cache_file)
    return accel
