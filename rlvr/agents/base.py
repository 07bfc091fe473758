"""The agent protocol and the simple agents (scripted, random, oracle).

An agent maps the conversation so far to the next assistant message::

    class MyAgent:
        def act(self, messages: list[dict]) -> str: ...

That is all a custom agent needs. Optional hooks, all called by :func:`rlvr.agents.rollout.rollout`:

* ``act_batch(batch) -> list[Generation]``: generate many conversations at once. A sampling agent
  also accepts ``act_batch(batch, seeds=...)``: one integer per conversation, a function of that
  episode's seed and turn alone (:func:`turn_seed`), from which it draws that row's randomness, so
  a conversation's sample does not depend on which others share its batch. An agent that continues
  conversations from their tokens also accepts ``act_batch(batch, histories=...)``: one list per
  conversation of the episode's :class:`~rlvr.agents.trajectory.Turn` records so far (empty on the
  first turn). Each turn holds the ``prompt_ids`` and ``completion_ids`` of that generation and the
  ``observation`` messages the environment answered with, so the next prompt can be the previous
  prompt's ids, plus the generated ids, plus only the new messages encoded, instead of a re-rendered
  text (the trainer's token-exact agents, :mod:`rlvr.agents.trainer.backends`, do this);
* ``open_stream() -> stream | None``: continuous decoding (:meth:`rlvr.agents.hf.HFAgent.open_stream`).
  The rollout submits each conversation's turn as soon as it is due,
  ``stream.submit(key, messages, seed=..., history=...)`` (``key`` names the conversation, ``seed``
  and ``history`` as for ``act_batch``), calls ``stream.poll()`` (one decode step; returns the
  ``(key, Generation)`` pairs that finished) while ``stream.busy``, ``stream.release(key)`` when the
  episode ends and ``stream.close()`` at the end. ``None`` means: use ``act_batch``;
* ``bind(env) -> Agent``: called once per environment instance (the oracle reads the env; agents
  with per-episode state return a fresh copy of themselves);
* ``start_episode(seed)``: called on the (bound) agent at every reset with the episode's seed;
  an agent that holds a random generator reseeds it from that seed, so each episode's actions
  depend on its own seed only, whatever the concurrency. An agent with this hook that is shared by
  several environment instances (no ``bind``) is refused by the rollout.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from rlvr.errors import AgentError, ConfigError

__all__ = ["Agent", "Generation", "ScriptedAgent", "RandomAgent", "OracleAgent", "TokenAgent", "generate", "agent_id",
           "turn_seed", "check_row_seeds"]

Messages = list[dict[str, Any]]


@dataclass(slots=True)
class Generation:
    """One generated assistant message, with its tokens when the backend exposes them."""

    text: str
    prompt_ids: list[int] | None = None
    completion_ids: list[int] | None = None
    logprobs: list[float] | None = None
    finish_reason: str | None = None


@runtime_checkable
class Agent(Protocol):
    """Anything with ``act(messages) -> str``."""

    def act(self, messages: Messages) -> str: ...


def agent_id(agent: Any) -> tuple[str | None, str | None]:
    """``(model_id, chat_template_hash)`` of an agent, when it has them."""
    return getattr(agent, "model_id", None), getattr(agent, "chat_template_hash", None)


class TokenAgent:
    """Mixin of agents that generate from token ids (:class:`~rlvr.agents.hf.HFAgent`,
    :class:`~rlvr.agents.vllm.VLLMAgent`): ``act_batch`` encodes each conversation with ``encode`` and
    hands the ids to ``act_ids(prompts, seeds)``. ``seeds`` (one per conversation, e.g. from
    :func:`turn_seed`) make each sample a function of the agent's seed and its own row seed, whatever
    else shares the batch."""

    def act_batch(self, batch: Sequence[Messages], seeds: Sequence[int] | None = None) -> list[Generation]:
        check_row_seeds(seeds, len(batch), "act_batch", "conversations")
        return self.act_ids([self.encode(m) for m in batch], seeds)  # type: ignore[attr-defined]

    def prompt_for(self, messages: Messages, history: Sequence[Any] = ()) -> list[int]:
        """The prompt ids of a conversation whose turns so far are ``history`` (here: ``encode(messages)``;
        token-exact agents continue from the last turn's ids instead)."""
        return self.encode(messages)  # type: ignore[attr-defined]


def check_row_seeds(seeds: Sequence[int] | None, n: int, where: str, what: str) -> None:
    """Raise :class:`ConfigError` unless ``seeds`` is ``None`` or holds one seed per row."""
    if seeds is not None and len(seeds) != n:
        raise ConfigError(f"{where} got {len(seeds)} seeds for {n} {what}; give one per row")


def turn_seed(episode_seed: int, turn: int) -> int:
    """A 63-bit seed for turn ``turn`` (0-based) of the episode reset with ``episode_seed``.

    Well mixed (numpy ``SeedSequence``), so neighbouring episodes and turns get unrelated streams.
    """
    state = np.random.SeedSequence([int(episode_seed) & (2**64 - 1), int(turn)]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


def _accepts(agent: Any, keyword: str) -> bool:
    """Whether ``agent.act_batch`` takes the optional ``keyword`` (``seeds``, ``histories``; see the module docstring)."""
    fn = getattr(agent, "act_batch", None)
    if fn is None:
        return False
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params


def generate(agent: Any, batch: Sequence[Messages], seeds: Sequence[int] | None = None,
             histories: Sequence[Sequence[Any]] | None = None) -> list[Generation]:
    """Ask ``agent`` for one message per conversation, batched when it supports ``act_batch``.

    ``seeds`` (one per conversation) and ``histories`` (each conversation's turns so far) are passed
    on to agents whose ``act_batch`` accepts them.
    """
    for name, given in (("seeds", seeds), ("histories", histories)):
        if given is not None and len(given) != len(batch):
            raise ConfigError(f"generate() got {len(given)} {name} for {len(batch)} conversations; "
                              "give one per conversation")
    if hasattr(agent, "act_batch"):
        kwargs: dict[str, Any] = {}
        if seeds is not None and _accepts(agent, "seeds"):
            kwargs["seeds"] = list(seeds)
        if histories is not None and _accepts(agent, "histories"):
            kwargs["histories"] = [list(h) for h in histories]
        out = list(agent.act_batch(list(batch), **kwargs))
    else:
        out = [agent.act(m) for m in batch]
    if len(out) != len(batch):
        raise AgentError(f"{type(agent).__name__} returned {len(out)} actions for {len(batch)} conversations")
    gens = []
    for g in out:
        if isinstance(g, str):
            g = Generation(g)
        if not isinstance(g, Generation):
            raise AgentError(f"{type(agent).__name__} must return str or Generation, got {type(g).__name__}")
        gens.append(g)
    return gens


class ScriptedAgent:
    """Replays a fixed list of actions, one per turn; the same script for every conversation.

    The turn index is the number of assistant messages already in the conversation. After the script
    runs out it repeats ``default`` (or raises when ``default`` is None).
    """

    model_id = "scripted"

    def __init__(self, actions: Iterable[str], default: str | None = None) -> None:
        self.actions = list(actions)
        self.default = default

    def act(self, messages: Messages) -> str:
        k = sum(m.get("role") == "assistant" for m in messages)
        if k < len(self.actions):
            return self.actions[k]
        if self.default is None:
            raise AgentError(f"ScriptedAgent has {len(self.actions)} actions but was asked for turn {k + 1}")
        return self.default


class RandomAgent:
    """Random actions: a random call to one of the tools in the system prompt, random text, or a random answer.

    A baseline and a fuzzer for environments (its outputs are often malformed on purpose).

    Under :func:`~rlvr.agents.rollout.rollout` each environment instance gets its own copy
    (:meth:`bind`), reseeded at every reset from ``(seed, episode seed)`` (:meth:`start_episode`):
    an episode's actions depend on its seed alone, not on the concurrency or the episode order.
    Called directly, ``act`` draws from one generator seeded with ``seed``.
    """

    model_id = "random"

    def __init__(self, seed: int | None = None, p_malformed: float = 0.2) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.p_malformed = p_malformed

    def bind(self, env: Any) -> "RandomAgent":
        """A copy with its own generator, for one environment instance."""
        return RandomAgent(self.seed, self.p_malformed)

    def start_episode(self, seed: int | None) -> None:
        """Reseed from ``(self.seed, seed)``: the episode's actions become a function of these two only."""
        entropy = [int(x) & (2**64 - 1) for x in (self.seed, seed) if x is not None]
        self.rng = np.random.default_rng(np.random.SeedSequence(entropy) if entropy else None)

    def act(self, messages: Messages) -> str:
        import json
        import re

        system = next((m["content"] for m in messages if m.get("role") == "system" and isinstance(m.get("content"), str)), "")
        tools = []
        for line in re.findall(r"^\{.*\}$", system, flags=re.M):
            try:
                tools.append(json.loads(line)["function"])
            except (ValueError, KeyError, TypeError):
                continue
        r = self.rng.random()
        if r < self.p_malformed:
            return "<tool_call>{not json" if self.rng.random() < 0.5 else "I am not sure."
        if tools and r < 0.85:
            spec = tools[int(self.rng.integers(len(tools)))]
            args = {}
            for name, p in spec.get("parameters", {}).get("properties", {}).items():
                t = p.get("type")
                args[name] = int(self.rng.integers(0, 100)) if t in ("integer", "number") else (
                    bool(self.rng.integers(2)) if t == "boolean" else "x" * int(self.rng.integers(1, 6))
                )
            return f"<tool_call>{json.dumps({'name': spec['name'], 'arguments': args})}</tool_call>"
        return f"<answer>{int(self.rng.integers(0, 100))}</answer>"


class _BoundOracle:
    model_id = "oracle"

    def __init__(self, env: Any) -> None:
        self.env = env.unwrapped

    def act(self, messages: Messages) -> str:
        return self.env.oracle_action()


class OracleAgent:
    """The gold solution of each environment (``env.oracle_action()``): gold calls, patch, plan or box.

    Stateless until bound: the rollout calls :meth:`bind` once per environment instance.
    """

    model_id = "oracle"

    def bind(self, env: Any) -> _BoundOracle:
        if not hasattr(env.unwrapped, "oracle_action"):
            raise ConfigError(f"{type(env.unwrapped).__name__} has no oracle_action()")
        return _BoundOracle(env)

    def act(self, messages: Messages) -> str:
        raise AgentError("OracleAgent must be bound to an environment first: agent.bind(env).act(messages)")
