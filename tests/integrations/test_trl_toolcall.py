"""rlvr/ToolCall-v0 (tools set per task) as a TRL environment_factory class over a task pool: the union
of the pool's tools through transformers' schema builder (TRL's), oracle episodes through the methods,
calls to another task's tool, schema clashes, too-large unions, the dataset, and one real TRL step."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re

import gymnasium as gym
import pytest
from transformers.utils import get_json_schema

import rlvr  # noqa: F401
from rlvr.envs.toolcall import generate_task
from rlvr.errors import ConfigError
from rlvr.integrations.trl import ToolCallFailed, dataset, environment_factory, reward_funcs

LABEL = "h2-b1-d2-e6"  # the default synthetic config: one call per gold step
IDS = [f"synthetic/{LABEL}/{i}" for i in range(6)]
KW = {"source": "synthetic"}


@pytest.fixture(scope="module")
def pool_cls():
    return environment_factory("rlvr/ToolCall-v0", task_ids=IDS, **KW)


def _task_tools(task_id: str) -> dict:
    env = gym.make("rlvr/ToolCall-v0", **KW).unwrapped
    env.reset(options={"task_id": task_id})
    return {t.name: t for t in env.tools}


def test_methods_are_the_union_of_the_pool_tools_in_trls_schema(pool_cls):
    union: dict = {}
    for tid in IDS:
        union.update(_task_tools(tid))
    assert set(pool_cls.tool_names) == set(union) and pool_cls.task_pool == tuple(IDS)
    assert len(union) > len(_task_tools(IDS[0]))  # the tasks do not all offer the same tools
    inst = pool_cls()
    for name, tool in union.items():
        spec = get_json_schema(getattr(inst, name))["function"]
        assert spec["name"] == name and spec["description"] == tool.description
        assert spec["parameters"].get("required", []) == tool.parameters.get("required", [])
        assert {k: v["type"] for k, v in spec["parameters"]["properties"].items()} == \
               {k: v["type"] for k, v in tool.parameters["properties"].items()}


def _play_oracle(env) -> list[dict]:
    completion: list[dict] = []
    while True:
        action = env._env.oracle_action()
        calls = [json.loads(c) for c in re.findall(r"<tool_call>(.*?)</tool_call>", action, re.S)]
        if not calls:
            completion.append({"role": "assistant", "content": action})
            return completion
        for call in calls:
            result = getattr(env, call["name"])(**call["arguments"])
            completion += [{"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": call}]},
                           {"role": "tool", "name": call["name"], "content": result}]


def _direct_return(task_id: str, seed: int) -> float:
    env = gym.make("rlvr/ToolCall-v0", **KW)
    env.reset(seed=seed, options={"task_id": task_id})
    total, done = 0.0, False
    while not done:
        _, r, term, trunc, _ = env.step(env.unwrapped.oracle_action())
        total, done = total + r, term or trunc
    return total


def test_oracle_episodes_of_every_pool_task_score_as_rlvr_does(pool_cls):
    funcs = reward_funcs(pool_cls)
    rows = dataset(pool_cls, n=len(IDS) + 2, seed=3)
    assert rows["task_id"] == IDS + IDS[:2]  # the pool, cycled
    for row in rows.select(range(len(IDS))):
        env = pool_cls()
        assert env.reset(**row) is None
        completion = _play_oracle(env)
        scores = {f.__name__: f(completions=[completion], environments=[env])[0] for f in funcs}
        assert scores["total"] == pytest.approx(_direct_return(row["task_id"], row["seed"]))
        assert scores["outcome"] == 1.0 and scores["match"] > 0 and env._finish(completion).success


def test_a_pool_tool_this_task_lacks_raises_naming_the_tasks_tools(pool_cls):
    env = pool_cls()
    env.reset(**dataset(pool_cls, task_ids=[IDS[0]])[0])
    own = set(_task_tools(IDS[0]))
    other = next(n for n in pool_cls.tool_names if n not in own)
    with pytest.raises(ToolCallFailed, match=f"Tool '{other}' is not offered by this task .*{IDS[0]}.*this task's tools: ") as e:
        getattr(env, other)(**{k: "x" for k in pool_cls.__dict__[other].__signature__.parameters if k != "self"})
    assert e.value.kind == "unknown_tool" and all(n in str(e.value) for n in own)
    assert env._components[-1]["tool_validity"] < 0 and env._running  # rlvr's penalty, and the episode goes on
    assert env.reset(task_id=IDS[1]) is not None


def test_rows_outside_the_pool_are_refused(pool_cls):
    with pytest.raises(ConfigError, match=r"task ids \['synthetic/h2-b1-d2-e6/99'\] are not in this class's task pool"):
        dataset(pool_cls, task_ids=[IDS[0], f"synthetic/{LABEL}/99"])
    env = pool_cls()
    with pytest.raises(ConfigError, match="task 'synthetic/h2-b1-d2-e6/99' is not in this class's task pool"):
        env.reset(task_id=f"synthetic/{LABEL}/99")
    with pytest.raises(ConfigError, match="needs each row's task_id.*dataset\\(cls\\)"):
        env.reset(prompt="hello")


def test_a_pool_restricts_an_environment_with_fixed_tools_too():
    Env = environment_factory("rlvr/GuessNumber-v0", task_ids=["guess-1-100-37", "guess-1-100-5"])
    assert Env.tool_names == ("guess",) and Env.task_pool == ("guess-1-100-37", "guess-1-100-5")
    assert dataset(Env, n=3)["task_id"] == ["guess-1-100-37", "guess-1-100-5", "guess-1-100-37"]
    with pytest.raises(ConfigError, match="not in this class's task pool"):
        Env().reset(task_id="guess-1-100-6")
    assert environment_factory("rlvr/GuessNumber-v0").task_pool is None  # fixed tools: no pool unless asked


def test_unusable_pools_fail_saying_how_to_fix():
    with pytest.raises(ConfigError, match=r"no task list.*pass environment_factory\('rlvr/ToolCall-v0', task_ids=\[\.\.\.\]\)"):
        environment_factory("rlvr/ToolCall-v0", **KW)
    with pytest.raises(ConfigError, match=r"the first \d of the 6 tasks offer \d+ different tools, over max_tools=12.*"
                                          r"smaller pool.*or raise max_tools"):
        environment_factory("rlvr/ToolCall-v0", task_ids=IDS, max_tools=12, **KW)
    with pytest.raises(ConfigError, match="no task with id 'synthetic/nope/1'|synthetic ids are"):
        environment_factory("rlvr/ToolCall-v0", task_ids=["synthetic/nope/1"], **KW)
    for bad, msg in (([], "task_ids is empty"), ("synthetic/x/1", "list of task id strings"), ([3], "task id strings")):
        with pytest.raises(ConfigError, match=msg):
            environment_factory("rlvr/ToolCall-v0", task_ids=bad, **KW)
    with pytest.raises(ConfigError, match="max_tools must be a positive integer"):
        environment_factory("rlvr/ToolCall-v0", task_ids=IDS, max_tools=0, **KW)


def test_same_tool_name_with_two_schemas_is_refused_naming_tool_and_tasks():
    a, b = generate_task(0), generate_task(1)
    shared = next(f["name"] for f in a.functions if f["name"] in {g["name"] for g in b.functions})
    changed = tuple({**f, "description": "another meaning"} if f["name"] == shared else f for f in b.functions)
    b2 = dataclasses.replace(b, task_id="clash-b", functions=changed)
    tasks = [dataclasses.replace(a, task_id="clash-a"), b2]
    with pytest.raises(ConfigError, match=f"same name but different schemas: '{shared}' in tasks 'clash-a' and "
                                          "'clash-b'.*split the tasks into pools.*dict environment_factory"):
        environment_factory("rlvr/ToolCall-v0", source="tasks", tasks=tasks)
    ok = environment_factory("rlvr/ToolCall-v0", source="tasks", tasks=tasks, task_ids=["clash-b"])
    assert ok.task_pool == ("clash-b",) and shared in ok.tool_names
    full = environment_factory("rlvr/ToolCall-v0", source="tasks", tasks=tasks[:1])  # default pool: every task
    assert full.task_pool == ("clash-a",)


def _two_small_tasks():
    """Two tasks of two tools each, sharing one (short prompts keep TRL's step fast on CPU)."""
    a, b = generate_task(0), generate_task(1)
    names_b = {f["name"]: f for f in b.functions}
    shared = next(f for f in a.functions if f["name"] in names_b)
    own_a = next(f for f in a.functions if f["name"] != shared["name"])
    own_b = next(f for f in b.functions if f["name"] not in {shared["name"], own_a["name"]})
    return [dataclasses.replace(a, task_id="small-a", functions=(shared, own_a)),
            dataclasses.replace(b, task_id="small-b", functions=(names_b[shared["name"]], own_b))]


def test_one_grpo_step_on_a_toolcall_pool(tmp_path):
    pytest.importorskip("trl")
    from tests.integrations.test_trl_training import _config, _FirstTurnScripted, _tiny

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    tasks = _two_small_tasks()
    Env = environment_factory("rlvr/ToolCall-v0", source="tasks", tasks=tasks)
    assert Env.task_pool == ("small-a", "small-b") and len(Env.tool_names) == 3
    mine, theirs = tasks[0].functions[1], tasks[1].functions[1]

    def call(spec):
        return f'<tool_call>\n{json.dumps({"name": spec["name"], "arguments": {k: "Paris" for k in spec["parameters"]["properties"]}})}\n</tool_call>'

    class Scripted(_FirstTurnScripted):
        script = [call(mine), call(theirs), None, None]

    model, tok = _tiny()
    rewards = reward_funcs(Env)
    trainer = Scripted(model=model, reward_funcs=list(rewards), args=_config(tmp_path, rewards), processing_class=tok,
                       train_dataset=dataset(Env, task_ids=["small-a"] * 4), environment_factory=Env)
    assert {m.__name__ for m in trainer._env_tools[None]} == set(Env.tool_names)  # TRL's schema: the pool's union
    trainer.train()
    logs = trainer.state.log_history[0]
    assert {f"rewards/{n}/mean" for n in rewards.names} <= set(logs) and math.isfinite(logs["loss"])
    assert logs["tools/call_frequency"] >= 2 / 4 and logs["tools/failure_frequency"] > 0  # the other task's tool
    pool = trainer._environment_pool[None]
    assert all(e._episode is not None and e._episode.task_id == "small-a" for e in pool)
    failed = [m for e in pool for m in e._episode.messages if m.get("role") == "tool" and theirs["name"] in m.get("content", "")]
    assert failed and any(c.get("tool_validity", 0) < 0 for e in pool for c in e._episode.components)
