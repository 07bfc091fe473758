"""Any rlvr environment as a SkyRL-gym ``BaseTextEnv`` (text in, text out, turn-level rewards).

SkyRL's generator renders the conversation, samples the assistant's text and calls ``step(text)``;
rlvr parses it (Hermes tool calls, ``<answer>``), so the tool listing and the call format are rlvr's own
system prompt, as in rlvr's loop. Each step's reward is the turn's weighted reward (SkyRL keeps
per-turn rewards), its metadata the turn's info (``reward_components``, ``error``...), and
``get_metrics`` the episode's component totals and success.

``extras`` (SkyRL's per-sample dict, from the dataset) may hold ``task_id`` and ``seed`` to replay a
task, as ``rlvr.integrations.trl.dataset`` writes them; :func:`register` adds an id to SkyRL's registry
so ``skyrl_gym.make(id, extras=...)`` builds it.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym

try:
    import skyrl_gym
    from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("rlvr.integrations.skyrl needs the 'skyrl' extra: pip install 'rlvr-gym[skyrl]'") from e

from rlvr.errors import ConfigError, EpisodeStateError

__all__ = ["RLVRTextEnv", "register"]


class RLVRTextEnv(BaseTextEnv):
    """One rlvr environment behind SkyRL's ``init`` / ``step`` / ``close``.

    Args:
        env_config: SkyRL's per-environment config; ``env_id`` and ``env_kwargs`` are read from it
            (a mapping or an object with those attributes) unless given in ``extras``.
        extras: SkyRL's per-sample dict: ``env_id``, ``env_kwargs``, ``task_id``, ``seed``.
    """

    def __init__(self, env_config: Any = None, extras: dict[str, Any] | None = None) -> None:
        super().__init__()
        import rlvr  # noqa: F401 - registers the ids

        extras = dict(extras or {})
        env_id = extras.get("env_id", _get(env_config, "env_id"))
        if not env_id:
            raise ConfigError("RLVRTextEnv needs an env_id (in env_config or extras), e.g. 'rlvr/GuessNumber-v0'")
        kwargs = extras.get("env_kwargs", _get(env_config, "env_kwargs")) or {}
        self.env_id = str(env_id)
        self._gym = gym.make(self.env_id, **copy.deepcopy(dict(kwargs)))
        self._env = self._gym.unwrapped
        self.max_turns = int(getattr(self._env, "max_turns", 1))
        self._task_id, self._seed = extras.get("task_id"), extras.get("seed")
        self._components: list[dict[str, float]] = []
        self._success = False
        self._done = True

    def init(self, prompt: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Start the episode; returns rlvr's opening messages (they replace SkyRL's ``prompt``) and reset info."""
        options = {"task_id": self._task_id} if self._task_id is not None else None
        messages, info = self._gym.reset(seed=None if self._seed is None else int(self._seed), options=options)
        self.turns, self._components, self._success, self._done = 0, [], False, False
        return messages, dict(info)

    def step(self, action: str) -> BaseTextEnvStepOutput:
        if self._done:
            raise EpisodeStateError(f"{self.env_id}: the episode has ended (or init() was not called)")
        obs, reward, terminated, truncated, info = self._gym.step(action)
        self.turns += 1
        self._components.append(dict(info["reward_components"]))
        self._done = bool(terminated or truncated)
        if self._done:
            self._success = bool(info.get("success", False))
        return BaseTextEnvStepOutput(observations=obs, reward=float(reward), done=self._done,
                                     metadata={**info, "terminated": terminated, "truncated": truncated},
                                     postprocessed_action=None)

    def get_metrics(self) -> dict[str, Any]:
        totals: dict[str, float] = {}
        for c in self._components:
            for k, v in c.items():
                totals[k] = totals.get(k, 0.0) + float(v)
        return {"turns": self.turns, "success": float(self._success), **{f"reward/{k}": v for k, v in totals.items()}}

    def close(self) -> None:
        self._gym.close()


def _get(config: Any, key: str) -> Any:
    if config is None:
        return None
    if isinstance(config, dict):
        return config.get(key)
    getter = getattr(config, "get", None)
    return getter(key) if callable(getter) else getattr(config, key, None)


def register(env_id: str, **env_kwargs: Any) -> None:
    """Register ``env_id`` (built with ``env_kwargs``) in SkyRL-gym's registry (idempotent)."""
    from rlvr.registry import check_env_args

    check_env_args(env_id, env_kwargs)
    if env_id not in skyrl_gym.registry:
        skyrl_gym.register(id=env_id, entry_point="rlvr.integrations.skyrl:RLVRTextEnv",
                           kwargs={"env_config": {"env_id": env_id, "env_kwargs": dict(env_kwargs)}})
