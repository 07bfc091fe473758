"""The warm sandbox pool: reuse, thread safety, replacement of dead sandboxes, limits."""

from __future__ import annotations

import threading

import pytest

from rlvr.envs.swe import images
from rlvr.envs.swe.errors import PoolExhausted, SandboxError, SandboxLost
from rlvr.envs.swe.pool import SandboxPool
from rlvr.envs.swe.sandbox import Backend, Sandbox
from rlvr.envs.swe.testing import leaked_containers, require_docker
from rlvr.errors import ConfigError

pytestmark = pytest.mark.docker
TREE = {"mod.py": "X = 1\n", "tests/test_mod.py": "from mod import X\n\ndef test_x():\n    assert X == 1\n"}


@pytest.fixture(scope="module")
def backend():
    return require_docker()


@pytest.fixture(scope="module")
def image(backend):
    return images.ensure_env_image(backend.client)


def load(sb: Sandbox) -> None:
    if sb.loaded_tree == "tree" and sb.prepared_commit:
        sb.reset()
    else:
        sb.load_tree(TREE, digest="tree")


def test_pool_reuses_warm_sandboxes(backend, image):
    with SandboxPool(backend, image, size=1, max_size=2) as pool:
        pool.warm()
        assert pool.idle == 1 and pool.stats.created == 1
        with pool.acquire(load) as sb:
            first = sb.id
            sb.exec("echo dirty > mod.py")
        with pool.acquire(load) as sb:
            assert sb.id == first  # same container, restored
            assert sb.read_file("/testbed/mod.py") == b"X = 1\n"
        assert pool.stats.created == 1 and pool.stats.acquired == 2
    assert leaked_containers(backend) == []


def test_dead_sandbox_is_replaced(backend, image):
    with SandboxPool(backend, image, size=1, max_size=1) as pool:
        with pool.acquire(load) as sb:
            dead = sb.id
        backend.client.api.kill(dead)  # dies while idle in the pool
        with pool.acquire(load) as sb:
            assert sb.id != dead and sb.exec("cat mod.py").output == "X = 1\n"
        assert pool.stats.replaced == 1 and pool.stats.prepare_failures == 1
    assert leaked_containers(backend) == []


def test_error_inside_block_marks_sandbox_broken(backend, image):
    with SandboxPool(backend, image, size=1, max_size=1) as pool:
        with pytest.raises(SandboxLost):
            with pool.acquire(load) as sb:
                first = sb.id
                raise SandboxLost("simulated")
        with pool.acquire(load) as sb:
            assert sb.id != first
    assert leaked_containers(backend) == []


def test_pool_is_thread_safe_and_bounded(backend, image):
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    with SandboxPool(backend, image, size=2, max_size=2) as pool:
        active = {"now": 0, "peak": 0}
        lock = threading.Lock()

        def worker(i: int) -> None:
            try:
                for _ in range(3):
                    with pool.acquire(load) as sb:
                        with lock:
                            active["now"] += 1
                            active["peak"] = max(active["peak"], active["now"])
                        out = sb.exec(f"echo {i} > mine && cat mine && cat mod.py").output
                        results.append((str(i), out))
                        with lock:
                            active["now"] -= 1
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(results) == 12 and all(out == f"{i}\nX = 1\n" for i, out in results)
        assert active["peak"] <= 2 and pool.stats.created <= 2
    assert leaked_containers(backend) == []


def test_acquire_times_out_when_exhausted(backend, image):
    with SandboxPool(backend, image, size=0, max_size=1) as pool:
        held = pool.checkout()
        with pytest.raises(PoolExhausted, match="stayed busy"):
            pool.checkout(timeout_s=0.2)
        pool.checkin(held)
        with pytest.raises(SandboxError, match="not leased"):
            pool.checkin(held)


def test_pool_config_validation(backend, image):
    with pytest.raises(ConfigError, match="max_size"):
        SandboxPool(backend, image, size=3, max_size=2)
    with pytest.raises(ConfigError, match="size must be >= 0"):
        SandboxPool(backend, image, size=-1)


class _FlakyBackend(Backend):
    """Creates sandboxes of a real backend, but the first prepare of each fails."""

    name = "flaky"

    def __init__(self, inner):
        self.inner = inner

    def create(self, image, config=None):
        return self.inner.create(image, config)


def test_prepare_failures_give_up_after_max_attempts(backend, image):
    def always_fail(sb):
        raise SandboxLost("cannot prepare")

    with SandboxPool(_FlakyBackend(backend), image, size=1, max_size=1, max_attempts=2) as pool:
        with pytest.raises(SandboxError, match="in 2 attempts"):
            pool.checkout(always_fail)
        assert pool.stats.prepare_failures == 2
    assert leaked_containers(backend) == []
