"""Benchmarks of turn-level reward schemes: ``rlvr bench rewards``.

* :mod:`rlvr.bench.schemes` -- the registry of schemes (reward + advantage estimator) over episode groups;
* :mod:`rlvr.bench.metrics` -- the metrics (zero-advantage groups, advantage energy, credit fidelity, margins);
* :mod:`rlvr.bench.credit` -- the credit-assignment microbenchmark on synthetic tasks with known ground truth;
* :mod:`rlvr.bench.agents` -- scripted exploit agents;
* :mod:`rlvr.bench.exploits` -- exploit agents against the honest and random agents on the real environments;
* :mod:`rlvr.bench.learning` -- the harness of the language-model learning runs (``rlvr train``);
* :mod:`rlvr.bench.report` -- tables (markdown, CSV, JSON), the papers' claims and plots;
* :mod:`rlvr.bench.cli` -- the command.

Importing this package imports none of them.
"""

__all__ = ["agents", "cli", "credit", "exploits", "learning", "metrics", "report", "schemes"]
