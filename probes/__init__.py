"""Probes: the tests that decide bug seen / not seen / could not tell.

Chosen by name (`--probe NAME`).  Each module here defines ``PROBE``, a
:class:`probes.base.Probe` subclass: ``command`` runs the user's
``--probe-cmd``; ``qcow2-sigterm`` recreates the 2012 QEMU SIGTERM crash.
"""
