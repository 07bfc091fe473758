"""The agent-environment contract: a :class:`gymnasium.Env` whose action is the assistant's text.

* action: one assistant message (``str``), see :class:`TextAction`;
* observation: the chat messages the environment adds this turn, see :class:`ChatMessages`;
* ``reset`` returns the opening messages (system prompt with tool schemas, then the task);
* ``step`` returns ``(obs, reward, terminated, truncated, info)`` with ``info["reward_components"]``,
  ``info["tool_calls"]``, ``info["error"]`` and ``info["turn"]``; the whole conversation is on
  ``env.unwrapped.messages``. terminated: the task ended. truncated: a budget ran out, or a service
  the environment needs failed: a tool or task hook raised :class:`~rlvr.errors.InfrastructureError`.
  Such a turn is not penalised (every reward component 0.0, and ``_on_tool_results`` is not
  called), ``info["error"]["kind"]`` is
  ``"infrastructure"``, ``info["infra_failure"]`` holds ``{"where", "message"}`` and
  ``info["success"]`` is False.

Subclasses describe a task and implement hooks only; the base class owns ``reset`` and ``step``:
parsing, validation, tool execution, budgets and bookkeeping. No subclass overrides ``step``.
The hooks, in the order a step calls them:

* ``_reset_task(options)`` (required): start a task; return the opening messages and info with ``task_id``;
* ``_before_turn()``: at the start of every step (for example, snapshot state a reward compares against);
* ``_after_call(result)``: after each tool call of the turn, before the next one runs;
* one of ``_on_answer(answer)``, ``_on_tool_results(results)`` (after the turn's calls ran) or
  ``_on_no_call(text)``: the turn's messages, reward components and whether the task ended;
* ``_on_episode_end(truncated, budget)``: on the step that ends the episode, told whether a budget
  ran out (``"max_turns"``, ``"max_episode_seconds"``); it adds terminal reward components and info
  (a grade when the agent never submitted, ``info["success"]``);
* ``_step_info()``: info added to every step;

plus ``oracle_action`` for the oracle agent.

Each class declares the names of the reward components it can emit in ``reward_components``
(a class attribute, so names can be checked before anything is built); every component name a
user gives (``reward_weights``, the trainer's ``gate_priority`` / ``outcome_components``) is
checked against it with :meth:`AgentEnv.check_reward_components`. ``step`` puts every declared
component in ``info["reward_components"]``, 0.0 where the turn had none, except the ones listed in
``optional_components``: those are absent where they do not apply (a rubric that could not be
scored is no rubric of 0.0). ``reset(options=...)`` accepts the keys in ``reset_options``
(``task_id`` in every family, plus the family's own, documented on the class); another key is a
:class:`~rlvr.errors.ConfigError` with a did-you-mean. A truncated step carries ``info["success"]``
(False unless ``_on_episode_end`` says otherwise for a budget; always False after a service failed)
and, when a budget ran out, ``info["truncated_by"]`` with the budget's name; every rlvr family also
sets ``info["success"]`` on the step its task ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Mapping

import gymnasium as gym
import numpy as np

from rlvr.envs.parsers import ParsedAction, ToolCall, ToolCallParser, get_parser
from rlvr.envs.tools import ToolResult, ToolSet, truncate_text
from rlvr.errors import (ConfigError, EpisodeStateError, ErrorKind, InfrastructureError, NoOracleError, StepError,
                         did_you_mean)

__all__ = ["AgentEnv", "TurnOutcome", "TextAction", "ChatMessages", "Message", "render_tool_prompt"]

Message = dict[str, Any]

ROLES = ("system", "user", "assistant", "tool")
_MAX_ERROR_MESSAGES = 8  # parse errors shown per turn (each one message); more are summarised in one
_SAMPLE_CHARS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n\t.,;:!?'\"{}[]()<>/\\_-+=*&^%$#@~`|"
    "éüßøçñ日本語中文한국어Ωπ∑√∞😀🚀"
)
_SAMPLE_SNIPPETS = ("<tool_call>", "</tool_call>", "<answer>", "</answer>", '{"name": "', '"arguments": {', "}")


def _sample_text(rng: np.random.Generator, max_length: int) -> str:
    n = int(rng.integers(0, min(max_length, 64) + 1))
    out: list[str] = []
    while sum(map(len, out)) < n:
        if rng.random() < 0.1:
            out.append(_SAMPLE_SNIPPETS[int(rng.integers(len(_SAMPLE_SNIPPETS)))])
        else:
            out.append(_SAMPLE_CHARS[int(rng.integers(len(_SAMPLE_CHARS)))])
    return "".join(out)[:max_length]


class TextAction(gym.Space[str]):
    """Any unicode string of at most ``max_length`` characters (unlike ``spaces.Text``, no charset)."""

    def __init__(self, max_length: int = 32_768, seed: int | np.random.Generator | None = None) -> None:
        if max_length <= 0:
            raise ConfigError(f"max_length must be positive, got {max_length}")
        self.max_length = int(max_length)
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return _sample_text(self.np_random, self.max_length)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"TextAction(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, TextAction) and other.max_length == self.max_length


def _valid_part(p: Any) -> bool:
    if not isinstance(p, dict):
        return False
    if p.get("type") == "text":
        return isinstance(p.get("text"), str)
    if p.get("type") == "image":
        return any(k in p for k in ("image", "url", "path"))
    return False


class ChatMessages(gym.Space[list]):
    """A list of chat messages ``{"role": ..., "content": str | [parts]}``.

    Content parts follow the Hugging Face / OpenAI convention: ``{"type": "text", "text": ...}`` or
    ``{"type": "image", "image"|"url"|"path": ...}``. Extra keys (``name``, ``tool_call_id``) are allowed.
    """

    def __init__(self, max_messages: int = 64, seed: int | np.random.Generator | None = None) -> None:
        self.max_messages = max_messages
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> list[Message]:
        n = int(self.np_random.integers(1, 4))
        return [
            {"role": ROLES[int(self.np_random.integers(len(ROLES)))], "content": _sample_text(self.np_random, 256)}
            for _ in range(n)
        ]

    def contains(self, x: Any) -> bool:
        if not isinstance(x, list) or len(x) > self.max_messages:
            return False
        for m in x:
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                return False
            c = m.get("content")
            if not (isinstance(c, str) or (isinstance(c, list) and all(_valid_part(p) for p in c))):
                return False
        return True

    def __repr__(self) -> str:
        return f"ChatMessages(max_messages={self.max_messages})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ChatMessages) and other.max_messages == self.max_messages


@dataclass(slots=True)
class TurnOutcome:
    """What a task hook returns: messages to add, named reward terms, and whether the task ended."""

    messages: list[Message] = field(default_factory=list)
    reward_components: dict[str, float] = field(default_factory=dict)
    terminated: bool = False
    error: StepError | None = None
    info: dict[str, Any] = field(default_factory=dict)


_PROMPTS: dict[tuple[str | None, ...], str] = {}  # rendered prompts by instructions, hint and tool schemas
_MAX_PROMPTS = 512


def render_tool_prompt(instructions: str, tools: ToolSet, answer_hint: str | None = None) -> str:
    """A system prompt: the task instructions, the tool schemas and the call / answer format (Hermes style).

    Rendered once per distinct text (a reset renders one every episode; at most 512 are kept)."""
    key = (instructions, answer_hint, *[t.schema_json() for t in tools])
    prompt = _PROMPTS.get(key)
    if prompt is None:
        prompt = _PROMPTS[key] = _render_tool_prompt(instructions, key[2:], answer_hint)  # type: ignore[arg-type]
        if len(_PROMPTS) > _MAX_PROMPTS:
            _PROMPTS.clear()
    return prompt


def _render_tool_prompt(instructions: str, tool_schemas: tuple[str, ...], answer_hint: str | None) -> str:
    parts = [instructions.strip()]
    if tool_schemas:
        schemas = "\n".join(tool_schemas)
        parts.append(
            "# Tools\n\nYou may call one or more functions. The function signatures are inside <tools></tools>:\n"
            f"<tools>\n{schemas}\n</tools>\n\n"
            "To call a function, write a JSON object with its name and arguments inside <tool_call></tool_call> tags:\n"
            '<tool_call>\n{"name": "<function-name>", "arguments": {<args-json-object>}}\n</tool_call>'
        )
    parts.append(answer_hint or "When you are done, give your final answer inside <answer></answer> tags.")
    return "\n\n".join(parts)


class AgentEnv(gym.Env[list, str]):
    """Base class of every rlvr environment.

    Args:
        max_turns: assistant turns before the episode is truncated.
        max_obs_chars: each observation message is cut to this many characters (visible marker).
        max_obs_tokens: optional token budget per observation message; needs ``token_counter``.
        token_counter: ``str -> int`` used with ``max_obs_tokens`` (for example a tokenizer's length).
        tool_timeout_s: wall-clock limit per tool call (``None`` runs tools inline without a limit).
        max_episode_seconds: wall-clock budget for a whole episode (``None``: unlimited); exceeding it truncates.
        max_action_chars: longer actions are refused with an error observation.
        max_calls_per_turn: a turn runs at most this many tool calls (the rest are refused with one
            error message); with at most 8 parse-error messages shown, an observation stays within the
            64 messages of ``observation_space``, so 1 to 55. (BFCL's largest gold step has 34 calls.)
        invalid_penalty: magnitude of the ``format`` / ``tool_validity`` penalties for malformed turns.
        reward_weights: weights applied to ``info["reward_components"]`` to form the scalar reward
            (missing names weigh 1.0; a weight of 0 keeps the term logged but out of the reward);
            every name must be one of :attr:`reward_components` (a typo is a :class:`ConfigError`).
        parser: ``"hermes"`` (default), ``"json"`` or an object with ``parse(text) -> ParsedAction``.
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the conversation as text).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}
    env_id: ClassVar[str] = "rlvr/Agent-v0"
    version: ClassVar[int] = 0
    family: ClassVar[str] = "base"
    description: ClassVar[str] = ""
    reward_components: ClassVar[tuple[str, ...]] = ("format", "tool_validity")
    """Every reward component name this class can put in ``info["reward_components"]``.

    Subclasses list the base's ``format`` and ``tool_validity`` plus their own. It is a class
    attribute, not per instance: a component that only some constructor options produce (SWE's
    ``gate`` with ``accumulation="gated"``) is declared all the same, so a name is valid or not
    whatever the options, and it can be checked before the environment is built.
    """
    optional_components: ClassVar[tuple[str, ...]] = ()
    """Declared components that are absent from a turn where they do not apply, instead of 0.0.

    ``step`` fills every other declared component a turn did not produce with 0.0. List a component
    here only when its absence means something a 0.0 would hide (DeepSearch's ``rubric`` when no
    rubric could be scored, SWE's ``outcome`` before anything was graded).
    """
    reset_options: ClassVar[tuple[str, ...]] = ("task_id",)
    """The keys ``reset(options=...)`` accepts (``task_id`` plus the family's own); any other key is a
    :class:`ConfigError` with a did-you-mean."""

    @classmethod
    def _owner(cls) -> str:
        """The env id for messages (the class name for unregistered subclasses)."""
        return cls.env_id if cls.env_id != AgentEnv.env_id else cls.__name__

    @classmethod
    def check_reward_components(cls, names: Iterable[str], where: str = "reward_weights") -> None:
        """Raise :class:`ConfigError` for a name not in :attr:`reward_components`, with a did-you-mean.

        ``where`` names the setting the names come from (it starts the message).
        """
        declared = cls.reward_components
        owner = cls._owner()
        for name in names:
            if name not in declared:
                raise ConfigError(
                    f"{where}: unknown reward component {name!r}{did_you_mean(str(name), declared)}; "
                    f"{owner} declares: {', '.join(declared)}"
                )

    @classmethod
    def check_reset_options(cls, options: Mapping[str, Any]) -> None:
        """Raise :class:`ConfigError` for a key of ``reset(options=...)`` not in :attr:`reset_options`."""
        if not isinstance(options, Mapping):
            raise ConfigError(f"reset options must be a mapping such as {{'task_id': ...}}, got {options!r}")
        owner = cls._owner()
        for key in options:
            if key not in cls.reset_options:
                raise ConfigError(f"unknown reset option {key!r}{did_you_mean(str(key), cls.reset_options)}; "
                                  f"{owner} accepts: {', '.join(cls.reset_options)}")

    def __init__(
        self,
        *,
        max_turns: int = 16,
        max_obs_chars: int | None = 8_000,
        max_obs_tokens: int | None = None,
        token_counter: Callable[[str], int] | None = None,
        tool_timeout_s: float | None = 30.0,
        max_episode_seconds: float | None = None,
        max_action_chars: int = 32_768,
        max_calls_per_turn: int = 48,
        invalid_penalty: float = 0.1,
        reward_weights: dict[str, float] | None = None,
        parser: str | ToolCallParser = "hermes",
        render_mode: str | None = None,
    ) -> None:
        if max_turns < 1:
            raise ConfigError(f"max_turns must be >= 1, got {max_turns}")
        if max_obs_tokens is not None and token_counter is None:
            raise ConfigError("max_obs_tokens needs token_counter (e.g. lambda s: len(tokenizer(s).input_ids))")
        if render_mode not in (None, "ansi"):
            raise ConfigError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        if reward_weights is not None and not isinstance(reward_weights, Mapping):
            raise ConfigError(f"reward_weights must be a mapping of component name to weight, such as "
                              f'{{"outcome": 1.0}}; got {reward_weights!r}')
        self.check_reward_components(reward_weights or {})
        self.max_turns = max_turns
        self.max_obs_chars = max_obs_chars
        self.max_obs_tokens = max_obs_tokens
        self.token_counter = token_counter
        self.max_episode_seconds = max_episode_seconds
        self.invalid_penalty = invalid_penalty
        self.reward_weights = {**dict.fromkeys(self.reward_components, 1.0), **dict(reward_weights or {})}
        """Every weight in force: each declared component at 1.0 unless ``reward_weights`` says otherwise."""
        self.parser = get_parser(parser)
        self.render_mode = render_mode
        self.action_space = TextAction(max_action_chars)
        self.observation_space = ChatMessages()
        most = self.observation_space.max_messages - _MAX_ERROR_MESSAGES - 1
        if not isinstance(max_calls_per_turn, int) or isinstance(max_calls_per_turn, bool) or not 1 <= max_calls_per_turn <= most:
            raise ConfigError(f"max_calls_per_turn must be an integer in [1, {most}] (an observation holds at most "
                              f"{self.observation_space.max_messages} messages), got {max_calls_per_turn!r}")
        self.max_calls_per_turn = max_calls_per_turn
        self.tools = ToolSet(timeout_s=tool_timeout_s)
        self.messages: list[Message] = []
        self.turn = 0
        self._done = True
        self._end_requested = False
        self._started = 0.0
        self.episode_components: list[dict[str, float]] = []
        """The reward components of each turn of the episode so far (the current one included when
        ``_on_episode_end`` runs, without the components that hook adds)."""

    # ----------------------------------------------------------------- task hooks (override)
    def _reset_task(self, options: dict[str, Any]) -> tuple[list[Message], dict[str, Any]]:
        """Start a task with ``self.np_random``; return the opening messages and info with ``task_id``.

        ``options`` holds only keys of :attr:`reset_options` (``reset`` checked them)."""
        raise NotImplementedError

    def _before_turn(self) -> None:
        """Called at the start of every step, once the action is known to be text and before it is parsed
        (``self.turn`` already counts this turn). Default: nothing."""

    def _on_answer(self, answer: str) -> TurnOutcome:
        """Score a final answer. Default: end the episode with no reward."""
        return TurnOutcome(terminated=True)

    def _after_call(self, result: ToolResult) -> None:
        """Called after each tool call of a turn, before the next one runs (for example to move off a
        runtime that a timed-out call may still be changing). Default: nothing."""

    def _on_tool_results(self, results: list[ToolResult]) -> dict[str, float]:
        """Extra reward components after this turn's tool calls ran (for example progress)."""
        return {}

    def _on_no_call(self, text: str) -> TurnOutcome:
        """An action with neither a tool call nor an answer. Default: error observation, episode continues."""
        err = StepError(
            ErrorKind.NO_ACTION,
            "No tool call or answer found. Call a tool with <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call> "
            "or finish with <answer>...</answer>.",
        )
        return TurnOutcome([{"role": "user", "content": err.message}], {"format": -self.invalid_penalty}, error=err)

    def _on_episode_end(self, truncated: bool, budget: str | None) -> tuple[dict[str, float], dict[str, Any]]:
        """Called on the step that ends the episode, after this turn's hook; returns reward components and
        info to add to that step.

        ``truncated`` is False when the task ended (terminated). When a budget ran out, ``budget`` names
        it (``"max_turns"`` or ``"max_episode_seconds"``); ``truncated`` with ``budget=None`` means a
        service failed (``info["infra_failure"]``): the turn's components, these included, are then all
        0.0 and ``info["success"]`` is False whatever this returns. Default: nothing to add.
        """
        return {}, {}

    def _step_info(self) -> dict[str, Any]:
        """Info added to every step, after the turn's hooks (and ``_on_episode_end``) ran. Default: none."""
        return {}

    def end_episode(self) -> None:
        """End the episode after the current turn (terminated): for tools such as ``submit``.

        A tool running under a time limit should call it from its :class:`~rlvr.envs.tools.ToolOutput`'s
        ``apply`` (run on the env's thread only when the call finished in time), not from the tool
        function, whose thread may outlive the call and end a later turn or episode.
        """
        self._end_requested = True

    def oracle_action(self) -> str:
        """The gold next action from the current state (used by the oracle agent)."""
        raise NoOracleError(f"{type(self).__name__} has no oracle; implement oracle_action() to provide one")

    @property
    def dataset_hash(self) -> str | None:
        """A hash identifying the task data / corpus, recorded with every trajectory."""
        return None

    @property
    def image_digest(self) -> str | None:
        """The container image digest used by this environment, if any."""
        return None

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list[Message], dict]:
        if options:  # None and {} need no check
            self.check_reset_options(options)
        super().reset(seed=seed)
        messages, info = self._reset_task(dict(options or {}))
        if "task_id" not in info:
            raise ConfigError(f"{type(self).__name__}._reset_task must put 'task_id' in info")
        self.messages = list(map(dict, messages))
        self.turn = 0
        self._done = False
        self._end_requested = False
        self._started = time.monotonic()
        self.episode_components = []
        return list(map(dict, messages)), info

    def step(self, action: str) -> tuple[list[Message], float, bool, bool, dict[str, Any]]:
        if self._done:
            raise EpisodeStateError("the episode has ended (or never started); call reset() before step()")
        if type(action) is not str and not isinstance(action, str):
            raise TypeError(f"action must be the assistant's text (str), got {type(action).__name__}")
        self.turn += 1
        self.messages.append({"role": "assistant", "content": action})
        cls = type(self)
        if cls._before_turn is not _NO_BEFORE_TURN:
            self._before_turn()
        outcome, calls = self._play(action)
        components = {"format": 0.0, "tool_validity": 0.0, **outcome.reward_components}
        filled = _FILLED.get(cls)
        if filled is None:
            filled = _filled_components(cls)
        for name in filled:  # declared, not optional: 0.0 where the turn had none
            if name not in components:
                components[name] = 0.0
        limit = self.max_obs_chars  # a message that fits is kept as it is (what _fit would return)
        obs = outcome.messages
        fit = self.max_obs_tokens is not None
        if not fit and limit is not None:
            for m in obs:
                c = m.get("content")
                if type(c) is str and len(c) > limit:
                    fit = True
                    break
        obs = [m if type(m.get("content")) is not str else self._fit(m) for m in obs] if fit else list(obs)
        self.messages.extend(obs)
        info_extra = outcome.info
        infra = info_extra.get("infra_failure") if info_extra else None  # an unpenalised turn that ends the episode
        terminated = infra is None and (bool(outcome.terminated) or self._end_requested)
        budget = None if terminated or infra is not None or (  # no budget can be spent before either limit
            self.turn < self.max_turns and self.max_episode_seconds is None) else self._spent_budget()
        truncated = not terminated and (infra is not None or budget is not None)
        self._done = done = terminated or truncated
        self.episode_components.append(components)
        error = outcome.error
        # built once, in the order of the returned dict; a hook's info may replace any of these keys
        info: dict[str, Any] = {"reward_components": components, "tool_calls": calls,
                                "error": error.to_dict() if error else None, "turn": self.turn}
        if info_extra:
            info.update(info_extra)
        if done:
            end_components, end_info = self._on_episode_end(truncated, budget)
            components.update(end_components)
            info.update(end_info)
            if truncated:  # a budget ran out (or a service failed): not a success unless the hook says so
                info.setdefault("success", False)
            if budget is not None:
                info["truncated_by"] = budget
        if cls._step_info is not _NO_STEP_INFO:
            info.update(self._step_info())
        if infra is not None:
            zeroed = {k: 0.0 for k in components}
            self.episode_components[-1] = zeroed
            if info["reward_components"] is components:
                info["reward_components"] = zeroed
            components = zeroed
            info["success"] = False
        # the weighted sum of the components in their order, as sum() adds them (a loop is cheaper than map here)
        weights = self.reward_weights
        reward = 0.0
        for k, v in components.items():
            reward += weights.get(k, 1.0) * v
        return obs, reward, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n".join(f"[{m['role']}] {m['content'] if isinstance(m['content'], str) else m['content']!r}" for m in self.messages)

    # ----------------------------------------------------------------- internals
    def _play(self, action: str) -> tuple[TurnOutcome, list[dict[str, Any]]]:
        """Run the turn's hook for ``action``; return its outcome and the parsed calls."""
        if len(action) > self.action_space.max_length:
            err = StepError(
                ErrorKind.ACTION_TOO_LONG,
                f"Your message has {len(action)} characters; at most {self.action_space.max_length} are accepted.",
            )
            refused = TurnOutcome([{"role": "user", "content": err.message}], {"format": -self.invalid_penalty}, error=err)
            return refused, []
        parsed = self.parser.parse(action)
        if (parsed.answer is None or parsed.errors) and (  # the calls will run: keep the turn within its budget
                len(parsed.calls) > self.max_calls_per_turn or len(parsed.errors) > _MAX_ERROR_MESSAGES):
            parsed = self._cap_calls(parsed)
        pcalls = parsed.calls
        if len(pcalls) == 1 and type(c := pcalls[0]) is ToolCall:  # the usual turn: one call
            calls = [{"name": c.name, "arguments": c.arguments}]
        else:
            calls = [{"name": c.name, "arguments": c.arguments} if type(c) is ToolCall else c.to_dict() for c in pcalls]
        answer, errors = parsed.answer, parsed.errors
        on_answer = answer is not None and not errors
        run_calls = not on_answer and bool(pcalls or errors)
        try:
            if on_answer:
                return self._on_answer(answer), calls  # type: ignore[arg-type]
            if run_calls:
                return self._run_calls(parsed), calls
            return self._on_no_call(action), calls
        except InfrastructureError as e:  # a service failed inside a task hook: not the model's fault
            hook = "_on_answer" if on_answer else "_run_calls" if run_calls else "_on_no_call"
            return self._infra_outcome(f"{type(self).__name__}.{hook}", f"{type(e).__name__}: {e}"), calls

    def _spent_budget(self) -> str | None:
        """The name of the budget this turn used up, if any."""
        if self.turn >= self.max_turns:
            return "max_turns"
        if self.max_episode_seconds is not None and time.monotonic() - self._started > self.max_episode_seconds:
            return "max_episode_seconds"
        return None

    def _cap_calls(self, parsed: ParsedAction) -> ParsedAction:
        """Keep the first ``max_calls_per_turn`` calls and 8 parse errors; the overflow becomes one more error."""
        n, k = self.max_calls_per_turn, _MAX_ERROR_MESSAGES
        if len(parsed.calls) <= n and len(parsed.errors) <= k:
            return parsed
        over = []
        if len(parsed.calls) > n:
            over.append(f"{len(parsed.calls)} tool calls; only the first {n} were run")
        if len(parsed.errors) > k:
            over.append(f"{len(parsed.errors)} malformed calls; only the first {k} are reported")
        err = StepError(ErrorKind.PARSE, f"Your message has {' and '.join(over)}. Make at most {n} tool calls per turn.")
        return ParsedAction(parsed.calls[:n], parsed.answer, [*parsed.errors[:k], err])

    def _run_calls(self, parsed: ParsedAction) -> TurnOutcome:
        messages: list[Message] = []
        first_error: StepError | None = parsed.errors[0] if parsed.errors else None
        for e in parsed.errors:
            messages.append({"role": "tool", "name": "parse_error", "content": f"Error: {e.message}"})
        results: list[ToolResult] = []
        tool_errors: list[dict[str, str]] = []
        infra: ToolResult | None = None
        invalid = 0  # calls that named no tool or broke its schema
        after_call = type(self)._after_call  # self.tools is read per call: _after_call may replace it (a fence)
        for call in parsed.calls:
            if infra is not None:  # a service is down: do not send it the rest of this turn's calls
                messages.append({"role": "tool", "name": call.name, "content": (
                    f"Error: not run: an earlier call of this turn ({infra.call.name!r}) hit an infrastructure failure.")})
                continue
            res = self.tools.execute(call)
            results.append(res)
            if after_call is not _NO_AFTER_CALL:
                self._after_call(res)
            messages.append({"role": "tool", "name": call.name, "content": res.content})
            err = res.error
            if err is not None:
                tool_errors.append(err.to_dict())
                if first_error is None:
                    first_error = err
                if err.kind is ErrorKind.INFRASTRUCTURE:
                    infra = res
                elif err.kind in (ErrorKind.UNKNOWN_TOOL, ErrorKind.INVALID_ARGUMENTS):
                    invalid += 1
        n_errors = len(parsed.errors)
        if not n_errors and not invalid:  # a clean turn: what the formulas below give for it
            components = {"format": 0.0, "tool_validity": 0.0}
        else:
            total = len(parsed.calls) + n_errors
            components = {
                "format": -self.invalid_penalty if n_errors else 0.0,
                "tool_validity": -self.invalid_penalty * (invalid + n_errors) / max(1, total) or 0.0,
            }
        if infra is None:  # after an infrastructure failure the episode ends: no task hook touches the failed service
            components.update(self._on_tool_results(results))
        info: dict[str, Any] = {"tool_errors": tool_errors}
        if infra is not None:
            assert infra.error is not None
            info["infra_failure"] = {"where": f"tool {infra.call.name!r}", "message": infra.error.message}
            first_error = infra.error
        return TurnOutcome(messages, components, False, first_error, info)

    def _infra_outcome(self, where: str, message: str) -> TurnOutcome:
        """The turn of an :class:`~rlvr.errors.InfrastructureError` raised outside a tool (in a task hook)."""
        err = StepError(ErrorKind.INFRASTRUCTURE, f"{where} could not finish because a service it needs failed "
                                                  f"(not your fault): {message}")
        return TurnOutcome([{"role": "user", "content": f"The episode was stopped: {err.message}"}], {}, error=err,
                           info={"infra_failure": {"where": where, "message": message}})

    def _fit(self, message: Message) -> Message:
        content = message.get("content")
        if isinstance(content, str):
            if self.max_obs_tokens is None and (self.max_obs_chars is None or len(content) <= self.max_obs_chars):
                return message  # fits as it is
            text = truncate_text(content, self.max_obs_chars)
            if self.max_obs_tokens is not None and self.token_counter is not None:
                n = self.token_counter(text)
                while n > self.max_obs_tokens and len(text) > 64:
                    text = truncate_text(text, int(len(text) * self.max_obs_tokens / n * 0.95))
                    n = self.token_counter(text)
            if text is not content:
                message = {**message, "content": text}
        return message


_NO_BEFORE_TURN = AgentEnv._before_turn
_NO_AFTER_CALL = AgentEnv._after_call
_NO_STEP_INFO = AgentEnv._step_info
_FILLED: dict[type, tuple[str, ...]] = {}


def _filled_components(cls: type[AgentEnv]) -> tuple[str, ...]:
    """The components ``step`` sets to 0.0 when a turn did not produce them: the declared ones but the
    optional ones and the base's two, which every turn has (computed once per class)."""
    filled = _FILLED[cls] = tuple(n for n in cls.reward_components
                                  if n not in ("format", "tool_validity") and n not in cls.optional_components)
    return filled
