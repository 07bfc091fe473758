"""rlvr/ToolCall-v0 on BFCL v4: loading, schemas, gold parsing, BFCL's AST and executable checks, oracle."""

from __future__ import annotations

import importlib.util
import json
import time

import pytest

from rlvr.envs.toolcall import ToolCallEnv, bfcl_report, load_bfcl
from rlvr.envs.toolcall.bfcl import (
    AST_CATEGORIES,
    BFCL_CATEGORIES,
    IRRELEVANCE_CATEGORIES,
    MULTI_TURN_CATEGORIES,
    ast_check,
    parse_call_string,
    to_json_schema,
)
from rlvr.errors import ConfigError
from rlvr.rewards.matchtir import GoldCall

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bfcl_eval") is None, reason="bfcl-eval is not installed")

EXPECTED = {
    "simple_python": 400, "simple_java": 100, "simple_javascript": 50, "multiple": 200, "parallel": 200,
    "parallel_multiple": 200, "live_simple": 258, "live_multiple": 1053, "live_parallel": 16,
    "live_parallel_multiple": 24, "irrelevance": 240, "live_irrelevance": 884, "multi_turn_base": 200,
    "multi_turn_miss_func": 200, "multi_turn_miss_param": 200, "multi_turn_long_context": 200,
}
# Cases whose gold contradicts its own function docs (BFCL data issues): no model can do them cleanly.
INCONSISTENT_GOLD = {
    "live_simple_106-63-0": "gold leaves out required parameters",
    "live_simple_112-68-0": "gold leaves out required parameters",
    "live_multiple_507-149-4": "gold leaves out a required parameter",
    "live_multiple_862-181-3": "gold uses a parameter the function does not have",
    "live_multiple_964-207-0": "gold uses a parameter the function does not have",
    "multi_turn_base_173": "gold passes a string where the doc declares an integer",
    "multi_turn_miss_func_173": "gold passes a string where the doc declares an integer",
    "multi_turn_miss_param_173": "gold passes a string where the doc declares an integer",
    "multi_turn_long_context_173": "gold passes a string where the doc declares an integer",
    "multi_turn_miss_func_49": "gold calls 'tail' two requests before the function is made available",
    "parallel_multiple_21": "gold passes source strings (\"data['sales']\") where the doc declares arrays",
    "parallel_multiple_94": "gold passes strings where the doc declares an array of integers",
    "live_multiple_552-153-1": "gold requires a boolean where the doc declares a string",
    "live_multiple_595-158-1": "gold requires a boolean and an integer where the doc declares strings",
    "live_multiple_596-158-2": "gold requires an integer where the doc declares a string",
    "live_multiple_731-167-2": "gold requires a boolean where the doc declares a string",
    "live_multiple_733-167-4": "gold requires a boolean where the doc declares a string",
    "live_multiple_735-167-6": "gold requires a boolean where the doc declares a string",
}


def call(name: str, **args: object) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


def run_oracle(env: ToolCallEnv, **reset):
    env.reset(**reset)
    infos = []
    while True:
        *_, term, trunc, info = env.step(env.oracle_action())
        infos.append(info)
        if term or trunc:
            return infos


def max_reward(infos) -> bool:
    for info in infos:
        c = info["reward_components"]
        if info["error"] is not None or c["format"] or c["tool_validity"]:
            return False
        if info["tool_calls"] and c["match"] != pytest.approx(1.0):
            return False
        if not info["tool_calls"] and c["outcome"] != 1.0:
            return False
    return infos[-1]["success"] is True


# ----------------------------------------------------------------------------- loading


def test_every_supported_category_loads_every_case():
    report = bfcl_report()
    for cat, n in EXPECTED.items():
        assert report[cat]["cases"] == n and report[cat]["loaded"] == n and report[cat]["skipped"] == {}, cat
    for cat in ("live_relevance", "memory", "web_search", "format_sensitivity"):
        assert report[cat]["loaded"] == 0 and report[cat]["skipped"]
    assert sum(EXPECTED.values()) == len(load_bfcl()) == 4425


def test_make_is_lazy_and_parsing_is_cached():
    t0 = time.perf_counter()
    env = ToolCallEnv("bfcl", categories=["multi_turn_base"])
    assert time.perf_counter() - t0 < 0.5 and env._tasks is None  # nothing read at construction
    env.reset(seed=0)
    t0 = time.perf_counter()
    env2 = ToolCallEnv("bfcl", categories=["multi_turn_base"])
    env2.reset(seed=0)
    assert time.perf_counter() - t0 < 0.5  # parsed once per process
    assert env2.tasks is env.tasks or env2.tasks == env.tasks


def test_unsupported_and_unknown_categories():
    with pytest.raises(ConfigError, match="not supported: needs the internet"):
        load_bfcl(["web_search"])
    with pytest.raises(ConfigError, match="did you mean 'parallel'"):
        load_bfcl(["paralel"])


def test_schema_conversion():
    spec = {
        "type": "dict",
        "properties": {
            "x": {"type": "float", "description": "a number"},
            "pts": {"type": "tuple", "items": {"type": "integer"}},
            "opts": {"type": "dict", "properties": {"k": {"type": "any"}}},
            "unit": {"type": "string", "enum": ["C", "F"], "default": "C"},
        },
        "required": ["x"],
    }
    out = to_json_schema(spec)
    assert out["type"] == "object" and out["additionalProperties"] is False and out["required"] == ["x"]
    p = out["properties"]
    assert p["x"]["type"] == "number"  # required: not nullable
    assert p["pts"] == {"type": ["array", "null"], "items": {"type": "integer"}}
    assert p["opts"]["type"] == ["object", "null"] and p["opts"]["properties"]["k"] == {"type": "string"}
    assert p["unit"]["enum"] == ["C", "F", None]
    no_enum = to_json_schema(spec, enums=False)["properties"]["unit"]
    assert "enum" not in no_enum and 'Allowed values: "C", "F".' in no_enum["description"]
    java = to_json_schema({"type": "dict", "properties": {"n": {"type": "long"}, "o": {"type": "any"}}, "required": ["n", "o"]}, language="java")
    assert java["properties"] == {"n": {"type": ["integer", "string"]}, "o": {}}


def test_parse_call_string():
    assert parse_call_string("sort('a.txt')", ["file_name"]) == ("sort", {"file_name": "a.txt"})
    assert parse_call_string("mv(source='a', destination=\"b\")") == ("mv", {"source": "a", "destination": "b"})
    assert parse_call_string("f(x=-1.5, y=[1, (2, 3)], z=None, w=True)") == ("f", {"x": -1.5, "y": [1, (2, 3)], "z": None, "w": True})
    with pytest.raises(ConfigError, match="positional arguments"):
        parse_call_string("f(1, 2)", ["a"])
    with pytest.raises(ConfigError, match="non-literal argument"):
        parse_call_string("f(a=g(1))")
    with pytest.raises(ConfigError, match="cannot parse"):
        parse_call_string("f(a=")
    with pytest.raises(ConfigError, match="expected a function call"):
        parse_call_string("1 + 2")


# ----------------------------------------------------------------------------- BFCL's AST check

SIG = {
    "weather": {"types": {"city": ("string", None), "days": ("integer", None), "temp": ("number", None),
                          "tags": ("array", "string"), "opts": ("object", None)},
                "required": ["city"], "language": "python"},
}
GOLD = GoldCall("weather", {"city": "New York", "days": 3}, frozenset({"days", "temp", "opts"}),
                {"city": ("New York", "NYC"), "days": (3,), "temp": (20.0,), "tags": (["a", "b"],), "opts": ({"unit": ["C", ""]},)})


@pytest.mark.parametrize(
    "args,ok",
    [
        ({"city": "New York", "days": 3, "tags": ["a", "b"]}, True),
        ({"city": "new-york", "tags": ["A", "b"]}, True),  # BFCL string standardisation
        ({"city": "NYC", "tags": ["a", "b"], "temp": 20}, True),  # int accepted for a float
        ({"city": "NYC", "tags": ["a", "b"], "opts": {}}, True),  # dict template, optional key left out
        ({"city": "NYC", "tags": ["a", "b"], "opts": {"unit": "c"}}, True),
        ({"city": "NYC", "tags": ["a", "b"], "opts": {"unit": "K"}}, False),
        ({"city": "Boston", "tags": ["a", "b"]}, False),  # wrong value
        ({"city": "NYC"}, False),  # a non-optional gold parameter left out
        ({"tags": ["a", "b"]}, False),  # required parameter missing
        ({"city": "NYC", "tags": ["a", "b"], "days": 4}, False),
        ({"city": "NYC", "tags": ["a", "b"], "days": True}, False),  # a bool is not an integer
        ({"city": "NYC", "tags": ["a", "b"], "extra": 1}, False),  # unexpected parameter
        ({"city": "NYC", "tags": ["b", "a"]}, False),  # list order matters
    ],
)
def test_ast_check_rules(args, ok):
    assert ast_check([{"name": "weather", "arguments": args}], [GOLD], SIG) is ok


def test_ast_check_counts_and_order():
    a = {"name": "weather", "arguments": {"city": "NYC", "tags": ["a", "b"]}}
    g2 = GoldCall("weather", {"city": "Paris"}, frozenset({"tags"}), {"city": ("Paris",)})
    b = {"name": "weather", "arguments": {"city": "Paris"}}
    assert ast_check([b, a], [GOLD, g2], SIG)  # parallel: any order
    assert not ast_check([a], [GOLD, g2], SIG)  # wrong count
    assert not ast_check([a, a], [GOLD, g2], SIG)
    assert ast_check([], [], SIG) and not ast_check([a], [], SIG)  # irrelevance: no call allowed


def test_oracle_call_takes_the_allowed_value_of_the_declared_type():
    from rlvr.envs.toolcall.bfcl_check import _ast_gold

    sig = {"find": {"types": {"city": ("string", None), "unisex": ("string", None), "rooms": ("string", None),
                              "smoking": ("string", None)}, "required": ["city"], "language": "python"}}
    # BFCL's possible answers sometimes list only values of another type than the doc declares
    gold = _ast_gold({"find": {"city": ["Paris"], "unisex": ["", True], "rooms": [1, "1"], "smoking": [False]}}, sig)
    assert gold.arguments == {"city": "Paris", "rooms": "1", "smoking": False}  # unisex optional: left out
    assert gold.accept["unisex"] == (True,) and gold.optional == frozenset({"unisex"})
    # the required 'smoking' keeps its only (ill-typed) value: such cases are the inconsistent gold listed above
    java = {"find": {**sig["find"], "language": "java"}}
    assert _ast_gold({"find": {"city": ["Paris"], "rooms": [1, "1"]}}, java).arguments == {"city": "Paris", "rooms": 1}


# ----------------------------------------------------------------------------- oracle


def _sample(categories, per_category):
    env = ToolCallEnv("bfcl", categories=list(categories))
    by_cat: dict[str, list[int]] = {}
    for i, t in enumerate(env.tasks):
        if t.task_id not in INCONSISTENT_GOLD:
            by_cat.setdefault(t.category, []).append(i)
    return env, [i for idx in by_cat.values() for i in idx[:per_category]]


def test_oracle_max_reward_on_a_sample_of_every_category():
    env, indices = _sample(BFCL_CATEGORIES, 6)
    assert len(indices) == 6 * len(BFCL_CATEGORIES)
    for i in indices:
        infos = run_oracle(env, options={"index": i})
        assert max_reward(infos), env.task.task_id


@pytest.mark.slow
def test_oracle_max_reward_on_every_case_with_consistent_gold():
    env = ToolCallEnv("bfcl")
    failed = {}
    for i in range(len(env.tasks)):
        infos = run_oracle(env, options={"index": i})
        if not max_reward(infos):
            failed[env.task.task_id] = infos[-1]["error"]
    assert set(failed) == set(INCONSISTENT_GOLD)
    executable = sum(t.category in MULTI_TURN_CATEGORIES for t in env.tasks)
    assert executable == 800 and sum(k.startswith("multi_turn") for k in failed) == 5  # 795 of 800


# ----------------------------------------------------------------------------- executable multi-turn checks


@pytest.fixture
def fs_env():
    env = ToolCallEnv("bfcl", categories=["multi_turn_base"])
    env.reset(options={"task_id": "multi_turn_base_0"})
    return env


def test_state_check_fails_on_a_wrong_call(fs_env):
    # request 1: cd document, mkdir temp, mv final_report.pdf temp -- make the wrong directory instead
    fs_env.step(call("cd", folder="document") + call("mkdir", dir_name="tmp") + call("mv", source="final_report.pdf", destination="tmp"))
    *_, info = fs_env.step("<answer>done</answer>")
    assert info["reward_components"]["outcome"] == 0.0
    # the oracle still completes the remaining requests; the case fails as a whole
    while True:
        *_, term, trunc, info = fs_env.step(fs_env.oracle_action())
        if term or trunc:
            break
    assert info["requests_passed"][0] == 0.0 and info["success"] is False


def test_response_check_needs_the_gold_results(fs_env):
    fs_env.step(fs_env.oracle_action())
    fs_env.step(fs_env.oracle_action())  # request 1 done
    # request 2 wants cd temp + grep; skipping the read-only grep leaves the state equal
    fs_env.step(call("cd", folder="temp"))
    *_, info = fs_env.step("<answer>done</answer>")
    assert info["reward_components"]["outcome"] == 0.0
    assert fs_env.runtime.state() == fs_env._gold_runtime.state()  # the state matched; the response did not


def test_answering_without_calls_fails_a_request_with_gold(fs_env):
    *_, info = fs_env.step("<answer>I moved it.</answer>")
    assert info["reward_components"]["outcome"] == 0.0 and info["request"] == 1


def test_miss_func_adds_the_function_when_its_request_opens():
    env = ToolCallEnv("bfcl", categories=["multi_turn_miss_func"])
    obs, _ = env.reset(options={"task_id": "multi_turn_miss_func_0"})
    held = env.task.requests[3].new_functions[0]["name"]
    assert held not in env.tools and f'"name": "{held}"' not in obs[0]["content"]
    *_, info = env.step(call(held, file_name="final_report.pdf"))
    assert info["error"]["kind"] == "unknown_tool"
    for _ in range(20):
        if env._req == 3:
            break
        obs, *_ = env.step(env.oracle_action())
    assert env._req == 3 and held in env.tools and f'"name": "{held}"' in obs[0]["content"]


def test_miss_param_request_passes_only_without_calls():
    env = ToolCallEnv("bfcl", categories=["multi_turn_miss_param"])
    env.reset(options={"task_id": "multi_turn_miss_param_0"})
    k = next(i for i, r in enumerate(env.task.requests) if not r.gold)
    while env._req < k:
        env.step(env.oracle_action())
    *_, info = env.step("<answer>Which file do you mean?</answer>")
    assert info["reward_components"]["outcome"] == 1.0
    env.reset(options={"task_id": "multi_turn_miss_param_0"})
    while env._req < k:
        env.step(env.oracle_action())
    env.step(call("pwd"))
    *_, info = env.step("<answer>done</answer>")
    assert info["reward_components"]["outcome"] == 0.0


def test_ast_case_wrong_value_fails_and_tools_only_record():
    env = ToolCallEnv("bfcl", categories=["simple_python"])
    env.reset(options={"task_id": "simple_python_0"})
    obs, *_ , info = env.step(call("calculate_triangle_area", base=10, height=6))
    assert "was recorded" in obs[0]["content"] and 0.0 < info["reward_components"]["match"] < 1.0
    *_, info = env.step("<answer>done</answer>")
    assert info["reward_components"]["outcome"] == 0.0
    env.reset(options={"task_id": "simple_python_0"})
    env.step(call("calculate_triangle_area", base=10, height=5, unit="units"))
    *_, info = env.step("<answer>done</answer>")
    assert info["reward_components"]["outcome"] == 1.0 and info["success"]


def test_irrelevance_case():
    env = ToolCallEnv("bfcl", categories=list(IRRELEVANCE_CATEGORIES))
    env.reset(options={"index": 0})
    env.step(call(env.task.functions[0]["name"]))
    *_, info = env.step("<answer>cannot help</answer>")
    assert info["reward_components"]["outcome"] == 0.0
    env.reset(options={"index": 0})
    *_, info = env.step("<answer>None of the functions fits.</answer>")
    assert info["reward_components"]["outcome"] == 1.0


def test_long_context_backends_load():
    env = ToolCallEnv("bfcl", categories=["multi_turn_long_context"])
    infos = run_oracle(env, options={"index": 0})
    assert max_reward(infos)
    assert set(AST_CATEGORIES) | set(IRRELEVANCE_CATEGORIES) | set(MULTI_TURN_CATEGORIES) == set(BFCL_CATEGORIES)


# ----------------------------------------------------------------------------- fuzzing with model-like output

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["city", "days", "temp", "tags", "opts", "zzz"]), json_values, max_size=6), st.booleans())
@settings(max_examples=200, deadline=None)
def test_ast_check_never_raises_on_arbitrary_arguments(args, java):
    sig = {"weather": dict(SIG["weather"], language="java" if java else "python")}
    assert ast_check([{"name": "weather", "arguments": args}], [GOLD], sig) in (True, False)


_FUZZ_ENV: dict[str, ToolCallEnv] = {}


@given(st.integers(0, 799), st.lists(st.tuples(st.integers(0, 200), st.dictionaries(st.text(max_size=12), json_values, max_size=4)), min_size=1, max_size=3), st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_calls_on_bfcl_backends_never_crash(index, calls, data):
    env = _FUZZ_ENV.setdefault("env", ToolCallEnv("bfcl", categories=list(MULTI_TURN_CATEGORIES), tool_timeout_s=2.0))
    env.reset(options={"index": index})
    names = env.tools.names
    parts = []
    for k, args in calls:
        name = names[k % len(names)] if k < 190 else f"no_such_tool_{k}"
        props = list(env.tools[name].parameters["properties"]) if name in env.tools else []
        if props:  # mostly real parameter names, with model-like values
            args = {**args, **{p: data.draw(json_values) for p in props[: data.draw(st.integers(0, len(props)))]}}
        parts.append("<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>")
    obs, reward, term, trunc, info = env.step("".join(parts))
    assert env.observation_space.contains(obs) and isinstance(reward, float)
    assert len([m for m in obs if m["role"] == "tool"]) == len(parts)
    *_, info = env.step("<answer>done</answer>")
    assert info["reward_components"]["outcome"] in (0.0, 1.0)
