"""Parsers that turn an assistant message into tool calls and an optional final answer.

A parser never raises on model output: anything it cannot read becomes a :class:`StepError` in
``ParsedAction.errors`` so the environment can answer with an error observation. Tags are found by a
linear scan (any message parses in time proportional to its length), and a call whose strings hold a
lone UTF-16 surrogate (``"\\ud800"``) is a parse error, so every parsed call is valid Unicode.

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
from typing import Any, Iterator, Protocol, runtime_checkable

from rlvr.errors import ConfigError, ErrorKind, StepError, did_you_mean

__all__ = [
    "ToolCall",
    "json_values",
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

_TC_OPEN, _TC_CLOSE = "<tool_call>", "</tool_call>"
_ANS_OPEN, _ANS_CLOSE = "<answer>", "</answer>"
_FENCE = "```"
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # after json.loads pairs are joined: any surrogate left is lone
_SCAN = json.JSONDecoder().scan_once  # json.loads without its wrapper, for a value that fills the whole text


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One parsed call: the tool's name and its decoded arguments."""

    name: str
    arguments: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


_new_object = object.__new__
_set_name, _set_arguments = ToolCall.name.__set__, ToolCall.arguments.__set__  # type: ignore[attr-defined]


def _tool_call(name: str, arguments: dict[str, Any]) -> ToolCall:
    """``ToolCall(name, arguments)`` without the frozen ``__init__``'s two ``object.__setattr__`` lookups."""
    call = _new_object(ToolCall)
    _set_name(call, name)
    _set_arguments(call, arguments)
    return call


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


def _blocks(text: str, open_tag: str, close_tag: str) -> Iterator[tuple[int, int]]:
    """Spans ``(start, end)`` of the non-overlapping ``open_tag…close_tag`` blocks of ``text``, left to right.

    Each block closes at the first ``close_tag`` after its opening, as ``re.finditer`` finds
    ``open(.*?)close`` with DOTALL, but in linear time: the lazy regex rescans the rest of the text
    for every unclosed opening, so a message of repeated ``<tool_call>`` took quadratic time (1.5 s
    for 32 KB, hours for 2 MB).
    """
    pos = 0
    while True:
        i = text.find(open_tag, pos)
        if i < 0:
            return
        j = text.find(close_tag, i + len(open_tag))
        if j < 0:  # no close after this opening means none after any later one
            return
        pos = j + len(close_tag)
        yield i, pos


def extract_answer(text: str) -> tuple[str | None, StepError | None]:
    """Return the content of the first ``<answer>…</answer>`` block (stripped), or an error for an unclosed tag."""
    if _ANS_OPEN not in text:
        return None, None
    span = next(_blocks(text, _ANS_OPEN, _ANS_CLOSE), None)
    if span is None:
        return None, StepError(
            ErrorKind.PARSE,
            "Found <answer> without a closing </answer>. Write the final answer as <answer>your answer</answer>.",
        )
    return text[span[0] + len(_ANS_OPEN): span[1] - len(_ANS_CLOSE)].strip(), None


def _loads(raw: str) -> tuple[Any, str | None]:
    """json.loads that reports failures as text instead of raising."""
    if len(raw) > _MAX_CALL_CHARS:
        return None, f"the call is {len(raw)} characters long; at most {_MAX_CALL_CHARS} are accepted"
    try:  # the common case, a value with nothing around it, skips json.loads' whitespace and BOM handling
        obj, end = _SCAN(raw, 0)
        if end == len(raw):
            return obj, None
    except (StopIteration, RecursionError, ValueError):
        pass  # json.loads below decides, with its own message
    try:
        return json.loads(raw), None
    except json.JSONDecodeError as e:
        return None, f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    except (RecursionError, ValueError) as e:  # absurdly deep nesting, bad surrogates
        return None, f"invalid JSON ({type(e).__name__})"


def _call_from_obj(obj: Any, clean: bool = False) -> tuple[list[ToolCall], str | None]:
    """Read one call (or a list of calls) from a decoded JSON value.

    ``clean``: the value was decoded from JSON text that holds no surrogate and no ``\\u`` escape, so none
    of its strings can hold one, and they are not searched.
    """
    if isinstance(obj, list):
        calls: list[ToolCall] = []
        for item in obj:
            got, err = _call_from_obj(item, clean)
            if err:
                return [], err
            calls.extend(got)
        return calls, None
    if not isinstance(obj, dict):
        return [], f'expected a JSON object {{"name": ..., "arguments": {{...}}}}, got {type(obj).__name__}'
    if len(obj) == 2 and type(name := obj.get("name")) is str and type(args := obj.get("arguments")) is dict:
        # the usual {"name": ..., "arguments": {...}}: no other key, so none of the checks below applies
        name = name.strip()
        if name and (clean or not (_lone_surrogate(name) or _lone_surrogate(args))):
            return [ToolCall(name, args)], None
    if "tool_calls" in obj and isinstance(obj["tool_calls"], list):
        return _call_from_obj(obj["tool_calls"], clean)
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
    bad = None if clean else _lone_surrogate(name) or _lone_surrogate(args)
    if bad:
        return [], (f"the call holds the lone UTF-16 surrogate {bad!r}, which is not a character (it cannot be "
                    "encoded as UTF-8); write the character itself, or both halves of a surrogate pair")
    return [ToolCall(name.strip(), args)], None


def _lone_surrogate(value: Any) -> str | None:
    """The first unpaired surrogate in the strings (keys included) of a decoded JSON value, else ``None``.

    ``json.loads`` turns an escape such as ``"\\ud800"`` into a lone surrogate, which no UTF-8 writer,
    tokenizer or HTTP client accepts: passed on to tools and trajectories it crashed ``rlvr run``
    when the trajectory was written. The walk is iterative: decoded values can nest ~1000 deep.
    """
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            m = _SURROGATE.search(v)
            if m:
                return m.group()
        elif isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def _strip_fence(s: str) -> str:
    """The content of a Markdown code fence (```json … ```), else ``s``; stripped, in linear time."""
    s = s.strip()
    if len(s) < 2 * len(_FENCE) or not (s.startswith(_FENCE) and s.endswith(_FENCE)):
        return s
    inner = s[len(_FENCE): -len(_FENCE)]
    return (inner[4:] if inner.startswith("json") else inner).strip()


def _without_calls(text: str) -> str:
    """``text`` with every ``<tool_call>…</tool_call>`` block replaced by a space."""
    parts, pos = [], 0
    for start, end in _blocks(text, _TC_OPEN, _TC_CLOSE):
        parts += [text[pos:start], " "]
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def json_values(text: str, max_starts: int = _MAX_JSON_STARTS) -> Iterator[Any]:
    """The JSON values (objects or arrays) embedded in free text, left to right: a bounded scan that tries at
    most ``max_starts`` opening brackets and skips past each value it decodes."""
    decoder = json.JSONDecoder()
    pos, attempts = 0, 0
    while attempts < max_starts:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            return
        i = min(starts)
        attempts += 1
        try:
            obj, end = decoder.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError, ValueError):
            pos = i + 1
            continue
        yield obj
        pos = end


def _bare_json_calls(text: str) -> list[ToolCall]:
    """Find call-shaped JSON objects in free text (bounded scan; non-call JSON is ignored)."""
    calls: list[ToolCall] = []
    for obj in json_values(text):
        got, err = _call_from_obj(obj)
        if not err and got:
            calls.extend(got)
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
        out = ParsedAction([], None, [])
        # tag-like text inside a call's JSON (e.g. an argument "<answer>") is data, not an answer
        if _ANS_OPEN in text:
            out.answer, err = extract_answer(_without_calls(text) if _TC_OPEN in text else text)
            if err:
                out.errors.append(err)
        pos = text.find(_TC_OPEN)
        if pos < 0:
            if "</tool_call>" in text:
                out.errors.append(StepError(ErrorKind.PARSE, "Found </tool_call> without an opening <tool_call>."))
            elif self.json_fallback and out.answer is None:
                out.calls = _bare_json_calls(text)
            return out
        # the blocks of _blocks(text, _TC_OPEN, _TC_CLOSE), found inline: every step parses its action
        nested = False
        while (start := text.find(_TC_OPEN, pos)) >= 0:
            end = text.find(_TC_CLOSE, start + len(_TC_OPEN))
            if end < 0:
                break
            body, pos = text[start + len(_TC_OPEN): end], end + len(_TC_CLOSE)
            if _TC_OPEN in body:
                nested = True
                out.errors.append(
                    StepError(ErrorKind.PARSE, "Nested <tool_call> tags: close each call with </tool_call> before the next.")
                )
                continue
            raw = body.strip()
            if raw.startswith(_FENCE):
                raw = _strip_fence(raw)
            obj, err = _loads(raw)
            if err is None:
                # no surrogate can come out of text without one and without a \\u escape: one scan, not a walk
                clean = "\\u" not in raw and (raw.isascii() or _SURROGATE.search(raw) is None)
                if (clean and type(obj) is dict and len(obj) == 2 and type(name := obj.get("name")) is str
                        and type(args := obj.get("arguments")) is dict and (name := name.strip())):
                    out.calls.append(_tool_call(name, args))  # the usual call: what _call_from_obj returns for it
                    continue
                calls, err = _call_from_obj(obj, clean)
                out.calls.extend(calls)
            if err:
                out.errors.append(StepError(ErrorKind.PARSE, f"Could not read tool call {_snippet(body)!r}: {err}."))
        # every opening tag was a block's unless one sat inside a block or was left open after the last
        if (nested or start >= 0) and (opened := text.count(_TC_OPEN)) > (closed := text.count(_TC_CLOSE)):
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
