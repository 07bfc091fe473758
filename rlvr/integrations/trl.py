"""TRL's ``GRPOTrainer(environment_factory=...)`` on any rlvr environment.

TRL's environment protocol: a class with a no-argument constructor, ``reset(**dataset_columns) -> str |
None``, and one public method per tool, typed and with an ``Args:`` docstring from which TRL builds the
tool schema. TRL generates, parses the model's tool calls, calls the methods, appends their results
as ``tool`` messages and generates again, until the model writes a message without a tool call;
reward functions then receive the environment instances (``environments=``).

* :func:`environment_factory` builds that class for an rlvr id: one method per declared tool, its
  signature and docstring generated from the tool's JSON schema. Each call is one rlvr step (the
  call written as a Hermes ``<tool_call>``), so the environment validates it, applies its budgets
  and records its reward components as in rlvr's own loop. A call that fails (unknown tool, bad
  arguments, a tool exception or timeout, a service down, a finished episode) raises
  :class:`ToolCallFailed`: TRL turns an exception into an ``{"error": ...}`` tool message and counts
  it in ``tools/failure_frequency``. Environments whose tools change per task (``rlvr/ToolCall-v0``)
  get a class over a pool of tasks (``task_ids``) whose methods are the union of their tools
  (:mod:`rlvr.integrations.trl_tasks`).
* The model's final message (the one without a tool call, typically ``<answer>...</answer>``) goes
  to the environment as the episode's last turn when the first reward function runs; TRL's rollout
  ends there, so that turn ends the episode (with the turn budget's terminal components if it is
  not an answer).
* :func:`reward_funcs` gives one TRL reward function per reward component (logged, weight 0), the
  weighted total, and the gated (G-RA) and information-gain schemes; their ``weights`` go to
  ``GRPOConfig(reward_weights=...)``.
* :func:`dataset` turns an environment's tasks into the dataset TRL iterates: ``prompt`` (the opening
  messages, tool listings left to TRL's chat template), ``task_id`` and ``seed``, which ``reset``
  replays.
* :func:`prepare_tokenizer` gives a ChatML tokenizer without tool support (SmolLM2) TRL's
  tool-capable ChatML template.
"""

from __future__ import annotations

import copy
import inspect
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from rlvr.envs.core import AgentEnv, render_tool_prompt
from rlvr.envs.tools import Tool
from rlvr.errors import ConfigError, EpisodeStateError, RLVRError
from rlvr.integrations.trl_tasks import DEFAULT_MAX_TOOLS, check_row_task, pool_task_ids, pool_tools

__all__ = ["ToolCallFailed", "TRLEnvironment", "Episode", "RewardFuncs", "environment_factory", "reward_funcs",
           "dataset", "prepare_tokenizer"]

_JSON_TO_PY: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "array": list,
                               "object": dict, "null": type(None)}
_RESERVED = ("reset", "get_reward")


class ToolCallFailed(RLVRError):
    """A tool call the environment refused or that failed; TRL shows its message to the model as the
    tool's ``{"error": ...}`` result. ``kind`` is the rlvr error kind (``info["error"]["kind"]``)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Episode:
    """One finished episode as rlvr recorded it: what every reward function reads."""

    task_id: str
    components: list[dict[str, float]] = field(default_factory=list)
    """Each turn's ``info["reward_components"]`` (unweighted)."""
    rewards: list[float] = field(default_factory=list)
    """Each turn's reward: the components weighted by the environment's ``reward_weights``."""
    weights: dict[str, float] = field(default_factory=dict)
    """The weights in force (missing names weigh 1.0)."""
    success: bool = False
    terminated: bool = False
    truncated: bool = False
    answer: Any = None
    """The ground truth from reset info (``info["answer"]``), where the environment has one."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """The whole conversation on the rlvr side (rlvr's own system prompt, calls as Hermes text)."""

    def component_total(self, name: str) -> float | None:
        """Sum of one component over the turns; ``None`` when no turn had it (not applicable)."""
        values = [c[name] for c in self.components if name in c]
        return float(sum(values)) if values else None

    @property
    def total(self) -> float:
        """The environment's weighted return (sum of the turn rewards)."""
        return float(sum(self.rewards))


def _annotation(spec: Mapping[str, Any]) -> Any:
    """A Python annotation from which transformers' ``get_json_schema`` writes back the same JSON type."""
    enum = spec.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, (str, int, float, bool)) for v in enum):
        return Literal[tuple(enum)]  # type: ignore[valid-type]
    t = spec.get("type")
    if isinstance(t, list):
        known = [_JSON_TO_PY[x] for x in t if x in _JSON_TO_PY and x != "null"]
        return typing.Union[tuple(known)] if known else Any  # type: ignore[return-value]
    if t == "array":
        items = spec.get("items")
        return list[_annotation(items)] if isinstance(items, Mapping) and items.get("type") else list
    return _JSON_TO_PY.get(t, Any) if isinstance(t, str) else Any


def _one_line(text: str) -> str:
    """Docstring-safe text: one line, no section headers TRL's docstring parser would split on."""
    out = " ".join(str(text).split())
    for word in ("Args:", "Returns:", "Raises:"):
        out = out.replace(word, word[:-1])
    return out


def _describe(name: str, spec: Mapping[str, Any]) -> str:
    desc = _one_line(spec.get("description") or "") or f"the {name} argument"
    notes = []
    if "minimum" in spec and "maximum" in spec:
        notes.append(f"from {spec['minimum']} to {spec['maximum']}")
    elif "minimum" in spec:
        notes.append(f"at least {spec['minimum']}")
    elif "maximum" in spec:
        notes.append(f"at most {spec['maximum']}")
    if "default" in spec:
        notes.append(f"default {json.dumps(spec['default'])}")
    return desc + (f" ({'; '.join(notes)})" if notes else "")


def _tool_method(tool: Tool, owner: str) -> Callable[..., str]:
    """The method TRL sees for ``tool``: keyword parameters typed and documented from its schema."""
    if tool.name.startswith("_") or tool.name in _RESERVED:
        raise ConfigError(f"{owner}: tool {tool.name!r} cannot be a TRL environment method (TRL skips names "
                          f"starting with '_' and reserves {', '.join(_RESERVED)})")
    props = tool.parameters.get("properties", {}) or {}
    required = set(tool.parameters.get("required", ()) or ())
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    arg_lines = []
    for name, spec in props.items():
        spec = spec if isinstance(spec, Mapping) else {}
        try:
            ann = _annotation(spec)
            default = inspect.Parameter.empty if name in required else None
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann))
        except ValueError as e:
            raise ConfigError(f"{owner}: tool {tool.name!r} has an argument {name!r} that is not a Python identifier (or is a keyword), "
                              "so TRL cannot call it as a keyword; rename it in the tool's schema") from e
        annotations[name] = ann
        arg_lines.append(f"    {name}: {_describe(name, spec)}")
    tool_name = tool.name

    def method(self: TRLEnvironment, **arguments: Any) -> str:
        return self._call_tool(tool_name, arguments)

    method.__name__ = method.__qualname__ = tool_name
    method.__doc__ = (_one_line(tool.description or "") or tool_name) + ("\n\nArgs:\n" + "\n".join(arg_lines) if arg_lines else "")
    method.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = {**annotations, "return": str}
    return method


def _strip_tool_listing(system: str, env: AgentEnv) -> str:
    """rlvr's system prompt without its tool listing (TRL's chat template writes its own from the methods)."""
    if not len(env.tools):
        return system
    marker = render_tool_prompt("\x00", env.tools, "\x01")
    listing = marker.split("\x00\n\n", 1)[1].rsplit("\n\n\x01", 1)[0]
    return system.replace("\n\n" + listing, "", 1)


def _last_text(completion: Any) -> str:
    """The text of the model's final message in a TRL completion (a message list, or a plain string)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        for message in reversed(completion):
            if isinstance(message, Mapping) and message.get("role") == "assistant":
                content = message.get("content") or ""
                if isinstance(content, list):
                    content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
                return str(content)
        return ""
    raise ConfigError(f"a TRL completion is a list of messages or a string, got {type(completion).__name__}")


class TRLEnvironment:
    """Base of the classes :func:`environment_factory` builds; one instance per TRL rollout.

    Public methods are the tools (TRL exposes every public function of the class), so everything
    else here starts with an underscore. ``_env`` is the rlvr environment (``AgentEnv``).
    """

    env_id: ClassVar[str] = ""
    env_kwargs: ClassVar[dict[str, Any]] = {}
    tool_names: ClassVar[tuple[str, ...]] = ()
    task_pool: ClassVar[tuple[str, ...] | None] = None
    """The tasks a class over per-task tools serves (``None``: the environment's tools are fixed)."""
    _pool_members: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        import gymnasium as gym

        import rlvr  # noqa: F401 - registers the ids

        self._gym = gym.make(self.env_id, **copy.deepcopy(self.env_kwargs))
        self._env: AgentEnv = self._gym.unwrapped  # type: ignore[assignment]
        self._max_turns = self._env.max_turns
        self._info: dict[str, Any] = {}
        self._components: list[dict[str, float]] = []
        self._rewards: list[float] = []
        self._last: dict[str, Any] = {}
        self._running = False
        self._episode: Episode | None = None

    def reset(self, **columns: Any) -> str | None:
        """Start the episode of a dataset row: ``task_id`` and ``seed`` replay a task of :func:`dataset`;
        other columns (``prompt``, those for reward functions) are not the environment's.

        Returns ``None`` when the row has a ``prompt`` (its opening must be this task's, else a
        :class:`ConfigError`), else the opening text for TRL to append to its user message.
        """
        task_id, seed = columns.get("task_id"), columns.get("seed")
        check_row_task(self.task_pool, self._pool_members, self.env_id, task_id)
        self._env.max_turns = self._max_turns
        options = {"task_id": task_id} if task_id is not None else None
        messages, info = self._gym.reset(seed=None if seed is None else int(seed), options=options)
        self._info, self._components, self._rewards, self._last = dict(info), [], [], {}
        self._running, self._episode = True, None
        prompt = columns.get("prompt")
        opening = [m for m in messages if m.get("role") != "system"]
        if prompt is not None:
            want = opening[-1]["content"] if opening else None
            got = prompt[-1].get("content") if isinstance(prompt, list) and prompt and isinstance(prompt[-1], Mapping) else prompt
            if want is not None and got != want:
                raise ConfigError(f"{self.env_id}: the dataset row's prompt ends with {str(got)[:80]!r} but task "
                                  f"{info['task_id']!r} opens with {str(want)[:80]!r}; build the dataset with "
                                  "rlvr.integrations.trl.dataset() from the same environment class")
            return None
        system = [_strip_tool_listing(m["content"], self._env) for m in messages if m.get("role") == "system"]
        return "\n\n".join([*system, *(str(m["content"]) for m in opening)])

    # ------------------------------------------------------------------ routing to the rlvr env
    def _step(self, action: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._gym.step(action)
        self._components.append(dict(info["reward_components"]))
        self._rewards.append(float(reward))
        self._last = {**info, "terminated": terminated, "truncated": truncated}
        self._running = not (terminated or truncated)
        return obs, info

    def _call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        if not self._running:
            why = self._last.get("truncated_by") or ("the task ended" if self._last else "reset() was not called")
            raise ToolCallFailed(f"The episode is over ({why}); no more tool calls run. Give your final answer.",
                                 "episode_over")
        schema = self._env.tools[name].parameters if name in self._env.tools else {}
        required = set(schema.get("required", ()))
        args = {k: v for k, v in arguments.items() if v is not None or k in required}  # TRL passes omitted ones as None
        action = "<tool_call>" + json.dumps({"name": name, "arguments": args}, ensure_ascii=False) + "</tool_call>"
        obs, info = self._step(action)
        text = "\n\n".join(str(m.get("content", "")) for m in obs)
        error = info.get("error")
        if error and error["kind"] == "unknown_tool" and name in self.tool_names:  # another pool task's tool
            text = (f"Tool {name!r} is not offered by this task ({self._info.get('task_id')}); this task's tools: "
                    f"{', '.join(t.name for t in self._env.tools) or 'none'}.")
        if error:
            raise ToolCallFailed(text or error["message"], str(error["kind"]))
        if not self._running:
            text += f"\n\n(The episode is over: {info.get('truncated_by') or 'the task ended'}.)"
        return text

    def _finish(self, completion: Any) -> Episode:
        """End the episode with the model's final message (once) and return its record."""
        if self._episode is None:
            if not self._info:
                raise EpisodeStateError(f"{type(self).__name__}: reset() was never called, so there is no episode "
                                        "to score; pass this class to GRPOTrainer(environment_factory=...)")
            if self._running:  # TRL's rollout ended here: this is the episode's last turn
                self._env.max_turns = self._env.turn + 1
                self._step(_last_text(completion))
            last = self._last
            self._episode = Episode(
                task_id=str(self._info.get("task_id")), components=list(self._components), rewards=list(self._rewards),
                weights=dict(self._env.reward_weights), success=bool(last.get("success", False)),
                terminated=bool(last.get("terminated")), truncated=bool(last.get("truncated")),
                answer=self._info.get("answer"), messages=[dict(m) for m in self._env.messages])
        return self._episode

    def _close(self) -> None:
        """Close the rlvr environment (sandboxes, retrieval clients)."""
        self._gym.close()


def _env_class(env: str | type[TRLEnvironment]) -> type[TRLEnvironment]:
    if isinstance(env, str):
        return environment_factory(env)
    if isinstance(env, type) and issubclass(env, TRLEnvironment):
        return env
    raise ConfigError(f"expected an rlvr env id or a class from environment_factory(), got {env!r}")


def environment_factory(env_id: str, /, *, task_ids: Sequence[str] | None = None, max_tools: int = DEFAULT_MAX_TOOLS,
                        **env_kwargs: Any) -> type[TRLEnvironment]:
    """A TRL environment class for ``env_id`` built with ``env_kwargs``: pass it as
    ``GRPOTrainer(environment_factory=...)``.

    The id and keywords are checked first (unknown names fail with a did-you-mean); one probe
    environment is built to read its tools. Environments whose tools change from task to task
    (``rlvr/ToolCall-v0``) get a class over a pool of tasks, ``task_ids`` (default: all the
    environment's tasks): its methods are the union of those tasks' tools, at most ``max_tools``
    (TRL lists them all in every prompt), and a tool name two tasks define differently is a
    :class:`ConfigError` naming both (:mod:`rlvr.integrations.trl_tasks`). A call to a pool tool the
    current task does not offer raises :class:`ToolCallFailed` listing the task's tools;
    :func:`dataset` draws its rows from the pool. ``task_ids`` also restricts a fixed-tool environment.
    """
    import gymnasium as gym

    import rlvr  # noqa: F401 - registers the ids
    from rlvr.registry import check_env_args

    check_env_args(env_id, env_kwargs)
    probe = gym.make(env_id, **copy.deepcopy(env_kwargs))
    pool: tuple[str, ...] | None = None
    try:
        base = probe.unwrapped
        if not isinstance(base, AgentEnv):
            raise ConfigError(f"{env_id} is not an rlvr AgentEnv ({type(base).__name__}); TRL needs its tools")
        tools = list(base.tools)
        if task_ids is not None or not tools:
            pool, tools = pool_tools(base, env_id, task_ids, max_tools)
        owner = env_id.split("/")[-1].replace("-", "_")
        methods = {t.name: _tool_method(t, env_id) for t in tools}
    finally:
        probe.close()
    served = f"; {len(pool)} tasks" if pool is not None else ""
    namespace: dict[str, Any] = {
        "env_id": env_id, "env_kwargs": copy.deepcopy(env_kwargs), "tool_names": tuple(methods), **methods,
        "task_pool": pool, "_pool_members": frozenset(pool or ()),
        "__doc__": f"{env_id} for TRL's GRPOTrainer: tools {', '.join(methods)}{served}.", "__module__": __name__,
    }
    return type(f"TRL_{owner}", (TRLEnvironment,), namespace)


# ---------------------------------------------------------------------- reward functions
class _RewardFunc:
    """One TRL reward function: ``f(prompts, completions, environments, ...) -> list[float | None]``.

    ``__name__`` is what TRL logs it as (``rewards/<name>/mean``); ``None`` (not applicable) becomes NaN
    in TRL and is left out of that sample's sum.
    """

    def __init__(self, name: str, score: Callable[[Episode], float | None], weight: float) -> None:
        self.__name__ = name
        self.score = score
        self.weight = float(weight)

    def __repr__(self) -> str:
        return f"<rlvr reward {self.__name__} weight={self.weight:g}>"

    def __call__(self, prompts: Any = None, completions: Any = None, environments: Any = None,
                 **_trl_columns: Any) -> list[float | None]:
        episodes = _episodes(self.__name__, completions, environments)
        return [self.score(e) for e in episodes]


def _episodes(name: str, completions: Any, environments: Any) -> list[Episode]:
    if environments is None:
        raise ConfigError(f"reward {name!r} reads the rlvr environments of the rollouts, but TRL passed none: give "
                          "GRPOTrainer(environment_factory=environment_factory(...)) as well")
    if completions is None or len(completions) != len(environments):
        raise ConfigError(f"reward {name!r}: got {0 if completions is None else len(completions)} completions for "
                          f"{len(environments)} environments; TRL passes one of each per rollout")
    out = []
    for env, completion in zip(environments, completions):
        if not isinstance(env, TRLEnvironment):
            raise ConfigError(f"reward {name!r} needs environments from rlvr's environment_factory(), got "
                              f"{type(env).__name__}")
        out.append(env._finish(completion))
    return out


class RewardFuncs(list):
    """The reward functions of :func:`reward_funcs` (a list, as ``GRPOTrainer(reward_funcs=...)`` takes);
    ``weights`` is the matching ``GRPOConfig(reward_weights=...)``."""

    @property
    def weights(self) -> list[float]:
        return [f.weight for f in self]

    @property
    def names(self) -> list[str]:
        return [f.__name__ for f in self]


class _InfoGainScore:
    """IGPO under TRL: the per-turn gains ``p_t - p_(t-1)`` telescope to ``p_T - p_0`` in the one
    sequence-level reward TRL takes, so only the opening and the finished conversation are scored."""

    def __init__(self, model: Any, tokenizer: Any, settings: Any) -> None:
        self.model, self.tokenizer, self.settings = model, tokenizer, settings

    def batch(self, episodes: list[Episode]) -> list[float | None]:
        from rlvr.rewards import info_gain as ig

        s = self.settings
        scored = [i for i, e in enumerate(episodes) if _first_answer(e.answer)]
        out: list[float | None] = [None] * len(episodes)
        if not scored:
            return out
        seqs = []
        for i in scored:
            msgs = episodes[i].messages
            opening = [m for m in msgs[:2] if m.get("role") in ("system", "user")] or msgs[:1]
            for part in (opening, msgs):
                seqs.append(self.tokenizer.apply_chat_template(part, add_generation_prompt=True, tokenize=True,
                                                               return_dict=False))
        prefix = self.tokenizer(s.answer_prefix, add_special_tokens=False)["input_ids"]
        answers = [self.tokenizer(_first_answer(episodes[i].answer), add_special_tokens=False)["input_ids"]
                   for i in scored for _ in (0, 1)]
        fn = ig.answer_logprobs_cached if s.method == "cached" else ig.answer_logprobs_naive
        was_training = self.model.training
        self.model.eval()
        try:
            scores = fn(self.model, seqs, [[len(q)] for q in seqs], prefix, answers)
        finally:
            self.model.train(was_training)
        for k, i in enumerate(scored):
            out[i] = ig.information_gain([scores[2 * k][0], scores[2 * k + 1][0]], s.variant)[0]
        return out


def _first_answer(answer: Any) -> str:
    if isinstance(answer, str):
        return answer.strip()
    if isinstance(answer, Sequence) and answer and isinstance(answer[0], str):
        return answer[0].strip()
    return ""


class _InfoGainFunc(_RewardFunc):
    def __init__(self, scorer: _InfoGainScore, weight: float) -> None:
        super().__init__("info_gain", lambda e: None, weight)
        self.scorer = scorer

    def __call__(self, prompts: Any = None, completions: Any = None, environments: Any = None,
                 **_trl_columns: Any) -> list[float | None]:
        return self.scorer.batch(_episodes(self.__name__, completions, environments))


def _gated_score(tiers: Any) -> Callable[[Episode], float]:
    from rlvr.rewards.gated import GatedRewardAccumulation

    gate = GatedRewardAccumulation(tiers, unassigned="ignore")

    def score(e: Episode) -> float:
        weighted = [{k: e.weights.get(k, 1.0) * v for k, v in c.items()} for c in e.components]
        return gate.total(weighted)

    return score


def reward_funcs(
    env: str | type[TRLEnvironment] | Sequence[str | type[TRLEnvironment]],
    *,
    scheme: Literal["env", "gated", "info_gain"] = "env",
    gate_priority: Sequence[str] = ("outcome",),
    gate_thresholds: Sequence[float] = (1.0,),
    model: Any = None,
    tokenizer: Any = None,
    ig_weight: float = 1.0,
    ig_variant: Literal["prob_diff", "log_prob_diff"] = "prob_diff",
    ig_answer_prefix: str = "<answer>",
) -> RewardFuncs:
    """TRL reward functions for an environment class of :func:`environment_factory` (or an id).

    Always one function per declared reward component, named after it, at weight 0: TRL logs each
    (``rewards/<name>/mean``, the episode's unweighted sum; ``None`` where a component never applied),
    and ``total``, the environment's weighted return (the sum of its turn rewards). ``scheme`` says
    which drive the advantage (weight 1):

    * ``"env"``: ``total``;
    * ``"gated"``: ``gated``, G-RA over the weighted components: one tier per ``gate_priority`` entry
      with its threshold, then every other component (``total`` stays at weight 0 as the ungated
      D-RA sum to compare with);
    * ``"info_gain"``: ``total`` plus ``info_gain`` at ``ig_weight``: the IGPO gain of the policy's
      probability of the ground-truth answer (reset info ``answer``) from the opening to the finished
      conversation, scored with ``model`` and ``tokenizer`` (the policy being trained). Per-turn gains
      telescope to this difference under TRL's one reward per sequence.

    Several environments (TRL's dict ``environment_factory``) share one list: the components of all of
    them, each ``None`` on the rollouts of an environment that does not declare it.

    Pass ``RewardFuncs.weights`` as ``GRPOConfig(reward_weights=...)``.
    """
    import rlvr  # noqa: F401 - registers the ids
    from rlvr.registry import check_env_args

    classes = [_env_class(e) for e in ([env] if isinstance(env, (str, type)) else list(env))]
    if not classes:
        raise ConfigError("reward_funcs needs at least one environment (an id or a class from environment_factory)")
    env_classes = [check_env_args(c.env_id, c.env_kwargs) for c in classes]
    declared: tuple[str, ...] = tuple(dict.fromkeys(n for c in env_classes for n in getattr(c, "reward_components", ())))
    if scheme not in ("env", "gated", "info_gain"):
        raise ConfigError(f"scheme must be 'env', 'gated' or 'info_gain', got {scheme!r}")
    funcs = RewardFuncs(_RewardFunc(name, (lambda n: lambda e: e.component_total(n))(name), 0.0) for name in declared)
    funcs.append(_RewardFunc("total", lambda e: e.total, 1.0 if scheme in ("env", "info_gain") else 0.0))
    if scheme == "gated":
        from rlvr.rewards.gated import RewardTier

        if len(gate_priority) != len(gate_thresholds) or not gate_priority:
            raise ConfigError(f"gate_priority {list(gate_priority)} and gate_thresholds {list(gate_thresholds)} need "
                              "the same, non-zero length (one threshold per gated component)")
        for env_cls in env_classes:
            if isinstance(env_cls, type) and issubclass(env_cls, AgentEnv):
                env_cls.check_reward_components(gate_priority, "gate_priority")
        tiers = [RewardTier(n, (n,), float(t)) for n, t in zip(gate_priority, gate_thresholds)]
        rest = tuple(n for n in declared if n not in gate_priority)
        if rest:
            tiers.append(RewardTier("rest", rest))
        funcs.append(_RewardFunc("gated", _gated_score(tuple(tiers)), 1.0))
    elif scheme == "info_gain":
        from rlvr.rewards.info_gain import InformationGain

        if model is None or tokenizer is None:
            raise ConfigError("scheme='info_gain' scores the policy's probability of the ground-truth answer: pass "
                              "model= and tokenizer= (the model given to GRPOTrainer)")
        settings = InformationGain(ig_answer_prefix, ig_variant)
        funcs.append(_InfoGainFunc(_InfoGainScore(model, tokenizer, settings), ig_weight))
    return funcs


# ---------------------------------------------------------------------- dataset and tokenizer
def dataset(env: str | type[TRLEnvironment], n: int = 64, *, seed: int = 0, task_ids: Sequence[str] | None = None,
            environment: str | None = None) -> Any:
    """A ``datasets.Dataset`` of the environment's tasks for ``GRPOTrainer(train_dataset=...)``.

    Row ``i`` is the episode ``reset(seed=seed + i)`` draws (or ``task_ids[i]``; a class over a task pool
    cycles through its pool, and ``task_ids`` must be in it): ``prompt``, its opening
    messages (rlvr's system prompt without the tool listing, which TRL's chat template writes from the
    tool methods), ``task_id`` and ``seed``, which the class's ``reset`` replays. ``environment`` adds
    that column, TRL's key into a dict ``environment_factory={name: class}`` (several environments in
    one run: concatenate their datasets).
    """
    from datasets import Dataset

    cls = _env_class(env)
    if task_ids is not None:
        task_ids = list(task_ids)
        n = len(task_ids)
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive number of rows, got {n!r}")
    if cls.task_pool is not None:
        task_ids = pool_task_ids(cls.task_pool, cls.env_id, n, task_ids)
    probe = cls()
    rows = []
    try:
        for i in range(n):
            options = {"task_id": task_ids[i]} if task_ids is not None else None
            messages, info = probe._gym.reset(seed=seed + i, options=options)
            prompt = [{"role": m["role"], "content": _strip_tool_listing(m["content"], probe._env)
                       if m.get("role") == "system" else m["content"]} for m in messages]
            row = {"prompt": prompt, "task_id": str(info["task_id"]), "seed": seed + i}
            rows.append(row if environment is None else {**row, "environment": environment})
    finally:
        probe._close()
    return Dataset.from_list(rows)


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Make ``tokenizer`` usable by TRL's tool loop and return it.

    TRL refuses a chat template that cannot render tool calls. A ChatML tokenizer (``<|im_start|>`` /
    ``<|im_end|>`` tokens) whose own template ignores tools, as SmolLM2's does, gets TRL's Qwen2.5
    ChatML template, which lists tools and writes calls as Hermes ``<tool_call>`` blocks (the format
    rlvr parses). Other templates without tool support are a :class:`ConfigError`.
    """
    from trl.chat_template_utils import qwen2_5_chat_template, supports_tool_calling

    if supports_tool_calling(tokenizer):
        return tokenizer
    vocab = tokenizer.get_vocab()
    if "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        tokenizer.chat_template = qwen2_5_chat_template
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer
    raise ConfigError(f"{type(tokenizer).__name__}'s chat template cannot render tool calls and it is not a ChatML "
                      "tokenizer; set tokenizer.chat_template to one with tool support")
