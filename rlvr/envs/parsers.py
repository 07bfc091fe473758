"""Parsers that turn an assistant message into tool calls and an optional final answer.

A parser never raises on model output: anything it cannot read becomes a :class:`StepError` in
``ParsedAction.errors`` so the environment can answer with an error observation.

Formats:

* Hermes / Qwen (default): ``<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>``,
  several per message allowed.
* JSON function-call objects: ``{"name": ..., "arguments": {...}}``, OpenAI's
  ``{"type": "function", "function": {"name": ..., "arguments": "<json string>"}}``,
  ``{"tool_calls": [...]}`` or a JSON list of such objects.
* The final answer: ``<answer>...</answer>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlvr.errors import ConfigError, ErrorKind, StepError, did_you_mean

__all__ = [
    "ToolCall",
    "ParsedAction",
    "ToolCallParser",
    "HermesParser",
    "JSONParser",
    "get_parser",
    "extract_answer",
]

_MAX_CALL_CHARS = 200_000  # a single call's JSON above this is refused rather than decoded
_MAX_JSON_STARTS = 64  # bounded scan for bare JSON objects in free text
_SNIPPET = 120

_TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FENCE_RE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One parsed call: the tool's name and its decoded arguments."""

    name: str
    arguments: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


@dataclass(slots=True)
class ParsedAction:
    """What a parser read from one assistant message."""

    calls: list[ToolCall] = field(default_factory=list)
    answer: str | None = None
    errors: list[StepError] = field(default_factory=list)


@runtime_checkable
class ToolCallParser(Protocol):
    """Anything with ``parse(text) -> ParsedAction`` can be passed as ``parser=`` to an env."""

    def parse(self, text: str) -> ParsedAction: ...


def _snippet(s: str) -> str:
    s = s.strip()
    return s if len(s) <= _SNIPPET else s[:_SNIPPET] + "…"


def extract_answer(text: str) -> tuple[str | None, StepError | None]:
    """Return the content of the first ``<answer>…</answer>`` block (stripped), or an error for an unclosed tag."""
    if "<answer>" not in text:
        return None, None
    m = _ANSWER_RE.search(text)
    if m is None:
        return None, StepError(
            ErrorKind.PARSE,
            "Found <answer> without a closing </answer>. Write the final answer as <answer>your answer</answer>.",
        )
    return m.group(1).strip(), None


def _loads(raw: str) -> tuple[Any, str | None]:
    """json.loads that reports failures as text instead of raising."""
    if len(raw) > _MAX_CALL_CHARS:
        return None, f"the call is {len(raw)} characters long; at most {_MAX_CALL_CHARS} are accepted"
    try:
        return json.loads(raw), None
    except json.JSONDecodeError as e:
        return None, f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    except (RecursionError, ValueError) as e:  # absurdly deep nesting, bad surrogates
        return None, f"invalid JSON ({type(e).__name__})"


def _call_from_obj(obj: Any) -> tuple[list[ToolCall], str | None]:
    """Read one call (or a list of calls) from a decoded JSON value."""
    if isinstance(obj, list):
        calls: list[ToolCall] = []
        for item in obj:
            got, err = _call_from_obj(item)
            if err:
                return [], err
            calls.extend(got)
        return calls, None
    if not isinstance(obj, dict):
        return [], f'expected a JSON object {{"name": ..., "arguments": {{...}}}}, got {type(obj).__name__}'
    if "tool_calls" in obj and isinstance(obj["tool_calls"], list):
        return _call_from_obj(obj["tool_calls"])
    if isinstance(obj.get("function"), dict):  # OpenAI {"type": "function", "function": {...}}
        obj = obj["function"]
    elif isinstance(obj.get("function_call"), dict):
        obj = obj["function_call"]
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return [], 'the call has no "name" string; expected {"name": "tool_name", "arguments": {...}}'
    args: Any = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # OpenAI encodes arguments as a JSON string
        args, err = _loads(args) if args.strip() else ({}, None)
        if err:
            return [], f'"arguments" of {name!r} is a string that is not a JSON object: {err}'
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return [], f'"arguments" of {name!r} must be a JSON object, got {type(args).__name__}'
    return [ToolCall(name.strip(), args)], None


def _strip_fence(s: str) -> str:
    s = s.strip()
    m = _FENCE_RE.match(s)
    return m.group(1) if m else s


def _bare_json_calls(text: str) -> list[ToolCall]:
    """Find call-shaped JSON objects in free text (bounded scan; non-call JSON is ignored)."""
    decoder = json.JSONDecoder()
    calls: list[ToolCall] = []
    pos, attempts = 0, 0
    while attempts < _MAX_JSON_STARTS:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            break
        i = min(starts)
        attempts += 1
        try:
            obj, end = decoder.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError, ValueError):
            pos = i + 1
            continue
        got, err = _call_from_obj(obj)
        if not err and got:
            calls.extend(got)
        pos = end
    return calls


class HermesParser:
    """Hermes / Qwen ``<tool_call>{json}</tool_call>`` blocks, several per message.

    Args:
        json_fallback: when the message has no ``<tool_call>`` tag, also accept bare JSON
            function-call objects (see :class:`JSONParser`).
    """

    name = "hermes"

    def __init__(self, json_fallback: bool = True) -> None:
        self.json_fallback = json_fallback

    def parse(self, text: str) -> ParsedAction:
        out = ParsedAction()
        # tag-like text inside a call's JSON (e.g. an argument "<answer>") is data, not an answer
        out.answer, err = extract_answer(_TOOL_CALL_RE.sub(" ", text) if "<tool_call>" in text else text)
        if err:
            out.errors.append(err)
        if "<tool_call>" not in text:
            if "</tool_call>" in text:
                out.errors.append(StepError(ErrorKind.PARSE, "Found </tool_call> without an opening <tool_call>."))
            elif self.json_fallback and out.answer is None:
                out.calls = _bare_json_calls(text)
            return out
        for m in _TOOL_CALL_RE.finditer(text):
            body = m.group(1)
            if "<tool_call>" in body:
                out.errors.append(
                    StepError(ErrorKind.PARSE, "Nested <tool_call> tags: close each call with </tool_call> before the next.")
                )
                continue
            obj, err = _loads(_strip_fence(body))
            if err is None:
                calls, err = _call_from_obj(obj)
                out.calls.extend(calls)
            if err:
                out.errors.append(StepError(ErrorKind.PARSE, f"Could not read tool call {_snippet(body)!r}: {err}."))
        opened, closed = text.count("<tool_call>"), text.count("</tool_call>")
        if opened > closed:
            out.errors.append(
                StepError(
                    ErrorKind.PARSE,
                    f"{opened - closed} <tool_call> tag(s) were never closed; write "
                    '<tool_call>{"name": ..., "arguments": {...}}</tool_call>.',
                )
            )
        return out


class JSONParser:
    """Bare JSON function-call objects anywhere in the message (and ``<answer>`` tags)."""

    name = "json"

    def parse(self, text: str) -> ParsedAction:
        out = ParsedAction()
        out.answer, err = extract_answer(text)
        if err:
            out.errors.append(err)
        if out.answer is None:
            stripped = _strip_fence(text)
            if stripped[:1] in "{[":
                obj, jerr = _loads(stripped)
                if jerr is None:
                    out.calls, jerr = _call_from_obj(obj)
                if jerr:
                    out.errors.append(StepError(ErrorKind.PARSE, f"Could not read tool call: {jerr}."))
            else:
                out.calls = _bare_json_calls(text)
        return out


_PARSERS: dict[str, type] = {"hermes": HermesParser, "json": JSONParser}


def get_parser(parser: str | ToolCallParser) -> ToolCallParser:
    """Resolve ``"hermes"`` / ``"json"`` or pass through an object with a ``parse`` method."""
    if isinstance(parser, str):
        if parser not in _PARSERS:
            raise ConfigError(
                f"unknown parser {parser!r}{did_you_mean(parser, _PARSERS)}; expected one of {sorted(_PARSERS)} "
                "or an object with a parse(text) -> ParsedAction method"
            )
        return _PARSERS[parser]()
    if not isinstance(parser, ToolCallParser):
        raise ConfigError(f"parser must be a name or have parse(text) -> ParsedAction, got {type(parser).__name__}")
    return parser
