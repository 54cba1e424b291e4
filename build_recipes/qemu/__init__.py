"""The ``qemu`` build recipe (``--recipe qemu``): QEMU v1.0..v1.1.0 on today's toolchain.

``recipe.py`` holds the build, ``fixups.py`` the era fix-ups, ``shim.py`` the
Python interpreter shim given to configure, ``logparse.py`` failure
classification.
"""

from .recipe import ARTIFACTS, QemuRecipe

RECIPE = QemuRecipe

__all__ = ["ARTIFACTS", "RECIPE", "QemuRecipe"]
