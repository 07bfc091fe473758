"""The task format shared by every tool-calling source (BFCL, synthetic, FTRL / ToolHop JSON).

A :class:`ToolTask` is one or more user *requests* answered with tools. Each request carries the
messages that open it, its gold calls (grouped in *steps*: the calls of one step may run in one
turn; a later step may need an earlier step's result) and the text the oracle answers with. The
tools are OpenAI-style function specs; a *backend* builds their Python callables afresh for every
episode (:class:`Runtime`), so tools may keep per-episode state.

How a request is judged (:class:`OutcomeKind`):

* ``"state"``: executable check. The gold calls are replayed on a second runtime; the request
  passes when both runtimes end in the same state (:meth:`Runtime.state`) and every gold result
  appears among the results of the calls made so far (BFCL multi-turn).
* ``"ast"``: the calls of the request match the gold calls by BFCL's AST rules (names, required
  parameters, allowed values, count); nothing is executed against a real backend.
* ``"answer"``: the final answer text matches ``ToolTask.answer`` (``answer_metric``: exact match or
  word F1).

A request with no gold calls passes only when no call is made in it (BFCL's irrelevance rule).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from rlvr.errors import ConfigError
from rlvr.rewards.matchtir import GoldCall

__all__ = [
    "AnswerMetric",
    "FunctionRuntime",
    "OutcomeKind",
    "Request",
    "Runtime",
    "ToolTask",
    "json_roundtrip",
    "oracle_text",
]

OutcomeKind = Literal["state", "ast", "answer"]
AnswerMetric = Literal["em", "f1"]
_OUTCOMES = ("state", "ast", "answer")
_METRICS = ("em", "f1")


class Runtime(Protocol):
    """The executable side of one episode: the callables and, for stateful tools, a comparable state."""

    def functions(self) -> Mapping[str, Callable[..., Any]]:
        """Tool name -> callable (called as ``fn(**arguments)``)."""
        ...

    def state(self) -> Any:
        """A value compared with ``==`` against the gold runtime's state (``None`` when stateless)."""
        ...


@dataclass
class FunctionRuntime:
    """A runtime made of plain callables (stateless, or keeping state in closures)."""

    fns: Mapping[str, Callable[..., Any]]
    state_fn: Callable[[], Any] | None = None

    def functions(self) -> Mapping[str, Callable[..., Any]]:
        return self.fns

    def state(self) -> Any:
        return self.state_fn() if self.state_fn else None


def json_roundtrip(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists); raises ConfigError if not JSON-encodable."""
    try:
        return json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"gold value {value!r} is not JSON-encodable: {e}") from e


@dataclass(frozen=True)
class Request:
    """One user request inside a task.

    Args:
        messages: the chat messages that open the request (``user`` / ``assistant`` history); may be
            empty, for example when the request only makes new functions available.
        steps: gold calls grouped in steps (each a tuple of :class:`~rlvr.rewards.matchtir.GoldCall`).
        new_functions: function specs that become available when this request opens.
        answer: what the oracle writes inside ``<answer>`` to close the request.
    """

    messages: tuple[Mapping[str, Any], ...] = ()
    steps: tuple[tuple[GoldCall, ...], ...] = ()
    new_functions: tuple[Mapping[str, Any], ...] = ()
    answer: str | None = None

    @property
    def gold(self) -> tuple[GoldCall, ...]:
        """All gold calls of the request, in order."""
        return tuple(c for step in self.steps for c in step)


def _check_spec(spec: Mapping[str, Any], where: str) -> None:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"{where}: a function spec needs a 'name' string, got {spec!r}")
    params = spec.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(params, Mapping) or params.get("type") != "object":
        raise ConfigError(f"{where}: function {spec['name']!r} needs 'parameters' of JSON-schema type 'object'")


@dataclass(frozen=True)
class ToolTask:
    """One tool-calling task.

    Args:
        task_id: stable identifier (recorded with every trajectory).
        source: where it comes from (``"bfcl"``, ``"synthetic"``, ``"ftrl"``, ...).
        category: sub-collection (for example ``"multi_turn_base"``).
        functions: OpenAI-style function specs ``{"name", "description", "parameters"}`` available
            from the start (``parameters`` is a JSON schema of type object).
        requests: the user requests, in order (at least one).
        backend: zero-argument factory of a fresh :class:`Runtime`, called once per episode (and once
            more for the gold replay of ``"state"`` tasks). Functions missing from the runtime are
            answered with a notice that the call was recorded (for non-executable benchmarks).
        outcome: how a request is judged (see the module docstring).
        answer: the ground-truth final answer (aliases allowed) for ``outcome="answer"``.
        answer_metric: ``"em"`` (normalised exact match) or ``"f1"`` (word F1) for answers.
        instructions: task-specific text added to the system prompt.
        meta: anything else (for example BFCL's parameter types, used by the AST check).
    """

    task_id: str
    source: str
    category: str
    functions: tuple[Mapping[str, Any], ...]
    requests: tuple[Request, ...]
    backend: Callable[[], Runtime]
    outcome: OutcomeKind = "answer"
    answer: str | tuple[str, ...] | None = None
    answer_metric: AnswerMetric = "em"
    instructions: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in _OUTCOMES:
            raise ConfigError(f"task {self.task_id!r}: outcome must be one of {list(_OUTCOMES)}, got {self.outcome!r}")
        if self.answer_metric not in _METRICS:
            raise ConfigError(f"task {self.task_id!r}: answer_metric must be one of {list(_METRICS)}, got {self.answer_metric!r}")
        if not self.requests:
            raise ConfigError(f"task {self.task_id!r} has no requests; give at least one Request")
        if self.outcome == "answer" and self.answer is None:
            raise ConfigError(f"task {self.task_id!r}: outcome='answer' needs a ground-truth answer")
        names: set[str] = set()
        for spec in list(self.functions) + [s for r in self.requests for s in r.new_functions]:
            _check_spec(spec, f"task {self.task_id!r}")
            if spec["name"] in names:
                raise ConfigError(f"task {self.task_id!r}: function {spec['name']!r} is defined twice")
            names.add(spec["name"])

    @property
    def gold(self) -> tuple[GoldCall, ...]:
        """Every gold call of every request, in order."""
        return tuple(c for r in self.requests for c in r.gold)

    @property
    def answers(self) -> list[str]:
        """The ground-truth answer and its aliases as a list (empty when there is none)."""
        if self.answer is None:
            return []
        return [self.answer] if isinstance(self.answer, str) else list(self.answer)

    def with_backend(self, backend: Callable[[], Runtime]) -> ToolTask:
        """A copy of the task with another backend (for example a test double)."""
        return replace(self, backend=backend)


def oracle_text(calls: tuple[GoldCall, ...] | list[GoldCall]) -> str:
    """The Hermes-format action that makes ``calls`` (one ``<tool_call>`` block each)."""
    return "\n".join(
        "<tool_call>\n" + json.dumps(c.to_dict(), ensure_ascii=False) + "\n</tool_call>" for c in calls
    )
