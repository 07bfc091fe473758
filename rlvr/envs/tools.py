"""Tools: OpenAI-style JSON-schema function specs executed as Python callables.

A :class:`ToolSet` validates a parsed call against the tool's schema, runs it under a wall-clock
limit and turns every failure (unknown tool, bad arguments, exception, timeout, infrastructure) into
a :class:`ToolResult` carrying a typed :class:`~rlvr.errors.StepError`; nothing raises into the env.

State changes and late calls: a call that times out is abandoned, but its thread cannot be killed and
may still finish later. So a tool that changes its environment's state should not change it from the
tool function: it returns a :class:`ToolOutput` whose ``apply`` callback makes the change, and
:meth:`ToolSet.execute` calls ``apply`` on the caller's thread (the env's ``step``) only for a call that
finished in time. A late call's ``apply`` is never run, so it has no effect on the environment.
A tool that raises :class:`~rlvr.errors.InfrastructureError` (a server or sandbox it needs failed)
gets an error of kind :attr:`~rlvr.errors.ErrorKind.INFRASTRUCTURE`, which the env does not
penalise (see :class:`~rlvr.envs.core.AgentEnv`).
"""

from __future__ import annotations

import inspect
import json
import os
import queue
import threading
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from rlvr.envs.parsers import ToolCall
from rlvr.errors import ConfigError, ErrorKind, InfrastructureError, StepError, did_you_mean

__all__ = ["Tool", "tool", "ToolSet", "ToolResult", "ToolOutput", "truncate_text"]


def truncate_text(text: str, max_chars: int | None) -> str:
    """Shorten ``text`` to ``max_chars`` characters (marker included, once ``max_chars`` exceeds the marker),
    ending with a visible marker that says how much was cut."""
    if max_chars is None or len(text) <= max_chars:
        return text
    marker = f"\n…[truncated {len(text) - max_chars} of {len(text)} characters]"
    return text[: max(0, max_chars - len(marker))] + marker


@dataclass(slots=True)
class Tool:
    """A callable the model may invoke.

    Args:
        name: the name the model writes in its call.
        description: one or two sentences the model reads in the system prompt.
        parameters: JSON schema (``{"type": "object", "properties": ..., "required": [...]}``).
        fn: called as ``fn(**arguments)`` after validation; its return value is sent back as text
            (strings as is, other values as JSON).
        timeout_s: wall-clock limit for one call; ``None`` uses the environment's ``tool_timeout_s``.
        inline: run in the caller's thread with no time limit: for trusted, fast, pure functions
            (saves the thread hand-off, ~5-10 us per call).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    timeout_s: float | None = None
    inline: bool = False
    _validator: Draft202012Validator = field(init=False, repr=False)
    _fast_check: Callable[[dict[str, Any]], bool] | None = field(init=False, repr=False)
    _schema_json: tuple[Any, ...] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"tool name must be a non-empty string, got {self.name!r}")
        try:
            Draft202012Validator.check_schema(self.parameters)
        except SchemaError as e:
            raise ConfigError(f"tool {self.name!r}: parameters is not a valid JSON schema: {e.message}") from e
        if self.parameters.get("type") != "object":
            raise ConfigError(f"tool {self.name!r}: parameters must be a JSON schema of type 'object'")
        self._validator = Draft202012Validator(self.parameters)
        self._fast_check = _compile_fast_check(self.parameters)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the declared fields only; the compiled validators are rebuilt on load (they hold closures)."""
        return (Tool, (self.name, self.description, self.parameters, self.fn, self.timeout_s, self.inline))

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``{"type": "function", "function": {...}}`` spec."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def schema_json(self) -> str:
        """:meth:`schema` as one line of JSON (non-ASCII characters as they are), as system prompts show it.

        Encoded once per name, description and ``parameters`` object (a reset renders it every episode);
        like the validator, it reads ``parameters`` as it was when given."""
        c = self._schema_json
        if c is None or c[0] is not self.name or c[1] is not self.description or c[2] is not self.parameters:
            c = self._schema_json = (self.name, self.description, self.parameters,
                                     json.dumps(self.schema(), ensure_ascii=False))
        return c[3]

    def validate(self, arguments: dict[str, Any]) -> str | None:
        """Return ``None`` when the arguments fit the schema, else a message for the model."""
        if self._fast_check is not None and self._fast_check(arguments):
            return None
        errors = sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.path))
        if not errors:
            return None
        parts = []
        for e in errors[:3]:
            where = "/".join(str(p) for p in e.path)
            parts.append(f"argument {where!r}: {e.message}" if where else e.message)
        props = self.parameters.get("properties", {})
        expected = ", ".join(f"{k}: {v.get('type', 'any')}" for k, v in props.items())
        req = self.parameters.get("required", [])
        return (
            f"Invalid arguments for tool {self.name!r}: " + "; ".join(parts)
            + f". Expected {{{expected}}}" + (f" with required {req}" if req else "") + "."
        )


_FAST_TYPES: dict[str, frozenset[type]] = {  # the Python types json.loads gives for each JSON type
    "string": frozenset({str}),
    "integer": frozenset({int}),
    "number": frozenset({int, float}),
    "boolean": frozenset({bool}),
    "null": frozenset({type(None)}),
    "array": frozenset({list}),
    "object": frozenset({dict}),
}
_SCALARS = frozenset({str, int, float, bool, type(None)})
_ANNOTATIONS = {"description", "title", "default", "examples"}


def _compile_fast_check(schema: dict[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    """A quick validity test for the common flat schema (typed properties, enums, required, additionalProperties).

    It returns True only when the arguments certainly fit; anything else (a failure, or keywords it does
    not know) goes to the full JSON-schema validator, which also writes the error message. ``None`` when
    the schema uses keywords outside that subset. Values are tested by their exact type (a subclass, or
    an integral float for ``integer``, goes to the full validator), and an enum member matches only a
    scalar of its own type (JSON's ``1`` is not ``true``, though Python's ``1 == True``).
    """
    if set(schema) - {"type", "properties", "required", "additionalProperties"} - _ANNOTATIONS:
        return None
    props = schema.get("properties", {})
    closed = schema.get("additionalProperties", True) is False
    if not isinstance(schema.get("additionalProperties", True), bool):
        return None
    specs: dict[str, tuple[frozenset[type] | None, frozenset[tuple[type, Any]] | None]] = {}
    for name, spec in props.items():
        if not isinstance(spec, dict) or set(spec) - {"type", "enum"} - _ANNOTATIONS:
            return None
        t = spec.get("type")
        types = [t] if isinstance(t, str) else t
        if types is not None and (not isinstance(types, list) or any(x not in _FAST_TYPES for x in types)):
            return None
        enum = spec.get("enum")
        if enum is not None and not isinstance(enum, list):
            return None
        accepted = frozenset().union(*(_FAST_TYPES[x] for x in types)) if types else None
        members = None if enum is None else frozenset((type(e), e) for e in enum if type(e) in _SCALARS)
        specs[name] = (accepted, members)
    required = tuple(schema.get("required", ()))

    def check(arguments: dict[str, Any]) -> bool:
        for r in required:
            if r not in arguments:
                return False
        for k, v in arguments.items():
            spec = specs.get(k)
            if spec is None:
                if closed:
                    return False
                continue
            accepted, members = spec
            if accepted is not None and type(v) not in accepted:
                return False
            if members is not None and (type(v) not in _SCALARS or (type(v), v) not in members):
                return False
        return True

    return check


_PY_TO_JSON = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def _json_type(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _json_type(args[0])
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(annotation))}
    if origin in (list, tuple):
        (item,) = typing.get_args(annotation)[:1] or (Any,)
        return {"type": "array", "items": _json_type(item)} if item is not Any else {"type": "array"}
    if origin is dict:
        return {"type": "object"}
    if annotation in _PY_TO_JSON:
        return {"type": _PY_TO_JSON[annotation]}
    return {}


def tool(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None,
    timeout_s: float | None = None,
) -> Any:
    """Decorator building a :class:`Tool` from a typed function; its docstring's first paragraph is the description.

    Parameter descriptions come from ``Args:`` lines of the docstring (``name: text``).
    """

    def build(f: Callable[..., Any]) -> Tool:
        hints = typing.get_type_hints(f)
        doc = inspect.getdoc(f) or ""
        summary = doc.split("\n\n")[0].replace("\n", " ").strip()
        arg_docs: dict[str, str] = {}
        in_args = False
        for line in doc.splitlines():
            s = line.strip()
            if s.lower() in ("args:", "arguments:", "parameters:"):
                in_args = True
                continue
            if in_args and ":" in s:
                k, v = s.split(":", 1)
                arg_docs[k.split("(")[0].strip()] = v.strip()
        props: dict[str, Any] = {}
        required: list[str] = []
        for p in inspect.signature(f).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            spec = _json_type(hints.get(p.name, Any))
            if p.name in arg_docs:
                spec["description"] = arg_docs[p.name]
            props[p.name] = spec
            if p.default is inspect.Parameter.empty:
                required.append(p.name)
        params = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
        return Tool(name or f.__name__, description or summary, params, f, timeout_s)

    return build(fn) if fn is not None else build


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What a stateful tool returns: its reply, and the state change to make only if it finished in time.

    Args:
        content: the reply sent to the model (strings as is, other values as JSON).
        apply: called without arguments on the environment's thread (inside :meth:`ToolSet.execute`)
            once the call has returned within its time limit; never called for a call that timed out.
        value: the raw value given to reward hooks as :attr:`ToolResult.value` (default: ``content``).
    """

    content: Any
    apply: Callable[[], None] | None = None
    value: Any = None


@dataclass(slots=True)
class ToolResult:
    """Outcome of one call: the text sent back to the model, and a typed error when it failed."""

    call: ToolCall
    content: str
    error: StepError | None = None
    value: Any = None  # the raw return value, for reward functions (None on error)


class _Worker(threading.Thread):
    """A daemon thread that runs one call at a time; abandoned (never reused) after a timeout, and
    exits once the abandoned call returns (its result is dropped)."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="rlvr-tool-worker")
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.abandoned = False
        self.start()

    def run(self) -> None:
        while True:
            fn, kwargs, box, done = self.inbox.get()
            try:
                box.append((True, fn(**kwargs)))
            except BaseException as e:  # noqa: BLE001 - reported to the model, not swallowed
                box.append((False, e))
            done.set()
            if self.abandoned:
                return


class _Runner:
    """Runs calls under a deadline on reusable daemon threads (a looping tool cannot block exit)."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def __call__(self, fn: Callable[..., Any], kwargs: dict[str, Any], timeout: float) -> tuple[bool, Any]:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker()
        box: list = []
        done = threading.Event()
        worker.inbox.put((fn, kwargs, box, done))
        if not done.wait(timeout):
            worker.abandoned = True
            if done.is_set():  # finished between the wait and the flag: the thread may already wait again
                worker.inbox.put((_noop, {}, [], threading.Event()))
            raise TimeoutError
        with self._lock:
            self._idle.append(worker)
        return box[0]


def _noop() -> None:
    return None


_RUNNER = _Runner()


def _forget_workers_after_fork() -> None:
    """A forked child (a subprocess vector env, a multiprocessing worker) has none of its parent's threads:
    drop the parent's idle workers, which would never pick up a call, and its lock, which may be held."""
    _RUNNER._idle = []
    _RUNNER._lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_workers_after_fork)


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


class ToolSet:
    """An ordered collection of tools with validation and bounded execution.

    Args:
        tools: the tools; names must be unique.
        timeout_s: default wall-clock limit per call (``None`` runs calls inline with no limit,
            which is faster but cannot stop a tool that never returns).
        max_output_chars: tool output above this many characters is truncated with a visible marker.
    """

    def __init__(
        self, tools: Iterable[Tool] = (), *, timeout_s: float | None = 30.0, max_output_chars: int | None = None
    ) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)
        self.timeout_s = timeout_s
        self.max_output_chars = max_output_chars

    def add(self, t: Tool) -> None:
        if not isinstance(t, Tool):
            raise ConfigError(f"expected a Tool (use rlvr.envs.tools.tool to build one), got {type(t).__name__}")
        if t.name in self._tools:
            raise ConfigError(f"duplicate tool name {t.name!r}")
        self._tools[t.name] = t

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __iter__(self):
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        """OpenAI-style specs of every tool, in order."""
        return [t.schema() for t in self._tools.values()]

    def check(self, call: ToolCall) -> StepError | None:
        """Validate a call without running it."""
        t = self._tools.get(call.name)
        if t is None:
            return StepError(
                ErrorKind.UNKNOWN_TOOL,
                f"Unknown tool {call.name!r}{did_you_mean(call.name, self._tools)}. Available tools: {', '.join(self._tools) or 'none'}.",
            )
        msg = t.validate(call.arguments)
        return StepError(ErrorKind.INVALID_ARGUMENTS, msg) if msg else None

    def execute(self, call: ToolCall) -> ToolResult:
        """Validate and run one call; failures come back as a ToolResult with ``error`` set."""
        t = self._tools.get(call.name)
        if t is None or t._fast_check is None or not t._fast_check(call.arguments):  # not certainly valid
            err = self.check(call)
            if err:
                return ToolResult(call, f"Error: {err.message}", err)
            t = self._tools[call.name]
        timeout = t.timeout_s if t.timeout_s is not None else self.timeout_s
        try:
            if timeout is None or t.inline:
                try:
                    ok, value = True, t.fn(**call.arguments)
                except Exception as e:  # noqa: BLE001 - becomes an error observation with its cause
                    ok, value = False, e
            else:
                ok, value = _RUNNER(t.fn, call.arguments, timeout)
        except TimeoutError:
            err = StepError(
                ErrorKind.TOOL_TIMEOUT,
                f"Tool {call.name!r} did not finish within {timeout:g} s and was abandoned. Try simpler arguments.",
            )
            return ToolResult(call, f"Error: {err.message}", err)
        if not ok:
            if isinstance(value, (KeyboardInterrupt, SystemExit)):
                raise value
            if isinstance(value, InfrastructureError):
                err = StepError(
                    ErrorKind.INFRASTRUCTURE,
                    f"Tool {call.name!r} could not run because a service it needs failed (not your fault): "
                    f"{type(value).__name__}: {value}",
                )
                return ToolResult(call, f"Error: {err.message}", err)
            err = StepError(
                ErrorKind.TOOL_EXCEPTION, f"Tool {call.name!r} failed: {type(value).__name__}: {value}"
            )
            return ToolResult(call, f"Error: {err.message}", err)
        if isinstance(value, ToolOutput):  # finished in time: make its state change here, on our thread
            if value.apply is not None:
                value.apply()
            raw = value.content if value.value is None else value.value
            return ToolResult(call, truncate_text(_to_text(value.content), self.max_output_chars), None, raw)
        text = value if type(value) is str else _to_text(value)
        limit = self.max_output_chars  # truncate_text's own test, without its call for a text that fits
        return ToolResult(call, text if limit is None or len(text) <= limit else truncate_text(text, limit), None, value)
