"""The cheaper step paths answer what the general ones answer: the parser's inline reading of the usual
``{"name": ..., "arguments": {...}}`` call, the call object it builds without the frozen ``__init__``,
the observation-fit test done inline in ``step`` and the tool output kept as it is when it fits."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.envs.core import AgentEnv
from rlvr.envs.guess_number import GuessNumberEnv
from rlvr.envs.parsers import HermesParser, ToolCall, _call_from_obj, _loads, _tool_call
from rlvr.envs.tools import Tool, ToolSet, truncate_text

hermes = HermesParser()

_names = st.text(alphabet=st.sampled_from("ab _\t\n\u00e9\ud800"), max_size=5)
_values = st.none() | st.integers() | st.text(alphabet=st.sampled_from("xy\ud800<>"), max_size=3)
_args = st.dictionaries(st.text(alphabet="pq\ud800", max_size=2), _values, max_size=2)
_objects = st.one_of(
    st.builds(lambda n, a: {"name": n, "arguments": a}, _names, _args),
    st.builds(lambda n, a: {"arguments": a, "name": n}, _names, _args),
    st.builds(lambda n, a: {"name": n, "arguments": a, "id": 1}, _names, _args),
    st.builds(lambda n: {"name": n, "arguments": "{}"}, _names),
    st.builds(lambda n: {"name": n, "parameters": {}}, _names),
    st.builds(lambda a: {"name": 3, "arguments": a}, _args),
    st.lists(st.builds(lambda n, a: {"name": n, "arguments": a}, _names, _args), max_size=2),
)


def _general(text: str):
    """What the parser answered for one block before its inline path: decode, then ``_call_from_obj``."""
    raw = text.strip()
    obj, err = _loads(raw)
    if err is not None:
        return None, err
    return _call_from_obj(obj)


@settings(max_examples=400, deadline=None)
@given(_objects, st.booleans(), st.sampled_from(["", " ", "\n"]))
def test_inline_call_reading_matches_call_from_obj(obj, ascii_only, pad):
    """Every decoded call shape, surrogates and blank names included, gives the calls or the error the
    general path gives (its message inside the parse error)."""
    body = pad + json.dumps(obj, ensure_ascii=ascii_only) + pad
    parsed = hermes.parse(f"<tool_call>{body}</tool_call>")
    calls, err = _general(body)
    if err:
        assert parsed.calls == [] and len(parsed.errors) == 1 and err in parsed.errors[0].message
    else:
        assert parsed.calls == calls and parsed.errors == []
        assert all(type(c) is ToolCall for c in parsed.calls)


def test_call_built_without_init_is_a_frozen_tool_call():
    call = _tool_call("guess", {"number": 3})
    assert type(call) is ToolCall and call == ToolCall("guess", {"number": 3})
    assert repr(call) == repr(ToolCall("guess", {"number": 3})) and call.to_dict() == {"name": "guess", "arguments": {"number": 3}}
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.name = "other"  # type: ignore[misc]


class _Echo(AgentEnv):
    """Answers each call with the text the call asks for (to try observation fitting)."""

    reward_components = ("format", "tool_validity")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tools.add(Tool("echo", "Echo.", {"type": "object", "properties": {"text": {"type": "string"}}}, lambda text: text,
                            inline=True))

    def _reset_task(self, options):
        return [{"role": "user", "content": "go"}], {"task_id": "echo"}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.sampled_from([None, 0, 8, 20, 64]), st.booleans())
def test_inline_fit_gives_what_fit_gives(n, max_chars, count_tokens):
    """The observation ``step`` returns is ``_fit`` of each message the turn made, kept as the same object
    when it fits, with and without a token budget."""
    kwargs = {"max_obs_chars": max_chars}
    if count_tokens:
        kwargs.update(max_obs_tokens=5, token_counter=len)
    env = _Echo(**kwargs)
    env.reset(seed=0)
    text = "z" * n
    obs, *_ = env.step(f'<tool_call>{{"name": "echo", "arguments": {{"text": "{text}"}}}}</tool_call>')
    reference = env._fit({"role": "tool", "name": "echo", "content": text})
    assert obs == [reference] and env.messages[-1] is obs[0]
    fits = not count_tokens and (max_chars is None or n <= max_chars)
    assert (obs[0]["content"] == text) if fits else (obs[0]["content"] == reference["content"])


@pytest.mark.parametrize("limit", [None, 0, 5, 12, 100])
def test_tool_output_kept_as_is_when_it_fits(limit):
    tools = ToolSet([Tool("say", "Say.", {"type": "object", "properties": {}}, lambda: "0123456789", inline=True)],
                    max_output_chars=limit)
    result = tools.execute(ToolCall("say", {}))
    assert result.content == truncate_text("0123456789", limit) and result.error is None


def test_guess_number_steps_unchanged_by_the_inline_paths():
    """A whole episode: the observations, rewards and info of the steps stay those of the general paths."""
    env = GuessNumberEnv()
    env.reset(seed=3)
    obs, reward, terminated, truncated, info = env.step(
        '<tool_call>{"name": "guess", "arguments": {"number": 50}}</tool_call>')
    assert obs[0]["role"] == "tool" and obs[0]["name"] == "guess" and obs[0]["content"] in ("higher", "lower", "correct")
    assert info["tool_calls"] == [{"name": "guess", "arguments": {"number": 50}}] and info["error"] is None
    assert list(info["reward_components"]) == ["format", "tool_validity", "progress", "outcome"]
    assert reward == pytest.approx(info["reward_components"]["progress"]) and not terminated and not truncated


def test_rendered_prompt_follows_its_tools_and_text():
    """The prompt cache answers by instructions, hint and every tool's schema: a changed tool, a new tool or
    other instructions render anew, and an empty tool set has no tool section."""
    from rlvr.envs import core

    tools = ToolSet([Tool("a", "First.", {"type": "object", "properties": {}}, lambda: "")])
    first = core.render_tool_prompt("Do it.", tools, "Hint.")
    assert first == core._render_tool_prompt("Do it.", (tools["a"].schema_json(),), "Hint.")
    assert core.render_tool_prompt("Do it.", tools, "Hint.") is first
    tools["a"].description = "Changed."
    assert "Changed." in core.render_tool_prompt("Do it.", tools, "Hint.")
    tools.add(Tool("b", "Second.", {"type": "object", "properties": {}}, lambda: ""))
    both = core.render_tool_prompt("Do it.", tools, "Hint.")
    assert '"name": "a"' in both and '"name": "b"' in both
    assert core.render_tool_prompt("Other.", tools).startswith("Other.")
    assert "# Tools" not in core.render_tool_prompt(" Bare. ", ToolSet()) and core.render_tool_prompt(" Bare. ", ToolSet()).startswith("Bare.")
    for i in range(core._MAX_PROMPTS + 5):  # bounded
        core.render_tool_prompt(f"Task {i}.", tools)
    assert len(core._PROMPTS) <= core._MAX_PROMPTS
