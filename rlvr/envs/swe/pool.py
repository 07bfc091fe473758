"""A warm pool of started sandboxes per image, shared safely between threads.

Starting a container costs a ``docker run``; restoring a used one costs one ``git reset --hard``
plus ``git clean -fdx`` (or one tree load). The pool keeps started sandboxes, hands one out per
episode, takes it back afterwards and restores it on the next acquire. A sandbox that fails to
restore (killed, wedged, engine restarted) is destroyed and replaced by a fresh one.

Example::

    pool = SandboxPool(DockerBackend(), image, size=4)
    with pool.acquire(lambda sb: sb.load_tree(files)) as sb:
        sb.exec("python3 -m pytest -q")
    pool.close()
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from rlvr.envs.swe.errors import EngineUnavailable, PoolExhausted, SandboxError, SandboxLost
from rlvr.envs.swe.sandbox import Backend, Sandbox, SandboxConfig
from rlvr.errors import ConfigError

__all__ = ["SandboxPool", "PoolStats", "shared_pool", "close_shared_pools"]

Prepare = Callable[[Sandbox], Any]


@dataclass
class PoolStats:
    """Counters of a pool's life (read them for monitoring and tests)."""

    created: int = 0
    replaced: int = 0
    acquired: int = 0
    prepare_failures: int = 0
    destroyed: int = 0


class SandboxPool:
    """Started sandboxes of one image, reused across episodes.

    Args:
        backend: creates the sandboxes.
        image: the image every sandbox starts from.
        size: sandboxes kept warm when idle (started eagerly by :meth:`warm`).
        max_size: most sandboxes alive at once (leased plus idle); ``acquire`` waits beyond it.
            Default: ``max(size, 8)``.
        config: sandbox limits (default: the backend's).
        acquire_timeout_s: how long ``acquire`` waits for a free slot before :class:`PoolExhausted`.
        max_attempts: sandboxes tried per acquire when preparing fails (each failure replaces one).
        reap: when the pool starts, remove sandboxes whose owning process died
            (:meth:`~rlvr.envs.swe.sandbox.Backend.reap_leaked`).
    """

    def __init__(self, backend: Backend, image: str, *, size: int = 2, max_size: int | None = None,
                 config: SandboxConfig | None = None, acquire_timeout_s: float = 600.0, max_attempts: int = 3,
                 reap: bool = True) -> None:
        if size < 0:
            raise ConfigError(f"pool size must be >= 0, got {size}")
        max_size = max(size, 8) if max_size is None else max_size
        if max_size < max(1, size):
            raise ConfigError(f"max_size ({max_size}) must be >= max(1, size) ({max(1, size)})")
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
        self.backend = backend
        self.image = image
        self.size = size
        self.max_size = max_size
        self.config = config
        self.acquire_timeout_s = acquire_timeout_s
        self.max_attempts = max_attempts
        self.stats = PoolStats()
        self._idle: list[Sandbox] = []
        self._leased: set[int] = set()
        self._alive = 0  # idle + leased + being created
        self._cond = threading.Condition()
        self._closed = False
        self._all: "weakref.WeakSet[Sandbox]" = weakref.WeakSet()
        if reap:
            backend.reap_leaked()
        _LIVE_POOLS.add(self)

    # ---------------------------------------------------------------- lifecycle
    def warm(self, n: int | None = None) -> None:
        """Start sandboxes until ``n`` (default: ``size``) are idle; runs the starts in parallel threads."""
        want = self.size if n is None else n
        with self._cond:
            need = max(0, min(want - len(self._idle), self.max_size - self._alive))
            self._alive += need
        errors: list[BaseException] = []

        def start() -> None:
            try:
                sb = self._create()
            except BaseException as e:  # noqa: BLE001 - re-raised below in the caller's thread
                with self._cond:
                    self._alive -= 1
                    self._cond.notify()
                errors.append(e)
                return
            with self._cond:
                self._idle.append(sb)
                self._cond.notify()

        threads = [threading.Thread(target=start, daemon=True) for _ in range(need)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _create(self) -> Sandbox:
        sb = self.backend.create(self.image, self.config)
        self._all.add(sb)
        with self._cond:
            self.stats.created += 1
        return sb

    def _destroy(self, sb: Sandbox) -> None:
        try:
            sb.close()
        finally:
            with self._cond:
                self._alive -= 1
                self.stats.destroyed += 1
                self._cond.notify()

    def close(self) -> None:
        """Destroy every sandbox, leased ones included (idempotent)."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for sb in idle:
            self._destroy(sb)
        for sb in list(self._all):
            if not sb.closed:
                sb.close()
        _LIVE_POOLS.discard(self)

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def idle(self) -> int:
        with self._cond:
            return len(self._idle)

    @property
    def leased(self) -> int:
        with self._cond:
            return len(self._leased)

    # ---------------------------------------------------------------- checkout
    def checkout(self, prepare: Prepare | None = None, *, timeout_s: float | None = None) -> Sandbox:
        """Take a sandbox and run ``prepare(sandbox)`` on it (for example a reset or a tree load).

        When ``prepare`` raises a :class:`SandboxError` (dead or wedged sandbox), the sandbox is
        destroyed and another one (fresh when needed) is tried, up to ``max_attempts`` times.
        Give the sandbox back with :meth:`checkin`.
        """
        last: BaseException | None = None
        for _ in range(self.max_attempts):
            sb = self._take(timeout_s)
            try:
                if prepare is not None:
                    prepare(sb)
            except EngineUnavailable:
                self._destroy(sb)
                raise
            except SandboxError as e:
                last = e
                with self._cond:
                    self.stats.prepare_failures += 1
                    self.stats.replaced += 1
                self._destroy(sb)
                continue
            except BaseException:
                self._destroy(sb)
                raise
            with self._cond:
                self._leased.add(id(sb))
                self.stats.acquired += 1
            return sb
        # every attempt failed in the sandbox layer: the engine or the image, not the task or the model
        raise SandboxLost(f"could not prepare a sandbox of {self.image} in {self.max_attempts} attempts: {last}") from last

    def checkin(self, sb: Sandbox, *, broken: bool = False) -> None:
        """Give back a sandbox from :meth:`checkout`; ``broken=True`` (or a dead sandbox) destroys it."""
        with self._cond:
            if id(sb) not in self._leased:
                raise SandboxError(f"{sb!r} is not leased from this pool")
            self._leased.discard(id(sb))
            keep = not (broken or sb.broken or sb.closed or self._closed) and len(self._idle) < max(self.size, 1)
            if keep:
                self._idle.append(sb)
                self._cond.notify()
        if not keep:
            self._destroy(sb)

    @contextmanager
    def acquire(self, prepare: Prepare | None = None, *, timeout_s: float | None = None) -> Iterator[Sandbox]:
        """Context manager around :meth:`checkout` / :meth:`checkin`; an exception inside the block
        that comes from the sandbox layer marks the sandbox broken."""
        sb = self.checkout(prepare, timeout_s=timeout_s)
        broken = False
        try:
            yield sb
        except SandboxError:
            broken = True
            raise
        finally:
            self.checkin(sb, broken=broken)

    def _take(self, timeout_s: float | None) -> Sandbox:
        deadline = time.monotonic() + (self.acquire_timeout_s if timeout_s is None else timeout_s)
        with self._cond:
            while True:
                if self._closed:
                    raise SandboxError("the pool is closed")
                while self._idle:
                    sb = self._idle.pop()
                    if not sb.closed:
                        return sb
                    self._alive -= 1
                if self._alive < self.max_size:
                    self._alive += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PoolExhausted(f"all {self.max_size} sandboxes of {self.image} stayed busy; raise max_size "
                                        "or release sandboxes (use pool.acquire as a context manager)")
                self._cond.wait(left)
        try:
            return self._create()
        except BaseException:
            with self._cond:
                self._alive -= 1
                self._cond.notify()
            raise


_LIVE_POOLS: "weakref.WeakSet[SandboxPool]" = weakref.WeakSet()
_SHARED: dict[tuple[Backend, str], SandboxPool] = {}  # live resources, not a cache: closed at exit
_SHARED_LOCK = threading.Lock()


def shared_pool(backend: Backend, image: str, **kwargs: Any) -> SandboxPool:
    """One pool per (backend, image) in this process, created on first use and closed at exit."""
    key = (backend, image)  # the backend object itself (hashed by identity), never its reusable id()
    with _SHARED_LOCK:
        pool = _SHARED.get(key)
        if pool is None or pool._closed:
            pool = _SHARED[key] = SandboxPool(backend, image, **kwargs)
        return pool


def close_shared_pools() -> None:
    """Close every pool still open in this process (registered with ``atexit``)."""
    with _SHARED_LOCK:
        _SHARED.clear()
    for pool in list(_LIVE_POOLS):
        try:
            pool.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit; the reaper covers the rest
            pass


atexit.register(close_shared_pools)


def _forget_pools_after_fork() -> None:
    """A forked child (a subprocess vector env) must not use, nor close at exit, its parent's sandboxes: they
    are the parent's containers, driven through the parent's connections. The child starts its own."""
    global _SHARED_LOCK
    _SHARED.clear()
    _LIVE_POOLS.clear()
    _SHARED_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_after_fork)
