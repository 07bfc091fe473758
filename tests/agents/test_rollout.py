"""Rollouts, trajectory records and JSONL persistence."""

from __future__ import annotations

import json
import threading

import gymnasium as gym
import pytest

import rlvr
from rlvr.agents import OracleAgent, ScriptedAgent, Trajectory, TrajectoryWriter, read_trajectories
from rlvr.agents.rollout import is_success, rollout, summarize
from rlvr.envs import AgentEnv, Tool, render_tool_prompt
from rlvr.errors import AgentError


def test_oracle_rollout_records_everything(tmp_path):
    trajs = rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=5, seed=10, concurrency=3, out=tmp_path)
    assert [t.seed for t in trajs] == [10, 11, 12, 13, 14]
    assert all(is_success(t) and t.terminated and not t.truncated for t in trajs)
    t = trajs[0]
    r = t.repro
    assert (r.env_id, r.env_version, r.seed, r.package_version, r.model_id) == ("rlvr/GuessNumber-v0", 0, 10, rlvr.__version__, "oracle")
    assert r.dataset_hash == "range:1-100"
    assert t.messages[:2] == t.initial_messages and t.messages[2]["role"] == "assistant"
    assert t.reset_info["answer"] == t.task_id.split("-")[-1]
    assert all("generate_s" in turn.timings and "step_s" in turn.timings for turn in t.turns)
    back = list(read_trajectories(tmp_path / "trajectories.jsonl"))
    assert sorted(b.seed for b in back) == [10, 11, 12, 13, 14]
    assert back[0].to_dict() == next(x for x in trajs if x.seed == back[0].seed).to_dict()
    s = summarize(trajs)
    assert s["success_rate"] == 1.0 and s["components"]["outcome"] == 1.0


def test_same_seed_same_trajectories():
    a = rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=3, seed=4)
    b = rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=3, seed=4, concurrency=1)
    strip = lambda ts: [[(u.action, u.observation, u.reward) for u in t.turns] for t in ts]  # noqa: E731
    assert strip(a) == strip(b)


def test_crash_loses_only_episodes_in_flight(tmp_path):
    class Flaky:
        calls = 0

        def act(self, messages):
            Flaky.calls += 1
            if Flaky.calls > 20:
                raise AgentError("backend died")
            return "<answer>1</answer>"

    with pytest.raises(AgentError):
        rollout("rlvr/GuessNumber-v0", Flaky(), episodes=50, concurrency=1, out=tmp_path)
    saved = list(read_trajectories(tmp_path / "trajectories.jsonl"))
    assert len(saved) == 20


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryWriter(path) as w:
        w.write(Trajectory("e", "t", 1, [{"role": "user", "content": "q"}]))
    with open(path, "a") as f:
        f.write('{"env_id": "e", "task')
    assert len(list(read_trajectories(path))) == 1


class _Rendezvous(AgentEnv):
    """Two instances whose tools wait for each other: only concurrent steps can finish."""

    barrier = threading.Barrier(2, timeout=10)

    def __init__(self):
        super().__init__(max_turns=1)
        self.tools.add(Tool("meet", "wait for the other env", {"type": "object", "properties": {}}, self._meet))

    def _meet(self):
        self.barrier.wait()
        return "met"

    def _reset_task(self, options):
        return [{"role": "system", "content": render_tool_prompt("meet", self.tools)}], {"task_id": "meet"}


def test_env_steps_run_concurrently():
    _Rendezvous.barrier.reset()
    agent = ScriptedAgent(['<tool_call>{"name": "meet", "arguments": {}}</tool_call>'])
    trajs = rollout(_Rendezvous, agent, episodes=2, concurrency=2)
    assert [t.turns[0].observation[0]["content"] for t in trajs] == ["met", "met"]


def test_context_overflow_truncates_episode():
    from rlvr.agents import Generation

    class Overflow:
        def act_batch(self, batch):
            return [Generation("", [1, 2], [], [], "context_overflow") for _ in batch]

    (t,) = rollout("rlvr/GuessNumber-v0", Overflow(), episodes=1)
    assert t.truncated and t.turns[-1].info["truncated_by"] == "context_overflow"


def test_trajectory_json_is_plain(tmp_path):
    (t,) = rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=1)
    d = json.loads(t.to_json())
    assert set(d) == {"env_id", "task_id", "seed", "initial_messages", "turns", "reset_info", "repro"}
    assert Trajectory.from_dict(d).total_reward == pytest.approx(t.total_reward)
