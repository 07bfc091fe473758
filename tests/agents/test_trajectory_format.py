"""The trajectory JSONL format: a version in every line, each token stored once, old files still read."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.agents.base import Generation
from rlvr.agents.rollout import rollout
from rlvr.agents.trajectory import FORMAT_VERSION, Trajectory, Turn, read_trajectories
from rlvr.errors import ConfigError


class _TokenAgent:
    """A token-exact agent: each prompt is the whole conversation so far as ids, like HFAgent's.

    Its first reply is 30k characters (one token each); later replies are short."""

    def act_batch(self, batch, histories=None):
        out = []
        for messages, turns in zip(batch, histories):
            prompt = [ord(c) % 1000 for m in messages for c in str(m["content"])]
            if not turns:
                text = "x" * 30_000 + '<tool_call>{"name": "guess", "arguments": {"number": 1}}</tool_call>'
            else:
                text = '<tool_call>{"name": "guess", "arguments": {"number": 2}}</tool_call>'
            completion = [ord(c) % 1000 for c in text]
            out.append(Generation(text, prompt, completion, [-0.5] * len(completion)))
        return out


def test_a_long_reply_is_stored_once_not_in_every_later_turn(tmp_path):
    (traj,) = rollout("rlvr/GuessNumber-v0", _TokenAgent(), episodes=1, out=tmp_path, env_kwargs={"max_turns": 6,
                                                                                                 "max_action_chars": 100_000})
    assert traj.num_turns == 6
    whole = json.dumps(traj.to_dict())  # every prompt in full: the reply again in each later turn's prompt
    size = (tmp_path / "trajectories.jsonl").stat().st_size
    assert size < len(whole) / 2.5
    line = json.loads((tmp_path / "trajectories.jsonl").read_text())
    assert line["format_version"] == FORMAT_VERSION == 2
    assert line["turns"][0]["prompt_prefix"] == 0
    assert all(t["prompt_prefix"] > 0 and len(t["prompt_ids"]) < 1000 for t in line["turns"][1:])
    (back,) = read_trajectories(tmp_path / "trajectories.jsonl")
    assert back.to_dict() == traj.to_dict()  # every prompt rebuilt exactly


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 5), max_size=6), st.lists(st.integers(0, 5), max_size=4),
                          st.booleans(), st.booleans()), max_size=6))
def test_prompt_encoding_round_trips_any_token_history(spec):
    """Prompts that extend, diverge from or ignore the previous turn's tokens, and turns without tokens."""
    turns, previous = [], []
    for i, (fresh, completion, extend, has_tokens) in enumerate(spec):
        prompt = (previous + fresh) if extend else fresh
        turns.append(Turn(i, "a", [], 0.0, {}, prompt_ids=prompt if has_tokens else None,
                          completion_ids=completion if has_tokens else None))
        previous = prompt + completion if has_tokens else []
    t = Trajectory("rlvr/GuessNumber-v0", "t", 0, [{"role": "user", "content": "q"}], turns)
    assert Trajectory.from_dict(json.loads(t.to_json())).to_dict() == t.to_dict()


def test_first_format_lines_still_read_and_unknown_versions_fail_clearly(tmp_path):
    old = Trajectory("rlvr/GuessNumber-v0", "t", 0, [], [Turn(0, "a", [], 1.0, {"outcome": 1.0},
                                                             prompt_ids=[1, 2], completion_ids=[3])]).to_dict()
    path = tmp_path / "trajectories.jsonl"
    path.write_text(json.dumps(old) + "\n")  # no format_version: the first format, whole prompts
    (back,) = read_trajectories(path)
    assert back.turns[0].prompt_ids == [1, 2] and back.total_reward == 1.0
    path.write_text(json.dumps(old) + "\n" + json.dumps({**old, "format_version": 9}) + "\n")
    with pytest.raises(ConfigError, match=r"trajectories.jsonl:2: trajectory format_version 9 is not one this rlvr "
                                          r"reads \(1 to 2\); it was written by a newer rlvr"):
        list(read_trajectories(path))
    path.write_text(json.dumps({**old, "turns": [{**old["turns"][0], "prompt_prefix": 5}], "format_version": 2}) + "\n")
    with pytest.raises(ConfigError, match=r":1: turn 0 reuses 5 tokens of the previous turn, which has 0"):
        list(read_trajectories(path))
    path.write_text(json.dumps({"env_id": "x", "colour": 1}) + "\n")
    with pytest.raises(ConfigError, match=r":1: not a trajectory record"):
        list(read_trajectories(path))
