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
from rlvr.errors import AgentError, ConfigError


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
    assert set(d) == {"format_version", "env_id", "task_id", "seed", "initial_messages", "turns", "reset_info", "repro"}
    assert Trajectory.from_dict(d).total_reward == pytest.approx(t.total_reward)


# ----------------------------------------------------------------- same seed, same trajectories; repro record


def _comparable(trajs):
    """Trajectories as plain dicts without the wall-clock timings (the only field allowed to differ)."""
    out = []
    for t in trajs:
        d = t.to_dict()
        for turn in d["turns"]:
            turn.pop("timings")
        out.append(d)
    return out


def test_random_agent_same_trajectories_whatever_the_concurrency():
    from rlvr.agents import RandomAgent

    runs = {c: _comparable(rollout("rlvr/GuessNumber-v0", RandomAgent(seed=0), episodes=8, seed=0, concurrency=c))
            for c in (1, 3, 8)}
    assert runs[1] == runs[3] == runs[8]
    assert len({json.dumps(t["turns"]) for t in runs[1]}) > 1  # the episodes differ from one another
    # and a different agent seed gives other actions for the same episodes
    other = _comparable(rollout("rlvr/GuessNumber-v0", RandomAgent(seed=1), episodes=8, seed=0, concurrency=8))
    assert [t["turns"] for t in other] != [t["turns"] for t in runs[1]]


def test_sampling_hf_agent_same_trajectories_whatever_the_concurrency():
    """A tiny randomly initialised Llama sampling at temperature 1 with top-p: per-row generators make each
    conversation's tokens a function of its episode seed and turn, whatever else shares its batch."""
    pytest.importorskip("torch")
    from _trainer_helpers import smollm2_tokenizer, tiny_llama

    from rlvr.agents.hf import HFAgent

    tok = smollm2_tokenizer()
    model = tiny_llama(tok)
    runs = {}
    for c in (1, 3, 8):
        agent = HFAgent(model, tok, temperature=1.0, top_p=0.9, max_new_tokens=4, seed=3, batch_size=c)
        runs[c] = _comparable(rollout("rlvr/GuessNumber-v0", agent, episodes=8, seed=0, concurrency=c,
                                      env_kwargs={"high": 8, "max_turns": 2}))
    assert len({t["turns"][0]["action"] for t in runs[1]}) == 8  # every episode sampled its own text

    def without_logprobs(ds):
        return [{**d, "turns": [{k: v for k, v in u.items() if k != "logprobs"} for u in d["turns"]]} for d in ds]

    assert without_logprobs(runs[1]) == without_logprobs(runs[3]) == without_logprobs(runs[8])
    # log-probs come from batched forward passes of different shapes: equal up to float32 rounding
    for c in (3, 8):
        for a, b in zip(runs[1], runs[c]):
            for u, v in zip(a["turns"], b["turns"]):
                assert u["logprobs"] == pytest.approx(v["logprobs"], rel=1e-5, abs=1e-5)


def test_start_episode_is_called_with_the_episode_seed():
    seen = []

    class Recorder:
        def bind(self, env):
            return self

        def start_episode(self, seed):
            seen.append(seed)

        def act(self, messages):
            return "<answer>1</answer>"

    rollout("rlvr/GuessNumber-v0", Recorder(), episodes=4, seed=20, concurrency=2)
    assert sorted(seen) == [20, 21, 22, 23]


def test_shared_agent_with_start_episode_is_refused():
    class Shared:
        def start_episode(self, seed):
            pass

        def act(self, messages):
            return "<answer>1</answer>"

    with pytest.raises(ConfigError, match=r"defines start_episode\(seed\) but no bind\(env\).*concurrency=1"):
        rollout("rlvr/GuessNumber-v0", Shared(), episodes=2, concurrency=2)
    assert len(rollout("rlvr/GuessNumber-v0", Shared(), episodes=2, concurrency=1)) == 2


def test_batched_agents_get_one_seed_per_conversation_from_episode_and_turn():
    from rlvr.agents.base import turn_seed

    calls = []

    class Seeded:
        def act_batch(self, batch, seeds=None):
            calls.append(list(seeds))
            return ["<tool_call>{\"name\": \"guess\", \"arguments\": {\"number\": 1}}</tool_call>"] * len(batch)

    rollout("rlvr/GuessNumber-v0", Seeded(), episodes=2, seed=5, concurrency=2, env_kwargs={"max_turns": 2})
    assert calls == [[turn_seed(5, 0), turn_seed(6, 0)], [turn_seed(5, 1), turn_seed(6, 1)]]
    assert len({s for c in calls for s in c}) == 4


def test_seeds_give_each_episode_its_task_seed_in_order():
    seeds = [7, 3, 7, 3, 11]
    trajs = rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=5, seeds=seeds, concurrency=2)
    assert [t.seed for t in trajs] == seeds and [t.repro.seed for t in trajs] == seeds
    assert [t.reset_info["episode"] for t in trajs] == [0, 1, 2, 3, 4]
    alone = {s: rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=1, seed=s)[0].task_id for s in (3, 7, 11)}
    assert [t.task_id for t in trajs] == [alone[s] for s in seeds]  # the task is the one of that seed


def test_repeated_seeds_share_the_task_and_sample_from_the_episode_index():
    from rlvr.agents.base import turn_seed

    calls, started = [], []

    class Seeded:
        def bind(self, env):
            return self

        def start_episode(self, seed):
            started.append(seed)

        def act_batch(self, batch, seeds=None):
            calls.append(list(seeds))
            return ["<answer>1</answer>"] * len(batch)

    trajs = rollout("rlvr/GuessNumber-v0", Seeded(), episodes=3, seeds=[42, 42, 42], seed=10, concurrency=1)
    assert len({t.task_id for t in trajs}) == 1 and [t.seed for t in trajs] == [42, 42, 42]
    assert started == [10, 11, 12]  # sampling seeds are seed + k, not the shared task seed
    assert calls == [[turn_seed(10, 0)], [turn_seed(11, 0)], [turn_seed(12, 0)]]


def test_repeated_seeds_give_a_sampling_hf_agent_distinct_samples():
    pytest.importorskip("torch")
    from _trainer_helpers import smollm2_tokenizer, tiny_llama

    from rlvr.agents.hf import HFAgent

    tok = smollm2_tokenizer()
    agent = HFAgent(tiny_llama(tok), tok, temperature=1.0, max_new_tokens=6, seed=3)
    trajs = rollout("rlvr/GuessNumber-v0", agent, episodes=4, seeds=[5] * 4, concurrency=4,
                    env_kwargs={"max_turns": 1})
    assert len({t.task_id for t in trajs}) == 1
    assert len({tuple(t.turns[0].completion_ids) for t in trajs}) == 4


def test_seeds_are_validated():
    with pytest.raises(ConfigError, match="got 2 seeds for 3 episodes; give one seed per episode"):
        rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=3, seeds=[1, 2])
    with pytest.raises(ConfigError, match=r"seeds must be integers, got '2' \(str\) at index 1"):
        rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=2, seeds=[1, "2"])
    with pytest.raises(ConfigError, match=r"seeds must be integers, got True \(bool\) at index 0"):
        rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=1, seeds=[True])
    with pytest.raises(ConfigError, match="seeds must be a sequence of 2 integers"):
        rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=2, seeds=5)  # type: ignore[arg-type]


def test_agents_that_take_histories_get_each_conversations_turns():
    seen = []

    class Historian:
        def act_batch(self, batch, histories=None):
            seen.append([[t.action for t in h] for h in histories])
            return [f"<tool_call>{{\"name\": \"guess\", \"arguments\": {{\"number\": {len(h) + 1}}}}}</tool_call>"
                    for h in histories]

    trajs = rollout("rlvr/GuessNumber-v0", Historian(), episodes=2, seed=0, concurrency=2,
                    env_kwargs={"max_turns": 2, "high": 50})
    first = trajs[0].turns[0].action
    assert seen == [[[], []], [[first], [first]]]


def test_repro_record_holds_env_options_and_reward_weights():
    (a,) = rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=1, env_kwargs={"high": 50})
    (b,) = rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=1,
                   env_kwargs={"high": 50, "reward_weights": {"outcome": 2.0}}, reset_options=lambda k: {"secret": 7})
    assert a.repro.env_kwargs == {"high": 50} and a.repro.reset_options == {}
    assert a.repro.reward_weights == {"format": 1.0, "outcome": 1.0, "progress": 1.0, "tool_validity": 1.0}
    assert b.repro.env_kwargs == {"high": 50, "reward_weights": {"outcome": 2.0}}
    assert b.repro.reset_options == {"secret": 7}
    assert b.repro.reward_weights["outcome"] == 2.0 and b.repro.reward_weights["progress"] == 1.0
    assert a.repro != b.repro
    back = Trajectory.from_dict(json.loads(b.to_json()))
    assert back.repro == b.repro


def test_repro_record_of_a_factory_env_and_of_unplain_values():
    from rlvr.agents.trajectory import plain
    from rlvr.envs.guess_number import GuessNumberEnv

    (t,) = rollout(lambda: GuessNumberEnv(high=20), OracleAgent(), episodes=1)
    assert t.repro.env_kwargs is None  # a factory's keywords are not known: "not recorded", not {}
    assert plain({"tasks": list(range(100)), "judge": object(), "fn": len, "p": __import__("pathlib").Path("/x"),
                  "t": (1, 2)}) == {"tasks": "<list of 100 int>", "judge": "<builtins.object object>",
                                    "fn": "<builtins.len>", "p": "/x", "t": [1, 2]}


def test_old_trajectory_files_without_the_new_repro_fields_still_load(tmp_path):
    old = {"env_id": "rlvr/GuessNumber-v0", "task_id": "t", "seed": 1, "initial_messages": [], "turns": [],
           "reset_info": {}, "repro": {"env_id": "rlvr/GuessNumber-v0", "env_version": 0, "seed": 1,
                                       "package_version": "0.0.1", "dataset_hash": None, "image_digest": None,
                                       "model_id": "oracle", "chat_template_hash": None}}
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(old) + "\n")
    (t,) = read_trajectories(path)
    assert t.repro.model_id == "oracle"
    assert (t.repro.env_kwargs, t.repro.reset_options, t.repro.reward_weights) == (None, None, None)


def test_an_agent_that_raises_stops_with_an_agent_error_naming_the_episode(tmp_path):
    class Boom:
        calls = 0

        def act(self, messages):
            Boom.calls += 1
            if Boom.calls > 3:
                raise RuntimeError("backend exploded")
            return "<answer>1</answer>"

    with pytest.raises(AgentError, match=r"agent Boom raised RuntimeError: backend exploded while generating "
                                         r"episode 3 \(seed 3\) turn 1") as e:
        rollout("rlvr/GuessNumber-v0", Boom(), episodes=6, concurrency=1, out=tmp_path)
    assert isinstance(e.value.__cause__, RuntimeError)
    assert len(list(read_trajectories(tmp_path / "trajectories.jsonl"))) == 3


def test_rollout_refuses_an_object_without_act():
    class NotAnAgent:
        def predict(self, messages):
            return "x"

    with pytest.raises(ConfigError, match=r"NotAnAgent is not an agent: it has no act\(messages\) -> str"):
        rollout("rlvr/GuessNumber-v0", NotAnAgent(), episodes=1)


def test_plain_makes_any_configuration_value_json_ready():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from rlvr.agents.trajectory import plain

    leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
              | st.builds(object) | st.just(len) | st.builds(lambda s: __import__("pathlib").Path(s), st.text(max_size=8)))
    values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=70) | st.tuples(inner, inner)
                          | st.frozensets(st.integers(), max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
                          max_leaves=40)

    @settings(max_examples=200, deadline=None)
    @given(values)
    def check(v):
        p = plain(v)
        assert json.loads(json.dumps(p)) == p  # JSON-ready and stable through a round trip
        assert plain(p) == p  # plain values stay as they are

    check()
