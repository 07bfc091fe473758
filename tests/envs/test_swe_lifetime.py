"""Sandboxes die with their driver: a SIGKILL mid-episode leaves no container and no process behind.

The driver runs in a child process, starts an SWE episode and a long command inside the sandbox, and
is killed with SIGKILL while that command runs: no cleanup code of ours can run. Its containers must
be gone within :data:`DEADLINE_S` with no manual step (the attached stdin is the container's
lifeline), and a bubblewrap driver must leave no process and, once a new backend starts, no directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from rlvr.envs.swe import images
from rlvr.envs.swe.sandbox import LABEL_MANAGED, LABEL_OWNER, SandboxConfig, reap_leaked
from rlvr.envs.swe.testing import leaked_containers, require_bwrap, require_docker

DEADLINE_S = 10.0  # the bound: zero containers of the dead driver within 10 s

DRIVER = textwrap.dedent("""
    import json, sys
    from rlvr.envs.swe.env import SWEEnv
    from rlvr.envs.swe.sandbox import SandboxConfig, owner_label
    backend, transport, marker = sys.argv[1], sys.argv[2], sys.argv[3]
    kw = {"backend": backend, "max_turns": 8, "command_timeout_s": 120, "test_timeout_s": 120, "pool_size": 1}
    if backend == "docker":
        kw["sandbox"] = SandboxConfig(transport=transport, command_timeout_s=120)
    env = SWEEnv(**kw)
    obs, info = env.reset(seed=0)
    print(json.dumps({"owner": owner_label(), "task": info["task_id"]}), flush=True)
    cmd = "sleep %s & sleep %s; echo done" % (marker, marker)
    env.step('<tool_call>{"name": "bash", "arguments": {"command": "%s"}}</tool_call>' % cmd)
    print("the command finished: the test should have killed this driver first", flush=True)
""")


def _start_driver(backend: str, transport: str, marker: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, backend, transport, marker], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail(f"driver did not start: {proc.stderr.read()[-2000:]}")
    return proc, json.loads(line)["owner"]


def _sleepers(marker: str) -> list[int]:
    """Pids of host processes running ``sleep <marker>`` (bubblewrap shares the host's process table)."""
    out = subprocess.run(["pgrep", "-f", f"^sleep {marker}$"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _wait_until(predicate, timeout_s: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if predicate():
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


@pytest.fixture(scope="module")
def docker_backend():
    backend = require_docker()
    images.ensure_env_image(backend.client)
    return backend


@pytest.mark.docker
@pytest.mark.parametrize("transport", ["attach", "exec"])
def test_sigkilled_driver_leaves_no_container(docker_backend, transport):
    marker = str(3000 + os.getpid() % 1000)
    proc, owner = _start_driver("docker", transport, marker)
    try:
        running = _wait_until(lambda: len(leaked_containers(docker_backend, owner)) >= 1, 30)
        assert running is not None, "the driver's sandbox never showed up"
        containers = docker_backend.client.containers.list(
            filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_OWNER}={owner}"]})
        volumes = [m["Name"] for c in containers for m in c.attrs["Mounts"] if m["Type"] == "volume"]
        top = containers[0].top()  # the long command is running inside
        assert any(marker in " ".join(p) for p in top["Processes"]) or _wait_until(
            lambda: any(marker in " ".join(p) for p in containers[0].top()["Processes"]), 10) is not None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    gone = _wait_until(lambda: leaked_containers(docker_backend, owner) == [], DEADLINE_S)
    print(f"\n[lifetime] docker/{transport}: containers of the SIGKILLed driver gone after "
          f"{gone if gone is None else round(gone, 2)} s (bound {DEADLINE_S:g} s)")
    assert gone is not None, f"containers of a dead driver still up {DEADLINE_S:g} s after SIGKILL"
    import docker.errors

    for name in volumes:  # the work tree's volume goes with its container
        with pytest.raises(docker.errors.NotFound):
            docker_backend.client.volumes.get(name)


def _dead_owner() -> str:
    return subprocess.run([sys.executable, "-c", "from rlvr.envs.swe.sandbox import owner_label; print(owner_label())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _orphan(backend, image: str, owner: str) -> str:
    """A labelled container whose PID 1 ignores its stdin (made by other means, or by an older image)."""
    c = backend.client.containers.create(image, ["sleep", "300"], labels={LABEL_MANAGED: "1", LABEL_OWNER: owner},
                                         network_mode="none")
    c.start()
    return c.id


@pytest.mark.docker
def test_reaper_still_removes_containers_that_ignore_their_lifeline(docker_backend):
    dead = _dead_owner()
    cid = _orphan(docker_backend, images.ensure_env_image(docker_backend.client), dead)
    assert leaked_containers(docker_backend, dead) == [cid]
    assert cid in reap_leaked(docker_backend.client)
    assert leaked_containers(docker_backend, dead) == []


@pytest.mark.docker
def test_a_new_pool_reaps_containers_of_dead_owners(docker_backend):
    from rlvr.envs.swe.pool import SandboxPool

    image = images.ensure_env_image(docker_backend.client)
    dead = _dead_owner()
    cid = _orphan(docker_backend, image, dead)
    pool = SandboxPool(docker_backend, image, size=0)  # the backend is older than the orphan
    try:
        assert leaked_containers(docker_backend, dead) == [], cid
    finally:
        pool.close()


def test_sigkilled_bwrap_driver_leaves_no_process_and_its_directory_is_reaped():
    require_bwrap()
    marker = str(4000 + os.getpid() % 1000)
    before = set(Path(tempfile.gettempdir()).glob("rlvr-bwrap-*"))
    proc, owner = _start_driver("bwrap", "attach", marker)
    try:
        started = _wait_until(lambda: len(_sleepers(marker)) >= 2, 30)
        assert started is not None, "the long command never started inside the bwrap sandbox"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    gone = _wait_until(lambda: _sleepers(marker) == [], DEADLINE_S)
    print(f"\n[lifetime] bwrap: processes of the SIGKILLed driver gone after "
          f"{gone if gone is None else round(gone, 2)} s (bound {DEADLINE_S:g} s)")
    assert gone is not None, f"sandbox processes outlived their driver: {_sleepers(marker)}"
    left = {d for d in set(Path(tempfile.gettempdir()).glob("rlvr-bwrap-*")) - before
            if (d / "owner").exists() and (d / "owner").read_text() == owner}
    assert left, "the dead driver's sandbox directory should still be there before a new backend starts"
    require_bwrap(config=SandboxConfig())  # a new backend reaps directories of dead owners
    assert not any(d.exists() for d in left)
