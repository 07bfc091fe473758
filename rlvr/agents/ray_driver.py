"""The policy side of a Ray rollout: the loop that drives episodes over a pool of environment workers.

Each turn, the policy generates for every episode waiting for an action (batched per agent, as the
local executor does) and sends each worker one call with the actions of all its waiting episodes,
so the Ray cost of a step is shared by the environments of a worker; the worker steps them
concurrently and answers each. At most one call per environment is in flight. Replies are taken as
they arrive; a worker's episodes go on while another worker is still busy. Failures are handled as
:mod:`rlvr.agents.ray_rollout` describes: the attempt is recorded, then re-run or its group dropped.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import rlvr
from rlvr.agents.base import Generation, OracleAgent, agent_id, generate, turn_seed
from rlvr.agents.ray_worker import PooledWorker, RemoteEnv, StepFailure, WorkerPool
from rlvr.agents.rollout import _agent_failure, _close_record, _overflow_result, _repro, _turn
from rlvr.agents.trajectory import ReproRecord, Trajectory, TrajectoryWriter, Turn, plain
from rlvr.errors import AgentError, ConfigError, InfrastructureError

__all__ = ["RolloutDriver"]

log = logging.getLogger("rlvr.ray")


@dataclass
class _Attempt:
    k: int
    number: int
    ep_seed: int
    sample_seed: int
    options: dict[str, Any] | None
    env: RemoteEnv
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    agent: Any = None
    traj: Trajectory | None = None
    env_s: float = 0.0


@dataclass
class _Slot:
    worker: PooledWorker
    index: int
    attempt: _Attempt | None = None
    fresh: bool = True
    waiting: bool = False
    call: Any = None  # the ref of its call in flight

    @property
    def traj(self) -> Trajectory | None:
        return self.attempt.traj if self.attempt else None


@dataclass
class _Call:
    worker: PooledWorker
    slots: list[_Slot]
    kind: str  # "reset" | "step"
    sent: float
    deadline: float
    why: str  # the limit the deadline comes from
    gens: list[Generation | None]
    gen_s: list[float]

    def gen_of(self, s: _Slot) -> tuple[Generation | None, float]:
        i = self.slots.index(s)
        return self.gens[i], self.gen_s[i]


class RolloutDriver:
    """One rollout's episodes over a :class:`WorkerPool` (``ex`` is the :class:`~rlvr.agents.ray_rollout.RayExecutor`)."""

    def __init__(self, ex: Any, pool: WorkerPool, env: Any, agent: Any, *, episodes: int, seed: int,
                 reset_seeds: list[int] | None, env_kwargs: dict[str, Any] | None,
                 reset_options: Callable[[int], dict[str, Any] | None] | None, out: str | Path | None,
                 progress: bool, on_episode: Callable[[Trajectory], None] | None) -> None:
        import ray

        self.ray, self.ex, self.pool, self.env, self.agent = ray, ex, pool, env, agent
        self.episodes, self.seed, self.reset_seeds, self.env_kwargs = episodes, seed, reset_seeds, env_kwargs
        self.options = [reset_options(k) if reset_options else None for k in range(episodes)]
        self.on_episode = on_episode
        self.want_oracle = isinstance(agent, OracleAgent)
        self.slots = [_Slot(w, j) for w in pool.workers for j in range(ex.envs_per_worker)]
        self.pending: collections.deque[int] = collections.deque(range(episodes))
        self.tries: collections.Counter[int] = collections.Counter()
        self.failures: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
        self.dropped: set[Any] = set()
        self.results: dict[int, Trajectory] = {}
        self.inflight: dict[Any, _Call] = {}
        self.writer = TrajectoryWriter(Path(out) / "trajectories.jsonl") if out is not None else None
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=episodes, unit="ep", desc="rollout (ray)")
        self.batching = callable(getattr(agent, "act_batch", None))

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        if self.bar:
            self.bar.close()

    def group(self, k: int) -> Any:
        """Episodes sharing a task seed (``seeds``) and reset options form a group; else each its own."""
        if self.reset_seeds is None:
            return k
        return self.reset_seeds[k], json.dumps(plain(self.options[k]), sort_keys=True)

    # ------------------------------------------------------------------ the loop
    def loop(self) -> list[Trajectory]:
        """Run every episode; one trajectory per episode, in episode order."""
        ray = self.ray
        while self.pending or any(s.attempt is not None for s in self.slots):
            for s in self.slots:
                if s.attempt is None and s.worker.healthy and self.pending:
                    self.start(s, self.pending.popleft())
            waiting = [s for s in self.slots if s.waiting]
            if waiting:
                self.act(waiting)
            calls = list(self.inflight)
            pings = {w.ping: w for w in self.pool.workers if not w.healthy}
            if not calls and not pings:
                continue
            nearest = min((c.deadline for c in self.inflight.values()), default=math.inf)
            timeout = max(0.0, min(nearest - time.monotonic(), 1.0))
            ready, _ = ray.wait(calls + list(pings), num_returns=1, timeout=timeout)
            if ready and len(calls) > 1:
                window = self.ex.batch_window_s if self.batching else 0.0
                ready = set(ready) | set(ray.wait(calls, num_returns=len(calls), timeout=window)[0])
            for ref in ready:
                if ref in pings:
                    self.placed(pings[ref], ref)
                elif ref in self.inflight:
                    self.reply(ref)
            self.check_deadlines()
            self.check_placement()
        return [self.results[k] for k in sorted(self.results)]

    def placed(self, w: PooledWorker, ref: Any) -> None:
        if self.pool.placed(w, ref):
            for s in self.slots:
                if s.worker is w:
                    s.fresh = True

    def check_placement(self) -> None:
        if not self.pending or any(w.healthy for w in self.pool.workers):
            return
        waited = time.monotonic() - max(w.down_since for w in self.pool.workers)
        if waited > self.ex.placement_timeout_s:
            raise InfrastructureError(
                f"no Ray worker has been placed for {waited:.0f} s ({len(self.pool.workers)} requested, "
                f"{len(self.pending)} episodes waiting); the cluster has {self.ray.available_resources()} available. "
                "Check that the nodes declare the resources the workers ask for, or raise placement_timeout_s")

    # ------------------------------------------------------------------ calls
    def start(self, s: _Slot, k: int) -> None:
        number = self.tries[k] + 1
        ep_seed = self.reset_seeds[k] if self.reset_seeds is not None else self.seed + k
        a = _Attempt(k, number, ep_seed, self.seed + k, self.options[k], env=None)  # type: ignore[arg-type]
        a.env = RemoteEnv(lambda method, args, s=s, a=a: self.sync(s, a, method, args))
        s.attempt = a
        fresh = s.fresh or number > 1
        s.fresh = False
        ref = s.worker.handle.reset.remote(s.index, a.token, ep_seed, a.options, fresh, self.want_oracle)
        self.track(s.worker, [s], ref, "reset", [None], [0.0])

    def track(self, w: PooledWorker, slots: list[_Slot], ref: Any, kind: str, gens: list[Generation | None],
              gen_s: list[float]) -> None:
        now = time.monotonic()
        limit = self.ex.reset_timeout_s if kind == "reset" else self.ex.step_timeout_s
        deadline, why = (now + limit, f"{kind}_timeout") if limit else (math.inf, "")
        if self.ex.episode_timeout_s is not None:
            left = now + self.ex.episode_timeout_s - max(s.attempt.env_s for s in slots)  # type: ignore[union-attr]
            if left < deadline:
                deadline, why = left, "episode_timeout"
        for s in slots:
            s.call = ref
        self.inflight[ref] = _Call(w, slots, kind, now, deadline, why, gens, gen_s)

    def sync(self, s: _Slot, a: _Attempt, method: str, args: tuple) -> Any:
        """A call an agent makes through :class:`RemoteEnv` (an oracle not prefetched, an attribute)."""
        ray = self.ray
        if method == "oracle_action":
            self.want_oracle = True
        try:
            return ray.get(getattr(s.worker.handle, method).remote(s.index, a.token, *args),
                           timeout=self.ex.step_timeout_s)
        except ray.exceptions.RayTaskError as e:
            raise e.cause from None
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as e:
            a.env.call_failed = True
            raise InfrastructureError(f"Ray worker {s.worker.index} did not answer {method}: {type(e).__name__}") from e

    def act(self, waiting: list[_Slot]) -> None:
        """Generate the next action of every waiting episode (batched per agent); one step call per worker."""
        groups: dict[int, list[_Slot]] = {}
        for s in waiting:
            s.waiting = False
            groups.setdefault(id(s.attempt.agent), []).append(s)  # type: ignore[union-attr]
        sends: dict[int, list[tuple[_Slot, Generation, float]]] = {}
        for members in groups.values():
            agent = members[0].attempt.agent  # type: ignore[union-attr]
            t0 = time.perf_counter()
            histories = [s.traj.turns for s in members]  # type: ignore[union-attr]
            row_seeds = [turn_seed(s.attempt.sample_seed, len(h)) for s, h in zip(members, histories)]  # type: ignore[union-attr]
            try:
                batch = generate(agent, [s.attempt.env.unwrapped.messages for s in members],  # type: ignore[union-attr]
                                 seeds=row_seeds, histories=histories)
            except AgentError:
                raise
            except InfrastructureError as e:
                lost = [s for s in members if s.attempt is not None and s.attempt.env.call_failed]
                if not lost:
                    raise _agent_failure(agent, members, e) from e
                for s in lost:
                    self.worker_down(s.worker, "worker_died", str(e))
                continue
            except Exception as e:
                raise _agent_failure(agent, members, e) from e
            dt = time.perf_counter() - t0
            for s, g in zip(members, batch):
                if g.finish_reason == "context_overflow":  # as the local executor: the env is not stepped
                    self.record(s, g, dt, _overflow_result(), 0.0, 0.0)
                    self.finish(s)
                else:
                    sends.setdefault(s.worker.index, []).append((s, g, dt))
        for items in sends.values():
            w = items[0][0].worker
            ref = w.handle.step.remote([(s.index, s.attempt.token, g.text) for s, g, _ in items],  # type: ignore[union-attr]
                                       self.want_oracle)
            self.track(w, [s for s, _, _ in items], ref, "step", [g for _, g, _ in items], [dt for _, _, dt in items])

    def reply(self, ref: Any) -> None:
        ray = self.ray
        call = self.inflight.pop(ref)
        for s in call.slots:
            s.call = None
        try:
            value = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # a reset raised (steps report their exceptions one by one)
            cause = e.cause
            if isinstance(cause, ConfigError):
                raise cause from None  # the configuration is wrong everywhere: no retry can help
            for s, gen, gen_s in zip(call.slots, call.gens, call.gen_s):
                self.fail(s, "env_exception", f"{type(cause).__name__}: {cause}", gen, gen_s)
                s.fresh = True
            return
        except ray.exceptions.RayActorError as e:
            self.worker_down(call.worker, "worker_died", _short(e), call)
            return
        except ray.exceptions.RayError as e:
            self.worker_down(call.worker, "ray_error", _short(e), call)
            return
        if call.kind == "reset":
            (s,) = call.slots
            if s.attempt is None:
                return
            obs, info, meta, oracle, env_s = value
            s.attempt.env_s += env_s
            self.begin(s, obs, info, meta, oracle)
            return
        for s, gen, gen_s, item in zip(call.slots, call.gens, call.gen_s, value):
            if s.attempt is None:
                continue
            if item is None:
                self.worker_down(call.worker, "worker_restarted", "the worker was restarted since this episode's "
                                 "reset; its environment state is gone", call)
                return
            if isinstance(item, StepFailure):
                if item.config_error:
                    raise ConfigError(item.message)
                self.fail(s, "env_exception", str(item), gen, gen_s)
                s.fresh = True
                continue
            obs, reward, term, trunc, info, oracle, env_s = item
            s.attempt.env_s += env_s
            s.attempt.env._stepped(gen.text, obs, oracle)  # type: ignore[union-attr]
            self.record(s, gen, gen_s, (obs, reward, term, trunc, info), env_s, time.monotonic() - call.sent)  # type: ignore[arg-type]
            if term or trunc:
                self.finish(s)
            else:
                s.waiting = True

    def check_deadlines(self) -> None:
        now = time.monotonic()
        for ref, call in list(self.inflight.items()):
            if ref not in self.inflight or call.deadline > now:
                continue
            self.inflight.pop(ref)
            limit = {"step_timeout": self.ex.step_timeout_s, "reset_timeout": self.ex.reset_timeout_s,
                     "episode_timeout": self.ex.episode_timeout_s}[call.why]
            episodes = [s.attempt.k for s in call.slots if s.attempt is not None]
            for s, gen, gen_s in zip(call.slots, call.gens, call.gen_s):
                s.call = None
                self.fail(s, call.why, f"the {call.kind} ran past the {call.why.replace('_', ' ')} of {limit} s on "
                          f"Ray worker {call.worker.index} (a call for episode(s) {episodes}); the worker was "
                          "restarted to stop it", gen, gen_s)
            self.ray.kill(call.worker.handle, no_restart=False)
            call.worker.down(restarting=True)
            self.worker_down(call.worker, "worker_restarted", f"the worker was restarted to stop a {call.kind} of "
                             f"episode(s) {episodes} that ran past its {call.why.replace('_', ' ')}")

    # ------------------------------------------------------------------ episode records
    def begin(self, s: _Slot, obs: list, info: dict, meta: dict[str, Any], oracle: Any) -> None:
        a = s.attempt
        assert a is not None
        a.env._load(obs, meta, oracle)
        a.agent = self.agent.bind(a.env) if hasattr(self.agent, "bind") else self.agent
        if hasattr(a.agent, "start_episode"):
            a.agent.start_episode(a.sample_seed)
        a.traj = Trajectory(env_id=meta["name"], task_id=str(info.get("task_id")), seed=a.ep_seed, initial_messages=obs,
                            reset_info=dict(info), repro=_repro(a.env, a.ep_seed, self.agent, self.env_kwargs, a.options))  # type: ignore[arg-type]
        a.traj.reset_info["episode"] = a.k
        if a.number > 1:
            a.traj.reset_info.update(attempt=a.number, failed_attempts=list(self.failures[a.k]))
        s.waiting = True

    def record(self, s: _Slot, gen: Generation, gen_s: float, result: tuple, env_s: float, call_s: float) -> None:
        traj = s.traj
        assert traj is not None
        traj.turns.append(_turn(len(traj.turns), gen, result, {"generate_s": gen_s, "step_s": env_s, "call_s": call_s}))

    def finish(self, s: _Slot) -> None:
        a = s.attempt
        assert a is not None and a.traj is not None
        traj = a.traj
        _close_record(traj, a.env)  # type: ignore[arg-type]
        s.attempt, s.waiting = None, False
        self.emit(a.k, traj)

    def emit(self, k: int, traj: Trajectory, written: bool = False) -> None:
        self.results[k] = traj
        if self.writer and not written:
            self.writer.write(traj)
        if self.on_episode:
            self.on_episode(traj)
        if self.bar:
            self.bar.update(1)

    def worker_down(self, w: PooledWorker, kind: str, message: str, culprit: _Call | None = None) -> None:
        """``w`` failed: every episode it hosts fails, and it is used again once it answers a ping."""
        calls = {s.call: self.inflight.pop(s.call) for s in self.slots if s.worker is w and s.call in self.inflight}
        if culprit is not None:
            calls[None] = culprit
        for s in self.slots:
            if s.worker is not w:
                continue
            call = next((c for c in calls.values() if s in c.slots), None)
            gen, gen_s = call.gen_of(s) if call is not None else (None, 0.0)
            s.call = None
            if s.attempt is not None:
                self.fail(s, kind, f"{message} (Ray worker {w.index} on node {w.node})", gen, gen_s)
        w.down()

    def fail(self, s: _Slot, kind: str, message: str, gen: Generation | None, gen_s: float) -> None:
        """Record ``s``'s attempt as failed (written at once), then re-run it or drop its group.

        ``gen``: the action that was sent when the failure hit a step (None: no step in flight).
        """
        a = s.attempt
        if a is None:
            return
        s.attempt, s.waiting = None, False
        failure = {"kind": kind, "message": message, "attempt": a.number, "worker": s.worker.index, "node": s.worker.node}
        cause = {"where": f"ray:{kind}", "message": message}
        traj = a.traj
        if traj is None:  # the reset failed: a turnless record, as the local executor writes
            model_id, tmpl = agent_id(self.agent)
            name = self.env if isinstance(self.env, str) else getattr(self.env, "__name__", type(self.env).__name__)
            traj = Trajectory(env_id=name, task_id=str((a.options or {}).get("task_id", "")), seed=a.ep_seed,
                              initial_messages=[], reset_info={"episode": a.k},
                              repro=ReproRecord(env_id=name, env_version=None, seed=a.ep_seed,
                                                package_version=rlvr.__version__, model_id=model_id,
                                                chat_template_hash=tmpl, reset_options=plain(dict(a.options or {}))))
        else:
            traj.turns.append(Turn(
                index=len(traj.turns), action=gen.text if gen else "", observation=[], reward=0.0, reward_components={},
                truncated=True, error={"kind": "infrastructure", "message": message},
                prompt_ids=gen.prompt_ids if gen else None, completion_ids=gen.completion_ids if gen else None,
                logprobs=gen.logprobs if gen else None,
                info={"infra_failure": cause, "truncated_by": kind, "success": False, "action_sent": gen is not None},
                timings={"generate_s": gen_s}))
        traj.reset_info.update(attempt=a.number, infra_failure=cause, ray_failure=failure)
        if self.failures[a.k]:
            traj.reset_info["failed_attempts"] = list(self.failures[a.k])
        self.failures[a.k].append(failure)
        if self.writer:
            self.writer.write(traj)
        self.tries[a.k] = a.number
        g = self.group(a.k)
        if a.number <= self.ex.max_episode_retries and g not in self.dropped:
            log.info("episode %d attempt %d failed (%s: %s); re-running it", a.k, a.number, kind, message)
            self.pending.appendleft(a.k)
            return
        self.emit(a.k, traj, written=True)
        if g in self.dropped:
            return
        self.dropped.add(g)
        members = [j for j in self.pending if self.group(j) == g]
        log.warning("episode %d failed %d time(s) (last: %s: %s); dropping its group (%d episode(s) not run)",
                    a.k, a.number, kind, message, len(members))
        for j in members:
            self.pending.remove(j)
            why = {"where": "ray:group_dropped",
                   "message": f"not run: episode {a.k} of its group failed {a.number} time(s) ({kind}: {message})"}
            self.emit(j, Trajectory(env_id=traj.env_id, task_id=traj.task_id, seed=self.reset_seeds[j]
                                    if self.reset_seeds is not None else self.seed + j, initial_messages=[],
                                    reset_info={"episode": j, "infra_failure": why, "group_dropped": True}))


def _short(e: BaseException, n: int = 400) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:n]}"
