"""What TextWorld-v0 and ALFWorld-v0 share: one command per turn, the game's own feedback, turn rewards.

A turn's text goes through :func:`~rlvr.envs.textgames.commands.parse_command` (no tool calls: the
command is the action), the command is sent to the game whatever it is, and the game's answer becomes
the observation: its feedback, then optionally the inventory and ``Admissible commands: [...]``.
Reward components per turn:

* ``win``: 1.0 on the turn the game is won;
* ``format``: ``-invalid_penalty`` when the message was not one clean command (see ``parse_command``);
* ``invalid``: ``-invalid_command_penalty`` when the game did not understand the command (its answer is
  one of :data:`~rlvr.envs.textgames.commands.NOT_UNDERSTOOD`); the episode goes on;
* TextWorld adds ``progress``.

``terminated`` when the game is won or lost; ``truncated`` when ``max_turns`` (default 50) runs out,
counted here, not by the game. ``info["success"]`` on the last step: the game was won.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

from rlvr.envs.core import AgentEnv, Message, TurnOutcome
from rlvr.envs.parsers import ParsedAction
from rlvr.envs.textgames.commands import MAX_COMMAND_CHARS, parse_command, not_understood
from rlvr.errors import ConfigError, ErrorKind, StepError, did_you_mean

__all__ = ["GameState", "TextGameEnv", "ACTION_FORMAT", "ENGINE_LOCK"]

ENGINE_LOCK = threading.RLock()
"""Held around every call into textworld's engines: their grammar and logic parsers (TatSu) are
module-level objects that break when two threads parse at once, as a threaded rollout would."""

ACTION_FORMAT = ("Reply with exactly one command per turn inside <action></action> tags, for example "
                 "<action>look</action>. You may think before the tags; only the command inside them is sent.")


@dataclass(slots=True)
class GameState:
    """What a game said after a reset or a command (the fields a text-game env reads)."""

    feedback: str
    won: bool = False
    lost: bool = False
    score: float | None = None
    max_score: float | None = None
    admissible: list[str] | None = None
    inventory: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _CommandsOnly:
    """The parser of text games: no tool calls and no answers, so every turn reaches ``_on_no_call``."""

    def parse(self, text: str) -> ParsedAction:
        return ParsedAction()


class TextGameEnv(AgentEnv):
    """Base of the text-game environments (module docstring). Subclasses implement the game side:
    :meth:`_task_ids`, :meth:`_start_game`, :meth:`_send`, :meth:`_system_prompt` and :meth:`_next_command`.

    Args:
        list_admissible: end each observation with ``Admissible commands: [...]`` (sorted).
        show_inventory: end each observation with the inventory.
        invalid_command_penalty: magnitude of the ``invalid`` component.
        max_command_chars: longer commands are cut (with a ``format`` penalty).
        max_turns: turn budget (default 50).
        **kwargs: budgets and options of :class:`~rlvr.envs.core.AgentEnv` (not ``parser``: the
            action is a command, not a tool call).
    """

    reset_options: ClassVar[tuple[str, ...]] = ("task_id", "game")

    def __init__(self, *, list_admissible: bool = True, show_inventory: bool = False,
                 invalid_command_penalty: float = 0.05, max_command_chars: int = MAX_COMMAND_CHARS,
                 max_turns: int = 50, **kwargs: Any) -> None:
        if "parser" in kwargs:
            raise ConfigError(f"{self._owner()} reads one command per turn (<action>...</action> or plain text); "
                              "parser= does not apply to it")
        for name, value in (("list_admissible", list_admissible), ("show_inventory", show_inventory)):
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be True or False, got {value!r}")
        if not isinstance(max_command_chars, int) or isinstance(max_command_chars, bool) or max_command_chars < 1:
            raise ConfigError(f"max_command_chars must be a positive integer, got {max_command_chars!r}")
        super().__init__(max_turns=max_turns, parser=_CommandsOnly(), **kwargs)
        self.list_admissible = list_admissible
        self.show_inventory = show_inventory
        self.invalid_command_penalty = float(invalid_command_penalty)
        self.max_command_chars = max_command_chars
        self.game_state: GameState | None = None
        """The game's answer to the last reset or command (``None`` before the first reset)."""
        self.history: list[str] = []
        """The commands sent to the game this episode, in order."""
        self.game_index = 0

    # ------------------------------------------------------------------ game side (subclasses)
    def _task_ids(self) -> Sequence[str]:
        """The task id of every game this env can play, by index."""
        raise NotImplementedError

    def _start_game(self, index: int) -> GameState:
        """Load game ``index`` if needed and reset it; its opening state."""
        raise NotImplementedError

    def _send(self, command: str) -> GameState:
        """Send one command to the running game; its answer."""
        raise NotImplementedError

    def _system_prompt(self, state: GameState) -> str:
        """The system message of an episode that opened with ``state``."""
        raise NotImplementedError

    def _next_command(self) -> str:
        """The oracle's next command from the current state."""
        raise NotImplementedError

    def _turn_components(self, before: GameState, after: GameState) -> dict[str, float]:
        """Family-specific components of a turn (TextWorld's ``progress``). Default: none."""
        return {}

    # ------------------------------------------------------------------ hooks of AgentEnv
    def _pick(self, options: dict[str, Any]) -> int:
        ids = list(self._task_ids())
        if "task_id" in options:
            tid = options["task_id"]
            if tid not in ids:
                raise ConfigError(f"no task with id {tid!r}{did_you_mean(str(tid), ids)}; this env has {len(ids)} "
                                  f"games, e.g. {ids[0]!r}")
            return ids.index(tid)
        if "game" in options:
            g = options["game"]
            if not isinstance(g, int) or isinstance(g, bool) or not 0 <= g < len(ids):
                raise ConfigError(f"options['game'] must be an integer in [0, {len(ids) - 1}], got {g!r}")
            return g
        return int(self.np_random.integers(len(ids)))

    def _reset_task(self, options: dict[str, Any]) -> tuple[list[Message], dict[str, Any]]:
        self.game_index = self._pick(options)
        with ENGINE_LOCK:
            state = self._start_game(self.game_index)
        self.game_state = state
        self.history = []
        messages = [{"role": "system", "content": self._system_prompt(state)},
                    {"role": "user", "content": self._render(state, None)}]
        return messages, {"task_id": self._task_ids()[self.game_index], "game": self.game_index}

    def _on_no_call(self, text: str) -> TurnOutcome:
        parsed = parse_command(text, self.max_command_chars)
        before = self.game_state
        assert before is not None
        with ENGINE_LOCK:
            state = self._send(parsed.command)
        self.history.append(parsed.command)
        self.game_state = state
        won_now = state.won and not before.won
        components = {
            "win": 1.0 if won_now else 0.0,
            "format": -self.invalid_penalty if parsed.problem else 0.0,
            "invalid": -self.invalid_command_penalty if not_understood(state.feedback) else 0.0,
            **self._turn_components(before, state),
        }
        error = None
        if parsed.problem:
            kind = ErrorKind.NO_ACTION if not parsed.command else ErrorKind.PARSE
            error = StepError(kind, f"{parsed.problem[0].upper()}{parsed.problem[1:]}. {ACTION_FORMAT}")
        done = state.won or state.lost
        info: dict[str, Any] = {"command": parsed.command, "won": state.won, "lost": state.lost}
        if state.score is not None:
            info["score"] = state.score
        if done:
            info["success"] = bool(state.won)
        return TurnOutcome([{"role": "user", "content": self._render(state, error)}], components,
                           terminated=done, error=error, info=info)

    def oracle_action(self) -> str:
        """The next command of the game's plan, in ``<action>`` tags."""
        with ENGINE_LOCK:
            return f"<action>{self._next_command()}</action>"

    # ------------------------------------------------------------------ rendering
    def _render(self, state: GameState, error: StepError | None) -> str:
        parts = []
        if error is not None:
            parts.append(f"[{error.message}]")
        parts.append(state.feedback.strip() or "(the game printed nothing)")
        if self.show_inventory and state.inventory:
            parts.append(state.inventory.strip())
        if self.list_admissible and state.admissible is not None:
            parts.append(f"Admissible commands: [{', '.join(state.admissible)}]")
        return "\n\n".join(parts)
