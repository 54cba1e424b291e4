"""Read many images' data in ONE libguestfs appliance launch.

Why batch: a warm appliance launch costs 13-18 s here, far more than a trial's
own verification; attaching every image of a batch to one launch pays that once
per commit.  ``force_tcg`` is required on this kind of host: with the nested
paravirtual KVM the appliance hangs after "Booting from ROM".

``python3-guestfs`` is Debian's and imports only under Debian's python3 (the
project venv includes system site-packages for this reason).
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from pathlib import Path

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_fixed

from .verify import HarnessError


@dataclass
class DeviceRead:
    """The bytes read from one image (offset -> data), or why they could not be read."""

    data: dict[int, bytes] = field(default_factory=dict)
    """Start offset of each span read -> its bytes."""
    error: str | None = None

    def read_at(self, offset: int, length: int) -> bytes:
        """Bytes of a range inside one span read; ranges never read are zeros (unallocated)."""
        starts = sorted(self.data)
        i = bisect.bisect_right(starts, offset) - 1
        if i >= 0:
            span = self.data[starts[i]]
            rel = offset - starts[i]
            if rel + length <= len(span):
                return span[rel : rel + length]
        return bytes(length)


def coalesce(ranges: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Merge ranges closer than ``gap`` bytes.

    Why: through a TCG appliance each pread_device call costs ~65 ms whatever
    its size, while bytes cost ~12 ms per MiB, so reading a few MiB of
    unwanted bytes is cheaper than one more call.
    """
    merged: list[list[int]] = []
    for offset, length in sorted(ranges):
        if merged and offset - (merged[-1][0] + merged[-1][1]) <= gap:
            merged[-1][1] = max(merged[-1][1], offset + length - merged[-1][0])
        else:
            merged.append([offset, length])
    return [(o, n) for o, n in merged]


def guestfs_available() -> bool:
    try:
        import guestfs  # noqa: F401
    except ImportError:
        return False
    return True


MAX_READ = 2 << 20
"""pread_device's reply must fit one libguestfs protocol message (4 MiB)."""
MERGE_GAP = 4 << 20


@retry(
    retry=retry_if_exception_type(HarnessError),
    stop=stop_after_attempt(2),
    wait=wait_fixed(1),
    reraise=True,
)
def read_images(images: list[tuple[Path, list[tuple[int, int]]]]) -> list[DeviceRead]:
    """For each (qcow2, ranges): read those ranges through ONE appliance launch.

    A read error on one device is that image's corruption (its result says so);
    a failing launch is the harness's, retried and then raised.
    """
    if not images:
        return []
    try:
        import guestfs
    except ImportError as exc:
        raise HarnessError("python3-guestfs is not importable") from exc
    os.environ["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    g = guestfs.GuestFS(python_return_dict=True)
    try:
        g.set_backend_settings(["force_tcg"])
        for image, _ranges in images:
            g.add_drive_opts(str(image), format="qcow2", readonly=1)
        try:
            g.launch()
        except RuntimeError as exc:
            raise HarnessError(f"guestfs launch failed: {exc}") from exc
        devices = g.list_devices()
        results = []
        for dev, (_image, ranges) in zip(devices, images, strict=True):
            result = DeviceRead()
            try:
                for offset, length in coalesce(ranges, MERGE_GAP):
                    parts = []
                    for o in range(offset, offset + length, MAX_READ):
                        n = min(MAX_READ, offset + length - o)
                        parts.append(g.pread_device(dev, n, o))
                    result.data[offset] = b"".join(parts)
            except RuntimeError as exc:
                result = DeviceRead(error=f"guestfs read failed: {exc}")
            results.append(result)
        return results
    finally:
        try:
            g.shutdown()
        finally:
            g.close()
