"""rlvr/ToolCall-v0: function calling with executable tools and bipartite-matched turn rewards (MatchTIR).

An episode is one :class:`~rlvr.envs.toolcall.task.ToolTask`: one or more user requests, each
answered with tool calls (several per turn allowed) and closed with ``<answer>...</answer>``; the
next request (if any) then arrives as a user message. Tools are JSON-schema function specs executed
as Python callables built afresh for the episode, with the base environment's per-call timeout,
output truncation and error observations. A call that times out is abandoned, but its thread cannot
be stopped: the episode then moves to a fresh runtime on which the calls that finished in time are
replayed, so the abandoned call (still running on the old runtime) cannot change the state later.

Reward components per turn (``info["reward_components"]``):

* ``match``: on a turn with calls, the MatchTIR reward of that turn: the mean over its calls of the
  credit each call gets when all calls made so far for the current request are assigned to the
  request's gold calls (:mod:`rlvr.rewards.matchtir`; ``match="hungarian"`` by default, or
  ``"greedy"`` / ``"sinkhorn"``). The value is final when the step returns; MatchTIR's own
  definition assigns the calls of the whole trajectory at once, so a later call can take over a gold
  call from an earlier one. Those exact per-turn values are in ``info["matchtir_turn_rewards"]`` on
  the last step (one per turn; answer turns carry their outcome, turns with neither calls nor an
  answer 0), for trainers that assign turn rewards after the episode.
* ``outcome``: on an answer turn, the verdict on the request it closes (see
  :data:`~rlvr.envs.toolcall.task.OutcomeKind`): BFCL's executable state/response check, BFCL's AST
  check, or the answer's exact match / word F1.
* ``format`` / ``tool_validity``: the base environment's penalties for malformed turns.

Episode returns grow with the task's length (the oracle's return is its number of gold steps plus
its number of requests: from 1 to 11 on the first 20 BFCL tasks). ``reward_scale="episode"`` divides every ``match``
by the task's number of gold steps and every ``outcome`` by its number of requests (each at least
1), so an episode's ``match`` and ``outcome`` sums each lie in [0, 1] whatever its length
(``info["matchtir_turn_rewards"]`` is scaled the same way).

Every step carries ``info["request"]`` (the request now open) and a turn with calls
``info["call_rewards"]`` (each call's credit). On the last step ``info["success"]`` says whether every
request passed (BFCL's verdict for a case) and ``info["requests_passed"]`` lists the verdicts. The
oracle replays each request's gold steps, one step per turn (skipping steps whose calls were already
made exactly), then answers.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from rlvr.caches import TOOL_PROMPTS, TOOL_PROTOTYPES
from rlvr.envs.core import AgentEnv, Message, TurnOutcome, render_tool_prompt
from rlvr.envs.parsers import ToolCall
from rlvr.envs.tools import Tool, ToolResult, ToolSet
from rlvr.envs.toolcall.bfcl import BFCL_CATEGORIES, UNSUPPORTED_CATEGORIES, ast_check, load_bfcl
from rlvr.envs.toolcall.synthetic import SyntheticConfig, generate_task
from rlvr.envs.toolcall.task import ToolTask, oracle_text
from rlvr.errors import ConfigError, ErrorKind, NoOracleError, did_you_mean
from rlvr.registry import env_info
from rlvr.rewards.matchtir import MatchMethod, MatchTIR
from rlvr.rewards.outcome import exact_match, token_f1

__all__ = ["ToolCallEnv"]

Source = Literal["bfcl", "synthetic", "json", "tasks"]
_SOURCES = ("bfcl", "synthetic", "json", "tasks")
_ANSWER_HINT = "When you are done, give your final answer inside <answer></answer> tags."
_REQUEST_HINT = (
    "When the current request is done, or cannot be done, reply to the user inside <answer></answer> tags; "
    "the user may then make another request."
)


class _Recorder:
    """The callable of a benchmark function without an executable backend: it records the call."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, **kwargs: Any) -> str:
        return f"The call to {self.name} was recorded (this benchmark function has no executable backend)."


class _ShapeTool(Tool):
    """A tool whose arguments are checked for names only (required present, no unknown ones).

    Used for BFCL's AST cases, where BFCL's own checker, not the schema, judges types and values.
    """

    __slots__ = ()

    def validate(self, arguments: dict[str, Any]) -> str | None:
        props = self.parameters.get("properties", {})
        missing = [r for r in self.parameters.get("required", []) if r not in arguments]
        unknown = [k for k in arguments if k not in props]
        if not missing and not unknown:
            return None
        parts = ([f"missing required {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
        return f"Invalid arguments for tool {self.name!r}: {'; '.join(parts)}. Expected parameters {list(props)}."


def _record(res: ToolResult) -> str:
    """A call's result as compared by the executable check (same form for model and gold calls)."""
    if res.error is not None:
        return f"Error during execution: {res.error.message}"
    v = res.value
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)


class ToolCallEnv(AgentEnv):
    """Function calling on BFCL v4, synthetic multi-step tasks or FTRL / ToolHop-style JSON.

    Args:
        source: ``"bfcl"`` (the ``bfcl-eval`` package's cases), ``"synthetic"`` (generated from the
            reset seed), ``"json"`` (records from ``path``) or ``"tasks"`` (the ``tasks`` given).
        categories: BFCL categories to draw from (default: every supported one); see
            :data:`~rlvr.envs.toolcall.bfcl.BFCL_CATEGORIES`.
        path: the JSON / JSON Lines file for ``source="json"``.
        trust_code: allow ``source="json"`` to execute the tool code stored in the file.
        answer_metric: ``"f1"`` (default) or ``"em"``: how ``source="json"`` answers are scored.
        tasks: the task list for ``source="tasks"``.
        synthetic: difficulty knobs for ``source="synthetic"``.
        match: assignment of calls to gold calls: ``"hungarian"`` (optimal, default), ``"greedy"``
            (the published variant) or ``"sinkhorn"`` (soft, optimal transport).
        match_reg: Sinkhorn's entropic regularisation.
        unmatched_penalty: ``match`` credit of a call no gold call is assigned to.
        ot_normalize: Sinkhorn credit scale: ``"gold"`` (default), ``"row"`` or ``"none"`` (the published
            ``1/P`` scale), see :mod:`rlvr.rewards.matchtir`.
        reward_scale: ``"sum"`` (default: per-turn values as defined, returns grow with the task's length)
            or ``"episode"`` (``match`` divided by the task's gold steps, ``outcome`` by its requests).
        max_tool_output_chars: tool output longer than this is truncated (visible marker).
        max_turns: assistant turns per episode before truncation.
        **kwargs: budgets and options of :class:`~rlvr.envs.core.AgentEnv` (``tool_timeout_s``, ...).

    ``reset(options=...)`` accepts ``task_id`` (any source; synthetic ids are
    ``synthetic/LABEL/SEED``), ``index`` (a position in :attr:`tasks`; not for synthetic) or
    ``task_seed`` (synthetic) to pick a task; otherwise the task is drawn with the reset seed.
    """

    env_id = "rlvr/ToolCall-v0"
    family = env_info(env_id).family
    description = env_info(env_id).description
    reward_components = ("format", "tool_validity", "match", "outcome")
    reset_options = ("task_id", "index", "task_seed")

    def __init__(
        self,
        source: Source = "bfcl",
        *,
        categories: Sequence[str] | None = None,
        path: str | None = None,
        trust_code: bool = False,
        answer_metric: Literal["f1", "em"] = "f1",
        tasks: Sequence[ToolTask] | None = None,
        synthetic: SyntheticConfig | Mapping[str, Any] | None = None,
        match: MatchMethod = "hungarian",
        match_reg: float = 0.1,
        unmatched_penalty: float = 0.0,
        ot_normalize: Literal["gold", "row", "none"] = "gold",
        reward_scale: Literal["sum", "episode"] = "sum",
        max_tool_output_chars: int | None = 4_000,
        max_turns: int = 32,
        **kwargs: Any,
    ) -> None:
        if source not in _SOURCES:
            raise ConfigError(f"source must be one of {list(_SOURCES)}, got {source!r}{did_you_mean(str(source), _SOURCES)}")
        if answer_metric not in ("f1", "em"):
            raise ConfigError(f"answer_metric must be 'f1' or 'em', got {answer_metric!r}")
        if reward_scale not in ("sum", "episode"):
            raise ConfigError(f"reward_scale must be 'sum' or 'episode', got {reward_scale!r}")
        self.reward_scale = reward_scale
        if max_tool_output_chars is not None and max_tool_output_chars < 1:
            raise ConfigError(f"max_tool_output_chars must be positive or None, got {max_tool_output_chars}")
        super().__init__(max_turns=max_turns, **kwargs)
        self.source = source
        self.scorer = MatchTIR(match, unmatched_penalty, match_reg, ot_normalize)
        self.max_tool_output_chars = max_tool_output_chars
        self._tool_timeout = self.tools.timeout_s
        self._categories: tuple[str, ...] | None = None
        self._path = path
        self._trust_code = trust_code
        self._answer_metric = answer_metric
        self._tasks: tuple[ToolTask, ...] | None = None
        self._by_id: dict[str, int] | None = None
        self.synthetic = SyntheticConfig(**synthetic) if isinstance(synthetic, Mapping) else (synthetic or SyntheticConfig())
        if not isinstance(self.synthetic, SyntheticConfig):
            raise ConfigError(f"synthetic must be a SyntheticConfig or a dict of its fields, got {type(synthetic).__name__}")
        if source == "bfcl":
            cats = tuple(categories) if categories is not None else BFCL_CATEGORIES
            for c in cats:
                if c in UNSUPPORTED_CATEGORIES:
                    raise ConfigError(f"BFCL category {c!r} is not supported: {UNSUPPORTED_CATEGORIES[c]}")
                if c not in BFCL_CATEGORIES:
                    raise ConfigError(f"unknown BFCL category {c!r}{did_you_mean(c, BFCL_CATEGORIES)}; expected some of {list(BFCL_CATEGORIES)}")
            if not cats:
                raise ConfigError("categories is empty; name at least one BFCL category")
            self._categories = cats
        elif categories is not None:
            raise ConfigError(f"categories applies to source='bfcl' only (source is {source!r})")
        if source == "json" and not path:
            raise ConfigError("source='json' needs path='tasks.jsonl' (FTRL / ToolHop-style records)")
        if source != "json" and path is not None:
            raise ConfigError(f"path applies to source='json' only (source is {source!r})")
        if source == "tasks":
            if not tasks:
                raise ConfigError("source='tasks' needs a non-empty tasks=[ToolTask, ...]")
            self._tasks = tuple(tasks)
            for t in self._tasks:
                if not isinstance(t, ToolTask):
                    raise ConfigError(f"tasks must hold ToolTask objects, got {type(t).__name__}")
        elif tasks is not None:
            raise ConfigError(f"tasks applies to source='tasks' only (source is {source!r})")
        self.task: ToolTask | None = None
        self.runtime: Any = None
        self._clear_episode()

    # ------------------------------------------------------------------ data
    def _all_tasks(self) -> tuple[ToolTask, ...]:
        if self._tasks is None:
            if self.source == "bfcl":
                self._tasks = load_bfcl(self._categories)
            elif self.source == "json":
                from rlvr.envs.toolcall.ftrl import load_json_tasks

                self._tasks = load_json_tasks(self._path, trust_code=self._trust_code, answer_metric=self._answer_metric)
            if not self._tasks:
                raise ConfigError(f"no tasks loaded from source {self.source!r}")
        return self._tasks

    @property
    def tasks(self) -> tuple[ToolTask, ...]:
        """Every task this environment draws from (loads them on first use; not for ``source='synthetic'``)."""
        if self.source == "synthetic":
            raise ConfigError("source='synthetic' generates tasks from the seed; use generate_task(seed, config)")
        return self._all_tasks()

    @property
    def dataset_hash(self) -> str:
        if self.source == "bfcl":
            from importlib.metadata import PackageNotFoundError, version

            try:
                v = version("bfcl-eval")
            except PackageNotFoundError:
                v = "missing"
            key = f"bfcl-eval=={v}:{','.join(self._categories or ())}"
        elif self.source == "synthetic":
            key = f"synthetic:{self.synthetic.label}"
        elif self.source == "json":
            from rlvr.envs.toolcall.ftrl import file_hash

            key = f"json:{file_hash(self._path)}"
        else:
            key = "tasks:" + ",".join(t.task_id for t in self._tasks or ())
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def _pick(self, options: dict[str, Any]) -> ToolTask:
        if self.source == "synthetic":
            if "index" in options:
                raise ConfigError("reset option 'index' applies to a task list; source='synthetic' takes "
                                  "'task_seed' or 'task_id'")
            if "task_id" in options:
                return generate_task(self._synthetic_seed(options["task_id"]), self.synthetic)
            seed = options.get("task_seed", int(self.np_random.integers(0, 2**31 - 1)))
            return generate_task(int(seed), self.synthetic)
        if "task_seed" in options:
            raise ConfigError(f"reset option 'task_seed' applies to source='synthetic' only (source is "
                              f"{self.source!r}); pick a task with 'task_id' or 'index'")
        tasks = self._all_tasks()
        if "task_id" in options:
            if self._by_id is None:
                self._by_id = {t.task_id: i for i, t in enumerate(tasks)}
            tid = options["task_id"]
            if tid not in self._by_id:
                raise ConfigError(f"no task with id {tid!r}{did_you_mean(str(tid), self._by_id)} among {len(tasks)} tasks")
            return tasks[self._by_id[tid]]
        if "index" in options:
            i = options["index"]
            if not isinstance(i, int) or not -len(tasks) <= i < len(tasks):
                raise ConfigError(f"index must be an integer in [0, {len(tasks)}), got {i!r}")
            return tasks[i]
        return tasks[int(self.np_random.integers(len(tasks)))]

    def _synthetic_seed(self, task_id: Any) -> int:
        """The seed of a synthetic task id ``synthetic/LABEL/SEED`` made with this env's configuration."""
        prefix = f"synthetic/{self.synthetic.label}/"
        tail = task_id[len(prefix):] if isinstance(task_id, str) and task_id.startswith(prefix) else ""
        if not tail.isdigit():
            raise ConfigError(f"no task with id {task_id!r}: this env's synthetic ids are {prefix}SEED "
                              f"(SEED a non-negative integer), e.g. {prefix}0")
        return int(tail)

    # ------------------------------------------------------------------ tools
    @staticmethod
    def _tool(spec: Mapping[str, Any], fn: Any, shape_only: bool) -> Tool:
        """A Tool for ``spec`` calling ``fn``; the validated prototype is built once per spec content
        (the ``toolcall.tools`` cache of :mod:`rlvr.caches`)."""
        name, description = spec["name"], str(spec.get("description", ""))
        params = json.dumps(spec["parameters"], sort_keys=True, default=str)
        cls = _ShapeTool if shape_only else Tool
        proto = TOOL_PROTOTYPES.get_or_build(
            (name, description, params, shape_only), lambda: cls(name, description, dict(spec["parameters"]), fn))
        t = copy.copy(proto)
        t.fn = fn
        return t

    def _add_tools(self, toolset: ToolSet, specs: Sequence[Mapping[str, Any]], runtime: Any) -> None:
        fns = runtime.functions()
        shape_only = self.task is not None and self.task.outcome == "ast"
        for spec in specs:
            fn = fns.get(spec["name"]) or _Recorder(spec["name"])
            toolset.add(self._tool(spec, fn, shape_only))

    def _new_toolset(self) -> ToolSet:
        return ToolSet(timeout_s=self._tool_timeout, max_output_chars=self.max_tool_output_chars)

    # ------------------------------------------------------------------ episode state
    def _clear_episode(self) -> None:
        self._req = 0
        self._req_calls: list[list[dict[str, Any]]] = []
        self._model_results: list[str] = []
        self._turn_log: list[tuple[str, int, Any]] = []
        self._passed: list[float] = []
        self._gold_runtime: Any = None
        self._gold_tools: ToolSet | None = None
        self._gold_done = 0
        self._turn_info: dict[str, Any] = {}
        self._executed: list[ToolCall] = []  # calls that ran to completion in time, in order

    def _reset_task(self, options: dict[str, Any]) -> tuple[list[Message], dict[str, Any]]:
        task = self._pick(options)
        self.task = task
        self._clear_episode()
        self.runtime = task.backend()
        self.tools = self._new_toolset()
        self._add_tools(self.tools, task.functions, self.runtime)
        hint = _REQUEST_HINT if len(task.requests) > 1 else _ANSWER_HINT
        system = TOOL_PROMPTS.get_or_build(task, lambda: render_tool_prompt(
            task.instructions or "Use the tools to fulfil the request.", self.tools, hint))
        messages: list[Message] = [{"role": "system", "content": system}, *(dict(m) for m in task.requests[0].messages)]
        info: dict[str, Any] = {
            "task_id": task.task_id,
            "source": task.source,
            "category": task.category,
            "n_requests": len(task.requests),
            "n_gold_calls": len(task.gold),
        }
        if task.answer is not None:
            info["answer"] = task.answer if isinstance(task.answer, str) else list(task.answer)
        return messages, info

    # ------------------------------------------------------------------ hooks
    def _before_turn(self) -> None:
        self._turn_info = {}
        self._turn_log.append(("none", self._req, None))  # the hook of a turn with calls or an answer replaces it

    def _on_tool_results(self, results: list[ToolResult]) -> dict[str, float]:
        if not results:  # only malformed calls: a turn without calls
            return {}
        calls = [r.call.to_dict() for r in results]
        self._req_calls.append(calls)
        self._model_results.extend(_record(r) for r in results)
        gold = self.task.requests[self._req].gold
        flat = [c for turn in self._req_calls for c in turn]
        rewards = self.scorer.call_rewards(flat, gold)[-len(calls):]
        self._turn_log[-1] = ("calls", self._req, calls)
        self._turn_info = {"call_rewards": [float(r) for r in rewards]}
        return {"match": float(rewards.mean()) / self._scale("match")}

    def _after_call(self, result: ToolResult) -> None:
        if result.error is None or result.error.kind is ErrorKind.TOOL_EXCEPTION:
            self._executed.append(result.call)
        elif result.error.kind is ErrorKind.TOOL_TIMEOUT:
            self._fence()  # before the turn's next call: it must not run where the abandoned one still runs

    def _fence(self) -> None:
        """After a timed-out call: move the episode to a fresh runtime on which the calls that finished in
        time are replayed here, on the env's thread. The abandoned call may still be running (its thread
        cannot be stopped), but only on the old runtime, which nothing reads any more: it has no effect."""
        task = self.task
        runtime = task.backend()
        tools = self._new_toolset()
        specs = list(task.functions) + [s for r in task.requests[1:self._req + 1] for s in r.new_functions]
        self._add_tools(tools, specs, runtime)
        for c in self._executed:
            if c.name in tools:
                try:
                    tools[c.name].fn(**c.arguments)
                except Exception:  # noqa: BLE001 - it raised the first time as well (reported then); replay its effect
                    pass
        self.runtime, self.tools = runtime, tools

    def _judge(self, k: int, answer: str) -> float:
        task = self.task
        req = task.requests[k]
        n_calls = sum(len(c) for c in self._req_calls)
        if task.outcome == "answer":
            metric = exact_match if task.answer_metric == "em" else token_f1
            return float(metric(answer, task.answers))
        if not req.gold:
            return float(n_calls == 0)
        if task.outcome == "ast":
            calls = [c for turn in self._req_calls for c in turn]
            return float(ast_check(calls, req.gold, task.meta.get("signatures", {})))
        # "state": replay the gold calls of every request up to k on a second runtime
        if self._gold_runtime is None:
            self._gold_runtime = task.backend()
            self._gold_tools = ToolSet(timeout_s=None)
            specs = list(task.functions) + [s for r in task.requests for s in r.new_functions]
            self._add_tools(self._gold_tools, specs, self._gold_runtime)
        gold_results: list[str] = []
        while self._gold_done <= k:
            gold_results = [_record(self._gold_tools.execute(_as_call(c))) for c in task.requests[self._gold_done].gold]
            self._gold_done += 1
        if n_calls == 0:
            return 0.0
        if self.runtime.state() != self._gold_runtime.state():
            return 0.0
        missing = Counter(gold_results) - Counter(self._model_results)
        return float(not missing)

    def _on_answer(self, answer: str) -> TurnOutcome:
        k = self._req
        value = self._judge(k, answer)
        self._passed.append(value)
        self._turn_log[-1] = ("answer", k, value)
        components = {"outcome": value / self._scale("outcome")}
        if k + 1 >= len(self.task.requests):
            return TurnOutcome([], components, terminated=True)
        self._req += 1
        self._req_calls = []
        nxt = self.task.requests[self._req]
        messages = [dict(m) for m in nxt.messages]
        if nxt.new_functions:
            self._add_tools(self.tools, nxt.new_functions, self.runtime)
            listing = "\n".join(json.dumps(self.tools[s["name"]].schema(), ensure_ascii=False) for s in nxt.new_functions)
            note = f"New functions are available:\n<tools>\n{listing}\n</tools>"
            if messages and messages[0].get("role") == "user":
                messages[0] = {**messages[0], "content": f"{note}\n\n{messages[0]['content']}"}
            else:
                messages.insert(0, {"role": "user", "content": note})
        return TurnOutcome(messages, components)

    def _on_episode_end(self, truncated: bool, budget: str | None) -> tuple[dict[str, float], dict[str, Any]]:
        passed = len(self._passed) == len(self.task.requests) and all(v == 1.0 for v in self._passed)
        return {}, {"matchtir_turn_rewards": self._trajectory_turn_rewards(), "requests_passed": list(self._passed),
                    "success": passed}

    def _step_info(self) -> dict[str, Any]:
        return {**self._turn_info, "request": self._req}

    def _trajectory_turn_rewards(self) -> list[float]:
        """MatchTIR's per-turn rewards with all calls of each request assigned at once."""
        out: list[float] = [0.0] * len(self._turn_log)
        by_req: dict[int, list[int]] = {}
        for i, (kind, k, _) in enumerate(self._turn_log):
            if kind == "calls":
                by_req.setdefault(k, []).append(i)
            elif kind == "answer":
                out[i] = float(self._turn_log[i][2]) / self._scale("outcome")
        for k, idx in by_req.items():
            values = self.scorer([self._turn_log[i][2] for i in idx], self.task.requests[k].gold)
            for i, v in zip(idx, values):
                out[i] = float(v or 0.0) / self._scale("match")
        return out

    def _scale(self, component: str) -> float:
        """What ``reward_scale`` divides ``component`` by in this episode (1.0 under ``"sum"``)."""
        if self.reward_scale == "sum" or self.task is None:
            return 1.0
        if component == "match":
            return float(max(1, sum(len(r.steps) for r in self.task.requests)))
        return float(max(1, len(self.task.requests)))

    def _steps_done(self, steps: Sequence[Sequence[Any]]) -> int:
        """Leading gold steps whose every call was already made, exactly, in the current request."""
        made = Counter(_key(c["name"], c["arguments"]) for turn in self._req_calls for c in turn)
        for i, step in enumerate(steps):
            need = Counter(_key(g.name, g.arguments) for g in step)
            if need - made:
                return i
            made -= need
        return len(steps)

    def oracle_action(self) -> str:
        if self.task is None or self._done:
            raise NoOracleError("the episode has ended (or never started); call reset() first")
        req = self.task.requests[self._req]
        done = self._steps_done(req.steps)
        if done < len(req.steps):
            return oracle_text(req.steps[done])
        text = req.answer
        if self.task.outcome == "answer" and self._req == len(self.task.requests) - 1:
            text = self.task.answers[0]
        return f"<answer>{text or 'Done.'}</answer>"


def _key(name: str, arguments: Mapping[str, Any]) -> str:
    return json.dumps([name, arguments], sort_keys=True, ensure_ascii=False, default=str)


def _as_call(gold: Any) -> ToolCall:
    return ToolCall(gold.name, dict(gold.arguments))
