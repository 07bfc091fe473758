"""``await arollout(...)``: rollouts on asyncio, for agents that are async clients (``async def act``).

The same episodes, seeds and trajectories as :func:`~rlvr.agents.rollout.rollout`, driven by an
event loop instead of a thread pool: ``concurrency`` workers each own one environment instance and
play one episode after another. An agent whose ``act`` is a coroutine function is awaited, so many
HTTP requests are in flight at once on one thread; environment ``reset`` / ``step`` (tools may block)
run in worker threads (:func:`asyncio.to_thread`) so a slow tool never stalls the loop. A plain
synchronous agent works too (each call in a thread, unbatched: :func:`~rlvr.agents.rollout.rollout`
batches).

Seeds follow :func:`~rlvr.agents.rollout.rollout`: episode ``k`` is reset with ``seeds[k]`` (or
``seed + k``), its sampling seed is ``seed + k`` (the bound agent's ``start_episode``), and a
synchronous agent's ``act_batch`` that takes ``seeds=`` gets
:func:`~rlvr.agents.base.turn_seed` of it per turn. An exception raised by the agent stops the
rollout as an :class:`~rlvr.errors.AgentError` naming the episode; finished episodes are already
written to ``out``.

Example::

    import asyncio
    from rlvr.agents.arollout import arollout

    class MyAsyncAgent:
        async def act(self, messages):
            return "<answer>42</answer>"       # e.g. await an HTTP client here

    trajectories = asyncio.run(arollout("rlvr/GuessNumber-v0", MyAsyncAgent(), episodes=8))
"""

from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym

from rlvr.agents.base import Generation, generate, turn_seed
from rlvr.agents.rollout import (_check_agent, _close_record, _env_name, _overflow_result, _repro, _reset_failure,
                                 _task_seeds, _turn, make_env)
from rlvr.agents.trajectory import Trajectory, TrajectoryWriter, Turn
from rlvr.errors import AgentError, ConfigError, InfrastructureError

__all__ = ["arollout"]


class _Worker:
    """One environment instance, its (bound) agent and the env call in flight (awaited before closing)."""

    def __init__(self, env: gym.Env, agent: Any) -> None:
        self.env = env
        self.agent = agent
        self.pending: asyncio.Future | None = None

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a thread; shielded, so a cancelled rollout still waits for it before closing."""
        self.pending = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
        return await asyncio.shield(self.pending)


async def _generate(agent: Any, messages: list[dict[str, Any]], seed: int, turns: list[Turn]) -> Generation:
    act = getattr(agent, "act", None)
    if act is not None and inspect.iscoroutinefunction(act):
        out = await act(messages)
        if isinstance(out, str):
            out = Generation(out)
        if not isinstance(out, Generation):
            raise AgentError(f"{type(agent).__name__}.act must return str or Generation, got {type(out).__name__}")
        return out
    (gen,) = await asyncio.to_thread(generate, agent, [messages], seeds=[seed], histories=[turns])
    return gen


async def arollout(
    env: str | Callable[[], gym.Env],
    agent: Any,
    *,
    episodes: int,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    concurrency: int = 8,
    out: str | Path | None = None,
    env_kwargs: dict[str, Any] | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
    reset_options: Callable[[int], dict[str, Any] | None] | None = None,
) -> list[Trajectory]:
    """Run ``episodes`` episodes on the running event loop; the arguments mean what they mean for
    :func:`~rlvr.agents.rollout.rollout`. Returns the trajectories in episode order."""
    if episodes < 0 or concurrency < 1:
        raise ConfigError(f"need episodes >= 0 and concurrency >= 1, got {episodes} and {concurrency}")
    reset_seeds = _task_seeds(seeds, episodes)
    n = min(concurrency, episodes)
    _check_agent(agent, max(n, 1))
    if n == 0:
        return []
    writer = TrajectoryWriter(Path(out) / "trajectories.jsonl") if out is not None else None
    workers: list[_Worker] = []
    results: dict[int, Trajectory] = {}
    queue = iter(range(episodes))

    async def play(w: _Worker, k: int) -> None:
        sample_seed = seed + k
        ep_seed = reset_seeds[k] if reset_seeds is not None else sample_seed
        options = reset_options(k) if reset_options else None
        try:
            obs, info = await w.call(w.env.reset, seed=ep_seed, options=options)
        except InfrastructureError as e:
            traj = _reset_failure(w.env, k, ep_seed, options, _repro(w.env, ep_seed, agent, env_kwargs, options), e)
            finish(w, traj)
            return
        if hasattr(w.agent, "start_episode"):
            w.agent.start_episode(sample_seed)
        traj = Trajectory(env_id=_env_name(w.env), task_id=str(info.get("task_id")), seed=ep_seed,
                          initial_messages=obs, reset_info={**info, "episode": k},
                          repro=_repro(w.env, ep_seed, agent, env_kwargs, options))
        while True:
            t0 = time.perf_counter()
            try:
                gen = await _generate(w.agent, w.env.unwrapped.messages, turn_seed(sample_seed, len(traj.turns)),
                                      traj.turns)
            except (AgentError, asyncio.CancelledError):
                raise
            except Exception as e:
                raise AgentError(f"agent {type(agent).__name__} raised {type(e).__name__}: {e} while generating "
                                 f"episode {k} (seed {ep_seed}) turn {len(traj.turns) + 1}") from e
            gen_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            if gen.finish_reason == "context_overflow":
                result = _overflow_result()
            else:
                result = await w.call(w.env.step, gen.text)
            turn = _turn(len(traj.turns), gen, result, {"generate_s": gen_s, "step_s": time.perf_counter() - t1})
            traj.turns.append(turn)
            if turn.terminated or turn.truncated:
                finish(w, traj)
                return

    def finish(w: _Worker, traj: Trajectory) -> None:
        _close_record(traj, w.env)
        results[traj.reset_info["episode"]] = traj
        if writer:
            writer.write(traj)
        if on_episode:
            on_episode(traj)

    async def run(w: _Worker) -> None:
        for k in queue:  # one shared iterator: each episode index is taken once
            await play(w, k)

    tasks: list[asyncio.Task] = []
    try:
        for _ in range(n):
            e = await asyncio.to_thread(make_env, env, env_kwargs)
            workers.append(_Worker(e, agent.bind(e) if hasattr(agent, "bind") else agent))
        tasks = [asyncio.ensure_future(run(w)) for w in workers]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in workers:  # an env call abandoned by a cancelled task finishes before its env closes
            if w.pending is not None:
                await asyncio.wait([w.pending])
            await asyncio.to_thread(w.env.close)
        if writer:
            writer.close()
    return [results[k] for k in sorted(results)]
