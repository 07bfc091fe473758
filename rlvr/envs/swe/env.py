"""rlvr/SWE-v0: fix a bug in a real repository inside a sandbox, graded by hidden tests.

Each episode takes one task (by default a generated one: a bug injected into a small Python
project shipped with rlvr; or SWE-bench / SWE-Gym instances), prepares its repository at
``/testbed`` in a pooled sandbox, and lets the agent use six tools: ``bash``, ``view_file``,
``edit_file``, ``create_file``, ``run_tests`` and ``submit``. ``submit`` (or ``<answer>...</answer>``)
grades the work tree: the model patch and then the hidden test patch are applied to a fresh copy of
the repository and the FAIL_TO_PASS / PASS_TO_PASS tests are run.

Reward components:

* ``outcome`` (final turn): the level of the submission, no submission < regression (the patch makes
  PASS_TO_PASS tests fail: it breaks what worked) < empty patch < tests fail < resolved
  (:class:`~rlvr.rewards.gated.OutcomeLevels`); "no submission" is given on the turn the budget runs out.
* immediate, per turn: ``valid_call`` (share of the turn's calls that were well-formed and valid),
  ``modification`` (the work tree reached a state not seen before in the episode), ``test_run``
  (tests were run on a state not tested before); plus the base class's ``format`` / ``tool_validity``
  penalties.
* ``gate`` (final turn, only with ``accumulation="gated"``): G-RA. When the outcome stays below the
  threshold (no submission, a regression or an empty patch), it cancels the immediate rewards collected in the
  episode, so the return equals ``R_high + 1[R_high >= delta] * sum(r_low)``. With
  ``accumulation="direct"`` the return is the ungated D-RA sum.

The immediate components are on every turn (0.0 where the turn has none); ``outcome`` and ``gate``
are only on a graded final turn (:attr:`~rlvr.envs.core.AgentEnv.optional_components`: before the
end, or after an infrastructure failure, there is no grade to give). The final step carries
``info["success"]`` and ``info["resolved"]`` (the hidden tests pass), ``info["outcome"]`` (the
level's name, or ``"infra_failure"``) and, after a submission, ``info["grade"]``. ``reset(options=...)`` accepts ``task_id`` (an instance id; a
did-you-mean over a task list) or ``task`` (a :class:`~rlvr.envs.swe.tasks.SWETask` to run).

A sandbox that dies or wedges mid-episode, or an engine that stops answering
(:class:`~rlvr.envs.swe.errors.SandboxLost`, :class:`~rlvr.envs.swe.errors.EngineUnavailable`, or a
tool call that outlasts its time limit although the sandbox limits every command), is an
infrastructure failure: the episode ends truncated with ``info["infra_failure"]``, no outcome level
and no penalty, and the broken sandbox is destroyed instead of going back to the pool. ``submit``
grades in the tool's thread but records the report (and ends the episode) on the env's thread.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from rlvr.envs.core import AgentEnv, Message, TurnOutcome, render_tool_prompt
from rlvr.envs.swe.agent_tools import MUTATING_TOOLS, make_tools
from rlvr.envs.swe.errors import EngineUnavailable, SandboxError, SandboxLost
from rlvr.envs.swe.generator import SWESmithGenerator
from rlvr.envs.swe.pool import SandboxPool, shared_pool
from rlvr.envs.swe.sandbox import WORKDIR, Backend, Sandbox, SandboxConfig, make_backend
from rlvr.envs.swe.tasks import GradeReport, SWETask, grade, load_swe_jsonl
from rlvr.envs.tools import ToolOutput, ToolResult
from rlvr.errors import ConfigError, ErrorKind, did_you_mean
from rlvr.registry import env_info
from rlvr.rewards.gated import OutcomeLevels, SubmissionOutcome

__all__ = ["SWEEnv", "SWERewardConfig"]

IMMEDIATE = ("valid_call", "modification", "test_run", "format", "tool_validity")
_GOLD_TREE = """
cd {wd} || exit 3
export GIT_INDEX_FILE=.git/rlvr-gold-index
git read-tree "$1" && git apply --cached --binary .git/rlvr-gold.patch >/dev/null && git write-tree
status=$?; rm -f .git/rlvr-gold.patch "$GIT_INDEX_FILE"; exit $status
"""
_GOLD_FILE = ".rlvr_gold.patch"


@dataclass(frozen=True)
class SWERewardConfig:
    """Reward constants of rlvr/SWE-v0 (the paper's values were not published; all are configuration)."""

    levels: OutcomeLevels = field(default_factory=OutcomeLevels)
    """Outcome levels: no submission < regression < empty patch < tests fail < resolved."""
    threshold: float | None = None
    """G-RA gate ``delta`` on the outcome; default: the ``tests_fail`` level (a non-empty patch opens it)."""
    valid_call: float = 0.02
    """Per turn, times the share of the turn's tool calls that were valid."""
    modification: float = 0.05
    """Per turn in which the work tree reached a new state."""
    test_run: float = 0.05
    """Per turn in which tests ran on a state not tested before."""

    def __post_init__(self) -> None:
        if not isinstance(self.levels, OutcomeLevels):
            raise ConfigError(f"levels must be an OutcomeLevels, got {type(self.levels).__name__}")
        for name in ("valid_call", "modification", "test_run"):
            if getattr(self, name) < 0:
                raise ConfigError(f"SWERewardConfig.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def delta(self) -> float:
        return self.levels.gate_threshold() if self.threshold is None else float(self.threshold)


_BACKENDS: dict[str, Backend] = {}
_BACKENDS_LOCK = threading.Lock()


def _backend(kind: str) -> Backend:
    with _BACKENDS_LOCK:
        if kind not in _BACKENDS:
            _BACKENDS[kind] = make_backend(kind)  # type: ignore[arg-type]
        return _BACKENDS[kind]


def _forget_backends_after_fork() -> None:
    """A forked child (a subprocess vector env) makes its own backend: the parent's engine connection is not its."""
    global _BACKENDS_LOCK
    _BACKENDS.clear()
    _BACKENDS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_backends_after_fork)


class SWEEnv(AgentEnv):
    """Software-engineering tasks in sandboxes, graded by hidden tests.

    Args:
        tasks: ``"generated"`` (bugs injected into the shipped projects), a path to a SWE-bench /
            SWE-Gym JSONL file, a list of :class:`~rlvr.envs.swe.tasks.SWETask`, or a
            :class:`~rlvr.envs.swe.generator.SWESmithGenerator`.
        projects, kinds: restrict generated tasks to these projects / mutation kinds.
        repos_dir, image_template: repository sources for a JSONL file (see
            :func:`~rlvr.envs.swe.tasks.load_swe_jsonl`).
        backend: ``"docker"`` (default), ``"bwrap"`` (bubblewrap fallback, weaker isolation) or
            ``"auto"``; or a :class:`~rlvr.envs.swe.sandbox.Backend` instance.
        pool: a :class:`~rlvr.envs.swe.pool.SandboxPool` to share; by default one pool per image and
            process, of ``pool_size`` warm sandboxes.
        sandbox: limits of new sandboxes (memory, pids, CPU, output).
        command_timeout_s: wall-clock limit of one bash command; test_timeout_s: of one test run
            (``run_tests`` and grading).
        rewards: :class:`SWERewardConfig`.
        accumulation: ``"gated"`` (G-RA, default) or ``"direct"`` (D-RA, the ungated sum).
        max_turns: turn budget (default 30).
        **kwargs: budgets and options of :class:`~rlvr.envs.core.AgentEnv`.
    """

    env_id = "rlvr/SWE-v0"
    version = 0
    family = env_info(env_id).family
    description = env_info(env_id).description
    reward_components = ("format", "tool_validity", "valid_call", "modification", "test_run", "outcome", "gate")
    """``gate`` is emitted with ``accumulation="gated"`` only, and declared either way."""
    optional_components = ("outcome", "gate")  # only on a graded final turn
    reset_options = ("task_id", "task")

    def __init__(
        self,
        tasks: str | Sequence[SWETask] | SWESmithGenerator = "generated",
        *,
        projects: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        repos_dir: str | None = None,
        image_template: str | None = None,
        backend: Literal["docker", "bwrap", "auto"] | Backend = "docker",
        pool: SandboxPool | None = None,
        pool_size: int = 2,
        sandbox: SandboxConfig | None = None,
        command_timeout_s: float = 30.0,
        test_timeout_s: float = 120.0,
        rewards: SWERewardConfig | None = None,
        accumulation: Literal["gated", "direct"] = "gated",
        max_turns: int = 30,
        **kwargs: Any,
    ) -> None:
        if accumulation not in ("gated", "direct"):
            raise ConfigError(f"accumulation must be 'gated' or 'direct', got {accumulation!r}")
        if command_timeout_s <= 0 or test_timeout_s <= 0:
            raise ConfigError(f"timeouts must be positive, got command_timeout_s={command_timeout_s}, "
                              f"test_timeout_s={test_timeout_s}")
        self._init_kwargs: dict[str, Any] = dict(
            tasks=tasks, projects=projects, kinds=kinds, repos_dir=repos_dir, image_template=image_template,
            backend=backend, pool=pool, pool_size=pool_size, sandbox=sandbox, command_timeout_s=command_timeout_s,
            test_timeout_s=test_timeout_s, rewards=rewards, accumulation=accumulation, max_turns=max_turns, **kwargs)
        kwargs.setdefault("tool_timeout_s", max(command_timeout_s, test_timeout_s) + 60.0)
        super().__init__(max_turns=max_turns, **kwargs)
        self.rewards = rewards or SWERewardConfig()
        if not isinstance(self.rewards, SWERewardConfig):
            raise ConfigError(f"rewards must be a SWERewardConfig, got {type(self.rewards).__name__}")
        self.accumulation = accumulation
        self.command_timeout_s = float(command_timeout_s)
        self.test_timeout_s = float(test_timeout_s)
        self.sandbox_config = sandbox
        self.generator: SWESmithGenerator | None = None
        self.task_list: list[SWETask] = []
        if isinstance(tasks, SWESmithGenerator):
            self.generator = tasks
        elif isinstance(tasks, str) and tasks == "generated":
            self.generator = SWESmithGenerator(projects, kinds=kinds)
        elif isinstance(tasks, (str, Path)):
            self.task_list = load_swe_jsonl(tasks, repos_dir=repos_dir, image=image_template)
        elif isinstance(tasks, Sequence) and tasks and all(isinstance(t, SWETask) for t in tasks):
            self.task_list = list(tasks)
        else:
            raise ConfigError("tasks must be 'generated', a JSONL path, a non-empty list of SWETask or a "
                              f"SWESmithGenerator; got {type(tasks).__name__}")
        self._backend_spec = backend
        self._pool_override = pool
        self.pool_size = pool_size
        for t in make_tools(self):
            t.timeout_s = (self.test_timeout_s if t.name in ("run_tests", "submit") else self.command_timeout_s) + 60
            t.fn = self._guarded(t.fn)
            self.tools.add(t)
        self.task: SWETask | None = None
        self._sb: Sandbox | None = None
        self._pool: SandboxPool | None = None
        self._report: GradeReport | None = None
        self._seen: set[str] = set()
        self._tested: set[str] = set()
        self._last_tree = ""
        self._gold_tree: str | None = None

    # ---------------------------------------------------------------- identity
    @property
    def dataset_hash(self) -> str:
        if self.generator is not None:
            return self.generator.dataset_hash
        h = hashlib.sha256()
        for t in self.task_list:
            h.update(json.dumps(t.to_record(), sort_keys=True).encode())
        return h.hexdigest()[:16]

    @property
    def image_digest(self) -> str | None:
        if self._pool is None:
            return None
        return self._pool.backend.image_id(self._pool.image)

    # ---------------------------------------------------------------- sandboxes
    def _get_backend(self) -> Backend:
        spec = self._backend_spec
        if isinstance(spec, Backend):
            return spec
        if spec not in ("docker", "bwrap", "auto"):
            raise ConfigError(f"backend must be 'docker', 'bwrap', 'auto' or a Backend, got {spec!r}")
        return _backend(spec)

    def _pool_for(self, task: SWETask) -> SandboxPool:
        if self._pool_override is not None:
            return self._pool_override
        backend = self._get_backend()
        if backend.name == "docker":
            from rlvr.envs.swe import images

            client = backend.client  # type: ignore[attr-defined]
            if task.image:
                image = images.adapt_image(client, task.image, repo_dir=task.repo_dir, base_commit=task.base_commit,
                                           name=task.instance_id)
            else:
                image = images.ensure_env_image(client)
        else:
            if task.image:
                raise ConfigError(f"task {task.instance_id} needs image {task.image!r}; use backend='docker'")
            image = "host"
        return shared_pool(backend, image, size=self.pool_size, config=self.sandbox_config)

    def _prepare(self, sb: Sandbox, task: SWETask) -> None:
        if task.files is None and task.repo_path is None:
            if sb.prepared_commit is None:
                sb.prepared_commit = sb.head()
            sb.reset()
            return
        digest = task.metadata.get("tree_digest") or f"{task.instance_id}@{task.base_commit}"
        if sb.loaded_tree == digest and sb.prepared_commit:
            try:
                sb.reset()
                return
            except SandboxLost:
                if not sb.alive():
                    raise
                sb.broken = False
        sb.load_tree(task.tree(), message=task.instance_id, digest=digest)

    def sandbox(self) -> Sandbox:
        """The episode's sandbox; a dead one is an infrastructure failure (:class:`SandboxLost`) that ends
        the episode, never a fresh sandbox the model's earlier edits would silently be missing from."""
        if self._sb is None or self.task is None:
            raise SandboxError("no episode in progress: call reset() first")
        if self._sb.broken or self._sb.closed:
            raise SandboxLost(f"sandbox {self._sb.id[:12]} stopped working (killed, wedged or the engine restarted)")
        return self._sb

    def _release(self) -> None:
        if self._sb is not None and self._pool is not None:
            sb, self._sb = self._sb, None
            try:
                self._pool.checkin(sb)
            except SandboxError:
                sb.close()

    def close(self) -> None:
        self._release()
        super().close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the constructor call: a sandbox is a live container, so the copy is a fresh environment
        with the same configuration (and ``spec``) and no episode in progress (call ``reset()`` on it)."""
        return (functools.partial(type(self), **self._init_kwargs), (), {"spec": self.spec})

    # ---------------------------------------------------------------- session API used by the tools
    def test_command(self, target: str) -> str:
        assert self.task is not None
        return self.task.test_cmd + (" " + target if target else "")

    def submit(self) -> ToolOutput:
        """Grade the work tree. The report is recorded and the episode ended by the returned output's
        ``apply``, on the env's thread, so a grading that outlasts its tool call changes nothing later."""
        if self._report is not None:
            raise ValueError("already submitted; the episode is over")
        assert self.task is not None
        sb = self.sandbox()
        try:
            report = grade(sb, self.task, timeout_s=self.test_timeout_s)
        except SandboxError as e:
            if isinstance(e, EngineUnavailable) or not sb.alive():
                sb.broken = True
                raise SandboxLost(f"grading failed because the sandbox died ({e})") from e
            if "bytes; at most" in str(e):  # the patch was too large
                report = GradeReport(SubmissionOutcome.TESTS_FAIL, "", apply_error=str(e))
            elif isinstance(e, SandboxLost) and _runs_commands(sb):
                # the sandbox works, yet its work tree cannot be graded (the agent removed or broke .git):
                # the agent's doing, so a failed submission, not an infrastructure failure
                sb.broken = True
                report = GradeReport(SubmissionOutcome.TESTS_FAIL, "", apply_error=f"the repository was damaged and "
                                     f"cannot be graded ({e})")
            else:
                raise

        def apply() -> None:
            self._report = report
            self.end_episode()

        return ToolOutput(report.summary(), apply)

    def _guarded(self, fn):
        """Wrap a tool so that a lost sandbox is marked broken (never reused) before the error goes on.

        ``SandboxLost`` and ``EngineUnavailable`` are infrastructure failures: the base class ends the
        episode (truncated, ``info["infra_failure"]``, unpenalised) and the broken sandbox is destroyed
        when it is given back; the next episode gets a fresh one.
        """

        def call(**kwargs):
            if self._report is not None:
                raise ValueError("the solution was already submitted; no more tool calls are possible")
            try:
                return fn(**kwargs)
            except (EngineUnavailable, SandboxLost):
                if self._sb is not None:
                    self._sb.broken = True
                raise

        return call

    # ---------------------------------------------------------------- episode
    def _reset_task(self, options: dict[str, Any]) -> tuple[list[Message], dict[str, Any]]:
        self._release()
        task = self._pick(options)
        self.task = task
        self._report = None
        self._seen, self._tested = set(), set()
        self._gold_tree = None
        self._pool = self._pool_for(task)
        self._sb = self._pool.checkout(lambda sb: self._prepare(sb, task))
        self._last_tree = self._sb.fingerprint()
        self._seen.add(self._last_tree)
        system = render_tool_prompt(
            "You are a software engineer working in a sandboxed Linux machine without network access. The "
            f"repository is checked out at {WORKDIR} (a git repository). Investigate the issue, change the "
            "code so that it is fixed, and check your change by running tests. Hidden tests decide whether the "
            "issue is resolved; do not weaken existing tests.",
            self.tools,
            "When you are done, call the submit tool (or reply <answer>submit</answer>). Submitting ends the "
            "episode and grades the current state of the repository.",
        )
        user = f"Repository: {task.repo}\n\n<issue>\n{task.problem_statement.strip()}\n</issue>"
        info = {"task_id": task.instance_id, "repo": task.repo, "source": task.source,
                "fail_to_pass": list(task.FAIL_TO_PASS), "sandbox": self._sb.backend_name}
        return [{"role": "system", "content": system}, {"role": "user", "content": user}], info

    def _pick(self, options: dict[str, Any]) -> SWETask:
        if "task" in options:
            if not isinstance(options["task"], SWETask):
                raise ConfigError(f"options['task'] must be a SWETask, got {type(options['task']).__name__}")
            return options["task"]
        if "task_id" in options:
            tid = str(options["task_id"])
            if self.generator is not None:
                return self.generator.task_by_id(tid)
            for t in self.task_list:
                if t.instance_id == tid:
                    return t
            ids = [t.instance_id for t in self.task_list]
            raise ConfigError(f"no task with id {tid!r}{did_you_mean(tid, ids)}; this env has {len(ids)} tasks, "
                              f"e.g. {ids[:3]}")
        if self.generator is not None:
            return self.generator.task(int(self.np_random.integers(2**62)))
        return self.task_list[int(self.np_random.integers(len(self.task_list)))]

    def _fingerprint(self) -> str:
        # the agent's own damage (a removed .git) comes back as "unreadable:..."; a lost sandbox raises
        # SandboxLost, which ends the turn as an infrastructure failure instead of a silent 0.0
        return self.sandbox().fingerprint()

    def _on_tool_results(self, results: list[ToolResult]) -> dict[str, float]:
        late = [x.call.name for x in results if x.error is not None and x.error.kind is ErrorKind.TOOL_TIMEOUT]
        if late:  # the sandbox's own limits should have stopped it first: wedged; never reuse it
            if self._sb is not None:
                self._sb.broken = True
            raise SandboxLost(f"tool {late[0]!r} outlasted its time limit although the sandbox limits each command; "
                              "the sandbox is wedged and is discarded (its abandoned command may still be running)")
        r = self.rewards
        out = {"valid_call": 0.0, "modification": 0.0, "test_run": 0.0}
        if results:
            valid = sum(not (x.error and x.error.kind in (ErrorKind.UNKNOWN_TOOL, ErrorKind.INVALID_ARGUMENTS))
                        for x in results)
            out["valid_call"] = r.valid_call * valid / len(results)
        if self._report is not None:
            return out
        names = {x.call.name for x in results if x.error is None}
        if names & MUTATING_TOOLS:
            tree = self._fingerprint()
            if tree and tree not in self._seen:
                self._seen.add(tree)
                out["modification"] = r.modification
            self._last_tree = tree or self._last_tree
        if "run_tests" in names and self._last_tree and self._last_tree not in self._tested:
            self._tested.add(self._last_tree)
            out["test_run"] = r.test_run
        return out

    def _on_answer(self, answer: str) -> TurnOutcome:
        try:
            out = self.submit()
        except (EngineUnavailable, SandboxLost):  # infrastructure: the base class ends the episode unpenalised
            if self._sb is not None:
                self._sb.broken = True
            raise
        except (SandboxError, ValueError, RuntimeError) as e:
            return TurnOutcome([{"role": "user", "content": f"Error: submission failed: {e}"}], {})
        assert out.apply is not None
        out.apply()
        return TurnOutcome([{"role": "user", "content": out.content}], {}, terminated=True)

    def _on_episode_end(self, truncated: bool, budget: str | None) -> tuple[dict[str, float], dict[str, Any]]:
        self._release()
        if truncated and budget is None:  # failed by infrastructure: no outcome level (no penalty)
            return {}, {"outcome": "infra_failure", "resolved": False, "success": False}
        report = self._report
        outcome = report.outcome if report is not None else SubmissionOutcome.NO_SUBMISSION
        level = self.rewards.levels.value(outcome)
        comps = {"outcome": level}
        if self.accumulation == "gated":
            w = self.reward_weights
            immediate = sum(w.get(k, 1.0) * c.get(k, 0.0) for c in self.episode_components for k in IMMEDIATE)
            comps["gate"] = 0.0 if level >= self.rewards.delta else -immediate
        resolved = outcome is SubmissionOutcome.RESOLVED
        info: dict[str, Any] = {"outcome": str(outcome), "resolved": resolved, "success": resolved}
        if report is not None:
            info["grade"] = {"fail_to_pass": report.fail_to_pass, "pass_to_pass": report.pass_to_pass,
                             "apply_error": report.apply_error, "patch_chars": len(report.model_patch)}
        return comps, info

    # ---------------------------------------------------------------- oracle
    def oracle_action(self) -> str:
        """Apply the gold patch (from any state), then run the tests, then submit."""
        assert self.task is not None
        sb = self.sandbox()
        if self._gold_tree is None:
            from rlvr.envs.swe.sandbox import make_tar

            sb.put_archive(f"{WORKDIR}/.git", make_tar({"rlvr-gold.patch": self.task.patch}))
            self._gold_tree = sb.admin(_GOLD_TREE.format(wd=WORKDIR), sb.prepared_commit or "HEAD").strip()
        current = sb.fingerprint()
        if current != self._gold_tree:
            create = {"name": "create_file", "arguments": {"path": _GOLD_FILE, "content": self.task.patch}}
            apply = {"name": "bash", "arguments": {"command": (
                f"git checkout -q -- . && git clean -qfd -e {_GOLD_FILE} && git apply {_GOLD_FILE} && rm {_GOLD_FILE}"
                " && git status --short")}}
            return "".join(f"<tool_call>{_dump(c)}</tool_call>\n" for c in (create, apply))
        if current not in self._tested:
            return f"<tool_call>{_dump({'name': 'run_tests', 'arguments': {}})}</tool_call>"
        return f"<tool_call>{_dump({'name': 'submit', 'arguments': {}})}</tool_call>"


def _runs_commands(sb: Sandbox) -> bool:
    """Whether ``sb`` still runs a trivial command (it is alive and answering)."""
    try:
        return sb.exec(["true"], timeout_s=10).ok
    except SandboxError:
        return False


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False).replace("</", "<\\/")
