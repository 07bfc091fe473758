"""Rewards: pure, named, picklable functions over trajectories and their composition.

Every environment reports named per-turn terms in ``info["reward_components"]``; the functions
here score outcomes and turns (outcome match, citation-aware rubrics, bipartite-matched tool
credit, information gain) and combine them (weights, gating), independent of any one environment.

The public surface is the five modules, each with its own ``__all__``:

* :mod:`~rlvr.rewards.outcome` -- exact match, token F1, answer extraction, format checks;
* :mod:`~rlvr.rewards.carr` -- CaRR citation-aware rubric rewards and C-GRPO;
* :mod:`~rlvr.rewards.matchtir` -- MatchTIR bipartite-matched tool-call credit;
* :mod:`~rlvr.rewards.gated` -- G-RA gated accumulation of reward tiers;
* :mod:`~rlvr.rewards.info_gain` -- the IGPO information-gain turn reward (needs torch).

Importing this package imports none of them (so not torch); ``rlvr.rewards.outcome`` and the
others load on first use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["carr", "gated", "info_gain", "matchtir", "outcome"]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
