"""rlvr environments as TRL environment_factory classes: tool schemas through transformers' own schema
builder (the one TRL uses), oracle episodes routed through the tool methods, errors, rewards, dataset."""

from __future__ import annotations

import json
import keyword
import re

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.utils import get_json_schema

import rlvr  # noqa: F401
from rlvr.errors import ConfigError, EpisodeStateError
from rlvr.integrations.trl import (ToolCallFailed, TRLEnvironment, dataset, environment_factory, reward_funcs)

DS_KW = {"n_tasks": 8}


@pytest.fixture(scope="module")
def guess_cls():
    return environment_factory("rlvr/GuessNumber-v0")


@pytest.fixture(scope="module")
def search_cls():
    return environment_factory("rlvr/DeepSearch-v0", **DS_KW)


def _play_oracle(env: TRLEnvironment) -> list[dict]:
    """Drive the episode with the rlvr oracle, each call through the TRL tool method; return the completion."""
    completion: list[dict] = []
    while True:
        action = env._env.oracle_action()
        m = re.fullmatch(r"<tool_call>(.*)</tool_call>", action, re.S)
        if m is None:
            completion.append({"role": "assistant", "content": action})
            return completion
        call = json.loads(m.group(1))
        result = getattr(env, call["name"])(**call["arguments"])
        completion += [{"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": call}]},
                       {"role": "tool", "name": call["name"], "content": result}]


def _direct_return(env_id: str, kwargs: dict, seed: int, task_id: str) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=seed, options={"task_id": task_id})
    total, done = 0.0, False
    while not done:
        _, r, term, trunc, _ = env.step(env.unwrapped.oracle_action())
        total, done = total + r, term or trunc
    env.close()
    return total


def test_tool_methods_match_the_declared_schemas(search_cls):
    env = gym.make("rlvr/DeepSearch-v0", **DS_KW).unwrapped
    assert search_cls.tool_names == ("search", "open", "find")
    inst = search_cls()
    for tool in env.tools:
        spec = get_json_schema(getattr(inst, tool.name))["function"]
        assert spec["name"] == tool.name and spec["description"] == tool.description
        params = tool.parameters
        assert spec["parameters"].get("required", []) == params["required"]
        for name, prop in params["properties"].items():
            assert spec["parameters"]["properties"][name]["type"] == prop["type"]
            assert spec["parameters"]["properties"][name]["description"].startswith(prop["description"])
    k = get_json_schema(inst.search)["function"]["parameters"]["properties"]["k"]
    assert "from 1 to 20" in k["description"]  # the bounds the JSON schema checks, told to the model
    # TRL lists the class's public functions: only tools, reset, and nothing else
    public = [n for n in vars(search_cls) if not n.startswith("_") and callable(vars(search_cls)[n])]
    assert sorted(public) == ["find", "open", "search"]


@pytest.mark.parametrize("env_id,kwargs", [("rlvr/GuessNumber-v0", {}), ("rlvr/DeepSearch-v0", DS_KW)])
def test_oracle_through_tool_methods_scores_as_rlvr_does(env_id, kwargs):
    cls = environment_factory(env_id, **kwargs)
    rows = dataset(cls, n=3, seed=5)
    funcs = reward_funcs(cls)
    for row in rows:
        env = cls()
        assert env.reset(**row) is None  # the dataset's prompt already opens the task
        completion = _play_oracle(env)
        scores = {f.__name__: f(prompts=[row["prompt"]], completions=[completion], environments=[env])[0] for f in funcs}
        assert scores["total"] == pytest.approx(_direct_return(env_id, kwargs, row["seed"], row["task_id"]))
        assert scores["outcome"] == 1.0 and env._finish(completion).success
        weighted = sum(env._env.reward_weights.get(n, 1.0) * (scores[n] or 0.0) for n in funcs.names if n != "total")
        assert weighted == pytest.approx(scores["total"])  # components at the env's weights sum to the total


def test_tool_errors_raise_for_trl_and_the_episode_goes_on(guess_cls):
    env = guess_cls()
    env.reset(task_id="guess-1-100-37", seed=0)
    with pytest.raises(ToolCallFailed, match="not of type 'integer'") as e:
        env.guess(number="fifty")
    assert e.value.kind == "invalid_arguments"
    assert env.guess(number=50) == "lower"
    ep = env._finish([{"role": "assistant", "content": "<answer>37</answer>"}])
    assert ep.success and ep.components[0]["tool_validity"] < 0 and len(ep.components) == 3


def test_calls_after_the_episode_raise_and_a_final_text_without_answer_ends_it(guess_cls):
    env = guess_cls()
    env.reset(task_id="guess-1-100-37")
    env._env.max_turns = 1
    assert "episode is over: max_turns" in env.guess(number=10)
    with pytest.raises(ToolCallFailed, match="episode is over .*max_turns.*final answer"):
        env.guess(number=20)
    ep = env._finish([{"role": "assistant", "content": "I give up"}])
    assert ep.truncated and not ep.success and len(ep.components) == 1  # the ended episode takes no more turns

    env.reset(task_id="guess-1-100-37")
    ep = env._finish([{"role": "assistant", "content": "no idea"}])  # TRL's rollout ended: the last turn
    assert ep.truncated and ep.components[0]["format"] < 0
    assert env._finish([{"role": "assistant", "content": "<answer>37</answer>"}]) is ep  # scored once


def test_reset_checks_the_row_and_without_a_prompt_returns_the_opening(guess_cls, search_cls):
    env = guess_cls()
    text = env.reset(task_id="guess-1-100-3")
    assert "number-guessing game" in text and "Find the secret number" in text and "<tools>" not in text
    s = search_cls()
    row = dataset(search_cls, n=2)[1]
    with pytest.raises(ConfigError, match="dataset row's prompt ends with .*same environment class"):
        s.reset(prompt=[{"role": "user", "content": "another question"}], task_id=row["task_id"])
    with pytest.raises(EpisodeStateError, match="reset\\(\\) was never called"):
        search_cls()._finish([])


def test_dataset_rows_have_no_tool_listing_and_replay(search_cls):
    rows = dataset(search_cls, n=4, seed=2)
    assert rows.column_names == ["prompt", "task_id", "seed"] and rows["seed"] == [2, 3, 4, 5]
    system = rows[0]["prompt"][0]
    assert system["role"] == "system" and "<tools>" not in system["content"] and "Exact answer" in system["content"]
    picked = dataset(search_cls, task_ids=[rows[2]["task_id"]])
    assert picked[0]["prompt"] == rows[2]["prompt"]
    with pytest.raises(ConfigError, match="positive number of rows"):
        dataset(search_cls, n=0)


def test_reward_funcs_schemes_and_errors(guess_cls):
    env_funcs = reward_funcs(guess_cls)
    assert env_funcs.names == ["format", "tool_validity", "progress", "outcome", "total"]
    assert env_funcs.weights == [0, 0, 0, 0, 1]
    gated = reward_funcs(guess_cls, scheme="gated", gate_priority=["outcome"], gate_thresholds=[1.0])
    assert gated.names[-1] == "gated" and gated.weights[-2:] == [0.0, 1.0]
    env = guess_cls()
    env.reset(task_id="guess-1-100-37")
    env.guess(number=50)
    wrong = [{"role": "assistant", "content": "<answer>12</answer>"}]
    by_name = {f.__name__: f(completions=[wrong], environments=[env])[0] for f in gated}
    assert by_name["outcome"] == 0.0 and by_name["progress"] > 0
    assert by_name["gated"] == 0.0 and by_name["total"] == pytest.approx(by_name["progress"])  # the gate stayed shut
    with pytest.raises(ConfigError, match="gate_priority: unknown reward component 'outcom'.*did you mean"):
        reward_funcs(guess_cls, scheme="gated", gate_priority=["outcom"])
    with pytest.raises(ConfigError, match="pass model= and tokenizer="):
        reward_funcs(guess_cls, scheme="info_gain")
    with pytest.raises(ConfigError, match="TRL passed none"):
        env_funcs[0](completions=[wrong], environments=None)
    with pytest.raises(ConfigError, match="unknown rlvr environment id|unknown environment id"):
        environment_factory("rlvr/GuessNumbr-v0")
    with pytest.raises(ConfigError, match="unknown keyword argument 'hihg'"):
        environment_factory("rlvr/GuessNumber-v0", hihg=5)


def test_optional_components_are_not_applicable_not_zero(search_cls):
    funcs = {f.__name__: f for f in reward_funcs(search_cls)}
    env = search_cls()
    env.reset(**dataset(search_cls, n=1)[0])
    done = [{"role": "assistant", "content": "<answer>no idea\nExact answer: nobody</answer>"}]
    assert funcs["outcome"](completions=[done], environments=[env]) == [0.0]
    rubric = funcs["rubric"](completions=[done], environments=[env])[0]
    ep = env._finish(done)
    assert rubric == ep.component_total("rubric") and (rubric is None) == all("rubric" not in c for c in ep.components)


def test_argument_names_trl_cannot_pass_are_refused():
    from rlvr.envs.tools import Tool
    from rlvr.integrations.trl import _tool_method

    for bad in ("class", "two words"):
        tool = Tool("t", "d", {"type": "object", "properties": {bad: {"type": "string"}}}, lambda **kw: "")
        with pytest.raises(ConfigError, match=f"argument {bad!r} that is not a Python identifier"):
            _tool_method(tool, "x")
    with pytest.raises(ConfigError, match="TRL skips names starting with '_' and reserves reset"):
        _tool_method(Tool("reset", "d", {"type": "object", "properties": {}}, lambda: ""), "x")


def test_environments_whose_tools_change_per_task_need_a_task_pool():
    with pytest.raises(ConfigError, match=r"tools change per task .*pass environment_factory\('rlvr/ToolCall-v0', task_ids="):
        environment_factory("rlvr/ToolCall-v0", source="synthetic")


def test_one_reward_list_for_several_environments(guess_cls, search_cls):
    funcs = reward_funcs([guess_cls, search_cls])
    assert funcs.names[:4] == ["format", "tool_validity", "progress", "outcome"] and "evidence" in funcs.names
    g, s = guess_cls(), search_cls()
    g.reset(task_id="guess-1-100-5")
    s.reset(**dataset(search_cls, n=1)[0])
    done = [[{"role": "assistant", "content": "<answer>5</answer>"}]] * 2
    scores = {f.__name__: f(completions=done, environments=[g, s]) for f in funcs}
    assert scores["progress"][1] is None and scores["evidence"][0] is None  # not that environment's component
    assert scores["outcome"] == [1.0, 0.0] and len(dataset(guess_cls, n=2, environment="guess")["environment"]) == 2
    with pytest.raises(ConfigError, match="at least one environment"):
        reward_funcs([])


_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(lambda k: k != "self" and not keyword.iskeyword(k))
_PROP = st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean", "array", "object"])},
                              optional={"description": st.text(min_size=1, max_size=40)})


@settings(max_examples=30, deadline=None)
@given(props=st.dictionaries(_KEY, _PROP, max_size=5), data=st.data())
def test_any_flat_schema_round_trips_through_trls_schema_builder(props, data):
    from rlvr.envs.tools import Tool
    from rlvr.integrations.trl import _tool_method

    required = data.draw(st.lists(st.sampled_from(sorted(props)), unique=True) if props else st.just([]))
    params = {"type": "object", "properties": props, "required": required}
    desc = data.draw(st.text(min_size=1, max_size=60))
    tool = Tool("probe_tool", desc, params, lambda **kw: "ok")
    spec = get_json_schema(_tool_method(tool, "test"))["function"]
    assert spec["name"] == "probe_tool"
    assert {k: v["type"] for k, v in spec["parameters"]["properties"].items()} == {k: v["type"] for k, v in props.items()}
    assert sorted(spec["parameters"].get("required", [])) == sorted(required)
