"""ToolCall's per-episode reward normalisation: ``reward_scale="episode"`` bounds returns whatever the task's length."""

from __future__ import annotations

import gymnasium as gym
import pytest

import rlvr  # noqa: F401 - registers the ids
from rlvr.agents import OracleAgent
from rlvr.agents.rollout import rollout
from rlvr.errors import ConfigError


@pytest.mark.parametrize("source", ["bfcl", "synthetic"])
def test_episode_scale_bounds_the_oracle_return_whatever_the_length(source):
    raw = rollout("rlvr/ToolCall-v0", OracleAgent(), episodes=12, env_kwargs={"source": source})
    scaled = rollout("rlvr/ToolCall-v0", OracleAgent(), episodes=12,
                     env_kwargs={"source": source, "reward_scale": "episode"})
    assert [t.task_id for t in raw] == [t.task_id for t in scaled]
    for r, s in zip(raw, scaled):
        totals = s.component_totals()
        assert totals["match"] <= 1 + 1e-9 and totals["outcome"] <= 1 + 1e-9
        assert s.total_reward <= 2 + 1e-9 and s.turns[-1].info["success"] == r.turns[-1].info["success"]
        steps = max(1, sum(1 for t in r.turns if t.tool_calls))
        assert r.component_totals().get("match", 0.0) <= steps + 1e-9
        per_turn = s.turns[-1].info["matchtir_turn_rewards"]
        assert sum(per_turn) == pytest.approx(totals["match"] + totals["outcome"], abs=1e-6)
    if source == "bfcl":
        assert max(t.total_reward for t in raw) > 2  # long tasks: unscaled returns grow with the task


def test_reward_scale_is_checked():
    with pytest.raises(ConfigError, match="reward_scale must be one of 'sum', 'episode', got 'episod'"):
        gym.make("rlvr/ToolCall-v0", reward_scale="episod")
