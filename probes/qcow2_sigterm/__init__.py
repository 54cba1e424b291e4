"""qcow2-sigterm: SIGTERM a qemu whose guest writes to a fresh qcow2 (issue 4).

``PROBE`` is what ``--probe qcow2-sigterm`` loads; ``build_guest_kit`` backs
``bisect-qemu guest build``.
"""

from .guest import build_guest_kit
from .probe import Qcow2SigtermProbe
from .trial import Workload

PROBE = Qcow2SigtermProbe

__all__ = ["PROBE", "Qcow2SigtermProbe", "Workload", "build_guest_kit"]
