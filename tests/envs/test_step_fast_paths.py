"""The step's fast paths give what the general paths give: JSON decoding, the surrogate shortcut, the
unclosed-tag count, the flat-schema argument check (enums included) and the cached tool schema text."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from rlvr.envs.guess_number import GuessNumberEnv
from rlvr.envs.parsers import HermesParser, ToolCall, _lone_surrogate, _loads
from rlvr.envs.tools import Tool

hermes = HermesParser()
_OPEN, _CLOSE = "<tool_call>", "</tool_call>"


def _reference_loads(raw: str):
    """What ``_loads`` answered before it had a fast path: json.loads, failures as text."""
    try:
        return json.loads(raw), None
    except json.JSONDecodeError as e:
        return None, f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    except (RecursionError, ValueError) as e:
        return None, f"invalid JSON ({type(e).__name__})"


_json_text = st.one_of(
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                 max_leaves=8).map(json.dumps),
    st.text(alphabet='{}[]":,0123456789 \t\n\ufeffabcnulltrue\\', max_size=30),
)


@settings(max_examples=400, deadline=None)
@given(_json_text, st.sampled_from(["", " ", "\n", "x", "\ufeff"]), st.sampled_from(["", " ", "\n", "}", "x"]))
def test_loads_agrees_with_json_loads(text, before, after):
    raw = before + text + after
    assert _loads(raw) == _reference_loads(raw)


def test_loads_reports_what_json_loads_reports():
    assert _loads('{"a": 1} x')[1] == "invalid JSON (Extra data at line 1 column 10)"
    assert _loads("\ufeff{}")[1].startswith("invalid JSON (Unexpected UTF-8 BOM")
    assert _loads("  {}  ") == ({}, None)
    assert _loads("[" * 5000)[1] == "invalid JSON (RecursionError)"


_strings = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFFFF), max_size=6)


@settings(max_examples=400, deadline=None)
@given(_strings, st.dictionaries(_strings, _strings | st.integers() | st.lists(_strings, max_size=2), max_size=3),
       st.booleans(), st.booleans())
def test_surrogate_shortcut_agrees_with_the_walk(name, args, ascii_only, openai_shape):
    """A lone surrogate anywhere (written raw or as a \\u escape) is refused; everything else is read."""
    call = {"type": "function", "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=ascii_only)}} \
        if openai_shape else {"name": name, "arguments": args}
    p = hermes.parse(_OPEN + json.dumps(call, ensure_ascii=ascii_only) + _CLOSE)
    # judged on what the JSON text says: an escaped surrogate pair ("\ud800\udc00") is one character
    meant = json.loads(json.dumps({"name": name, "args": args}, ensure_ascii=ascii_only))
    name, args = meant["name"], meant["args"]
    if not name.strip():
        assert p.calls == [] and 'no "name"' in p.errors[0].message
    elif _lone_surrogate(name) or _lone_surrogate(args):
        assert p.calls == [] and "lone UTF-16 surrogate" in p.errors[0].message
    else:
        assert p.errors == [] and p.calls == [ToolCall(name.strip(), args)]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([_OPEN, _CLOSE, '{"name": "a", "arguments": {}}', "x", "<answer>1</answer>"]),
                max_size=8))
def test_unclosed_tags_are_counted_as_before(parts):
    text = "".join(parts)
    p = hermes.parse(text)
    unclosed = [e for e in p.errors if "were never closed" in e.message]
    expected = _OPEN in text and text.count(_OPEN) > text.count(_CLOSE)
    assert bool(unclosed) == expected
    if expected:
        assert unclosed[0].message.startswith(f"{text.count(_OPEN) - text.count(_CLOSE)} <tool_call> tag(s)")


_enum_members = st.lists(st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([0.0, 1.0, -0.0, 1.5])
                         | st.sampled_from(["a", "1"]) | st.just([1]), min_size=1, max_size=4)
_values = (st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([0.0, 1.0, 1.5, float("nan")])
           | st.sampled_from(["a", "1", "b"]) | st.just([1]) | st.just({"k": 1}))


@settings(max_examples=500, deadline=None)
@given(_enum_members, st.sampled_from([None, "integer", "number", "boolean", "string", ["integer", "null"]]), _values)
def test_fast_enum_check_never_accepts_what_jsonschema_refuses(enum, type_, value):
    spec: dict = {"enum": enum} if type_ is None else {"enum": enum, "type": type_}
    schema = {"type": "object", "properties": {"x": spec}, "required": ["x"], "additionalProperties": False}
    t = Tool("t", "d", schema, lambda **kw: None)
    full_ok = Draft202012Validator(schema).is_valid({"x": value})
    assert (t.validate({"x": value}) is None) == full_ok
    if t._fast_check is not None and t._fast_check({"x": value}):
        assert full_ok


def test_enum_of_true_does_not_admit_one():
    """Python's 1 == True; JSON's 1 is not true (the quick check once let it through to the tool)."""
    schema = {"type": "object", "properties": {"x": {"enum": [True, 2]}}, "required": ["x"]}
    t = Tool("t", "d", schema, lambda **kw: None)
    assert not t._fast_check({"x": 1})
    assert "is not one of" in t.validate({"x": 1})
    assert t._fast_check({"x": True}) and t.validate({"x": 2}) is None


def test_schema_json_is_the_schema_and_follows_a_new_description():
    t = Tool("look", "Find é.", {"type": "object", "properties": {"q": {"type": "string"}}}, lambda q: q)
    assert t.schema_json() == json.dumps(t.schema(), ensure_ascii=False)
    assert t.schema_json() is t.schema_json()
    t.description = "Find ü."
    assert json.loads(t.schema_json())["function"]["description"] == "Find ü."


def test_step_info_keys_and_reward_as_before():
    env = GuessNumberEnv(low=1, high=100, max_turns=3)
    env.reset(seed=0, options={"secret": 50})
    obs, reward, term, trunc, info = env.step('<tool_call>{"name": "guess", "arguments": {"number": 25}}</tool_call>')
    assert list(info)[:4] == ["reward_components", "tool_calls", "error", "turn"]
    assert info["reward_components"] == {"format": 0.0, "tool_validity": 0.0, "progress": info["reward_components"]["progress"],
                                         "outcome": 0.0}
    assert reward == sum(info["reward_components"].values()) and obs == [{"role": "tool", "name": "guess", "content": "higher"}]
    assert info["tool_calls"] == [{"name": "guess", "arguments": {"number": 25}}] and info["tool_errors"] == []
    _, reward, _, _, info = env.step('<tool_call>{"name": "guess", "arguments": {"number": "25"}}</tool_call>')
    assert info["error"]["kind"] == "invalid_arguments" and "'25' is not of type 'integer'" in info["error"]["message"]
    assert info["tool_errors"] == [info["error"]] and info["reward_components"]["tool_validity"] == -0.1
    assert env.messages[-1]["content"].startswith("Error: Invalid arguments for tool 'guess'")
