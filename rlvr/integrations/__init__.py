"""Adapters that let other projects' training and serving code drive rlvr environments.

* :mod:`rlvr.integrations.trl` -- TRL's ``GRPOTrainer(environment_factory=...)``: an environment class
  per rlvr id with one method per tool, reward functions per component, and a dataset of tasks;
* :mod:`rlvr.integrations.openenv` -- OpenEnv's server and protocol: ``rlvr serve ENV`` and a
  gym-style client for a remote environment.

Importing this package imports neither (nor TRL, nor OpenEnv); each module needs its extra
(``pip install 'rlvr-gym[trl]'`` / ``'rlvr-gym[openenv]'``).
"""

from __future__ import annotations

__all__: list[str] = []
