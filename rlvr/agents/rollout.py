"""Rollouts: run many episodes over many environment instances at once.

Each round, the conversations of every active environment are generated in one batch (per agent),
then the environments step concurrently on a thread pool, so a slow tool call in one does not stall
the others beyond that round. Finished episodes are appended to ``trajectories.jsonl`` at once.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym

import rlvr
from rlvr.agents.base import Generation, agent_id, generate
from rlvr.agents.trajectory import ReproRecord, Trajectory, TrajectoryWriter, Turn
from rlvr.errors import ConfigError

__all__ = ["rollout", "summarize", "is_success", "make_env"]


def make_env(env: str | Callable[[], gym.Env], env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """An environment from an id (``gym.make``) or a zero-argument factory."""
    if isinstance(env, str):
        return gym.make(env, **(env_kwargs or {}))
    if callable(env):
        if env_kwargs:
            raise ConfigError("env_kwargs only apply to an env id; close them into your factory instead")
        return env()
    raise ConfigError(f"env must be an id like 'rlvr/GuessNumber-v0' or a factory, got {type(env).__name__}")


def is_success(traj: Trajectory) -> bool:
    """An episode succeeded when its last turn says ``info["success"]``, or else when its ``outcome`` total is >= 1."""
    if traj.turns and "success" in traj.turns[-1].info:
        return bool(traj.turns[-1].info["success"])
    return traj.component_totals().get("outcome", 0.0) >= 1.0 - 1e-9


@dataclass
class _Slot:
    env: gym.Env
    agent: Any
    traj: Trajectory | None = None
    pending: list[Turn] = field(default_factory=list)


def _repro(env: gym.Env, seed: int | None, agent: Any) -> ReproRecord:
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
    )


def rollout(
    env: str | Callable[[], gym.Env],
    agent: Any,
    *,
    episodes: int,
    seed: int = 0,
    concurrency: int = 8,
    out: str | Path | None = None,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
    on_episode: Callable[[Trajectory], None] | None = None,
    reset_options: Callable[[int], dict[str, Any] | None] | None = None,
) -> list[Trajectory]:
    """Run ``episodes`` episodes; episode ``k`` is reset with seed ``seed + k``.

    Args:
        env: an env id or a zero-argument factory.
        agent: anything with ``act`` (or ``act_batch``); agents with ``bind(env)`` are bound per instance.
        concurrency: environment instances alive at once (and the generation batch size).
        out: folder; trajectories are appended to ``out/trajectories.jsonl`` as episodes finish.
        on_episode: called with each finished trajectory.
        reset_options: episode index -> options for ``reset`` (for example a fixed task per group).

    Returns:
        Trajectories in episode order.
    """
    if episodes < 0 or concurrency < 1:
        raise ConfigError(f"need episodes >= 0 and concurrency >= 1, got {episodes} and {concurrency}")
    writer = TrajectoryWriter(Path(out) / "trajectories.jsonl") if out is not None else None
    n_slots = min(concurrency, episodes) or 1
    slots = [_Slot(make_env(env, env_kwargs), None) for _ in range(n_slots if episodes else 0)]
    for s in slots:
        s.agent = agent.bind(s.env) if hasattr(agent, "bind") else agent
    results: dict[int, Trajectory] = {}
    next_episode = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=episodes, unit="ep", desc="rollout")

    def start(slot: _Slot) -> None:
        nonlocal next_episode
        k = next_episode
        next_episode += 1
        ep_seed = seed + k
        options = reset_options(k) if reset_options else None
        obs, info = slot.env.reset(seed=ep_seed, options=options)
        slot.traj = Trajectory(
            env_id=slot.env.spec.id if slot.env.spec else type(slot.env.unwrapped).__name__,
            task_id=str(info.get("task_id")),
            seed=ep_seed,
            initial_messages=obs,
            reset_info={k_: v for k_, v in info.items()},
            repro=_repro(slot.env, ep_seed, agent),
        )
        slot.traj.reset_info["episode"] = k

    def finish(slot: _Slot) -> None:
        traj = slot.traj
        assert traj is not None
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
        if gen.finish_reason == "context_overflow":
            obs, reward, term, trunc = [], 0.0, False, True
            info: dict[str, Any] = {"reward_components": {}, "tool_calls": [], "error": None, "truncated_by": "context_overflow"}
        else:
            obs, reward, term, trunc, info = slot.env.step(gen.text)
        comps = info.pop("reward_components", {})
        calls = info.pop("tool_calls", [])
        error = info.pop("error", None)
        traj.turns.append(
            Turn(
                index=len(traj.turns), action=gen.text, observation=obs, reward=float(reward),
                reward_components=comps, terminated=bool(term), truncated=bool(trunc), tool_calls=calls,
                error=error, prompt_ids=gen.prompt_ids, completion_ids=gen.completion_ids, logprobs=gen.logprobs,
                info=info, timings={"generate_s": gen_s, "step_s": time.perf_counter() - t0},
            )
        )

    try:
        with ThreadPoolExecutor(max_workers=max(1, len(slots))) as pool:
            for s in slots:
                if next_episode < episodes:
                    start(s)
            while any(s.traj is not None for s in slots):
                active = [s for s in slots if s.traj is not None]
                gens: dict[int, tuple[Generation, float]] = {}
                groups: dict[int, list[_Slot]] = {}
                for s in active:
                    groups.setdefault(id(s.agent), []).append(s)
                for members in groups.values():
                    t0 = time.perf_counter()
                    batch = generate(members[0].agent, [s.env.unwrapped.messages for s in members])
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
        if writer:
            writer.close()
        if bar:
            bar.close()
        for s in slots:
            s.env.close()
    return [results[k] for k in sorted(results)]


def summarize(trajs: list[Trajectory]) -> dict[str, Any]:
    """Mean reward, success rate, turns and the mean of every reward component."""
    n = len(trajs)
    if n == 0:
        return {"episodes": 0}
    comps: dict[str, float] = {}
    for t in trajs:
        for k, v in t.component_totals().items():
            comps[k] = comps.get(k, 0.0) + v
    rewards = [t.total_reward for t in trajs]
    mean = sum(rewards) / n
    return {
        "episodes": n,
        "mean_reward": mean,
        "std_reward": (sum((r - mean) ** 2 for r in rewards) / n) ** 0.5,
        "success_rate": sum(is_success(t) for t in trajs) / n,
        "mean_turns": sum(t.num_turns for t in trajs) / n,
        "terminated": sum(t.terminated for t in trajs) / n,
        "truncated": sum(t.truncated for t in trajs) / n,
        "components": {k: v / n for k, v in sorted(comps.items())},
    }
