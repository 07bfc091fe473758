"""Distributed rollouts on Ray: environments run on Ray workers, generation stays with the policy.

``rollout(env, agent, episodes=..., executor="ray", address=None | "auto" | "ray://host:10001",
workers=N, envs_per_worker=K)`` (or ``executor=RayExecutor(...)`` for every option) gives the same
trajectories as the local executor: the same seeds give the same episodes, recorded with the same
fields. What changes is where the environments live:

* **Workers.** ``N`` Ray actors (``num_cpus=0`` unless ``actor_options`` says otherwise), each hosting
  ``K`` environment instances, since a Ray worker process costs about half a second to start. The
  policy generates for every episode waiting for an action (batched per agent, as locally) and sends
  each worker one call with the actions of all its waiting episodes (:mod:`rlvr.agents.ray_driver`).
* **Placement.** Environments that need a container engine (``rlvr/SWE-v0`` on Docker) ask for one
  unit of the custom resource ``docker_slots`` each, so a sandbox lives on the node of the worker that
  drives it. When no alive node offers a worker's resources the rollout fails at once with a
  :class:`~rlvr.errors.ConfigError` saying how to declare them (Ray itself would wait forever).
* **Faults.** Workers run with ``max_restarts=-1`` and ``max_task_retries=0``: Ray restarts a dead
  worker but never re-runs a call (a re-run ``step`` would land on a fresh environment unnoticed). A
  worker's death, a step, reset or episode timeout (the worker is then restarted to stop the call)
  or an exception raised by the environment fails the episode's *attempt*; the attempt is written to
  the trajectory file with its cause (``reset_info["ray_failure"]`` and ``infra_failure``, the last
  turn truncated) and the episode is re-run from ``reset`` on a fresh environment, up to
  ``max_episode_retries`` times. After that the episode's group (the episodes sharing its task seed
  in ``seeds``) is dropped: the members not yet started are recorded as dropped, and the returned
  episode carries the infrastructure failure, so summaries count it apart and the trainer leaves the
  group out. A worker's failure fails every episode it hosts. Its sandboxes die with its process.
* **Backpressure.** At most one call in flight per environment, so at most ``K`` per worker (and Ray's
  ``max_pending_calls`` refuses more); replies are taken as they arrive, so the object store never fills.

An already-initialised Ray session is used as it is; otherwise ``ray.init(address)`` connects to
the cluster (``"auto"``, ``"ray://..."``) or starts a local Ray (``address=None``), declaring
``docker_slots`` itself when the environment needs them and a local Docker engine answers. A
:class:`RayExecutor` keeps its workers between calls (a trainer's steps reuse them); close it when done.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rlvr.agents.ray_driver import RolloutDriver
from rlvr.agents.ray_worker import EnvWorker, WorkerPool, check_placement, env_resources
from rlvr.agents.rollout import _check_agent, _task_seeds
from rlvr.agents.trajectory import Trajectory
from rlvr.errors import ConfigError, did_you_mean

__all__ = ["RayExecutor", "make_executor", "run_executor"]

_EXECUTORS = ("local", "ray")
_FORCED = {"max_restarts": -1, "max_task_retries": 0}


@dataclass
class RayExecutor:
    """Where and how environments run on Ray (see the module docstring). Reusable; :meth:`close` it."""

    address: str | None = None
    """``None``: the current Ray session, else a new local one; ``"auto"``: the cluster of this machine;
    ``"ray://host:10001"``: a remote cluster through Ray Client."""
    workers: int | None = None
    """Worker actors; ``None``: enough for ``min(concurrency, episodes)`` environments."""
    envs_per_worker: int = 4
    """Environment instances per worker (and calls it runs at once)."""
    max_episode_retries: int = 2
    """Re-runs of a failed episode (from reset, on a fresh environment) before its group is dropped."""
    step_timeout_s: float | None = 300.0
    """A step running longer fails the episode; the worker is restarted to stop it (``None``: no limit)."""
    reset_timeout_s: float | None = 600.0
    """The same for a reset (building an environment, starting a sandbox)."""
    episode_timeout_s: float | None = None
    """Environment time (resets and steps, generation excluded) allowed per episode attempt."""
    placement_timeout_s: float = 120.0
    """How long the rollout waits with no worker placed before it fails."""
    sandbox_resource: str = "docker_slots"
    """The custom resource that nodes with a container engine declare; sandboxed environments ask one each."""
    resources_per_env: dict[str, float] | None = None
    """Resources one environment needs (``None``: ``{sandbox_resource: 1}`` for environments that need
    Docker, else nothing); a worker asks ``envs_per_worker`` times this."""
    actor_options: dict[str, Any] = field(default_factory=dict)
    """More ``.options()`` of the worker actors (``num_cpus``, ``runtime_env``, ``scheduling_strategy``...)."""
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of ``ray.init`` when this executor starts or joins the session."""
    batch_window_s: float = 0.02
    """For agents with ``act_batch``: after a first reply, wait this long for the others in flight, so
    generation batches stay large."""

    def __post_init__(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise ConfigError(f"workers must be an integer >= 1 (or None to size from concurrency), got {self.workers!r}")
        if isinstance(self.envs_per_worker, bool) or not isinstance(self.envs_per_worker, int) or self.envs_per_worker < 1:
            raise ConfigError(f"envs_per_worker must be an integer >= 1, got {self.envs_per_worker!r}")
        if not isinstance(self.max_episode_retries, int) or self.max_episode_retries < 0:
            raise ConfigError(f"max_episode_retries must be an integer >= 0, got {self.max_episode_retries!r}")
        for name in ("step_timeout_s", "reset_timeout_s", "episode_timeout_s"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ConfigError(f"{name} must be > 0 seconds or None (no limit), got {v!r}")
        if self.address is not None and not isinstance(self.address, str):
            raise ConfigError(f"address must be None, 'auto' or 'ray://host:port', got {self.address!r}")
        for key, forced in _FORCED.items():
            if key in self.actor_options and self.actor_options[key] != forced:
                raise ConfigError(f"actor_options[{key!r}] must stay {forced}: workers are restarted when they die "
                                  "but a call is never re-run (a re-run step would act on a fresh environment)")
        self._pool: WorkerPool | None = None

    # ------------------------------------------------------------------ session and workers
    def _connect(self, need: dict[str, float], n_envs: int) -> Any:
        import ray

        if not ray.is_initialized():
            kw: dict[str, Any] = {"address": self.address, "include_dashboard": False, "logging_level": logging.WARNING,
                                  **self.init_kwargs}
            if self.address is None and self.sandbox_resource in need and "resources" not in kw and _docker_answers():
                kw["resources"] = {self.sandbox_resource: float(n_envs)}
            try:
                ray.init(**kw)
            except ConnectionError as e:
                raise ConfigError(f"no Ray cluster answers at address={self.address!r} ({e}); start one with "
                                  "`ray start --head` (see the README's 'Scaling out'), or leave address unset "
                                  "for a local Ray") from e
        return ray

    def _workers(self, env: Any, env_kwargs: dict[str, Any] | None, n_workers: int) -> WorkerPool:
        per_env = (dict(self.resources_per_env) if self.resources_per_env is not None
                   else env_resources(env, env_kwargs, self.sandbox_resource))
        k = self.envs_per_worker
        need = {name: v * k for name, v in per_env.items()}
        need.update(self.actor_options.get("resources") or {})
        ray = self._connect(need, n_workers * k)
        pool = self._pool
        if pool is not None and not pool.serves(env, env_kwargs):
            self.close()
            pool = None
        if pool is None:
            check_placement(need, ray.nodes(), envs_per_worker=k, sandbox_resource=self.sandbox_resource)
            opts = {"num_cpus": 0, "max_concurrency": k + 2, "max_pending_calls": 2 * k + 4,
                    **self.actor_options, **_FORCED}
            if need:
                opts["resources"] = need
            source = _worker_source(env)
            pool = self._pool = WorkerPool(env, env_kwargs, lambda: ray.remote(EnvWorker).options(**opts).remote(
                source, env_kwargs, k))
        pool.grow(n_workers)
        return pool

    def placed_workers(self, wait_s: float = 0.0) -> list[dict[str, Any]]:
        """The workers placed and answering: ``{"index", "node", "pid"}`` each, after waiting up to
        ``wait_s`` for those not placed yet."""
        if self._pool is None:
            return []
        self._pool.refresh(wait_s)
        return [{"index": w.index, "node": w.node, "pid": w.pid} for w in self._pool.workers if w.healthy]

    def close(self) -> None:
        """Close every worker's environments (releasing their sandboxes) and end the workers."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ rollout
    def rollout(self, env: str | Callable[[], Any], agent: Any, *, episodes: int, seed: int = 0,
                seeds: Sequence[int] | None = None, concurrency: int = 8, out: str | Path | None = None,
                env_kwargs: dict[str, Any] | None = None, progress: bool = False,
                on_episode: Callable[[Trajectory], None] | None = None,
                reset_options: Callable[[int], dict[str, Any] | None] | None = None) -> list[Trajectory]:
        """:func:`rlvr.agents.rollout.rollout` with the environments on Ray workers (same arguments and result).

        ``workers × envs_per_worker`` environments run at once (``workers`` defaults to enough for
        ``min(concurrency, episodes)``). Failed attempts are written to ``out`` as they happen; the
        returned list holds one trajectory per episode, in episode order.
        """
        if episodes < 0 or concurrency < 1:
            raise ConfigError(f"need episodes >= 0 and concurrency >= 1, got {episodes} and {concurrency}")
        reset_seeds = _task_seeds(seeds, episodes)
        if episodes == 0:
            return []
        if isinstance(env, str):
            from rlvr.registry import check_env_args

            check_env_args(env, env_kwargs)
        elif env_kwargs:
            raise ConfigError("env_kwargs only apply to an env id; close them into your factory instead")
        elif not callable(env):
            raise ConfigError(f"env must be an id like 'rlvr/GuessNumber-v0' or a factory, got {type(env).__name__}")
        n_workers = self.workers or math.ceil(min(concurrency, episodes) / self.envs_per_worker)
        _check_agent(agent, n_workers * self.envs_per_worker)
        pool = self._workers(env, env_kwargs, n_workers)
        run = RolloutDriver(self, pool, env, agent, episodes=episodes, seed=seed, reset_seeds=reset_seeds,
                            env_kwargs=env_kwargs, reset_options=reset_options, out=out, progress=progress,
                            on_episode=on_episode)
        try:
            return run.loop()
        except BaseException:
            self.close()  # calls may still be running on the workers: never hand them to another rollout
            raise
        finally:
            run.close()


def run_executor(executor: Any, env: Any, agent: Any, *, address: str | None, workers: int | None,
                 envs_per_worker: int | None, **rollout_kwargs: Any) -> list[Trajectory]:
    """``rollout(executor=...)``: check the executor arguments and run on Ray (``executor`` ``"ray"`` or a
    :class:`RayExecutor`); a ``"ray"`` executor is closed afterwards."""
    given = {k: v for k, v in (("address", address), ("workers", workers), ("envs_per_worker", envs_per_worker))
             if v is not None}
    if isinstance(executor, RayExecutor):
        if given:
            raise ConfigError(f"{', '.join(given)} are set on the RayExecutor itself; got them as rollout arguments too")
        return executor.rollout(env, agent, **rollout_kwargs)
    ex = make_executor(executor, address=address, workers=workers, envs_per_worker=envs_per_worker)
    assert isinstance(ex, RayExecutor)  # "local" with no Ray argument never comes here
    with ex:
        return ex.rollout(env, agent, **rollout_kwargs)


def make_executor(executor: str, *, address: str | None = None, workers: int | None = None,
                  envs_per_worker: int | None = None) -> "str | RayExecutor":
    """``"local"``, or a :class:`RayExecutor` for ``"ray"`` (for callers that run several rollouts on the
    same workers, such as ``rlvr run`` and the trainer; close it when done)."""
    given = {k: v for k, v in (("address", address), ("workers", workers), ("envs_per_worker", envs_per_worker))
             if v is not None}
    if executor == "local":
        if given:
            raise ConfigError(f"{', '.join(given)} apply to executor='ray'; got them with executor='local' "
                              "(pass executor='ray', or drop them)")
        return "local"
    if executor != "ray":
        raise ConfigError(f"executor must be 'local', 'ray' or a RayExecutor, got {executor!r}"
                          f"{did_you_mean(str(executor), _EXECUTORS)}")
    try:
        import ray  # noqa: F401
    except ImportError as e:
        raise ConfigError("executor='ray' needs Ray: pip install 'rlvr-gym[ray]'") from e
    return RayExecutor(**given)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # no client library, no engine, no permission: nothing to declare
        return False


def _worker_source(env: Any) -> Any:
    """What a worker builds environments from: rlvr ids as they are (``import rlvr`` registers them there),
    other registered ids as their ``EnvSpec`` (the worker has not run the registration), factories pickled."""
    if not isinstance(env, str):
        return env
    from rlvr.registry import ENVS

    if any(i.id == env for i in ENVS):
        return env
    import gymnasium as gym

    spec = gym.spec(env)
    return lambda **kw: gym.make(spec, **kw)
