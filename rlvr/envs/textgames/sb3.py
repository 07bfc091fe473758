"""A Stable-Baselines3 view of the text games: a fixed-size numeric observation and a masked discrete action.

:class:`SB3TextGameEnv` wraps rlvr/TextWorld-v0 or rlvr/ALFWorld-v0 (admissible commands on) so that
``stable_baselines3.common.env_checker.check_env`` passes and ``sb3_contrib.MaskablePPO`` can train on it:

* action: ``Discrete(max_actions)``, an index into the current admissible commands, sorted and capped at
  ``max_actions``; :meth:`~SB3TextGameEnv.action_masks` marks the indices that name a command (an
  unmasked index past the list, as a checker's random action may be, plays ``look`` and sets
  ``info["masked_out"]``);
* observation: ``Box(0, 1, (1 + max_actions) * n_features)``, a hashed bag of words (presence, CRC32
  buckets) of the latest feedback followed by one of each candidate command (zeros for empty slots).

Rewards, ``terminated`` / ``truncated`` and ``info["success"]`` are the wrapped environment's. This is a
floor to compare language-model agents against, not a strong agent.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import gymnasium as gym
import numpy as np

from rlvr.errors import ConfigError

__all__ = ["SB3TextGameEnv", "bag_of_words"]

_WORD = re.compile(r"[a-z0-9]+")


def bag_of_words(text: str, n_features: int) -> np.ndarray:
    """Presence (0/1) of the words of ``text`` in ``n_features`` CRC32 buckets (stable across processes)."""
    out = np.zeros(n_features, dtype=np.float32)
    for word in set(_WORD.findall(text.lower())):
        out[zlib.crc32(word.encode()) % n_features] = 1.0
    return out


class SB3TextGameEnv(gym.Env):
    """A text game as a fixed-size Gymnasium env for Stable-Baselines3 (module docstring).

    Args:
        env_id: ``rlvr/TextWorld-v0`` or ``rlvr/ALFWorld-v0``.
        max_actions: size of the discrete action space (the admissible list is cut to this many).
        n_features: hash buckets per bag of words.
        **env_kwargs: keyword arguments of the wrapped environment (``list_admissible`` is forced on).
    """

    metadata = {"render_modes": []}

    def __init__(self, env_id: str = "rlvr/TextWorld-v0", max_actions: int = 32, n_features: int = 128,
                 **env_kwargs: Any) -> None:
        import rlvr  # noqa: F401  (registers the ids)

        if env_id not in ("rlvr/TextWorld-v0", "rlvr/ALFWorld-v0"):
            raise ConfigError(f"SB3TextGameEnv wraps rlvr/TextWorld-v0 or rlvr/ALFWorld-v0, got {env_id!r}")
        for name, value in (("max_actions", max_actions), ("n_features", n_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        self.inner = gym.make(env_id, **{**env_kwargs, "list_admissible": True}).unwrapped
        self.max_actions, self.n_features = max_actions, n_features
        self.action_space = gym.spaces.Discrete(max_actions)
        self.observation_space = gym.spaces.Box(0.0, 1.0, ((1 + max_actions) * n_features,), dtype=np.float32)
        self.candidates: list[str] = []
        self._last_feedback = ""

    def _observe(self) -> np.ndarray:
        state = self.inner.game_state
        admissible = (state.admissible if state is not None and state.admissible is not None else []) or ["look"]
        self.candidates = sorted(admissible)[: self.max_actions]
        self._last_feedback = state.feedback if state is not None else ""
        parts = [bag_of_words(self._last_feedback, self.n_features)]
        parts += [bag_of_words(c, self.n_features) for c in self.candidates]
        parts += [np.zeros(self.n_features, dtype=np.float32)] * (self.max_actions - len(self.candidates))
        return np.concatenate(parts)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        _, info = self.inner.reset(seed=seed, options=options)
        return self._observe(), dict(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        index = int(action)
        masked_out = not 0 <= index < len(self.candidates)
        command = "look" if masked_out else self.candidates[index]
        _, reward, terminated, truncated, info = self.inner.step(f"<action>{command}</action>")
        info = {**info, "masked_out": masked_out}
        return self._observe(), float(reward), bool(terminated), bool(truncated), info

    def action_masks(self) -> np.ndarray:
        """True for the indices that name one of the current admissible commands."""
        mask = np.zeros(self.max_actions, dtype=bool)
        mask[: len(self.candidates)] = True
        return mask

    def close(self) -> None:
        self.inner.close()
