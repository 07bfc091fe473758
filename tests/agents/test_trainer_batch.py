"""Reward tables (weights, outcome split, G-RA gating, information gain) on hand-built trajectories."""

import numpy as np
import pytest

from rlvr.agents.trainer.batch import advantage_stats, anchor_keys, gate_tiers, reward_tables, turn_keys
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
