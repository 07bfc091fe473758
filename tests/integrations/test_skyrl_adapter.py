"""rlvr environments as SkyRL-gym BaseTextEnvs, built through skyrl_gym's own registry and make()."""

from __future__ import annotations

import gymnasium as gym
import pytest

skyrl_gym = pytest.importorskip("skyrl_gym")
from skyrl_gym.envs.base_text_env import BaseTextEnv  # noqa: E402

import rlvr  # noqa: E402,F401
from rlvr.errors import ConfigError, EpisodeStateError  # noqa: E402
from rlvr.integrations.skyrl import RLVRTextEnv, register  # noqa: E402


def test_oracle_episode_through_skyrl_make_matches_rlvr():
    register("rlvr/DeepSearch-v0", n_tasks=8)
    register("rlvr/DeepSearch-v0", n_tasks=8)  # idempotent
    env = skyrl_gym.make("rlvr/DeepSearch-v0", extras={"seed": 3})
    assert isinstance(env, BaseTextEnv) and isinstance(env, RLVRTextEnv)
    messages, info = env.init([{"role": "user", "content": "ignored: rlvr opens the task"}])
    assert [m["role"] for m in messages] == ["system", "user"] and "<tools>" in messages[0]["content"]
    local = gym.make("rlvr/DeepSearch-v0", n_tasks=8)
    local.reset(seed=3, options={"task_id": info["task_id"]})
    rewards, done = [], False
    while not done:
        action = local.unwrapped.oracle_action()
        out = env.step(action)
        _, r, term, trunc, _ = local.step(action)
        assert out["reward"] == pytest.approx(r) and out["done"] == (term or trunc)
        rewards.append(out["reward"])
        done = out["done"]
    assert out["metadata"]["success"] is True and out["metadata"]["terminated"]
    metrics = env.get_metrics()
    assert metrics["success"] == 1.0 and metrics["turns"] == len(rewards) and metrics["reward/outcome"] == 1.0
    with pytest.raises(EpisodeStateError, match="episode has ended"):
        env.step("<answer>x</answer>")
    env.close()


def test_task_replay_bad_actions_and_config_errors():
    env = RLVRTextEnv(extras={"env_id": "rlvr/GuessNumber-v0", "task_id": "guess-1-100-9"})
    _, info = env.init()
    assert info["task_id"] == "guess-1-100-9"
    out = env.step("<tool_call>{broken</tool_call>")
    assert not out["done"] and out["metadata"]["error"]["kind"] == "parse_error" and out["reward"] < 0
    with pytest.raises(ConfigError, match="needs an env_id"):
        RLVRTextEnv()
    with pytest.raises(ConfigError, match="unknown keyword argument 'hihg'"):
        register("rlvr/GuessNumber-v0", hihg=3)
