"""Experiments: many runs, their statistics and reports.

Floor above ``tfbio.train`` (which runs *one* config) and below the
binaries (``tfbio-sweep``, ``tools/reproduce.py``), which only parse flags:

* :mod:`tfbio.experiments.jobs`: training runs in worker processes,
  resumable (``Job``, ``run_jobs``);
* :mod:`tfbio.experiments.search`: grid and random searches over a config
  (``tfbio-sweep``);
* :mod:`tfbio.experiments.cells`, :mod:`~tfbio.experiments.claims`,
  :mod:`~tfbio.experiments.reproduce`, :mod:`~tfbio.experiments.report`:
  the reproduction report (the seed papers' claims re-measured);
* :mod:`tfbio.experiments.stats`, :mod:`~tfbio.experiments.plots`,
  :mod:`~tfbio.experiments.machine`: shared pieces.

Imported explicitly (``from tfbio.experiments import search``); not by
``import tfbio``.
"""
