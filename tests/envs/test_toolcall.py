"""rlvr/ToolCall-v0 core behaviour: tools, bad input, rewards, oracle, synthetic tasks and the JSON loader."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlvr.envs.toolcall import (
    FunctionRuntime,
    Request,
    SyntheticConfig,
    ToolCallEnv,
    ToolTask,
    generate_task,
    load_json_tasks,
    task_from_record,
    to_record,
)
from rlvr.errors import ConfigError, NoOracleError
from rlvr.rewards.matchtir import GoldCall


def call(name: str, **args: object) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


def _obj(props: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


FUNCTIONS = (
    {"name": "add", "description": "Add two integers.", "parameters": _obj({"a": {"type": "integer"}, "b": {"type": "integer"}}, ["a", "b"])},
    {"name": "spin", "description": "Never returns.", "parameters": _obj({}, [])},
    {"name": "boom", "description": "Raises.", "parameters": _obj({}, [])},
    {"name": "big", "description": "Returns a lot of text.", "parameters": _obj({}, [])},
    {"name": "counter", "description": "Counts its calls in this episode.", "parameters": _obj({}, [])},
)


def backend() -> FunctionRuntime:
    state = {"n": 0}

    def add(a: int, b: int) -> int:
        return a + b

    def spin() -> str:
        while True:
            time.sleep(0.01)

    def boom() -> str:
        raise ValueError("kaboom")

    def big() -> str:
        return "x" * 10_000

    def counter() -> int:
        state["n"] += 1
        return state["n"]

    return FunctionRuntime({"add": add, "spin": spin, "boom": boom, "big": big, "counter": counter}, lambda: dict(state))


TASK = ToolTask(
    task_id="add-2-3",
    source="test",
    category="test",
    functions=FUNCTIONS,
    requests=(Request(({"role": "user", "content": "Add 2 and 3."},), ((GoldCall("add", {"a": 2, "b": 3}),),), (), "5"),),
    backend=backend,
    outcome="answer",
    answer="5",
    answer_metric="em",
)


@pytest.fixture
def env():
    e = ToolCallEnv("tasks", tasks=[TASK], tool_timeout_s=0.3, max_tool_output_chars=200)
    e.reset(seed=0)
    return e


def run_oracle(env: ToolCallEnv, **reset):
    obs, info = env.reset(**reset)
    infos = []
    for _ in range(env.max_turns):
        obs, r, term, trunc, info = env.step(env.oracle_action())
        infos.append(info)
        if term or trunc:
            return infos, term, trunc
    raise AssertionError("the oracle did not finish")


def assert_max_reward(infos):
    for info in infos:
        c = info["reward_components"]
        assert info["error"] is None and c["format"] == 0.0 and c["tool_validity"] == 0.0
        if info["tool_calls"]:
            assert c["match"] == pytest.approx(1.0)
        else:
            assert c["outcome"] == 1.0
    assert infos[-1]["success"] is True
    assert infos[-1]["matchtir_turn_rewards"] == pytest.approx([1.0] * len(infos))


# ----------------------------------------------------------------------------- tools and bad input


def test_reset_opening_messages_and_info(env):
    obs, info = env.reset(seed=1)
    assert [m["role"] for m in obs] == ["system", "user"]
    assert '"name": "add"' in obs[0]["content"] and "<answer>" in obs[0]["content"]
    assert info == {"task_id": "add-2-3", "source": "test", "category": "test", "n_requests": 1, "n_gold_calls": 1, "answer": "5"}


BAD = [
    ('<tool_call>{"name": "add", "arguments": {"a": 1,}}</tool_call>', "parse_error", "invalid JSON"),
    (call("sub", a=1, b=2), "unknown_tool", "Unknown tool 'sub'"),
    (call("add", a="two", b=2), "invalid_arguments", "'two' is not of type 'integer'"),
    (call("add", a=1), "invalid_arguments", "'b' is a required property"),
    (call("add", a=1, b=2, c=3), "invalid_arguments", "'c' was unexpected"),
    (call("spin"), "tool_timeout", "did not finish within 0.3 s"),
    (call("boom"), "tool_exception", "ValueError: kaboom"),
]


@pytest.mark.parametrize("action,kind,text", BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_input_is_an_error_observation_and_the_episode_continues(env, action, kind, text):
    obs, reward, term, trunc, info = env.step(action)
    assert not term and not trunc
    assert info["error"]["kind"] == kind and text in info["error"]["message"]
    assert obs and obs[-1]["role"] == "tool" and obs[-1]["content"].startswith("Error:")
    assert reward <= 0.75  # no full match credit for a bad call
    # the oracle still finishes the task from here, with full outcome
    for _ in range(3):
        obs, reward, term, trunc, info = env.step(env.oracle_action())
        if term:
            break
    assert term and info["success"] and info["reward_components"]["outcome"] == 1.0


def test_text_without_call_or_answer_gets_a_format_penalty(env):
    obs, reward, term, trunc, info = env.step("I think the answer is five.")
    assert info["error"]["kind"] == "no_action" and reward < 0 and not term
    assert info["reward_components"]["match"] == 0.0


@given(st.text(max_size=300))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_text_never_crashes(text):
    e = ToolCallEnv("tasks", tasks=[TASK], tool_timeout_s=0.3)
    e.reset(seed=0)
    obs, reward, term, trunc, info = e.step(text)
    assert e.observation_space.contains(obs)
    assert isinstance(reward, float) and set(info["reward_components"]) >= {"match", "outcome", "format", "tool_validity"}


def test_parallel_calls_per_step_and_output_truncation(env):
    obs, _, _, _, info = env.step(call("add", a=1, b=1) + call("counter") + call("counter") + call("big"))
    assert [m["content"] for m in obs[:3]] == ["2", "1", "2"]
    assert len(obs[3]["content"]) <= 200 and "truncated" in obs[3]["content"]
    assert len(info["tool_calls"]) == 4 and len(info["call_rewards"]) == 4


def test_tool_state_is_per_episode(env):
    env.step(call("counter") + call("counter"))
    obs, *_ = env.step(call("counter"))
    assert obs[0]["content"] == "3"
    env.reset(seed=0)
    obs, *_ = env.step(call("counter"))
    assert obs[0]["content"] == "1"


def test_many_turns_then_truncation():
    e = ToolCallEnv("tasks", tasks=[TASK], max_turns=3)
    e.reset(seed=0)
    for i in range(3):
        _, _, term, trunc, info = e.step(call("counter"))
    assert not term and trunc and info["success"] is False
    assert info["requests_passed"] == [] and info["matchtir_turn_rewards"] == [0.0, 0.0, 0.0]


# ----------------------------------------------------------------------------- rewards


def test_match_credit_per_step_and_matchtir_turn_rewards(env):
    _, r1, _, _, i1 = env.step(call("add", a=2, b=4))
    assert i1["reward_components"]["match"] == pytest.approx(0.75)  # (1 + 1 + 1) / (2 + 2)
    _, r2, _, _, i2 = env.step(call("add", a=2, b=3))
    assert i2["reward_components"]["match"] == pytest.approx(1.0)
    _, r3, term, _, i3 = env.step("<answer>5</answer>")
    assert term and i3["reward_components"]["outcome"] == 1.0 and r3 == 1.0
    # assigned over the whole trajectory, the gold call goes to turn 2 and turn 1 gets nothing
    assert i3["matchtir_turn_rewards"] == pytest.approx([0.0, 1.0, 1.0])


def test_wrong_answer_scores_zero(env):
    env.step(call("add", a=2, b=3))
    *_, term, _, info = env.step("<answer>6</answer>")
    assert term and info["reward_components"]["outcome"] == 0.0 and info["success"] is False


@pytest.mark.parametrize("method", ["hungarian", "greedy", "sinkhorn"])
def test_match_methods(method):
    e = ToolCallEnv("tasks", tasks=[TASK], match=method)
    infos, term, _ = run_oracle(e, seed=0)
    assert term and infos[-1]["success"]
    assert infos[0]["reward_components"]["match"] == pytest.approx(1.0, abs=1e-3)


def test_reward_weights_apply():
    e = ToolCallEnv("tasks", tasks=[TASK], reward_weights={"match": 0.5, "outcome": 2.0})
    e.reset(seed=0)
    assert e.step(call("add", a=2, b=3))[1] == pytest.approx(0.5)
    assert e.step("<answer>5</answer>")[1] == pytest.approx(2.0)


def test_oracle_after_the_episode_raises(env):
    run_oracle(env, seed=0)
    with pytest.raises(NoOracleError, match="reset"):
        env.oracle_action()


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"source": "bfc"}, "did you mean 'bfcl'"),
        ({"source": "synthetic", "categories": ["simple_python"]}, "categories applies to source='bfcl'"),
        ({"source": "json"}, "needs path="),
        ({"source": "tasks"}, "needs a non-empty tasks"),
        ({"source": "bfcl", "categories": ["multi_turn_bse"]}, "did you mean 'multi_turn_base'"),
        ({"source": "bfcl", "categories": ["web_search"]}, "needs the internet"),
        ({"source": "synthetic", "synthetic": {"hops": 0}}, "hops must be an integer in \\[1, 8\\]"),
        ({"source": "synthetic", "match": "kuhn"}, "unknown matching method"),
        ({"source": "synthetic", "answer_metric": "bleu"}, "answer_metric"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ToolCallEnv(**kwargs)


def test_reset_options():
    e = ToolCallEnv("tasks", tasks=[TASK, TASK.with_backend(backend)])
    assert e.reset(options={"index": 1})[1]["task_id"] == "add-2-3"
    with pytest.raises(ConfigError, match="no task with id 'add-2-4'.*did you mean 'add-2-3'"):
        e.reset(options={"task_id": "add-2-4"})
    with pytest.raises(ConfigError, match="unknown reset option"):
        e.reset(options={"seed": 3})
    s = ToolCallEnv("synthetic")
    assert s.reset(options={"task_seed": 5})[1]["task_id"] == generate_task(5).task_id


def test_task_validation():
    with pytest.raises(ConfigError, match="needs a ground-truth answer"):
        ToolTask("t", "s", "c", FUNCTIONS, (Request(),), backend, outcome="answer")
    with pytest.raises(ConfigError, match="defined twice"):
        ToolTask("t", "s", "c", FUNCTIONS + FUNCTIONS[:1], (Request(),), backend, outcome="ast")
    with pytest.raises(ConfigError, match="no requests"):
        ToolTask("t", "s", "c", FUNCTIONS, (), backend, outcome="ast")


def test_gymnasium_env_checker():
    e = ToolCallEnv("synthetic")
    check_env(e, skip_render_check=True)


def test_registered_id_makes_the_env():
    if "rlvr/ToolCall-v0" not in gym.registry:
        import rlvr  # noqa: F401  (registers the ids)
    if "rlvr/ToolCall-v0" not in gym.registry:
        pytest.skip("rlvr/ToolCall-v0 is not in the registry yet")
    e = gym.make("rlvr/ToolCall-v0", source="synthetic", synthetic={"hops": 2})
    obs, info = e.reset(seed=3)
    assert info["task_id"].startswith("synthetic/h2-")
    with pytest.raises(ConfigError, match="unknown keyword argument"):
        gym.make("rlvr/ToolCall-v0", sorce="synthetic")


# ----------------------------------------------------------------------------- synthetic tasks


def test_synthetic_is_deterministic_across_processes():
    a, b = generate_task(11, SyntheticConfig(hops=3)), generate_task(11, SyntheticConfig(hops=3))
    assert a == b
    assert generate_task(12, SyntheticConfig(hops=3)).requests != a.requests
    code = "from rlvr.envs.toolcall import generate_task, SyntheticConfig; t = generate_task(11, SyntheticConfig(hops=3)); print(t.requests[0].messages[0]['content'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == a.requests[0].messages[0]["content"]


@pytest.mark.parametrize("hops,branches,distractors", [(1, 1, 0), (2, 1, 2), (3, 2, 4), (5, 3, 8), (8, 4, 1)])
def test_synthetic_knobs_shape_the_gold_trace(hops, branches, distractors):
    cfg = SyntheticConfig(hops=hops, branches=branches, distractors=distractors)
    t = generate_task(3, cfg)
    steps = t.requests[0].steps
    assert len(steps) == hops + (branches > 1)
    assert all(len(s) == branches for s in steps[:hops])
    if branches > 1:
        assert [c.name for c in steps[-1]] == ["aggregate"]
    names = {f["name"] for f in t.functions}
    assert len(names) == 10 + (branches > 1) + distractors
    assert {c.name for c in t.gold} <= names


@pytest.mark.parametrize("hops", [2, 4, 6])
def test_synthetic_calls_depend_on_earlier_results(hops):
    t = generate_task(21, SyntheticConfig(hops=hops, branches=2))
    fns = t.backend().functions()
    steps = t.requests[0].steps
    for b in range(2):
        for i in range(1, hops):
            prev, cur = steps[i - 1][b], steps[i][b]
            result = fns[prev.name](**prev.arguments)
            assert list(cur.arguments.values()) == [result]  # the next lookup takes the previous result
    agg = steps[-1][0]
    assert agg.arguments["values"] == [fns[s.name](**s.arguments) for s in steps[hops - 1]]
    assert str(fns["aggregate"](**agg.arguments)) == t.answer


@pytest.mark.parametrize("cfg", [SyntheticConfig(), SyntheticConfig(hops=1), SyntheticConfig(hops=4, branches=3, distractors=5)])
def test_oracle_gets_max_reward_on_synthetic(cfg):
    e = ToolCallEnv("synthetic", synthetic=cfg)
    for seed in range(5):
        infos, term, _ = run_oracle(e, seed=seed)
        assert term
        assert_max_reward(infos)
        assert len(infos) == cfg.hops + (cfg.branches > 1) + 1


def test_unknown_entity_is_an_error_observation():
    e = ToolCallEnv("synthetic")
    e.reset(seed=0)
    obs, _, term, _, info = e.step(call("get_age", person="Nobody Here"))
    assert not term and info["error"]["kind"] == "tool_exception" and "unknown person 'Nobody Here'" in obs[0]["content"]


# ----------------------------------------------------------------------------- FTRL / ToolHop JSON


def test_json_round_trip_of_synthetic_tasks(tmp_path):
    tasks = [generate_task(s, SyntheticConfig(hops=3, branches=2)) for s in range(4)]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(to_record(t)) for t in tasks))
    loaded = load_json_tasks(path, trust_code=True, answer_metric="em")
    assert [t.task_id for t in loaded] == [t.task_id for t in tasks]
    assert [t.requests[0].steps for t in loaded] == [t.requests[0].steps for t in tasks]
    e = ToolCallEnv("json", path=str(path), trust_code=True, answer_metric="em")
    assert len(e.dataset_hash) == 16
    for i in range(4):
        infos, term, _ = run_oracle(e, options={"index": i})
        assert term
        assert_max_reward(infos)


def test_json_needs_trust_code(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([to_record(generate_task(0))]))
    with pytest.raises(ConfigError, match="trust_code=True"):
        load_json_tasks(path)
    e = ToolCallEnv("json", path=str(path))  # construction is lazy; the first reset loads
    with pytest.raises(ConfigError, match="trust_code=True"):
        e.reset(seed=0)


TOOLHOP = {
    "id": "toolhop-1",
    "question": "What is the capital of the country where the Eiffel Tower stands?",
    "answer": ["Paris", "Paris, France"],
    "tools": {
        "where_is": {"name": "where_is", "description": "Country of a landmark.",
                     "parameters": {"type": "object", "properties": {"landmark": {"type": "string"}}, "required": ["landmark"]}},
        "capital_of": {"name": "capital_of", "description": "Capital of a country.",
                       "parameters": {"type": "object", "properties": {"country": {"type": "string"}}, "required": ["country"]}},
    },
    "functions": [
        "def where_is(landmark):\n    return {'Eiffel Tower': 'France'}.get(landmark, 'unknown')\n",
        "def capital_of(country):\n    return {'France': 'Paris'}.get(country, 'unknown')\n",
    ],
    "gold_calls": [{"name": "where_is", "arguments": {"landmark": "Eiffel Tower"}},
                   {"name": "capital_of", "arguments": {"country": "France"}}],
}


def test_toolhop_shaped_record(tmp_path):
    path = tmp_path / "toolhop.json"
    path.write_text(json.dumps([TOOLHOP]))
    e = ToolCallEnv("json", path=str(path), trust_code=True)
    infos, term, _ = run_oracle(e, seed=0)
    assert term and len(infos) == 3
    assert_max_reward(infos)
    e.reset(seed=0)
    e.step(call("where_is", landmark="Eiffel Tower"))
    *_, info = e.step("<answer>the capital is paris</answer>")
    assert 0.0 < info["reward_components"]["outcome"] < 1.0  # word F1 gives partial credit


@pytest.mark.parametrize(
    "change,match",
    [
        ({"functions": ["def where_is(landmark):\n    return 1\n"]}, "no code for tools \\['capital_of'\\]"),
        ({"functions": ["def where_is(landmark:\n"]}, "not Python source defining a function"),
        ({"codes": {"where_is": "def where_is(x) return", "capital_of": "def capital_of(c):\n    return c\n"}}, "does not compile"),
        ({"codes": {"where_is": "x = 1\n", "capital_of": "def capital_of(c):\n    return c\n"}}, "must define a function named 'where_is'"),
        ({"tools": "[{broken"}, "not valid JSON"),
        ({"answer": ""}, "non-empty 'answer'"),
        ({"question": None}, "needs 'messages' or a 'question'"),
        ({"gold_calls": [{"arguments": {}}]}, "a gold call must be"),
    ],
)
def test_bad_records(change, match):
    record = {**TOOLHOP, **change}
    if "codes" in change:
        record.pop("functions")
    with pytest.raises(ConfigError, match=match):
        task_from_record(record, trust_code=True)


def test_json_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such task file"):
        load_json_tasks(tmp_path / "missing.jsonl", trust_code=True)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n{oops\n')
    with pytest.raises(ConfigError, match="bad.jsonl:2: not valid JSON"):
        load_json_tasks(bad, trust_code=True)


def test_missing_bfcl_package_says_how_to_install(monkeypatch):
    import rlvr.envs.toolcall.bfcl as bfcl

    monkeypatch.setattr(bfcl.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install --no-deps bfcl-eval"):
        bfcl.bfcl_data_dir()
