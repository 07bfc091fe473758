"""One environment contract: the base class owns ``step``; families implement hooks, declare their
components and reset options, set ``info["success"]`` on the last step and take their description
from the registry."""

from __future__ import annotations

import gymnasium as gym
import pytest

import rlvr
from rlvr.agents import OracleAgent, RandomAgent
from rlvr.agents.rollout import rollout
from rlvr.envs import AgentEnv, Tool, TurnOutcome
from rlvr.errors import ConfigError
from rlvr.registry import ENVS, env_info

CLASSES = [pytest.param(info.load(), id=info.id) for info in rlvr.list_envs()]


# ----------------------------------------------------------------------------- every family
@pytest.mark.parametrize("cls", CLASSES)
def test_no_family_defines_step_or_reset(cls):
    assert "step" not in vars(cls) and "reset" not in vars(cls)
    assert cls.step is AgentEnv.step and cls.reset is AgentEnv.reset


@pytest.mark.parametrize("cls", CLASSES)
def test_declarations_are_consistent(cls):
    assert set(cls.optional_components) <= set(cls.reward_components)
    assert not {"format", "tool_validity"} & set(cls.optional_components)
    assert cls.reset_options[0] == "task_id" and len(set(cls.reset_options)) == len(cls.reset_options)


@pytest.mark.parametrize("info", rlvr.list_envs(), ids=lambda i: i.id)
def test_description_and_family_have_one_source(info):
    """The class holds the registry's own string objects, so ``rlvr list`` and the class cannot drift."""
    cls = info.load()
    assert cls.env_id == info.id
    assert cls.description is info.description and cls.family is info.family
    assert vars(cls)["description"] is env_info(info.id).description


def test_env_info_names_the_registered_ids():
    assert env_info("rlvr/GuessNumber-v0") is ENVS[0]
    with pytest.raises(ConfigError, match=r"unknown rlvr environment id 'rlvr/GuesNumber-v0' "
                                          r"\(did you mean 'rlvr/GuessNumber-v0'\?\); registered: rlvr/GuessNumber-v0"):
        env_info("rlvr/GuesNumber-v0")


def _build(info):
    cls = info.load()
    return cls(source="synthetic") if info.id == "rlvr/ToolCall-v0" else cls()


@pytest.mark.parametrize("info", rlvr.list_envs(), ids=lambda i: i.id)
def test_unknown_reset_option_is_a_config_error_with_a_suggestion(info):
    """Checked before ``_reset_task`` runs, so SWE fails here without touching a sandbox."""
    env = _build(info)
    try:
        accepted = ", ".join(type(env).reset_options)
        with pytest.raises(ConfigError) as e:
            env.reset(options={"task_ids": "x"})
        assert str(e.value) == (f"unknown reset option 'task_ids' (did you mean 'task_id'?); "
                                f"{info.id} accepts: {accepted}")
        with pytest.raises(ConfigError, match="reset options must be a mapping"):
            env.reset(options=["task_id"])
    finally:
        env.close()


@pytest.mark.parametrize("env_id,env_kwargs", [
    ("rlvr/GuessNumber-v0", {}),
    ("rlvr/DeepSearch-v0", {}),
    ("rlvr/ToolCall-v0", {"source": "synthetic"}),
])
def test_every_last_step_says_success_and_every_declared_component_is_there(env_id, env_kwargs):
    declared = set(gym.spec(env_id).entry_point.info.load().reward_components)
    optional = set(gym.spec(env_id).entry_point.info.load().optional_components)
    for agent in (OracleAgent(), RandomAgent(seed=0)):
        for traj in rollout(env_id, agent, episodes=3, seed=0, env_kwargs=env_kwargs):
            assert isinstance(traj.turns[-1].info["success"], bool)
            if traj.truncated:
                assert traj.turns[-1].info["success"] is False and traj.turns[-1].info["truncated_by"] == "max_turns"
            for turn in traj.turns:
                assert declared - optional <= set(turn.reward_components) <= declared


@pytest.mark.parametrize("env_id,env_kwargs", [
    ("rlvr/GuessNumber-v0", {}),
    ("rlvr/DeepSearch-v0", {}),
    ("rlvr/ToolCall-v0", {"source": "synthetic"}),
])
def test_task_id_from_reset_info_replays_the_task(env_id, env_kwargs):
    env = gym.make(env_id, **env_kwargs)
    obs, info = env.reset(seed=3)
    again, info2 = env.reset(seed=99, options={"task_id": info["task_id"]})
    assert info2["task_id"] == info["task_id"] and again == obs
    with pytest.raises(ConfigError, match="no task with id 'nope'"):
        env.reset(options={"task_id": "nope"})
    env.close()


def test_guess_number_task_id_names_the_secret():
    env = gym.make("rlvr/GuessNumber-v0", high=50)
    assert env.reset(options={"task_id": "guess-1-50-7"})[1]["answer"] == "7"
    for bad in ("guess-1-100-7", "guess-1-50-51", "guess-1-50-x", 7):
        with pytest.raises(ConfigError, match=r"this env's ids are guess-1-50-N with N in \[1, 50\]"):
            env.reset(options={"task_id": bad})


def test_guess_number_sets_success_on_its_answer():
    env = gym.make("rlvr/GuessNumber-v0")
    env.reset(options={"secret": 5})
    assert env.step("<answer>5</answer>")[4]["success"] is True
    env.reset(options={"secret": 5})
    assert env.step("<answer>6</answer>")[4]["success"] is False
    env.reset(options={"secret": 5})
    assert env.step("<answer>five</answer>")[4]["success"] is False


def test_toolcall_options_of_the_other_source_say_which_source_takes_them():
    from rlvr.envs.toolcall import ToolCallEnv

    with pytest.raises(ConfigError, match="'index' applies to a task list; source='synthetic' takes"):
        ToolCallEnv("synthetic").reset(options={"index": 0})
    with pytest.raises(ConfigError, match=r"'task_seed' applies to source='synthetic' only \(source is 'bfcl'\)"):
        ToolCallEnv("bfcl").reset(options={"task_seed": 0})


# ----------------------------------------------------------------------------- the base class's step
class HookEnv(AgentEnv):
    """Records every hook call; ``bonus`` is declared, ``judge`` optional (only on a judged answer)."""

    env_id = "test/Hook-v0"
    reward_components = ("format", "tool_validity", "bonus", "judge", "final")
    optional_components = ("judge",)
    reset_options = ("task_id", "level")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls: list[tuple] = []
        self.tools.add(Tool("ping", "pong", {"type": "object", "properties": {}}, lambda: "pong"))

    def _reset_task(self, options):
        self.calls = [("reset", dict(options))]
        return [{"role": "user", "content": "go"}], {"task_id": "hook"}

    def _before_turn(self):
        self.calls.append(("before", self.turn))

    def _on_tool_results(self, results):
        return {"bonus": 0.5}

    def _on_answer(self, answer):
        comps = {"judge": 1.0} if answer == "judged" else {}
        return TurnOutcome([], comps, terminated=True, info={"success": answer == "judged"})

    def _on_episode_end(self, truncated, budget):
        self.calls.append(("end", truncated, budget, len(self.episode_components)))
        return {"final": -1.0 if truncated else 1.0}, {"ended": True}

    def _step_info(self):
        return {"turns_seen": self.turn}


PING = '<tool_call>{"name": "ping", "arguments": {}}</tool_call>'


def test_step_fills_declared_components_but_not_optional_ones():
    env = HookEnv()
    env.reset(options={"level": 2})
    _, reward, term, trunc, info = env.step(PING)
    assert info["reward_components"] == {"format": 0.0, "tool_validity": 0.0, "bonus": 0.5, "final": 0.0}
    assert reward == 0.5 and not term and not trunc and "success" not in info and info["turns_seen"] == 1
    _, reward, term, _, info = env.step("<answer>judged</answer>")
    assert info["reward_components"] == {"format": 0.0, "tool_validity": 0.0, "bonus": 0.0, "judge": 1.0, "final": 1.0}
    assert term and reward == 2.0 and info["success"] is True and info["ended"] is True and "truncated_by" not in info
    assert env.calls == [("reset", {"level": 2}), ("before", 1), ("before", 2), ("end", False, None, 2)]
    assert env.episode_components == [
        {"format": 0.0, "tool_validity": 0.0, "bonus": 0.5, "final": 0.0},
        {"format": 0.0, "tool_validity": 0.0, "bonus": 0.0, "judge": 1.0, "final": 1.0}]
    env.reset()
    assert env.step("<answer>plain</answer>")[4]["reward_components"] == {
        "format": 0.0, "tool_validity": 0.0, "bonus": 0.0, "final": 1.0}  # no judge: absent, not 0.0
    assert env.episode_components == [{"format": 0.0, "tool_validity": 0.0, "bonus": 0.0, "final": 1.0}]


def test_episode_end_hook_is_told_which_budget_ran_out():
    env = HookEnv(max_turns=2)
    env.reset()
    assert env.step(PING)[3] is False
    _, reward, term, trunc, info = env.step(PING)
    assert trunc and not term and info["truncated_by"] == "max_turns" and info["success"] is False
    assert reward == 0.5 - 1.0 and env.calls[-1] == ("end", True, "max_turns", 2)
    env = HookEnv(max_episode_seconds=0.0)
    env.reset()
    info = env.step(PING)[4]
    assert info["truncated_by"] == "max_episode_seconds" and env.calls[-1] == ("end", True, "max_episode_seconds", 1)


def test_episode_end_hook_after_a_service_failed_cannot_score_or_succeed():
    from rlvr.errors import InfrastructureError

    class Down(HookEnv):
        def _on_answer(self, answer):
            raise InfrastructureError("grader unavailable")

        def _on_episode_end(self, truncated, budget):
            self.calls.append(("end", truncated, budget))
            return {"final": 5.0}, {"success": True}

    env = Down()
    env.reset()
    _, reward, term, trunc, info = env.step("<answer>x</answer>")
    assert trunc and not term and reward == 0.0 and info["success"] is False and "truncated_by" not in info
    assert set(info["reward_components"].values()) == {0.0} and env.calls[-1] == ("end", True, None)
    assert env.episode_components == [info["reward_components"]]
