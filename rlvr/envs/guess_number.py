"""rlvr/GuessNumber-v0: find a secret integer with a ``guess`` tool that answers higher / lower.

Small, self-contained and fast: the reference environment for tests, the demo and the trainer.

Reward components per turn:
  * ``progress``: the fraction of the remaining uncertainty (in bits) the guess removed,
    ``(log2 |I_before| - log2 |I_after|) / log2 |I_0|`` where I is the set of numbers still possible;
  * ``outcome``: 1.0 for a correct ``<answer>``, 0.0 for a wrong one (terminal turn);
  * ``format`` / ``tool_validity``: penalties for malformed turns (from the base class).

``info["success"]`` on the last step: the answer was the secret.
"""

from __future__ import annotations

import math
from typing import Any

from rlvr.envs.core import AgentEnv, Message, TurnOutcome, render_tool_prompt
from rlvr.envs.tools import Tool, ToolResult
from rlvr.errors import ConfigError
from rlvr.registry import env_info


_ANSWER_HINT = "When you know the number, reply with <answer>NUMBER</answer>."


def _range_texts(low: int, high: int) -> tuple[str, str, str]:
    """The task instructions, the user message and the task-id prefix of the range [low, high]."""
    return (f"You are playing a number-guessing game. The secret is an integer between {low} and {high} "
            "inclusive. Use the guess tool; it replies higher, lower or correct.",
            f"Find the secret number between {low} and {high}.", f"guess-{low}-{high}-")


class GuessNumberEnv(AgentEnv):
    """Guess an integer in ``[low, high]``; each ``guess`` says higher, lower or correct.

    Args:
        low, high: the inclusive range of the secret.
        max_turns: turn budget (default: enough for binary search plus two).
        **kwargs: budgets and options of :class:`~rlvr.envs.core.AgentEnv`.

    ``reset(options=...)`` accepts ``task_id`` (``guess-LOW-HIGH-SECRET``, as reset info gives it) or
    ``secret`` (an integer in ``[low, high]``); otherwise the secret is drawn with the reset seed.
    """

    env_id = "rlvr/GuessNumber-v0"
    family = env_info(env_id).family
    description = env_info(env_id).description
    reward_components = ("format", "tool_validity", "progress", "outcome")
    reset_options = ("task_id", "secret")

    def __init__(self, low: int = 1, high: int = 100, max_turns: int | None = None, **kwargs: Any) -> None:
        if not isinstance(low, int) or not isinstance(high, int) or low >= high:
            raise ConfigError(f"need integers low < high, got low={low!r}, high={high!r}")
        self.low, self.high = low, high
        default_turns = math.ceil(math.log2(high - low + 1)) + 2
        super().__init__(max_turns=max_turns or default_turns, **kwargs)
        self.tools.add(
            Tool(
                "guess",
                "Guess the secret number. Returns 'higher' if the secret is larger, 'lower' if smaller, 'correct' if equal.",
                {
                    "type": "object",
                    "properties": {"number": {"type": "integer", "description": "your guess"}},
                    "required": ["number"],
                    "additionalProperties": False,
                },
                self._guess,
                inline=True,  # pure arithmetic
            )
        )
        self.secret = low
        self.lo, self.hi = low, high
        self._texts: tuple[Any, ...] = (None,)

    @property
    def dataset_hash(self) -> str:
        return f"range:{self.low}-{self.high}"

    def _reset_task(self, options: dict[str, Any]) -> tuple[list[Message], dict[str, Any]]:
        low, high = self.low, self.high
        if "task_id" in options:
            self.secret = self._secret_of(options["task_id"])
        else:
            self.secret = int(options.get("secret", self.np_random.integers(low, high + 1)))
        if not low <= self.secret <= high:
            raise ConfigError(f"options['secret'] must lie in [{low}, {high}], got {self.secret}")
        self.lo, self.hi = low, high
        texts = self._texts
        if texts[0] != (low, high):  # the range's texts, written once per range
            texts = self._texts = ((low, high), *_range_texts(low, high))
        system = render_tool_prompt(texts[1], self.tools, _ANSWER_HINT)
        info = {"task_id": texts[3] + str(self.secret), "answer": str(self.secret)}
        return [{"role": "system", "content": system}, {"role": "user", "content": texts[2]}], info

    def _secret_of(self, task_id: Any) -> int:
        """The secret of a task id ``guess-LOW-HIGH-SECRET`` of this env's range."""
        prefix = _range_texts(self.low, self.high)[2]
        tail = task_id[len(prefix):] if isinstance(task_id, str) and task_id.startswith(prefix) else ""
        if not tail.lstrip("-").isdigit() or not self.low <= int(tail) <= self.high:
            raise ConfigError(f"no task with id {task_id!r}: this env's ids are {prefix}N with N in "
                              f"[{self.low}, {self.high}], e.g. {prefix}{self.low}")
        return int(tail)

    def _guess(self, number: int) -> str:
        if number < self.secret:
            self.lo = max(self.lo, number + 1)
            return "higher"
        if number > self.secret:
            self.hi = min(self.hi, number - 1)
            return "lower"
        self.lo = self.hi = number
        return "correct"

    def _before_turn(self) -> None:
        self._interval_before = self.hi - self.lo + 1

    def _on_tool_results(self, results: list[ToolResult]) -> dict[str, float]:
        # progress is computed from the interval before and after this turn's guesses
        before = self._interval_before
        after = self.hi - self.lo + 1
        total = math.log2(self.high - self.low + 1)
        return {"progress": (math.log2(before) - math.log2(after)) / total}

    def _on_answer(self, answer: str) -> TurnOutcome:
        try:
            value = int(answer.strip())
        except ValueError:
            return TurnOutcome(
                [{"role": "user", "content": f"Your answer {answer!r} is not an integer. The game is over."}],
                {"outcome": 0.0},
                terminated=True,
                info={"success": False},
            )
        won = value == self.secret
        text = "Correct!" if won else f"Wrong: the secret was {self.secret}."
        return TurnOutcome([{"role": "user", "content": text}], {"outcome": 1.0 if won else 0.0}, terminated=True,
                           info={"success": won})

    def oracle_action(self) -> str:
        if self.lo == self.hi:
            return f"<answer>{self.lo}</answer>"
        mid = (self.lo + self.hi) // 2
        return f'<tool_call>{{"name": "guess", "arguments": {{"number": {mid}}}}}</tool_call>'
