"""step_metrics: one metrics row from a step's trajectories, tables and statistics, on hand-built inputs."""

import pytest

from rlvr.agents.trainer.batch import drop_infra_groups, reward_tables
from rlvr.agents.trainer.config import TrainConfig
from rlvr.agents.trainer.records import step_metrics
from rlvr.agents.trainer.sequences import TokenSequence
from rlvr.agents.trajectory import Trajectory, Turn


def _traj(components, *, tokens=2, infra=False, terminated=True):
    turns = [Turn(i, "a", [], sum(c.values()), c, terminated=terminated and i == len(components) - 1,
                  truncated=not terminated and i == len(components) - 1, completion_ids=[7] * tokens)
             for i, c in enumerate(components)]
    if infra:
        turns[-1].info["infra_failure"] = {"where": "grader", "message": "down"}
    return Trajectory("rlvr/X-v0", "t", 0, [{"role": "user", "content": "task"}], turns)


def _seq(length, mismatches=()):
    return TokenSequence([1] * length, [1] * length, [1] * length, [0.0] * length, [(0, length)], list(mismatches))


TIMES = {"rollout_s": 2.0, "reward_s": 0.5, "update_s": 4.0, "step_s": 7.0}


def test_a_trained_step():
    all_trajs = [_traj([{"outcome": 1.0}]), _traj([{"progress": 0.5}, {"outcome": 0.0}], terminated=False),
                 _traj([{"outcome": 1.0}], infra=True), _traj([{"outcome": 1.0}])]
    trained, infra = drop_infra_groups(all_trajs, 2)
    cfg = TrainConfig(group_size=2, reward_weights={"progress": 2.0})
    tables = reward_tables(trained, cfg)  # returns 1.0 and 1.0 (progress weighs 2)
    seqs = [_seq(10), _seq(20, mismatches=[1])]
    row = step_metrics(3, all_trajs, trained, infra=infra, times=TIMES, seqs=seqs, tables=tables,
                       advantages={"adv/mean": 0.0}, update={"loss/policy": -0.25}, ppo_epochs=2, peak_mem_mb=12.0)
    assert row["step"] == 3 and row["episodes"] == 4 and row["episodes/trained"] == 2
    assert row["infra/episodes"] == 1.0 and row["infra/groups_dropped"] == 1.0
    assert row["reward/mean"] == pytest.approx(1.0) and row["reward/std"] == pytest.approx(0.0)
    assert row["reward/outcome"] == pytest.approx(0.5) and row["reward/progress"] == pytest.approx(0.25)  # unweighted
    assert "env_reward/mean" not in row  # one reward: the tables'
    # summarize over the three scored episodes (the infra-failed one counted apart)
    assert row["success_rate"] == pytest.approx(2 / 3) and row["turns/mean"] == pytest.approx(4 / 3)
    assert row["truncated_frac"] == pytest.approx(1 / 3)
    assert row["adv/mean"] == 0.0 and row["loss/policy"] == -0.25
    assert row["tokens/generated"] == 10 and row["tokens/sequence_mean"] == 15.0  # 5 turns x 2 tokens
    assert row["tokens/prompt_mismatch_turns"] == 1
    assert row["perf/rollout_tok_s"] == pytest.approx(5.0) and row["perf/update_tok_s"] == pytest.approx(2 * 30 / 4)
    assert row["perf/peak_mem_mb"] == 12.0 and row["perf/step_s"] == 7.0 and row["perf/reward_s"] == 0.5
    assert "reward/ungated_mean" not in row and "reward/info_gain_mean" not in row


def test_gated_and_info_gain_extras():
    trajs = [_traj([{"progress": 0.5}, {"outcome": 0.0}]), _traj([{"outcome": 1.0}])]
    cfg = TrainConfig(group_size=2, reward="gated", gate_priority=["outcome"], gate_thresholds=[1.0])
    tables = reward_tables(trajs, cfg)
    row = step_metrics(0, trajs, trajs, infra={}, times=TIMES, seqs=[_seq(4), _seq(4)], tables=tables,
                       gains=[[0.2], []])
    assert row["reward/mean"] == pytest.approx(0.5) and row["reward/ungated_mean"] == pytest.approx(0.75)
    assert row["reward/info_gain_mean"] == pytest.approx(0.2)


def test_a_step_without_update():
    all_trajs = [_traj([{"outcome": 1.0}], infra=True), _traj([{"outcome": 1.0}])]
    trained, infra = drop_infra_groups(all_trajs, 2)
    row = step_metrics(5, all_trajs, trained, infra=infra, times={"rollout_s": 1.5, "step_s": 1.75})
    assert row == {"step": 5, "episodes": 2, "infra/episodes": 1.0, "infra/groups_dropped": 1.0,
                   "infra/groups_kept": 0.0, "perf/rollout_s": 1.5, "perf/step_s": 1.75}
