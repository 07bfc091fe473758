"""Reward tables (weights, outcome split, G-RA gating, information gain) on hand-built trajectories."""

import numpy as np
import pytest

from rlvr.agents.trainer.batch import (advantage_stats, anchor_keys, gate_tiers, group_advantages, reward_tables,
                                      step_advantages, turn_keys)
from rlvr.agents.trainer.config import TrainConfig
from rlvr.agents.trajectory import Trajectory, Turn
from rlvr.errors import ConfigError


def _traj(turn_components, observations=None):
    obs = observations or [[{"role": "tool", "content": f"o{i}"}] for i in range(len(turn_components))]
    turns = [Turn(i, f"a{i}", obs[i], sum(c.values()), c) for i, c in enumerate(turn_components)]
    return Trajectory("rlvr/X-v0", "t", 0, [{"role": "user", "content": "task"}], turns)


TRAJS = [
    _traj([{"progress": 0.5, "format": 0.0}, {"outcome": 1.0, "format": -0.1}]),  # won
    _traj([{"progress": 0.25, "format": -0.1}, {"progress": 0.25}, {"outcome": 0.0}]),  # lost
]


def test_env_scheme_splits_outcome_and_applies_weights():
    t = reward_tables(TRAJS, TrainConfig(reward_weights={"progress": 2.0}))
    assert t.mask.tolist() == [[True, True, False], [True, True, True]]
    assert np.allclose(t.process, [[1.0, -0.1, 0.0], [0.4, 0.5, 0.0]])
    assert t.outcome.tolist() == [1.0, 0.0]
    assert np.allclose(t.total(), [[1.0, 0.9, 0.0], [0.4, 0.5, 0.0]])
    assert t.returns().tolist() == pytest.approx([1.9, 0.9])
    assert t.component_totals["progress"].tolist() == [0.5, 0.5]  # logged unweighted
    assert t.ungated_return is None


def test_gated_scheme_zeroes_lower_tiers_when_the_outcome_misses():
    cfg = TrainConfig(reward="gated", gate_priority=["outcome"], gate_thresholds=[1.0])
    t = reward_tables(TRAJS, cfg)
    assert t.returns().tolist() == pytest.approx([1.4, 0.0])  # lost: progress and penalties gated away
    assert t.ungated_return.tolist() == pytest.approx([1.4, 0.4])  # the D-RA sum for comparison
    tiers = gate_tiers(cfg, ["outcome", "progress", "format"])
    assert [x.name for x in tiers] == ["outcome", "rest"] and tiers[1].components == ("format", "progress")


def test_info_gain_scheme_adds_weighted_gains():
    cfg = TrainConfig(reward="info_gain", ig_weight=0.5)
    t = reward_tables(TRAJS, cfg, info_gain=[[0.2], [0.1, -0.4]])
    assert np.allclose(t.process, [[0.6, -0.1, 0.0], [0.2, 0.05, 0.0]])
    with pytest.raises(ConfigError, match="information gains"):
        reward_tables(TRAJS, cfg)
    with pytest.raises(ConfigError, match="3 information gains for 2 turns"):
        reward_tables(TRAJS, cfg, info_gain=[[0.1, 0.1, 0.1], []])


def test_anchor_and_turn_keys():
    a = anchor_keys(TRAJS[1])
    assert len(a) == 3 and a[0] == '["task"]' and a[1] == '["o0"]'
    k = turn_keys(TRAJS[0])
    assert k[0] == ("a0", '["o0"]')


def test_advantage_stats_zero_group_fraction():
    m = np.array([[True, False], [True, True]])
    s = advantage_stats([np.zeros((2, 2)), np.array([[1.0, 0.0], [-1.0, 0.0]])], [m, m])
    assert s["adv/zero_group_frac"] == 0.5
    assert s["adv/max"] == 1.0 and s["adv/min"] == -1.0


def test_explicit_weights_override_the_config():
    # e.g. an environment whose defaults log a component at weight 0
    t = reward_tables(TRAJS, TrainConfig(reward_weights={"format": 5.0}), weights={"format": 0.0})
    assert np.allclose(t.process, [[0.5, 0.0, 0.0], [0.25, 0.25, 0.0]])


def _seq(length, spans):
    from rlvr.agents.trainer.sequences import TokenSequence

    mask = [int(any(a <= j < b for a, b in spans)) for j in range(length)]
    return TokenSequence(list(range(length)), mask, [1] * length, [0.0] * length, list(spans))


def test_step_advantages_by_hand():
    # group 0: returns 1.0 and 0.0 -> GRPO (unbiased std 1/sqrt(2)) gives +-1/sqrt(2); group 1 ties -> 0
    trajs = [_traj([{"outcome": 1.0}]), _traj([{"progress": 0.0}, {"outcome": 0.0}]),
             _traj([{"outcome": 1.0}]), _traj([{"outcome": 1.0}])]
    seqs = [_seq(5, [(2, 4)]), _seq(8, [(1, 3), (5, 7)]), _seq(3, [(1, 2)]), _seq(3, [(2, 3)])]
    cfg = TrainConfig(group_size=2, tasks_per_step=2, advantage="grpo")
    out = step_advantages(reward_tables(trajs, cfg), trajs, seqs, cfg)
    a = 0.5 / (0.5**0.5 + 1e-6)
    assert np.allclose(out.turn, [[a, 0.0], [-a, -a], [0.0, 0.0], [0.0, 0.0]])
    assert out.token[0] == pytest.approx([0, 0, a, a, 0])
    assert out.token[1] == pytest.approx([0, -a, -a, 0, 0, -a, -a, 0])
    assert out.token[2] == [0.0] * 3 and out.token[3] == [0.0] * 3
    assert out.stats["adv/zero_group_frac"] == 0.5
    assert out.stats["adv/max"] == pytest.approx(a) and out.stats["adv/min"] == pytest.approx(-a)
    assert out.stats["adv/mean"] == pytest.approx((a - 2 * a) / 5)  # five valid turns
    with pytest.raises(ConfigError, match="whole groups of 2"):
        step_advantages(reward_tables(trajs[:3], cfg), trajs[:3], seqs[:3], cfg)


def test_step_advantages_feed_pure_the_token_counts_of_each_turn():
    trajs = [_traj([{"progress": 1.0}, {"outcome": 1.0}]), _traj([{"progress": 0.0}, {"outcome": 0.0}])]
    seqs = [_seq(9, [(0, 1), (4, 9)]), _seq(9, [(0, 3), (4, 6)])]
    cfg = TrainConfig(group_size=2, tasks_per_step=1, advantage="pure", pure_baseline="token")
    tables = reward_tables(trajs, cfg)
    out = step_advantages(tables, trajs, seqs, cfg)
    counts = np.array([[1.0, 5.0], [3.0, 2.0]])
    assert np.allclose(out.turn, group_advantages(tables, slice(0, 2), cfg, trajs, counts))
    uniform = group_advantages(tables, slice(0, 2), cfg, trajs, np.ones((2, 2)))
    assert np.abs(out.turn - uniform).max() > 1e-6  # the counts matter


def test_recorded_weights_make_the_table_return_the_environments_reward():
    """The one reward: the table weights each turn as the environment did (the weights it recorded),
    so under the env scheme a trajectory's return is its total_reward, whatever the config says."""
    from rlvr.agents import OracleAgent
    from rlvr.agents.rollout import rollout

    env_kwargs = {"low": 1, "high": 16, "reward_weights": {"progress": 3.0, "outcome": 2.0}}
    trajs = rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=4, env_kwargs=env_kwargs)
    assert all(t.repro.reward_weights["progress"] == 3.0 for t in trajs)
    assert any(turn.reward_components.get("progress") for t in trajs for turn in t.turns)
    cfg = TrainConfig(env_kwargs=env_kwargs)  # config.reward_weights empty: the recorded weights decide
    assert reward_tables(trajs, cfg).returns().tolist() == pytest.approx([t.total_reward for t in trajs])
    hand_built = [_traj([dict(turn.reward_components) for turn in t.turns]) for t in trajs]  # nothing recorded
    assert reward_tables(hand_built, cfg).returns().tolist() != pytest.approx([t.total_reward for t in trajs])
