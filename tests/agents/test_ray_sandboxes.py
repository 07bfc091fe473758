"""A Ray worker's sandboxes die with it: SIGKILL the worker while a command runs in its SWE sandbox.

The first action of the first attempt starts ``sleep <marker>`` in the sandbox; once that process
runs, the test kills the worker process. No cleanup code of ours can run, yet the sandbox's processes
(and with Docker, its containers) must be gone within the lifetime rule's 10 s, and the episode must
be re-run on the restarted worker and succeed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest

ray = pytest.importorskip("ray")

from rlvr.agents.base import OracleAgent  # noqa: E402
from rlvr.agents.ray_rollout import RayExecutor  # noqa: E402
from rlvr.agents.rollout import infra_failure  # noqa: E402
from rlvr.envs.swe.sandbox import owner_label  # noqa: E402
from rlvr.envs.swe.testing import leaked_containers, require_bwrap, require_docker  # noqa: E402

pytestmark = pytest.mark.slow
DEADLINE_S = 10.0


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def _sleepers(marker: str) -> list[int]:
    import subprocess

    out = subprocess.run(["pgrep", "-f", f"^sleep {marker}$"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


class SleepFirst:
    """The oracle, except that the very first action starts ``sleep <marker>`` in the sandbox."""

    model_id = "oracle"

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.started: float | None = None

    def bind(self, env):
        inner, outer = OracleAgent().bind(env), self

        class Bound:
            def act(self, messages):
                if outer.started is None:
                    outer.started = time.monotonic()
                    return ('<tool_call>{"name": "bash", "arguments": {"command": "sleep %s"}}</tool_call>'
                            % outer.marker)
                return inner.act(messages)

        return Bound()


@pytest.mark.parametrize("backend", [pytest.param("docker", marks=pytest.mark.docker), "bwrap"])
def test_worker_killed_mid_command_leaves_no_sandbox(ray_session, backend):
    docker = require_docker() if backend == "docker" else None
    if backend == "bwrap":
        require_bwrap()
    kw = {"backend": backend, "pool_size": 1, "command_timeout_s": 120, "max_turns": 6}
    marker = f"{100 + uuid.uuid4().int % 800}.{os.getpid()}"
    with RayExecutor(workers=1, envs_per_worker=1, resources_per_env={}) as ex:
        warm = ex.rollout("rlvr/SWE-v0", OracleAgent(), episodes=1, env_kwargs=kw)
        assert infra_failure(warm[0]) is None
        (worker,) = ex.placed_workers()
        label = owner_label(worker["pid"])
        agent = SleepFirst(marker)
        killed: list[float] = []

        def kill_when_running() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                running = _sleepers(marker)
                if running or (agent.started is not None and time.monotonic() - agent.started > 5):
                    os.kill(worker["pid"], signal.SIGKILL)
                    killed.append(time.monotonic())
                    return
                time.sleep(0.1)

        killer = threading.Thread(target=kill_when_running, daemon=True)
        killer.start()
        (traj,) = ex.rollout("rlvr/SWE-v0", agent, episodes=1, env_kwargs=kw)
        killer.join(5)
        assert killed, "the sleep never started in the sandbox"
        while (_sleepers(marker) or (docker and leaked_containers(docker, label))) and \
                time.monotonic() - killed[0] < DEADLINE_S:
            time.sleep(0.2)
        assert _sleepers(marker) == []
        if docker is not None:
            assert leaked_containers(docker, label) == []
    assert traj.reset_info["attempt"] == 2 and traj.reset_info["failed_attempts"][0]["kind"] == "worker_died"
    assert infra_failure(traj) is None and traj.terminated
