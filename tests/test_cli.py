"""The rlvr command line end to end."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rlvr
from rlvr.cli import main
from rlvr.errors import ConfigError


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "rlvr/GuessNumber-v0" in out and "game" in out


def test_run_writes_table_and_files(tmp_path, capsys):
    assert main(["run", "rlvr/GuessNumber-v0", "--agent", "oracle", "--episodes", "3", "--out", str(tmp_path), "--quiet",
                 "-e", "high=50"]) == 0
    out = capsys.readouterr().out
    assert "success 100.0%" in out and "outcome" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["success_rate"] == 1.0
    lines = (tmp_path / "trajectories.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["task_id"].startswith("guess-1-50-")


def test_run_reports_errors_cleanly(tmp_path, capsys):
    assert main(["run", "rlvr/GuessNumber-v0", "--agent", "gpt", "--out", str(tmp_path)]) == 2
    assert "unknown agent 'gpt'" in capsys.readouterr().err
    assert main(["run", "rlvr/GuessNumber-v0", "-e", "hihg=3", "--out", str(tmp_path), "--quiet"]) == 2
    assert "did you mean 'high'" in capsys.readouterr().err


def test_custom_agent_example_is_short_and_wins():
    import runpy
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "custom_agent.py"
    assert len(path.read_text().splitlines()) < 40
    agent = runpy.run_path(str(path))["BisectionAgent"]()
    from rlvr.agents.rollout import rollout, summarize

    assert summarize(rollout("rlvr/GuessNumber-v0", agent, episodes=4))["success_rate"] == 1.0


# ----------------------------------------------------------------- wrong types, failing agents, reproducibility

def _run(tmp_path, capsys, *argv):
    code = main(["run", *argv, "--out", str(tmp_path), "--quiet"])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize(
    "env, arg, message",
    [
        ("rlvr/GuessNumber-v0", "max_turns=abc",
         "rlvr/GuessNumber-v0: max_turns must be an integer or None, got 'abc' (str); for example max_turns=10"),
        ("rlvr/GuessNumber-v0", "high=50.5", "high must be an integer, got 50.5 (float)"),
        ("rlvr/ToolCall-v0", "categories=multi_turn_base",
         "categories must be a list of strings or None, got 'multi_turn_base' (str, which would be read letter by "
         "letter); for example categories=[\"multi_turn_base\"] (on the command line: -e 'categories=[\"multi_turn_base\"]')"),
        ("rlvr/ToolCall-v0", 'synthetic={"hop": 2}',
         "synthetic got an unknown key 'hop' (did you mean 'hops'?); SyntheticConfig accepts: branches, distractors, "
         "entities, hops"),
        ("rlvr/ToolCall-v0", 'synthetic={"hops": "2"}',
         "synthetic['hops'] must be an integer, got '2' (str); for example synthetic={\"hops\": 2}"),
        ("rlvr/DeepSearch-v0", 'reward_weights={"outcome": "high"}',
         "reward_weights must be a dict of strings to numbers or None, got {'outcome': 'high'} (dict); "
         "for example reward_weights={\"outcome\": 1.0}"),
        ("rlvr/DeepSearch-v0", "backend=bm52", "backend must be one of 'bm25', 'http', 'dense', got 'bm52' (str) "
                                               "(did you mean 'bm25'?)"),
        ("rlvr/SWE-v0", 'sandbox={"memory": "1g"}',
         "sandbox must be a SandboxConfig or None, got a dict; build it in Python as "
         "rlvr.envs.swe.sandbox.SandboxConfig(...)"),
    ],
)
def test_run_values_of_the_wrong_type_are_clear_errors(tmp_path, capsys, env, arg, message):
    code, out, err = _run(tmp_path, capsys, env, "--agent", "random", "-e", arg)
    assert code == 2
    assert err.startswith("rlvr: error: ") and message in err
    assert "Traceback" not in err + out
    key, _, value = arg.partition("=")
    try:
        value = json.loads(value)
    except ValueError:
        pass
    with pytest.raises(ConfigError) as e:  # the Python API says the same
        gym.make(env, **{key: value})
    assert message in str(e.value)


def test_run_duplicate_env_arg_is_an_error(tmp_path, capsys):
    code, _, err = _run(tmp_path, capsys, "rlvr/GuessNumber-v0", "-e", "high=5", "-e", "high=6")
    assert code == 2 and "--env-arg 'high' is given twice" in err


def test_run_agent_that_raises_mid_run_writes_what_finished(tmp_path, capsys, monkeypatch):
    (tmp_path / "boom_agent.py").write_text(
        "class Boom:\n    calls = 0\n    def act(self, messages):\n        Boom.calls += 1\n"
        "        if Boom.calls > 3:\n            raise RuntimeError('backend exploded')\n"
        "        return '<answer>1</answer>'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out_dir = tmp_path / "run"
    code, out, err = _run(out_dir, capsys, "rlvr/GuessNumber-v0", "--agent", "boom_agent:Boom", "--episodes", "6",
                          "--concurrency", "1")
    assert code == 1
    assert "rlvr: error: run interrupted after 3 of 6 episodes: the agent failed: AgentError: agent Boom raised " \
           "RuntimeError: backend exploded while generating episode 3 (seed 3) turn 1" in err
    assert "Traceback" not in err + out
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["episodes"] == 3
    assert summary["interrupted"]["reason"] == "the agent failed"
    assert summary["interrupted"]["finished_episodes"] == 3 and summary["interrupted"]["requested_episodes"] == 6
    assert len((out_dir / "trajectories.jsonl").read_text().splitlines()) == 3


def test_run_agent_class_without_act_or_needing_arguments(tmp_path, capsys, monkeypatch):
    (tmp_path / "odd_agents.py").write_text(
        "class NoAct:\n    def predict(self, messages):\n        return 'x'\n\n"
        "class NeedsModel:\n    def __init__(self, model):\n        self.model = model\n"
        "    def act(self, messages):\n        return 'x'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = _run(tmp_path, capsys, "rlvr/GuessNumber-v0", "--agent", "odd_agents:NoAct")
    assert code == 2 and "rlvr: error: agent 'odd_agents:NoAct' built a NoAct with no act(messages) -> str method" in err
    code, out, err = _run(tmp_path, capsys, "rlvr/GuessNumber-v0", "--agent", "odd_agents:NeedsModel")
    assert code == 2 and "rlvr: error: agent 'odd_agents:NeedsModel' needs the argument(s) model" in err
    assert "Traceback" not in err


def test_run_random_agent_same_trajectories_whatever_the_concurrency(tmp_path, capsys):
    def episodes(folder):
        rows = [json.loads(line) for line in (folder / "trajectories.jsonl").read_text().splitlines()]
        for r in rows:
            for turn in r["turns"]:
                turn.pop("timings")
        return sorted(rows, key=lambda r: r["reset_info"]["episode"])

    runs = []
    for c in ("8", "1"):
        folder = tmp_path / c
        assert main(["run", "rlvr/GuessNumber-v0", "--agent", "random", "--seed", "0", "--episodes", "8",
                     "--concurrency", c, "--out", str(folder), "--quiet"]) == 0
        runs.append(episodes(folder))
    capsys.readouterr()
    assert runs[0] == runs[1]
    assert runs[0][0]["repro"]["env_kwargs"] == {} and runs[0][0]["repro"]["reward_weights"]["outcome"] == 1.0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False, width=32) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(env=st.sampled_from([e.id for e in rlvr.list_envs()]), data=st.data(), value=_JSON)
def test_type_check_of_any_json_value_is_pass_or_config_error(env, data, value):
    """Whatever JSON a user types after -e KEY=, the check passes or raises a ConfigError naming the key."""
    from rlvr._kwarg_types import constructor_params
    from rlvr.registry import _Factory

    factory = gym.registry[env].entry_point
    assert isinstance(factory, _Factory)
    key = data.draw(st.sampled_from(sorted(constructor_params(factory.info.load()))))
    try:
        factory.check_keywords({key: value})
    except ConfigError as e:
        assert f"{env}: {key}" in str(e)
