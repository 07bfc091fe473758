"""Rollouts: run many episodes over many environment instances at once.

Each round, the conversations of every active environment are generated in one batch (per agent),
then the environments step concurrently on a thread pool, so a slow tool call in one does not stall
the others beyond that round. An agent with ``open_stream()`` (:class:`~rlvr.agents.hf.HFAgent`)
decodes continuously instead: each conversation's environment steps on the pool as soon as its
generation finishes, while the others keep decoding, and its next turn joins the running batch when
the step returns. Finished episodes are appended to ``trajectories.jsonl`` at once.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from numbers import Integral
from typing import Any, Callable, Iterable, Sequence

import gymnasium as gym

import rlvr
from rlvr.agents.base import Generation, agent_id, generate, turn_seed
from rlvr.agents.trajectory import ReproRecord, Trajectory, TrajectoryWriter, Turn, plain
from rlvr.errors import AgentError, ConfigError, InfrastructureError

__all__ = ["rollout", "summarize", "is_success", "infra_failure", "make_env"]


def make_env(env: str | Callable[[], gym.Env], env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """An environment from an id (``gym.make``) or a zero-argument factory."""
    if isinstance(env, str):
        return gym.make(env, **(env_kwargs or {}))
    if callable(env):
        if env_kwargs:
            raise ConfigError("env_kwargs only apply to an env id; close them into your factory instead")
        return env()
    raise ConfigError(f"env must be an id like 'rlvr/GuessNumber-v0' or a factory, got {type(env).__name__}")


def _env_name(env: gym.Env) -> str:
    return env.spec.id if env.spec else type(env.unwrapped).__name__


def infra_failure(traj: Trajectory) -> dict[str, Any] | None:
    """The cause (``{"where", "message"}``) when the episode was ended by an infrastructure failure, else ``None``.

    Such an episode says nothing about the policy: summaries count it apart and trainers leave it out.
    """
    cause = traj.turns[-1].info.get("infra_failure") if traj.turns else traj.reset_info.get("infra_failure")
    if cause is not None:
        return dict(cause) if isinstance(cause, dict) else {"where": "?", "message": str(cause)}
    return None


def is_success(traj: Trajectory) -> bool:
    """An episode succeeded when its last turn says ``info["success"]``, or else when its ``outcome`` total is >= 1.

    An episode ended by an infrastructure failure never succeeded.
    """
    if infra_failure(traj) is not None:
        return False
    if traj.turns and "success" in traj.turns[-1].info:
        return bool(traj.turns[-1].info["success"])
    return traj.component_totals().get("outcome", 0.0) >= 1.0 - 1e-9


@dataclass
class _Slot:
    env: gym.Env
    agent: Any
    traj: Trajectory | None = None
    sample_seed: int = 0
    """The episode's sampling seed (``seed + k``): what ``start_episode`` and the turn seeds derive from."""


def _env_kwargs(env: gym.Env, given: dict[str, Any] | None) -> dict[str, Any] | None:
    """The constructor keywords as given: ``gym.make``'s (on the spec), else ``env_kwargs``; None if unknown."""
    spec = env.spec
    if spec is not None and isinstance(spec.kwargs, dict):
        return plain(dict(spec.kwargs))
    return plain(dict(given)) if given is not None else None


def _reward_weights(env: gym.Env, seen: Iterable[str] = ()) -> dict[str, float]:
    """Weights in force: every declared or logged component at its weight (1.0 when not set), explicit ones included."""
    u = env.unwrapped
    weights = {str(k): float(v) for k, v in dict(getattr(u, "reward_weights", None) or {}).items()}
    declared = getattr(u, "reward_components", None) or ()
    names = set(declared) | set(seen)
    return dict(sorted({**{str(n): 1.0 for n in names}, **weights}.items()))


def _overflow_result() -> tuple[list, float, bool, bool, dict[str, Any]]:
    """The step result a turn records when its prompt no longer fits the model: the env is not stepped and
    the episode ends truncated (``truncated_by: context_overflow``)."""
    return [], 0.0, False, True, {"reward_components": {}, "tool_calls": [], "error": None,
                                  "truncated_by": "context_overflow"}


def _turn(index: int, gen: Generation, result: tuple, timings: dict[str, float]) -> Turn:
    """The :class:`Turn` of one step: ``result`` is ``env.step``'s 5-tuple; its info dict gives up the reward
    components, tool calls and error, and keeps the rest."""
    obs, reward, term, trunc, info = result
    return Turn(
        index=index, action=gen.text, observation=obs, reward=float(reward),
        reward_components=info.pop("reward_components", {}), terminated=bool(term), truncated=bool(trunc),
        tool_calls=info.pop("tool_calls", []), error=info.pop("error", None), prompt_ids=gen.prompt_ids,
        completion_ids=gen.completion_ids, logprobs=gen.logprobs, info=info, timings=timings,
    )


def _reset_failure(env: gym.Env, k: int, ep_seed: int, options: dict[str, Any] | None, repro: ReproRecord,
                   e: Exception) -> Trajectory:
    """The turnless record of episode ``k`` whose reset failed for infrastructure reasons."""
    return Trajectory(
        env_id=_env_name(env), task_id=str((options or {}).get("task_id", "")), seed=ep_seed, initial_messages=[],
        reset_info={"episode": k, "infra_failure": {"where": "reset", "message": f"{type(e).__name__}: {e}"}},
        repro=repro,
    )


def _close_record(traj: Trajectory, env: gym.Env) -> None:
    """At the episode's end, the components it logged join the declared ones in its reproducibility record."""
    if traj.repro is not None:
        traj.repro.reward_weights = _reward_weights(env, {c for t in traj.turns for c in t.reward_components})


def _repro(env: gym.Env, seed: int | None, agent: Any, env_kwargs: dict[str, Any] | None = None,
           options: dict[str, Any] | None = None) -> ReproRecord:
    u = env.unwrapped
    model_id, tmpl = agent_id(agent)
    return ReproRecord(
        env_id=env.spec.id if env.spec else getattr(u, "env_id", type(u).__name__),
        env_version=getattr(u, "version", None),
        seed=seed,
        package_version=rlvr.__version__,
        dataset_hash=getattr(u, "dataset_hash", None),
        image_digest=getattr(u, "image_digest", None),
        model_id=model_id,
        chat_template_hash=tmpl,
        env_kwargs=_env_kwargs(env, env_kwargs),
        reset_options=plain(dict(options)) if options else {},
        reward_weights=None,  # filled in when the episode ends, with the components it logged
    )


def _check_agent(agent: Any, n_slots: int) -> None:
    """Refuse agents the rollout cannot drive, before any environment is built."""
    if not any(callable(getattr(agent, name, None)) for name in ("act", "act_batch", "bind")):
        raise ConfigError(
            f"{type(agent).__name__} is not an agent: it has no act(messages) -> str method (nor act_batch or bind). "
            "Any object with act(messages) -> str works, e.g. class MyAgent:\n    def act(self, messages): return '<answer>1</answer>'"
        )
    if n_slots > 1 and callable(getattr(agent, "start_episode", None)) and not callable(getattr(agent, "bind", None)):
        raise ConfigError(
            f"{type(agent).__name__} defines start_episode(seed) but no bind(env): one object would be reseeded by "
            f"{n_slots} concurrent episodes. Add bind(env) returning a fresh copy per environment instance, "
            "or use concurrency=1"
        )


def _agent_failure(agent: Any, slots: list["_Slot"], e: Exception) -> AgentError:
    """An agent exception as an :class:`AgentError` naming the agent and the episodes it was generating for."""
    where = ", ".join(
        f"episode {s.traj.reset_info['episode']} (seed {s.traj.seed}) turn {len(s.traj.turns) + 1}"
        for s in slots if s.traj is not None
    )
    return AgentError(f"agent {type(agent).__name__} raised {type(e).__name__}: {e} while generating {where}")


def _task_seeds(seeds: Sequence[int] | None, episodes: int) -> list[int] | None:
    """``seeds`` checked (one integer per episode) and made plain ints; None stays None."""
    if seeds is None:
        return None
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise ConfigError(f"seeds must be a sequence of {episodes} integers (one per episode), "
                          f"got {type(seeds).__name__}")
    if len(seeds) != episodes:
        raise ConfigError(f"rollout got {len(seeds)} seeds for {episodes} episodes; give one seed per episode "
                          "(repeat a seed to run its task several times)")
    bad = [(k, s) for k, s in enumerate(seeds) if isinstance(s, bool) or not isinstance(s, Integral)]
    if bad:
        k, s = bad[0]
        raise ConfigError(f"seeds must be integers, got {s!r} ({type(s).__name__}) at index {k}")
    return [int(s) for s in seeds]


def rollout(
    env: str | Callable[[], gym.Env],
    agent: Any,
    *,
    episodes: int,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    concurrency: int = 8,
    out: str | Path | None = None,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
    on_episode: Callable[[Trajectory], None] | None = None,
    reset_options: Callable[[int], dict[str, Any] | None] | None = None,
    executor: Any = "local",
    address: str | None = None,
    workers: int | None = None,
    envs_per_worker: int | None = None,
) -> list[Trajectory]:
    """Run ``episodes`` episodes; episode ``k`` is reset with seed ``seeds[k]``, or ``seed + k`` without ``seeds``.

    Reproducible whatever ``concurrency``: each episode's randomness derives from its own seeds. The
    task comes from the reset seed, which each trajectory records (``Trajectory.seed``). The agent's
    sampling comes from the episode's *sampling seed* ``seed + k`` (the same number as the reset seed
    when ``seeds`` is not given): the (bound) agent's ``start_episode(seed + k)`` is called at each
    reset, and agents whose ``act_batch`` accepts ``seeds=`` get one seed per conversation,
    :func:`~rlvr.agents.base.turn_seed` of the sampling seed and the turn (see :mod:`rlvr.agents.base`).
    So episodes given the same task seed (a GRPO group) play the same task with different samples.
    Agents whose ``act_batch`` accepts ``histories=`` also get each conversation's turns so far.
    An unbound agent whose ``open_stream()`` returns a stream (see :mod:`rlvr.agents.base`) is driven
    through it, one conversation per environment instance, with the same seeds and histories.

    Args:
        env: an env id or a zero-argument factory.
        agent: anything with ``act`` (or ``act_batch``); agents with ``bind(env)`` are bound per instance.
            An exception raised by the agent stops the rollout as an :class:`~rlvr.errors.AgentError`
            naming the episodes in flight; finished episodes are already written to ``out``.
        seed: the first sampling seed (and reset seed, without ``seeds``).
        seeds: one reset (task) seed per episode, ``len(seeds) == episodes``; repeats are allowed.
        concurrency: environment instances alive at once (and the generation batch size).
        out: folder; trajectories are appended to ``out/trajectories.jsonl`` as episodes finish.
        on_episode: called with each finished trajectory.
        reset_options: episode index -> options for ``reset`` (for example a fixed task per group).
        executor: ``"local"`` (threads in this process), ``"ray"`` (environments on Ray workers: ``address``,
            ``workers``, ``envs_per_worker``) or a :class:`~rlvr.agents.ray_rollout.RayExecutor`; same results.

    Returns:
        Trajectories in episode order.
    """
    if executor != "local" or (address, workers, envs_per_worker) != (None, None, None):
        from rlvr.agents.ray_rollout import run_executor

        return run_executor(executor, env, agent, address=address, workers=workers, envs_per_worker=envs_per_worker,
                            episodes=episodes, seed=seed, seeds=seeds, concurrency=concurrency, out=out,
                            env_kwargs=env_kwargs, progress=progress, on_episode=on_episode, reset_options=reset_options)
    if episodes < 0 or concurrency < 1:
        raise ConfigError(f"need episodes >= 0 and concurrency >= 1, got {episodes} and {concurrency}")
    reset_seeds = _task_seeds(seeds, episodes)
    n_slots = min(concurrency, episodes) or 1
    _check_agent(agent, n_slots if episodes else 1)
    writer = TrajectoryWriter(Path(out) / "trajectories.jsonl") if out is not None else None
    slots: list[_Slot] = []
    try:
        for _ in range(n_slots if episodes else 0):
            slots.append(_Slot(make_env(env, env_kwargs), None))
        for s in slots:
            s.agent = agent.bind(s.env) if hasattr(agent, "bind") else agent
    except BaseException:
        for s in slots:
            s.env.close()
        if writer:
            writer.close()
        raise
    results: dict[int, Trajectory] = {}
    next_episode = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=episodes, unit="ep", desc="rollout")

    def start(slot: _Slot) -> None:
        """Reset ``slot`` for the next episode. A reset that fails for infrastructure reasons (a sandbox
        that cannot be had, an engine gone) is recorded as a turnless episode with
        ``reset_info["infra_failure"]`` and the next episode is tried."""
        nonlocal next_episode
        while next_episode < episodes:
            k = next_episode
            next_episode += 1
            slot.sample_seed = seed + k
            ep_seed = reset_seeds[k] if reset_seeds is not None else slot.sample_seed
            options = reset_options(k) if reset_options else None
            try:
                obs, info = slot.env.reset(seed=ep_seed, options=options)
            except InfrastructureError as e:
                slot.traj = _reset_failure(slot.env, k, ep_seed, options,
                                           _repro(slot.env, ep_seed, agent, env_kwargs, options), e)
                finish(slot)
                continue
            begin(slot, k, ep_seed, options, obs, info)
            return

    def begin(slot: _Slot, k: int, ep_seed: int, options: dict[str, Any] | None, obs: list, info: dict) -> None:
        if hasattr(slot.agent, "start_episode"):
            slot.agent.start_episode(slot.sample_seed)
        slot.traj = Trajectory(
            env_id=_env_name(slot.env),
            task_id=str(info.get("task_id")),
            seed=ep_seed,
            initial_messages=obs,
            reset_info={k_: v for k_, v in info.items()},
            repro=_repro(slot.env, ep_seed, agent, env_kwargs, options),
        )
        slot.traj.reset_info["episode"] = k

    def finish(slot: _Slot) -> None:
        traj = slot.traj
        assert traj is not None
        _close_record(traj, slot.env)
        results[traj.reset_info["episode"]] = traj
        if writer:
            writer.write(traj)
        if on_episode:
            on_episode(traj)
        if bar:
            bar.update(1)
        slot.traj = None

    def step(slot: _Slot, gen: Generation, gen_s: float) -> None:
        traj = slot.traj
        assert traj is not None
        t0 = time.perf_counter()
        result = _overflow_result() if gen.finish_reason == "context_overflow" else slot.env.step(gen.text)
        traj.turns.append(_turn(len(traj.turns), gen, result, {"generate_s": gen_s, "step_s": time.perf_counter() - t0}))

    def streamed(stream: Any, pool: ThreadPoolExecutor) -> None:
        """Continuous rounds: slot ``i`` is conversation ``i`` of ``stream``; a finished generation steps its
        env on ``pool`` at once, and the slot's next turn is submitted when that step returns."""
        steps: dict[Future, int] = {}
        asked: dict[int, float] = {}

        def ask(i: int) -> None:
            s = slots[i]
            turns = s.traj.turns  # type: ignore[union-attr]
            try:
                stream.submit(i, s.env.unwrapped.messages, seed=turn_seed(s.sample_seed, len(turns)), history=turns)
            except AgentError:
                raise
            except Exception as e:
                raise _agent_failure(agent, [s], e) from e
            asked[i] = time.perf_counter()

        for i, s in enumerate(slots):
            if s.traj is not None:
                ask(i)
        while steps or stream.busy:
            if stream.busy:
                try:
                    ready = stream.poll()
                except AgentError:
                    raise
                except Exception as e:
                    raise _agent_failure(agent, [s for s in slots if s.traj is not None], e) from e
                for i, g in ready:
                    if not isinstance(g, Generation):
                        raise AgentError(f"{type(agent).__name__}'s stream must return Generation, got {type(g).__name__}")
                    steps[pool.submit(step, slots[i], g, time.perf_counter() - asked.pop(i))] = i
                done = [f for f in steps if f.done()]
            else:
                done = list(wait(steps, return_when=FIRST_COMPLETED)[0])
            for f in sorted(done, key=steps.__getitem__):
                i = steps.pop(f)
                f.result()
                s = slots[i]
                last = s.traj.turns[-1]  # type: ignore[union-attr]
                if last.terminated or last.truncated:
                    stream.release(i)
                    finish(s)
                    if next_episode < episodes:
                        start(s)
                if s.traj is not None:
                    ask(i)

    opener = getattr(agent, "open_stream", None)
    stream = None
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(slots))) as pool:
            if slots and callable(opener) and not hasattr(agent, "bind"):
                stream = opener()
            for s in slots:
                if next_episode < episodes:
                    start(s)
            if stream is not None:
                streamed(stream, pool)
            while stream is None and any(s.traj is not None for s in slots):
                active = [s for s in slots if s.traj is not None]
                gens: dict[int, tuple[Generation, float]] = {}
                groups: dict[int, list[_Slot]] = {}
                for s in active:
                    groups.setdefault(id(s.agent), []).append(s)
                for members in groups.values():
                    t0 = time.perf_counter()
                    histories = [s.traj.turns for s in members]  # type: ignore[union-attr]
                    row_seeds = [turn_seed(s.sample_seed, len(h)) for s, h in zip(members, histories)]
                    try:
                        batch = generate(members[0].agent, [s.env.unwrapped.messages for s in members],
                                         seeds=row_seeds, histories=histories)
                    except AgentError:
                        raise
                    except Exception as e:
                        raise _agent_failure(members[0].agent, members, e) from e
                    dt = time.perf_counter() - t0
                    for s, g in zip(members, batch):
                        gens[id(s)] = (g, dt)
                list(pool.map(lambda s: step(s, *gens[id(s)]), active))
                for s in active:
                    last = s.traj.turns[-1]  # type: ignore[union-attr]
                    if last.terminated or last.truncated:
                        finish(s)
                        if next_episode < episodes:
                            start(s)
    finally:
        if stream is not None:
            stream.close()
        if writer:
            writer.close()
        if bar:
            bar.close()
        for s in slots:
            s.env.close()
    return [results[k] for k in sorted(results)]


def summarize(trajs: list[Trajectory]) -> dict[str, Any]:
    """Mean reward, success rate, turns and the mean of every reward component.

    Episodes ended by an infrastructure failure (:func:`infra_failure`) are counted in
    ``infra_failures`` (with up to 5 causes in ``infra_causes``) and left out of every mean:
    ``scored_episodes`` is the denominator of ``mean_reward``, ``success_rate`` and the rest (NaN
    when no episode was scored). ``mean_reward_all`` and ``success_rate_all`` divide by every episode.
    """
    n = len(trajs)
    if n == 0:
        return {"episodes": 0, "infra_failures": 0, "scored_episodes": 0}
    failed = [c for c in (infra_failure(t) for t in trajs) if c is not None]
    scored = [t for t in trajs if infra_failure(t) is None]
    m = len(scored)
    comps: dict[str, float] = {}
    for t in scored:
        for k, v in t.component_totals().items():
            comps[k] = comps.get(k, 0.0) + v
    rewards = [t.total_reward for t in scored]
    nan = float("nan")
    mean = sum(rewards) / m if m else nan
    return {
        "episodes": n,
        "scored_episodes": m,
        "infra_failures": len(failed),
        "infra_causes": [f"{c.get('where', '?')}: {c.get('message', '')}" for c in failed[:5]],
        "mean_reward": mean,
        "std_reward": (sum((r - mean) ** 2 for r in rewards) / m) ** 0.5 if m else nan,
        "success_rate": sum(is_success(t) for t in scored) / m if m else nan,
        "mean_reward_all": sum(t.total_reward for t in trajs) / n,
        "success_rate_all": sum(is_success(t) for t in trajs) / n,
        "mean_turns": sum(t.num_turns for t in scored) / m if m else nan,
        "terminated": sum(t.terminated for t in scored) / m if m else nan,
        "truncated": sum(t.truncated for t in scored) / m if m else nan,
        "components": {k: v / m for k, v in sorted(comps.items())},
    }
