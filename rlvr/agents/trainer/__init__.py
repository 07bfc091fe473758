"""Turn-aware GRPO training for multi-turn agents on rlvr environments.

* :mod:`~rlvr.agents.trainer.config` -- ``TrainConfig``, the one typed, flat configuration;
* :mod:`~rlvr.agents.trainer.sequences` -- token-exact multi-turn sequences and their masks;
* :mod:`~rlvr.agents.trainer.advantages` -- advantage estimators on per-turn reward tables;
* :mod:`~rlvr.agents.trainer.losses` -- PPO-clip, k3 KL, entropy, loss aggregation;
* :mod:`~rlvr.agents.trainer.batch` -- trajectories to reward tables and group advantages;
* :mod:`~rlvr.agents.trainer.update` -- the PPO update (length bucketing, one reference pass, chunked logits);
* :mod:`~rlvr.agents.trainer.memory`, :mod:`~rlvr.agents.trainer.optim` -- memory accounting, optimisers;
* :mod:`~rlvr.agents.trainer.backends` -- transformers and vLLM rollout backends;
* :mod:`~rlvr.agents.trainer.trainer` -- the training loop and the ``rlvr train`` entry point;
* :mod:`~rlvr.agents.trainer.demo` -- the CPU demo (evaluate, train a few steps, evaluate, plot).

Importing this package does not import torch; the names below load their modules on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Advantage", "RewardScheme", "TrainConfig", "TrainResult", "demo_main", "train", "train_main"]

_LAZY = {
    "Advantage": "rlvr.agents.trainer.config",
    "RewardScheme": "rlvr.agents.trainer.config",
    "TrainConfig": "rlvr.agents.trainer.config",
    "TrainResult": "rlvr.agents.trainer.trainer",
    "train": "rlvr.agents.trainer.trainer",
    "train_main": "rlvr.agents.trainer.trainer",
    "demo_main": "rlvr.agents.trainer.demo",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
