"""Text games: rlvr/TextWorld-v0 and rlvr/ALFWorld-v0 (one command per turn, the game's own feedback),
the offline game generators behind them and a Stable-Baselines3 wrapper.

The environment classes are imported lazily (``textworld`` and ``alfworld`` load only when used):
``from rlvr.envs.textgames import TextWorldEnv, ALFWorldEnv, SB3TextGameEnv``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TextWorldEnv", "ALFWorldEnv", "SB3TextGameEnv"]

_WHERE = {"TextWorldEnv": "textworld_env", "ALFWorldEnv": "alfworld_env", "SB3TextGameEnv": "sb3"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"rlvr.envs.textgames.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'rlvr.envs.textgames' has no attribute {name!r}")
