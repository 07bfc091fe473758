"""What a new user finds from the command line, through the real entry point (``python -m rlvr``):
``rlvr describe``, ``rlvr list``'s reward components, defaults in every ``--help``, ``--agent`` from a file
or the current directory with ``--agent-kwargs``, and ``rlvr reap``."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from _cli import rlvr_cli

import rlvr
from rlvr.describe import _args_section, describe_env
from rlvr.registry import ENVS


def test_describe_prints_options_weights_reset_options_and_tools():
    p = rlvr_cli("describe", "rlvr/GuessNumber-v0", "-e", "high=50")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "high                 an integer; default 100; given 50" in out
    assert "the inclusive range of the secret." in out  # from the class's Args: section
    assert "reward_weights" in out and "a dict of strings to numbers or None; default None" in out
    for name in ("format", "tool_validity", "progress", "outcome"):
        assert f"  {name:<13}  weight 1" in out
    assert "reset options (env.reset(options={...})): task_id, secret" in out
    assert "guess(number: integer)" in out

    p = rlvr_cli("describe", "rlvr/DeepSearch-v0", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    weights = {c["name"]: c["weight"] for c in d["reward_components"]}
    assert weights == gym.make("rlvr/DeepSearch-v0").unwrapped.reward_weights  # the weights in force
    assert weights["rubric"] == 0.0 and weights["evidence"] == 0.1
    assert [c["name"] for c in d["reward_components"] if c["optional"]] == ["rubric"]
    options = {o["name"]: o for o in d["options"]}
    assert options["backend"]["type"] == "one of 'bm25', 'http', 'dense'" and options["backend"]["default"] == "bm25"
    assert options["top_k"]["doc"] == "Default number of search results."  # a settings dataclass field's docstring
    assert options["max_turns"]["doc"].startswith("turn budget")
    assert {t["name"] for t in d["tools"]} == {"search", "open", "find"}
    assert d["reset_options"] == ["task_id", "task_index", "hops"]

    p = rlvr_cli("describe", "rlvr/GuesNumber-v0")
    assert p.returncode == 2 and "did you mean 'rlvr/GuessNumber-v0'" in p.stderr and "Traceback" not in p.stderr
    p = rlvr_cli("describe", "rlvr/GuessNumber-v0", "-e", "hihg=3")
    assert p.returncode == 2 and "did you mean 'high'" in p.stderr


@pytest.mark.parametrize("info", ENVS, ids=lambda i: i.id)
def test_describe_matches_the_declarations_of_every_id(info):
    """Options are exactly what gym.make accepts; components, optional ones and reset keys are the class's."""
    from rlvr._kwarg_types import constructor_params

    cls = info.load()
    d = describe_env(info.id, build=False)
    assert [o["name"] for o in d["options"]] == list(constructor_params(cls))
    assert [c["name"] for c in d["reward_components"]] == list(cls.reward_components)
    assert {c["name"] for c in d["reward_components"] if c["optional"]} == set(cls.optional_components)
    assert d["reset_options"] == list(cls.reset_options)
    assert all(o["doc"] for o in d["options"] if o["name"] in {"max_turns", "reward_weights", "parser"})
    json.dumps(d)  # JSON-ready


def test_reward_weights_show_every_weight_in_force():
    for env_id in ("rlvr/GuessNumber-v0", "rlvr/ToolCall-v0"):
        env = gym.make(env_id)
        declared = env.unwrapped.reward_components
        assert env.unwrapped.reward_weights == dict.fromkeys(declared, 1.0)
        env.close()
    env = gym.make("rlvr/GuessNumber-v0", reward_weights={"outcome": 3.0})
    assert env.unwrapped.reward_weights == {"format": 1.0, "tool_validity": 1.0, "progress": 1.0, "outcome": 3.0}
    env.reset(seed=0)
    _, reward, *_ , info = env.step(f"<answer>{env.unwrapped.secret}</answer>")
    assert reward == pytest.approx(3.0) and info["reward_components"]["outcome"] == 1.0


def test_args_sections_are_read_with_continuations_and_shared_names():
    doc = """Title.

    Args:
        low, high: the range,
            inclusive.
        flag (bool): on or off.

    Returns:
        nothing.
    """
    assert _args_section(doc) == {"low": "the range, inclusive.", "high": "the range, inclusive.", "flag": "on or off."}
    assert _args_section("No args here.") == {}


def test_list_shows_reward_components_and_every_help_shows_defaults():
    p = rlvr_cli("list")
    assert p.returncode == 0, p.stderr
    header, *rows = p.stdout.splitlines()
    assert header.split("  ")[:1] == ["id"] and "reward components" in header
    for info in rlvr.list_envs():
        row = next(r for r in rows if r.startswith(info.id + " "))
        assert ", ".join(info.load().reward_components) in row
    p = rlvr_cli("run", "--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    for flag in ("(default: oracle)", "(default: 4)", "(default: 8)", "(default: 0.7)", "(default: 256)",
                 "(default: 1)"):
        assert flag in text, flag
    from rlvr.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name, parser in sub.items():  # every option of every subcommand documents its default
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and "(default: " in parser.formatter_class("x")._get_help_string(action), \
                    (name, action.dest)
    p = rlvr_cli("train", "--help")
    assert p.returncode == 0 and "(default: 'smollm2')" in " ".join(p.stdout.split())


AGENT_FILE = '''
class Fixed:
    """Answers the same number every turn."""

    def __init__(self, answer: int = 1, prefix: str = ""):
        self.reply = f"{prefix}<answer>{answer}</answer>"

    def act(self, messages):
        return self.reply
'''


def test_agent_from_a_file_or_the_current_directory_with_constructor_arguments(tmp_path):
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "fixed.py").write_text(AGENT_FILE)
    (tmp_path / "myagents.py").write_text(AGENT_FILE)
    common = ["run", "rlvr/GuessNumber-v0", "--episodes", "2", "--quiet", "-e", "high=3", "-e",
              'reward_weights={"outcome": 2.0}']
    p = rlvr_cli(*common, "--agent", "agents/fixed.py:Fixed", "--agent-kwargs", '{"answer": 2}', "--out", "a",
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    trajs = [json.loads(line) for line in (tmp_path / "a" / "trajectories.jsonl").read_text().splitlines()]
    assert all(t["turns"][0]["action"] == "<answer>2</answer>" for t in trajs)
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["agent"] == "agents/fixed.py:Fixed" and config["agent_kwargs"] == {"answer": 2}

    p = rlvr_cli(*common, "--agent", "myagents:Fixed", "--out", "b", cwd=tmp_path)  # no PYTHONPATH needed
    assert p.returncode == 0, p.stderr

    p = rlvr_cli(*common, "--agent", "myagents:Fixed", "--agent-kwargs", '{"answr": 2}', "--out", "c", cwd=tmp_path)
    assert p.returncode == 2
    assert "--agent-kwargs: agent 'myagents:Fixed' takes no argument 'answr' (did you mean 'answer'?); accepted: " \
           "answer, prefix" in p.stderr
    p = rlvr_cli(*common, "--agent", "agents/nope.py:Fixed", "--out", "d", cwd=tmp_path)
    assert p.returncode == 2 and "no such file" in p.stderr and "Traceback" not in p.stderr
    p = rlvr_cli(*common, "--agent", "myagents:Fixd", "--out", "e", cwd=tmp_path)
    assert p.returncode == 2 and "myagents has no 'Fixd' (did you mean 'Fixed'?)" in p.stderr
    p = rlvr_cli(*common, "--agent", "random", "--agent-kwargs", "[1]", "--out", "f", cwd=tmp_path)
    assert p.returncode == 2 and "--agent-kwargs must be a JSON object" in p.stderr


def test_reap_is_a_subcommand_and_says_when_no_engine_answers(tmp_path):
    p = rlvr_cli("reap", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert p.returncode == 2
    assert p.stderr.startswith("rlvr: error: rlvr reap removes leaked SWE sandbox containers, but no Docker engine")
    assert "Traceback" not in p.stderr


@pytest.mark.docker
def test_reap_with_an_engine_removes_only_dead_owners_containers():
    p = rlvr_cli("reap")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("removed ") and "leaked container(s)" in p.stdout
