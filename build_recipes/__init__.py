"""Build recipes: how to build one commit.  Chosen by name (`--recipe NAME`).

Each module here defines ``RECIPE``, a :class:`build_recipes.base.Recipe`
subclass: ``shell`` runs the user's ``--build-cmd``; ``qemu`` builds QEMU of
the v1.0..v1.1.0 era on a modern toolchain.
"""
