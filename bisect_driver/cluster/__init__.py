"""Beyond one machine: trials and builds on a Dask cluster (docs/cluster.md).

The pipeline is the same (build -> probe -> verdict -> bisect -> report); only where a
build or trial runs changes.  The driver keeps every decision and every record: workers
run one trial or one build each and hand back what they saw, so the journal is written
by the driver alone and a worker needs no access to its files.

- :mod:`~bisect_driver.cluster.connect`: the scheduler's address, the connection, and the
  refusal of a worker that runs another bisect-qemu;
- :mod:`~bisect_driver.cluster.payload`: directories sent through the engine once per
  worker and kept there by content digest (artifacts, the probe's kit, sources);
- :mod:`~bisect_driver.cluster.tasks`: what runs on a worker;
  :mod:`~bisect_driver.cluster.guard`: the process that holds one trial or build there,
  so its processes die with the worker;
- :mod:`~bisect_driver.cluster.trials` / :mod:`~bisect_driver.cluster.builds`: the
  driver's side, the stages' runner and builder with the work sent to workers;
- :mod:`~bisect_driver.cluster.plan` (pure) and :mod:`~bisect_driver.cluster.speculate`:
  which commits idle workers build before the bisect asks for them.
"""
