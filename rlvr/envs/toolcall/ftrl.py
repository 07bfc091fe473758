"""A loader for FTRL- and ToolHop-style JSON: messages or a question, tool specs, tool code, gold calls, answer.

A file holds a JSON list of records or one record per line (JSON Lines). Accepted fields (values
that are JSON strings, as in FTRL's parquet columns, are decoded first):

* the prompt: ``messages`` (chat messages; ``system`` ones join the instructions) or ``question``;
* ``tools``: OpenAI tool specs (``{"type": "function", "function": {...}}`` or bare function specs),
  as a list or a ``{name: spec}`` mapping (ToolHop);
* the code: ``codes`` (``{name: source}``, FTRL) or ``functions`` (a list of sources, ToolHop);
  every tool must have code;
* the gold calls: ``gold_steps`` (a list of steps, each a list of calls), else ``ground_truth`` /
  ``gold_calls`` / ``calls`` (a list of calls ``{"name", "parameters" | "arguments"}``, one step each);
  optional: without them the oracle answers directly and turn matching has nothing to match;
* ``answer`` (a string or a list of aliases), ``id`` (default: file name and line), ``data_source``.

Tool code is executed: loading it requires ``trust_code=True``.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlvr._jsonl import read_json_records
from rlvr.envs.toolcall.code import CodeBackend
from rlvr.envs.toolcall.task import AnswerMetric, Request, ToolTask, json_roundtrip
from rlvr.errors import ConfigError
from rlvr.rewards.matchtir import GoldCall

__all__ = ["load_json_tasks", "file_hash", "task_from_record"]

_DEFAULT_INSTRUCTIONS = "Answer the question. Call the given tools to find what you need; do not guess."


def file_hash(path: str | Path) -> str:
    """sha256 of a file's bytes (first 16 hex digits)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _decoded(value: Any, field: str, where: str) -> Any:
    if isinstance(value, str) and field != "answer" and value.strip()[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: field {field!r} is a string but not valid JSON: {e.msg}") from e
    return value


def _function(spec: Any, where: str) -> dict[str, Any]:
    if isinstance(spec, Mapping) and isinstance(spec.get("function"), Mapping):
        spec = spec["function"]
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"{where}: each tool must be a function spec with a 'name', got {str(spec)[:120]!r}")
    params = dict(spec.get("parameters") or {"type": "object", "properties": {}})
    if params.get("type") in (None, "dict"):
        params["type"] = "object"
    return {"name": spec["name"], "description": str(spec.get("description", "")), "parameters": params}


def _tools(record: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    raw = _decoded(record.get("tools"), "tools", where)
    if raw is None:
        raise ConfigError(f"{where}: the record has no 'tools'")
    if isinstance(raw, Mapping):
        raw = [dict(v, name=v.get("name", k)) if isinstance(v, Mapping) else v for k, v in raw.items()]
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: 'tools' must be a list or a mapping of function specs, got {type(raw).__name__}")
    return [_function(s, where) for s in raw]


def _defined_name(source: str) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return names[-1] if names else None


def _codes(record: Mapping[str, Any], names: Sequence[str], where: str) -> dict[str, str]:
    codes = _decoded(record.get("codes"), "codes", where)
    if codes is None:
        functions = _decoded(record.get("functions"), "functions", where)
        if isinstance(functions, Mapping):
            codes = dict(functions)
        elif isinstance(functions, list):
            codes = {}
            for src in functions:
                name = _defined_name(src) if isinstance(src, str) else None
                if name is None:
                    raise ConfigError(f"{where}: an entry of 'functions' is not Python source defining a function")
                codes[name] = src
    if not isinstance(codes, Mapping):
        raise ConfigError(f"{where}: the record needs tool code as 'codes' {{name: source}} or 'functions' [source, ...]")
    missing = [n for n in names if n not in codes]
    if missing:
        raise ConfigError(f"{where}: no code for tools {missing}; every tool in 'tools' needs code")
    return {n: codes[n] for n in names}


def _call(obj: Any, where: str) -> GoldCall:
    if not isinstance(obj, Mapping) or not isinstance(obj.get("name"), str):
        raise ConfigError(f"{where}: a gold call must be {{'name': ..., 'parameters': {{...}}}}, got {str(obj)[:120]!r}")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        args = _decoded(args, "arguments", where)
    if not isinstance(args, Mapping):
        raise ConfigError(f"{where}: the arguments of gold call {obj['name']!r} must be an object")
    return GoldCall(obj["name"], json_roundtrip(dict(args)))


def _steps(record: Mapping[str, Any], where: str) -> tuple[tuple[GoldCall, ...], ...]:
    steps = _decoded(record.get("gold_steps"), "gold_steps", where)
    if steps is not None:
        if not isinstance(steps, list) or not all(isinstance(s, list) for s in steps):
            raise ConfigError(f"{where}: 'gold_steps' must be a list of lists of calls")
        return tuple(tuple(_call(c, where) for c in s) for s in steps if s)
    for key in ("ground_truth", "gold_calls", "calls"):
        calls = _decoded(record.get(key), key, where)
        if calls is not None:
            if not isinstance(calls, list):
                raise ConfigError(f"{where}: {key!r} must be a list of calls")
            return tuple((_call(c, where),) for c in calls)
    return ()


def task_from_record(
    record: Mapping[str, Any], *, where: str = "record", trust_code: bool = False, answer_metric: AnswerMetric = "f1"
) -> ToolTask:
    """One :class:`ToolTask` from an FTRL / ToolHop-style record (see the module docstring)."""
    if not isinstance(record, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if not trust_code:
        raise ConfigError(
            f"{where}: FTRL / ToolHop records carry Python tool code that runs in this process; "
            "pass trust_code=True if you trust the file"
        )
    functions = _tools(record, where)
    codes = _codes(record, [f["name"] for f in functions], where)
    messages = _decoded(record.get("messages"), "messages", where)
    instructions = _DEFAULT_INSTRUCTIONS
    if messages is not None:
        if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
            raise ConfigError(f"{where}: 'messages' must be a list of chat messages")
        system = "\n\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
        instructions = system or instructions
        chat = tuple({"role": m["role"], "content": str(m.get("content", ""))} for m in messages if m.get("role") in ("user", "assistant"))
    elif isinstance(record.get("question"), str):
        chat = ({"role": "user", "content": record["question"]},)
    else:
        raise ConfigError(f"{where}: the record needs 'messages' or a 'question' string")
    if not chat:
        raise ConfigError(f"{where}: the record has no user message")
    answer = record.get("answer")
    if isinstance(answer, list):
        answer = tuple(str(a) for a in answer)
    elif answer is not None:
        answer = str(answer)
    if not answer:
        raise ConfigError(f"{where}: the record needs a non-empty 'answer'")
    first = answer if isinstance(answer, str) else answer[0]
    task_id = str(record.get("id", where))
    return ToolTask(
        task_id=task_id,
        source="json",
        category=str(record.get("data_source", "json")),
        functions=tuple(functions),
        requests=(Request(chat, _steps(record, where), (), first),),
        backend=CodeBackend.from_mapping(codes, label=task_id),
        outcome="answer",
        answer=answer,
        answer_metric=answer_metric,
        instructions=instructions,
    )


def load_json_tasks(
    path: str | Path, *, trust_code: bool = False, answer_metric: AnswerMetric = "f1"
) -> tuple[ToolTask, ...]:
    """Every record of a JSON (list) or JSON Lines file as a :class:`ToolTask`."""
    records = read_json_records(path, what="task")
    return tuple(task_from_record(r, where=w, trust_code=trust_code, answer_metric=answer_metric) for w, r in records)
