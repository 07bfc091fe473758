"""The Ray side of distributed rollouts: the environment worker actor, the policy-side view of a
remote environment, and the placement checks.

:class:`EnvWorker` is a plain class turned into a Ray actor by :mod:`rlvr.agents.ray_rollout`
(``ray.remote(EnvWorker)``): one worker process hosts ``envs_per_worker`` environment instances
(slots), built lazily at their first reset. Every call names its slot and the episode's token; a
worker restarted since that episode's reset (Ray re-runs ``__init__``) holds no such token and answers
``None``, so an episode never continues on an environment that is not the one it was reset on.

:class:`RemoteEnv` is what agents are bound to on the policy side: it mirrors the conversation
(``unwrapped.messages``) from the replies, answers ``unwrapped.oracle_action()`` (prefetched with
each reply once an agent has asked for it, so the oracle costs no extra round trip) and fetches any
other data attribute from the worker.

Nothing here imports Ray at module import time.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from rlvr.agents.trajectory import plain
from rlvr.errors import ConfigError

__all__ = ["EnvWorker", "RemoteEnv", "WorkerPool", "PooledWorker", "StepFailure", "env_resources", "check_placement"]

_log = logging.getLogger("rlvr.ray")

_NO_ORACLE = None  # "not prefetched" (None, not a sentinel object: the value crosses processes)


class StepFailure:
    """An exception an environment raised in ``step``, as plain text (any exception travels back this way)."""

    def __init__(self, type_name: str, message: str, config_error: bool) -> None:
        self.type_name, self.message, self.config_error = type_name, message, config_error

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


class _Raised:
    """An exception raised by ``oracle_action`` on the worker, carried back to be raised on the policy side."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _meta(env: Any) -> dict[str, Any]:
    """What the policy side records about an environment (trajectory and reproducibility fields)."""
    u = env.unwrapped
    spec = env.spec
    return {
        "name": spec.id if spec else type(u).__name__,
        "spec_id": spec.id if spec else None,
        "spec_kwargs": plain(dict(spec.kwargs)) if spec is not None and isinstance(spec.kwargs, dict) else None,
        "env_id": getattr(u, "env_id", type(u).__name__),
        "version": getattr(u, "version", None),
        "dataset_hash": getattr(u, "dataset_hash", None),
        "image_digest": getattr(u, "image_digest", None),
        "reward_weights": dict(getattr(u, "reward_weights", None) or {}),
        "reward_components": list(getattr(u, "reward_components", None) or ()),
    }


class EnvWorker:
    """A Ray actor body hosting ``slots`` environment instances built from ``env`` (an id or a factory).

    Methods run on the actor's thread pool (``max_concurrency`` above ``slots``), one call per slot
    at a time (the driver never sends a slot a second call before the first answered).
    """

    def __init__(self, env: str | Callable[[], Any], env_kwargs: dict[str, Any] | None, slots: int) -> None:
        import rlvr  # noqa: F401 - registers the rlvr/... ids in this process

        self._env_src = env
        self._env_kwargs = env_kwargs
        self._slots = slots
        self._envs: dict[int, Any] = {}
        self._tokens: dict[int, str] = {}
        self._threads: ThreadPoolExecutor | None = None
        self.incarnation = uuid.uuid4().hex

    def ping(self) -> dict[str, Any]:
        """This process: ``incarnation`` (new at every restart), ``node`` (Ray node id), ``pid``."""
        import ray

        return {"incarnation": self.incarnation, "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def _env(self, slot: int, fresh: bool) -> Any:
        from rlvr.agents.rollout import make_env

        if not 0 <= slot < self._slots:
            raise ConfigError(f"slot must be in [0, {self._slots}), got {slot}")
        if fresh and slot in self._envs:
            old = self._envs.pop(slot)
            self._tokens.pop(slot, None)
            try:
                old.close()
            except Exception:  # a broken environment is being replaced; its close may fail too
                pass
        if slot not in self._envs:
            self._envs[slot] = make_env(self._env_src, self._env_kwargs)
        return self._envs[slot]

    @staticmethod
    def _oracle(env: Any, want: bool, done: bool) -> Any:
        if not want or done:
            return _NO_ORACLE
        try:
            return env.unwrapped.oracle_action()
        except Exception as e:  # raised on the policy side when the agent asks for it
            return _Raised(e)

    def reset(self, slot: int, token: str, seed: int | None, options: dict[str, Any] | None, fresh: bool,
              want_oracle: bool) -> tuple[list, dict, dict, Any, float]:
        """Reset ``slot`` (on a new environment instance when ``fresh``) for the episode ``token``.

        Returns ``(obs, info, meta, oracle, env_s)``.
        """
        self._tokens.pop(slot, None)
        t0 = time.perf_counter()
        env = self._env(slot, fresh)
        obs, info = env.reset(seed=seed, options=options)
        self._tokens[slot] = token
        oracle = self._oracle(env, want_oracle, False)
        return obs, info, _meta(env), oracle, time.perf_counter() - t0

    def _step_one(self, item: tuple[int, str, str], want_oracle: bool) -> Any:
        slot, token, action = item
        if self._tokens.get(slot) != token:
            return None
        t0 = time.perf_counter()
        try:
            obs, reward, term, trunc, info = self._envs[slot].step(action)
        except Exception as e:  # this episode fails; the others of the call go on
            self._tokens.pop(slot, None)
            return StepFailure(type(e).__name__, str(e), isinstance(e, ConfigError))
        oracle = self._oracle(self._envs[slot], want_oracle, bool(term or trunc))
        return obs, reward, term, trunc, info, oracle, time.perf_counter() - t0

    def step(self, items: list[tuple[int, str, str]], want_oracle: bool) -> list[Any]:
        """Step several slots at once (``(slot, token, action)`` each; concurrently when more than one),
        one reply per item: ``(obs, reward, terminated, truncated, info, oracle, env_s)``, a
        :class:`StepFailure` when the environment raised, or ``None`` when the slot does not hold
        episode ``token`` (the worker was restarted since that reset)."""
        if len(items) == 1:
            return [self._step_one(items[0], want_oracle)]
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=self._slots, thread_name_prefix="rlvr-env")
        return list(self._threads.map(lambda it: self._step_one(it, want_oracle), items))

    def oracle_action(self, slot: int, token: str) -> Any:
        """``oracle_action()`` of ``slot``'s environment (a :class:`_Raised` when it raises)."""
        if self._tokens.get(slot) != token:
            return None
        return self._oracle(self._envs[slot], True, False)

    def get_attr(self, slot: int, token: str, name: str) -> Any:
        """A data attribute of ``slot``'s ``env.unwrapped``, for agents that read their environment."""
        if self._tokens.get(slot) != token:
            return None
        value = getattr(self._envs[slot].unwrapped, name)
        if callable(value):
            raise ConfigError(f"an agent bound to a Ray-hosted environment can read its attributes, not call its "
                              f"methods ({name!r}); only oracle_action() is forwarded")
        return value

    def close(self) -> int:
        """Close every environment (releasing their sandboxes); returns how many were open."""
        n = len(self._envs)
        for env in self._envs.values():
            try:
                env.close()
            except Exception:  # closing the rest matters more than one close error
                pass
        self._envs.clear()
        self._tokens.clear()
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None
        return n


class _Spec:
    """The parts of a gymnasium ``EnvSpec`` the trajectory records read."""

    def __init__(self, id: str, kwargs: dict[str, Any] | None) -> None:
        self.id = id
        self.kwargs = kwargs


class _RemoteUnwrapped:
    """``env.unwrapped`` of a :class:`RemoteEnv`: mirrored fields, the oracle, other attributes fetched."""

    def __init__(self, owner: "RemoteEnv") -> None:
        self._owner = owner
        self.messages: list[dict[str, Any]] = []
        self.reward_weights: dict[str, float] = {}
        self.reward_components: tuple[str, ...] = ()
        self.env_id: str = ""
        self.version: int | None = None
        self.dataset_hash: str | None = None
        self.image_digest: str | None = None

    def oracle_action(self) -> str:
        """The worker environment's gold next action (prefetched with the last reply when available)."""
        return self._owner._oracle_action()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._owner._get_attr(name)


class RemoteEnv:
    """The policy-side view of one episode's environment on a Ray worker (what agents ``bind`` to)."""

    def __init__(self, call: Callable[[str, tuple], Any]) -> None:
        self._call = call
        self.spec: _Spec | None = None
        self.unwrapped = _RemoteUnwrapped(self)
        self.call_failed = False
        """Set when a call made for an agent (:meth:`_get_attr`, an oracle not prefetched) got no answer."""
        self._oracle: Any = _NO_ORACLE

    def _load(self, obs: list, meta: dict[str, Any], oracle: Any) -> None:
        u = self.unwrapped
        self.spec = _Spec(meta["spec_id"], meta["spec_kwargs"]) if meta["spec_id"] else None
        u.messages = [dict(m) for m in obs]
        u.reward_weights = meta["reward_weights"]
        u.reward_components = tuple(meta["reward_components"])
        u.env_id, u.version = meta["env_id"], meta["version"]
        u.dataset_hash, u.image_digest = meta["dataset_hash"], meta["image_digest"]
        self._oracle = oracle

    def _stepped(self, action: str, obs: list, oracle: Any) -> None:
        self.unwrapped.messages.append({"role": "assistant", "content": action})
        self.unwrapped.messages.extend(obs)
        self._oracle = oracle

    def _oracle_action(self) -> str:
        value, self._oracle = self._oracle, _NO_ORACLE
        if value is _NO_ORACLE:
            value = self._call("oracle_action", ())
        if isinstance(value, _Raised):
            raise value.error
        return value

    def _get_attr(self, name: str) -> Any:
        return self._call("get_attr", (name,))


def env_resources(env: Any, env_kwargs: dict[str, Any] | None, sandbox_resource: str) -> dict[str, float]:
    """Ray resources one instance of ``env`` needs: ``{sandbox_resource: 1}`` for registered ids that need a
    container engine (``EnvInfo.requires`` has ``"docker"``) unless ``backend="bwrap"``; else none."""
    if not isinstance(env, str):
        return {}
    from rlvr.registry import ENVS

    info = next((i for i in ENVS if i.id == env), None)
    if info is None or "docker" not in info.requires or (env_kwargs or {}).get("backend") == "bwrap":
        return {}
    return {sandbox_resource: 1.0}


def check_placement(need: dict[str, float], nodes: list[dict[str, Any]], *, envs_per_worker: int,
                    sandbox_resource: str) -> None:
    """Fail at once when no alive node offers a worker's resources ``need`` (Ray itself would wait forever).

    ``nodes`` is ``ray.nodes()``. Raises :class:`ConfigError` saying how to declare the resource.
    """
    custom = {k: v for k, v in need.items() if k not in ("CPU", "GPU", "memory", "object_store_memory")}
    if not custom:
        return
    alive = [n for n in nodes if n.get("Alive", n.get("alive", False))]
    if any(all(n.get("Resources", {}).get(k, 0.0) >= v for k, v in custom.items()) for n in alive):
        return
    offered = {k: max((n.get("Resources", {}).get(k, 0.0) for n in alive), default=0.0) for k in custom}
    how = (f"Declare it on the nodes that have a Docker engine: `ray start --resources='{{\"{sandbox_resource}\": 16}}'` "
           f"(or `ray.init(resources={{\"{sandbox_resource}\": 16}})` for a local Ray), "
           if sandbox_resource in custom else "Declare it when starting the nodes (`ray start --resources=...`), ")
    raise ConfigError(
        f"no node of the Ray cluster offers the resources one environment worker needs: {custom} "
        f"({envs_per_worker} environment(s) per worker); the most one of its {len(alive)} alive node(s) offers is "
        f"{offered}. "
        f"{how}or lower envs_per_worker so that one worker fits on a node."
    )


class PooledWorker:
    """One worker actor as the driver sees it: its handle, whether it is placed and answering, where."""

    def __init__(self, index: int, handle: Any) -> None:
        self.index, self.handle = index, handle
        self.healthy = False
        self.ping = handle.ping.remote()
        self.node: str | None = None
        self.pid: int | None = None
        self.incarnation: str | None = None
        self.retired: str | None = None
        """An incarnation being restarted (killed to stop a call): its own answer to a ping does not count."""
        self.down_since = time.monotonic()

    def down(self, restarting: bool = False) -> None:
        """Stop using this worker until it answers a ping (from a new process when ``restarting``)."""
        if restarting:
            self.retired = self.incarnation
        if self.healthy:
            self.healthy, self.down_since = False, time.monotonic()
            self.ping = self.handle.ping.remote()


class WorkerPool:
    """The worker actors of one environment configuration (``spawn`` starts one)."""

    def __init__(self, env: Any, env_kwargs: dict[str, Any] | None, spawn: Callable[[], Any]) -> None:
        self.env, self.env_kwargs, self.spawn = env, env_kwargs, spawn
        self.workers: list[PooledWorker] = []

    def serves(self, env: Any, env_kwargs: dict[str, Any] | None) -> bool:
        try:
            return bool((self.env is env or self.env == env) and self.env_kwargs == env_kwargs)
        except Exception:  # keyword values without equality: build new workers
            return False

    def grow(self, n: int) -> None:
        while len(self.workers) < n:
            self.workers.append(PooledWorker(len(self.workers), self.spawn()))

    def refresh(self, wait_s: float) -> None:
        """Mark the workers whose ping answered (within ``wait_s``) as placed."""
        import ray

        pings = {w.ping: w for w in self.workers if not w.healthy}
        if pings:
            ready, _ = ray.wait(list(pings), num_returns=len(pings), timeout=wait_s)
            for ref in ready:
                self.placed(pings[ref], ref)

    def placed(self, w: PooledWorker, ref: Any) -> bool:
        """Take ``w``'s answered ping: placed (True), or gone for good and started anew (False)."""
        import ray

        try:
            info = ray.get(ref)
        except ray.exceptions.ActorDiedError as e:
            _log.warning("Ray worker %d is gone for good (%s); starting a new one", w.index, type(e).__name__)
            self.respawn(w)
            return False
        except ray.exceptions.RayError:  # restarting or briefly unreachable: ask again
            w.ping = w.handle.ping.remote()
            return False
        if info["incarnation"] == w.retired:  # the process being killed answered before it died
            w.ping = w.handle.ping.remote()
            return False
        w.healthy, w.node, w.pid, w.incarnation, w.retired = True, info["node"], info["pid"], info["incarnation"], None
        return True

    def respawn(self, w: PooledWorker) -> None:
        import ray

        try:
            ray.kill(w.handle)
        except Exception:  # already gone
            pass
        w.__init__(w.index, self.spawn())  # type: ignore[misc]

    def close(self) -> None:
        import ray

        refs = [w.handle.close.remote() for w in self.workers if w.healthy]
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=30)
        for w in self.workers:
            try:
                ray.kill(w.handle)
            except Exception:  # already gone
                pass
        self.workers.clear()
