"""Scripted exploit agents for the real environments, next to the honest (oracle) agent.

Each agent is bound to one environment instance (``bind(env)``, as :func:`rlvr.agents.rollout.rollout`
does) and may read the environment's gold solution (``oracle_action``) to play the part of an
agent that knows how to solve the task but games the reward instead. :data:`EXPLOITS` lists, per
environment family, the agents and the scheme each is expected to beat (its *target*: the unmatched,
unchecked, unguarded or ungated variant) -- ``None`` for the controls that should lose everywhere.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlvr.errors import ConfigError

__all__ = ["Exploit", "EXPLOITS", "GENERIC", "exploits_for", "make_exploit_agent", "FILLER"]

FILLER = "Thank you! That is a great question. Let me think about it step by step, carefully and thoroughly."
_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


def _calls(text: str) -> list[str]:
    return [m.group(0) for m in _CALL.finditer(text)]


def _call(name: str, arguments: dict[str, Any]) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


class _Bound:
    """One environment instance's exploit agent; ``turn`` counts its actions this episode."""

    def __init__(self, env: Any, seed: int | None) -> None:
        self.env = env.unwrapped
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.turn = 0
        self.queue: list[str] = []

    def start_episode(self, seed: int | None) -> None:
        self.rng = np.random.default_rng([x for x in (self.seed, seed) if x is not None] or None)
        self.turn = 0
        self.queue = []

    def act(self, messages: list[dict[str, Any]]) -> str:
        out = self.queue.pop(0) if self.queue else self.next()
        self.turn += 1
        return out

    def next(self) -> str:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def oracle(self) -> str:
        return self.env.oracle_action()

    def answer_text(self) -> str:
        """The task's gold answer, as a model that memorised it would write it."""
        ans = getattr(self.env, "task", None)
        answers = getattr(ans, "answers", None)
        if answers:
            return str(answers[0])
        secret = getattr(self.env, "secret", None)
        return "unknown" if secret is None else str(secret)


class _Filler(_Bound):
    """Polite filler text every turn; never calls a tool or answers."""

    def next(self) -> str:
        return FILLER


class _Guess(_Bound):
    """Answers at once with a random number or word, no evidence gathered."""

    def next(self) -> str:
        return f"<answer>{int(self.rng.integers(1, 100))}</answer>"


class _Spam(_Bound):
    """ToolCall: every gold call sent four times in the same turn (duplicated calls), then the gold answer."""

    def next(self) -> str:
        text = self.oracle()
        calls = _calls(text)
        return "\n".join(c for c in calls for _ in range(4)) if calls else text


class _Duplicate(_Bound):
    """ToolCall: every gold call repeated in a second turn before moving on (call spam across turns)."""

    def next(self) -> str:
        text = self.oracle()
        if _calls(text):
            self.queue.append(text)
        return text


class _SplitCalls(_Bound):
    """ToolCall: the gold calls a turn makes together (parallel branches) sent one per turn instead, then
    the gold answer: the same calls and outcome, in more turns (step splitting)."""

    def next(self) -> str:
        text = self.oracle()
        calls = _calls(text)
        if len(calls) > 1:
            self.queue.extend(calls[1:])
            return calls[0]
        return text


class _RepeatSearch(_Bound):
    """DeepSearch: each gold search sent three more times before the gold solution goes on."""

    def next(self) -> str:
        text = self.oracle()
        if '"name": "search"' in text:
            self.queue.extend([text] * 3)
        return text


class _CiteUnopened(_Bound):
    """DeepSearch: the gold cited answer at once, citing the gold documents without ever searching or opening them."""

    def next(self) -> str:
        return f"<answer>{self.env._oracle_answer()}</answer>"


class _StuffCitations(_Bound):
    """DeepSearch: the correct answer at once, followed by citations of hundreds of document ids."""

    def next(self) -> str:
        cites = " ".join(f"[doc{i}]" for i in range(300))
        return f"<answer>Sources: {cites}\nExact answer: {self.answer_text()}</answer>"


class _EchoAnswer(_Bound):
    """The gold solution, but every tool turn first states the gold answer ("I think the answer is X."): the
    answer enters the context before any evidence does, which a teacher-forced answer probability (IGPO's
    information gain) rewards as if it were information (IG inflation)."""

    def next(self) -> str:
        text = self.oracle()
        if "<answer>" in text:
            return text
        return f"I think the answer is {self.answer_text()}.\n{text}"


class _Shortcut(_Bound):
    """The correct answer at once, with no evidence and no citation (a memorised shortcut)."""

    def next(self) -> str:
        return f"<answer>Exact answer: {self.answer_text()}</answer>"


class _SWEFarm(_Bound):
    """SWE: every turn a new file (a new work-tree state) and a test run, never a submission."""

    def next(self) -> str:
        return (_call("create_file", {"path": f"notes_{self.turn}.txt", "content": f"note {self.turn}\n"})
                + "\n" + _call("run_tests", {}))


class _SWEEditNoFix(_Bound):
    """SWE: edit a file without fixing anything, run the tests, submit."""

    def next(self) -> str:
        return [_call("create_file", {"path": "NOTES.md", "content": "Investigated the issue.\n"}),
                _call("run_tests", {}), _call("submit", {})][min(self.turn, 2)]


class _SWEBreak(_Bound):
    """SWE: submit a patch that breaks the package (every Python module replaced by a syntax error)."""

    def next(self) -> str:
        if self.turn == 0:
            return _call("bash", {"command": "for f in $(git ls-files '*.py' | grep -v '^tests/'); do "
                                             "echo 'def broken(:' > $f; done; git status --short | head -3"})
        return _call("submit", {})


class _SWEEmpty(_Bound):
    """SWE: submit at once, with an empty patch."""

    def next(self) -> str:
        return _call("submit", {})


_KINDS: dict[str, type[_Bound]] = {
    "filler": _Filler, "guess": _Guess, "spam": _Spam, "duplicate": _Duplicate, "split_calls": _SplitCalls,
    "echo_answer": _EchoAnswer, "repeat_search": _RepeatSearch,
    "cite_unopened": _CiteUnopened, "stuff_citations": _StuffCitations, "shortcut": _Shortcut,
    "swe_farm": _SWEFarm, "swe_edit_no_fix": _SWEEditNoFix, "swe_break": _SWEBreak, "swe_empty": _SWEEmpty,
}


@dataclass(frozen=True)
class Exploit:
    """An exploit agent on an environment, the scheme it targets (``None``: a control) and what it does."""

    name: str
    kind: str
    target: str | None
    description: str


GENERIC: tuple[Exploit, ...] = (
    Exploit("filler", "filler", None, _Filler.__doc__),
    Exploit("guess", "guess", None, _Guess.__doc__),
)
"""The exploits of every environment without its own list (controls: they should lose under every scheme)."""

EXPLOITS: dict[str, tuple[Exploit, ...]] = {
    "rlvr/ToolCall-v0": (
        Exploit("spam", "spam", "matchtir-unmatched", _Spam.__doc__),
        Exploit("duplicate", "duplicate", "matchtir-unmatched", _Duplicate.__doc__),
        Exploit("split_calls", "split_calls", "dra", _SplitCalls.__doc__),
        Exploit("filler", "filler", None, _Filler.__doc__),
        Exploit("guess", "guess", None, _Guess.__doc__),
    ),
    "rlvr/DeepSearch-v0": (
        Exploit("repeat_search", "repeat_search", "turn-unguarded", _RepeatSearch.__doc__),
        Exploit("cite_unopened", "cite_unopened", "carr-unchecked", _CiteUnopened.__doc__),
        Exploit("stuff_citations", "stuff_citations", "carr-unchecked", _StuffCitations.__doc__),
        Exploit("shortcut", "shortcut", "grpo", _Shortcut.__doc__),
        Exploit("echo_answer", "echo_answer", "igpo-lm", _EchoAnswer.__doc__),
        Exploit("filler", "filler", None, _Filler.__doc__),
        Exploit("guess", "guess", None, _Guess.__doc__),
    ),
    "rlvr/SWE-v0": (
        Exploit("farm_no_submit", "swe_farm", "dra", _SWEFarm.__doc__),
        Exploit("edit_no_fix", "swe_edit_no_fix", None, _SWEEditNoFix.__doc__),
        Exploit("break_package", "swe_break", None, _SWEBreak.__doc__),
        Exploit("empty_patch", "swe_empty", None, _SWEEmpty.__doc__),
        Exploit("filler", "filler", None, _Filler.__doc__),
    ),
}


def exploits_for(env_id: str) -> tuple[Exploit, ...]:
    """The exploit agents benchmarked on ``env_id`` (:data:`GENERIC` for environments without their own)."""
    return EXPLOITS.get(env_id, GENERIC)


class ExploitAgent:
    """An unbound exploit agent of ``kind``; :func:`rlvr.agents.rollout.rollout` binds it per environment."""

    def __init__(self, kind: str, seed: int | None = None) -> None:
        if kind not in _KINDS:
            raise ConfigError(f"unknown exploit agent {kind!r}; expected one of {sorted(_KINDS)}")
        self.kind, self.seed = kind, seed
        self.model_id = f"exploit:{kind}"

    def bind(self, env: Any) -> _Bound:
        bound = _KINDS[self.kind](env, self.seed)
        bound.model_id = self.model_id
        return bound

    def act(self, messages: list[dict[str, Any]]) -> str:
        raise ConfigError("an exploit agent must be bound to an environment first: agent.bind(env).act(messages)")


def make_exploit_agent(kind: str, seed: int | None = None) -> ExploitAgent:
    """The exploit agent ``kind`` (see :data:`EXPLOITS`)."""
    return ExploitAgent(kind, seed)
