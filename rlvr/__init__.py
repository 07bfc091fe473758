"""rlvr: Gymnasium environments, turn-level rewards and a turn-aware GRPO trainer for multi-turn LLM agents.

``import rlvr`` registers the ``rlvr/...`` environment ids with gymnasium and has no other side effect::

    import gymnasium as gym
    import rlvr

    env = gym.make("rlvr/GuessNumber-v0")
    obs, info = env.reset(seed=0)

:func:`clear_caches` empties every in-process cache (all listed in :mod:`rlvr.caches`).
"""

from rlvr.caches import clear_caches
from rlvr.registry import EnvInfo, list_envs, register_all

__version__ = "0.1.0"
__all__ = ["__version__", "EnvInfo", "clear_caches", "list_envs"]

register_all()
