"""The guest kit: a Debian kernel plus a tiny initramfs that runs the writer.

Why build our own initramfs instead of using Debian's: Debian's initrd boots
udev and a full userland, which costs tens of seconds under TCG.  Ours holds
only busybox-static, the static writer and the handful of modules a virtio (or
IDE) disk needs, and is stored uncompressed so the guest does not spend TCG
time decompressing it.

The kit lives in ``cache_dir/guest/<hash>/`` where the hash covers every input
(kernel bytes, module bytes, busybox, writer source, init script, compiler
version), so it is rebuilt exactly when an input changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bisect_driver.plugin.errors import UserError
from bisect_driver.plugin.proc import run_group

KIT_FORMAT = 1
"""Bump when the layout of the kit changes (feeds the kit hash)."""

# Modules each disk interface needs; their dependencies are read from the
# kernel's modules.dep, so a custom kernel with other dependencies still works.
# Whatever is built into the kernel is simply not found and skipped.
WANTED_MODULES: dict[str, list[str]] = {
    "virtio": ["virtio_pci", "virtio_blk"],
    "ide": ["ata_piix", "sd_mod"],
}

DEFAULT_BUSYBOX = Path("/bin/busybox")


@dataclass(frozen=True)
class GuestKit:
    """Paths of a ready kit: what ``-kernel`` and ``-initrd`` get."""

    kernel: Path
    initramfs: Path
    key: str
    """Hash of the kit's inputs (custom kits: of the two files)."""


def guest_data(name: str) -> bytes:
    """A file of the package data directory ``probes/qcow2_sigterm/guest``."""
    return resources.files("probes.qcow2_sigterm").joinpath("guest").joinpath(name).read_bytes()


def kernel_release(kernel: Path) -> str | None:
    """The release string of a bzImage (from its setup header), e.g. ``6.1.0-56-amd64``.

    Why: a custom ``--guest-kernel`` needs its matching modules directory, and
    the bzImage header names it without booting anything.
    """
    try:
        with open(kernel, "rb") as fh:
            head = fh.read(0x8000)
    except OSError:
        return None
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        return None
    ptr = int.from_bytes(head[0x20E:0x210], "little")
    if ptr == 0 or ptr + 0x200 >= len(head):
        return None
    raw = head[ptr + 0x200 : ptr + 0x200 + 256].split(b"\0", 1)[0].decode(errors="replace")
    return raw.split(" ", 1)[0] or None


def _version_key(release: str) -> list[int | str]:
    return [int(p) if p.isdigit() else p for p in re.split(r"[.-]", release)]


def default_kernel() -> Path:
    """The guest kernel: a ``/boot/vmlinuz-*`` that has a modules directory, Debian's cloud
    flavour first (linux-image-cloud-amd64), then the newest.

    Why the cloud flavour: under TCG every instruction of the boot is emulated, and the
    generic kernel is XZ-compressed: unpacking it alone took 3.0 s (QEMU 1.0) to 3.5 s
    (1.1.0) of a 5-5.6 s trial; the cloud kernel is LZ4-compressed and unpacks in
    0.5-0.9 s (docs/probe.md)."""
    candidates = []
    for path in Path("/boot").glob("vmlinuz-*"):
        release = path.name.removeprefix("vmlinuz-")
        if Path("/lib/modules", release, "modules.dep").is_file():
            candidates.append(((release.endswith("-cloud-amd64"), _version_key(release)), path))
    if not candidates:
        raise UserError(
            "no guest kernel: install linux-image-cloud-amd64 (needs /boot/vmlinuz-* and "
            "/lib/modules/<release>) or pass --guest-kernel"
        )
    return max(candidates)[1]


def _parse_modules_dep(moddir: Path) -> dict[str, tuple[str, list[str]]]:
    """Module name -> (relative path, dependency names) from ``modules.dep``."""
    table: dict[str, tuple[str, list[str]]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        path, deps = line.split(":", 1)
        table[_mod_name(path)] = (path.strip(), [_mod_name(d) for d in deps.split()])
    return table


def _mod_name(path: str) -> str:
    base = os.path.basename(path.strip())
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


def resolve_modules(moddir: Path, wanted: list[str]) -> list[str]:
    """Relative module paths for ``wanted`` and their dependencies, dependencies first."""
    table = _parse_modules_dep(moddir)
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in table:
            return  # built in (or absent): nothing to load
        seen.add(name)
        path, deps = table[name]
        for dep in deps:
            visit(dep)
        order.append(path)

    for name in wanted:
        visit(name.replace("-", "_"))
    return order


def _module_bytes(path: Path) -> bytes:
    """Module content, decompressed: busybox insmod cannot rely on kernel decompression."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        import gzip

        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        raise UserError(f"{path}: zstd-compressed modules are not supported; decompress them")
    return data


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """An uncompressed ``newc`` cpio archive of (name, mode, data), reproducible (mtime 0).

    Written here rather than with cpio(1) so the archive depends only on its
    inputs, and no host tool version changes the kit hash.
    """
    out = io.BytesIO()

    def pad(n: int) -> None:
        out.write(b"\0" * ((4 - n % 4) % 4))

    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        # /dev/console is the one device node: the kernel opens it for init's
        # stdio before init could mount devtmpfs.
        rdev = (5, 1) if name == "dev/console" else (0, 0)
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(encoded), 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        out.write(header)
        out.write(encoded)
        pad(len(header) + len(encoded))
        out.write(data)
        pad(len(data))
    return out.getvalue()


def _compiler_id() -> str:
    result = run_group(["gcc", "--version"], timeout=30)
    if not result.ok:
        raise UserError("gcc is needed to build the guest writer (install build-essential)")
    return result.output.splitlines()[0]


def compile_writer(dest: Path) -> None:
    """Compile the static writer; static so the initramfs needs no libc."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "writer.c")
        src.write_bytes(guest_data("writer.c"))
        result = run_group(
            ["gcc", "-O2", "-static", "-pthread", "-o", str(dest), str(src)], timeout=300
        )
    if not result.ok:
        raise UserError(f"compiling the guest writer failed: {result.output.strip()[-500:]}")


def kit_inputs(
    kernel: Path, moddir: Path, busybox: Path = DEFAULT_BUSYBOX
) -> tuple[str, list[tuple[str, str, Path]]]:
    """Hash of every input and the module list ``(interface, name.ko, source path)``."""
    digest = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    feed("format", str(KIT_FORMAT).encode())
    feed("kernel", kernel.read_bytes())
    feed("busybox", busybox.read_bytes())
    feed("writer.c", guest_data("writer.c"))
    feed("init", guest_data("init"))
    feed("gcc", _compiler_id().encode())
    modules: list[tuple[str, str, Path]] = []
    for iface, wanted in WANTED_MODULES.items():
        for rel in resolve_modules(moddir, wanted):
            src = moddir / rel
            modules.append((iface, os.path.basename(re.sub(r"\.(xz|gz)$", "", rel)), src))
            feed(f"module {iface} {rel}", src.read_bytes())
    return digest.hexdigest()[:16], modules


def build_guest_kit(
    cache_dir: Path,
    force: bool = False,
    kernel: Path | None = None,
    modules_dir: Path | None = None,
    busybox: Path = DEFAULT_BUSYBOX,
) -> Path:
    """Build (or reuse) the kit under ``cache_dir/guest/<hash>/``; return that directory.

    The directory holds ``vmlinuz``, ``initramfs.cpio`` and ``manifest.json``.
    It is assembled in a temporary directory and renamed into place, so an
    interrupted build never leaves a half kit that later runs would trust.
    """
    kernel = Path(kernel) if kernel else default_kernel()
    if not kernel.is_file():
        raise UserError(f"guest kernel {kernel} does not exist")
    if modules_dir is None:
        release = kernel_release(kernel)
        if release is None:
            raise UserError(f"{kernel}: not a bzImage; pass --guest-modules DIR as well")
        modules_dir = Path("/lib/modules", release)
    modules_dir = Path(modules_dir)
    if not (modules_dir / "modules.dep").is_file():
        raise UserError(f"{modules_dir}/modules.dep missing: pass --guest-modules DIR")
    if not busybox.is_file():
        raise UserError(f"{busybox} missing: install busybox-static")
    key, modules = kit_inputs(kernel, modules_dir, busybox)
    final = cache_dir / "guest" / key
    if (final / "manifest.json").is_file() and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".build-") as tmp:
        stage = Path(tmp, key)
        stage.mkdir()
        writer = Path(tmp, "writer")
        compile_writer(writer)
        entries: list[tuple[str, int, bytes]] = [
            ("bin", 0o040755, b""),
            ("dev", 0o040755, b""),
            ("proc", 0o040755, b""),
            ("sys", 0o040755, b""),
            ("tmp", 0o041777, b""),
            ("lib", 0o040755, b""),
            ("lib/modules", 0o040755, b""),
            ("dev/console", 0o020600, b""),
            ("init", 0o100755, guest_data("init")),
            ("bin/busybox", 0o100755, busybox.read_bytes()),
            ("bin/sh", 0o120777, b"busybox"),
            ("bin/writer", 0o100755, writer.read_bytes()),
        ]
        order_lines = []
        added: set[str] = set()
        for iface, name, src in modules:
            if name not in added:
                entries.append((f"lib/modules/{name}", 0o100644, _module_bytes(src)))
                added.add(name)
            order_lines.append(f"{iface} {name}")
        entries.append(("lib/modules/order", 0o100644, ("\n".join(order_lines) + "\n").encode()))
        (stage / "initramfs.cpio").write_bytes(_cpio_newc(entries))
        shutil.copyfile(kernel, stage / "vmlinuz")
        manifest = {
            "format": KIT_FORMAT,
            "kernel": str(kernel),
            "modules_dir": str(modules_dir),
            "busybox": str(busybox),
            "modules": order_lines,
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.rename(stage, final)
    return final


def load_kit(kit_dir: Path) -> GuestKit:
    return GuestKit(kit_dir / "vmlinuz", kit_dir / "initramfs.cpio", kit_dir.name)


def custom_kit(kernel: Path, initramfs: Path) -> GuestKit:
    """A user-supplied kernel + initramfs (must follow the BQ- protocol of guest/init)."""
    for path in (kernel, initramfs):
        if not Path(path).is_file():
            raise UserError(f"{path} does not exist")
    digest = hashlib.sha256()
    for path in (kernel, initramfs):
        digest.update(Path(path).read_bytes())
    return GuestKit(Path(kernel), Path(initramfs), "custom-" + digest.hexdigest()[:12])


def boot_args(kit: GuestKit, memory_mib: int, append: str) -> list[str]:
    """The qemu options that boot the kit headless with its console on stdio.

    Shared by the trial and the KVM test boot, so the test boot proves what a
    trial will actually run.
    """
    return [
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-m",
        str(memory_mib),
        "-no-reboot",
        "-kernel",
        str(kit.kernel.resolve()),
        "-initrd",
        str(kit.initramfs.resolve()),
        "-append",
        append,
    ]
