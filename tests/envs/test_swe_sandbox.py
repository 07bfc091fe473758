"""The SWE sandbox layer: isolation, limits, faults, file transfer, cleanup (Docker and bubblewrap)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from rlvr.envs.swe import images
from rlvr.envs.swe.errors import EngineUnavailable, ImageError, SandboxLost
from rlvr.envs.swe.sandbox import (
    ExecResult,
    SandboxConfig,
    make_tar,
    owner_label,
    read_tar,
    reap_leaked,
)
from rlvr.envs.swe.testing import leaked_containers, require_bwrap, require_docker
from rlvr.errors import ConfigError

TREE = {
    "pkg/__init__.py": "def add(a, b):\n    return a + b\n",
    "tests/test_pkg.py": "from pkg import add\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}


@pytest.fixture(scope="module")
def backend():
    return require_docker(config=SandboxConfig(command_timeout_s=20, pids=128, memory="512m"))


@pytest.fixture(scope="module")
def image(backend):
    return images.ensure_env_image(backend.client)


@pytest.fixture(scope="module")
def sb(backend, image):
    with backend.create(image) as s:
        s.load_tree(TREE)
        yield s
    assert leaked_containers(backend) == []


# --------------------------------------------------------------------------- pure helpers
def test_config_validation():
    with pytest.raises(ConfigError, match="network must be 'none'"):
        SandboxConfig(network="bridge")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 64m"):
        SandboxConfig(memory="10m")
    with pytest.raises(ConfigError, match="look like '512m'"):
        SandboxConfig(memory="lots")
    with pytest.raises(ConfigError, match="pids must be >= 16"):
        SandboxConfig(pids=2)


def test_tar_round_trip_and_path_safety():
    data = make_tar({"a/b.txt": b"x", "c.txt": "y"})
    files = read_tar(data)
    assert files["a/b.txt"] == b"x" and files["c.txt"] == b"y" and files["a"] is None
    with pytest.raises(ConfigError, match="inside its destination"):
        make_tar({"../evil": b"x"})


def test_exec_result_rendering():
    assert "exit code 2" in ExecResult(2, "boom").render()
    assert "timed out after 5 s" in ExecResult(124, "", timed_out=True).render(5)
    assert ExecResult(0, "").render() == "(no output)"


# --------------------------------------------------------------------------- docker
@pytest.mark.docker
def test_commands_run_as_unprivileged_user_without_network(sb):
    res = sb.exec("id -u; python3 -c 'import socket; socket.create_connection((\"1.1.1.1\", 53), timeout=2)'")
    assert res.output.splitlines()[0] == "1000"
    assert "Network is unreachable" in res.output and res.exit_code == 1


@pytest.mark.docker
def test_writes_outside_the_work_tree_fail(sb):
    res = sb.exec("touch /etc/evil; touch /usr/lib/evil; echo ok > /testbed/inside && cat /testbed/inside")
    assert res.output.count("Read-only file system") == 2
    assert res.output.strip().endswith("ok")


@pytest.mark.docker
def test_infinite_loop_times_out_and_sandbox_survives(sb):
    t = time.monotonic()
    res = sb.exec("while :; do :; done", timeout_s=1)
    assert res.timed_out and res.exit_code == 124 and time.monotonic() - t < 10
    assert sb.exec("echo alive").output.strip() == "alive"


@pytest.mark.docker
def test_fork_bomb_is_contained_then_reset(sb):
    t = time.monotonic()
    res = sb.exec(":(){ :|:& };:", timeout_s=3, max_output_bytes=2000)
    assert time.monotonic() - t < 15 and res.output_bytes > 0  # bounded by the pids limit and the timeout
    sb.reset()
    assert int(sb.exec("ps -e --no-headers | wc -l").output.strip()) < 10  # nothing of the bomb survives
    assert sb.exec("echo alive").output.strip() == "alive"


@pytest.mark.docker
def test_huge_output_is_truncated_and_killed(sb):
    t = time.monotonic()
    res = sb.exec("yes", max_output_bytes=4000)
    assert res.truncated and res.killed_for_output and len(res.output) < 5000
    assert "bytes of output omitted" in res.output and time.monotonic() - t < 10


@pytest.mark.docker
def test_memory_limit_kills_the_hog(sb):
    res = sb.exec("python3 -c 'x = bytearray(900 * 1024 * 1024); print(len(x))'", timeout_s=20)
    assert res.exit_code != 0 and "943718400" not in res.output


@pytest.mark.docker
def test_files_move_as_tar_archives(sb):
    sb.write_files({"notes/a.txt": "héllo\n"})
    assert sb.read_file("/testbed/notes/a.txt") == "héllo\n".encode()
    assert sb.exec("stat -c %U /testbed/notes/a.txt").output.strip() == "agent"
    with pytest.raises(FileNotFoundError):
        sb.read_file("/testbed/missing.txt")


@pytest.mark.docker
def test_reset_restores_tree_and_kills_background_processes(sb):
    head = sb.prepared_commit
    sb.exec("echo junk > pkg/__init__.py; mkdir -p new && touch new/f; setsid sleep 300 >/dev/null 2>&1 < /dev/null & sleep 0.5")
    assert "sleep 300" in sb.exec("ps -eo args").output
    assert sb.diff()
    assert sb.reset() == head
    assert sb.diff() == ""
    assert "sleep 300" not in sb.exec("ps -eo args").output
    assert sb.exec("python3 -m pytest -q -p no:cacheprovider").exit_code == 0


@pytest.mark.docker
def test_load_tree_is_deterministic(backend, image, sb):
    with backend.create(image) as other:
        assert other.load_tree(TREE) == sb.load_tree(TREE)


@pytest.mark.docker
def test_fingerprint_tracks_content(sb):
    sb.reset()
    before = sb.fingerprint()
    for _ in range(3):  # same-size rewrites within one second must still be seen (racy-git timestamps)
        sb.write_files({"pkg/__init__.py": "def add(a, b):\n    return a - b\n"})
        changed = sb.fingerprint()
        sb.write_files({"pkg/__init__.py": TREE["pkg/__init__.py"]})
        assert changed != before and sb.fingerprint() == before


@pytest.mark.docker
def test_killed_container_raises_sandbox_lost(backend, image):
    s = backend.create(image)
    backend.client.api.kill(s.id)
    with pytest.raises(SandboxLost):
        s.exec("true")
    assert s.broken and not s.alive()
    s.close()
    assert s.id not in leaked_containers(backend)


@pytest.mark.docker
def test_missing_image_is_a_clear_error(backend):
    with pytest.raises(ImageError, match="does not exist"):
        backend.create("rlvr-swe-does-not-exist:1")


@pytest.mark.docker
def test_unreachable_engine_is_engine_unavailable(monkeypatch):
    import docker

    client = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41", timeout=2)
    with pytest.raises(EngineUnavailable, match="provision.sh"):
        require_docker_like(client)


def require_docker_like(client):
    from rlvr.envs.swe.sandbox import DockerBackend

    return DockerBackend(client=client, reap=False)


@pytest.mark.docker
def test_image_layers_are_cached_by_content(backend, image):
    assert images.ensure_env_image(backend.client) == image  # no rebuild, same tag
    inst = images.build_instance_image(backend.client, image, "demo-1", TREE)
    assert inst.startswith("rlvr-swe-inst:demo-1-")
    assert images.build_instance_image(backend.client, image, "demo-1", TREE) == inst
    with backend.create(inst) as s:
        s.prepared_commit = s.head()
        assert s.exec("python3 -m pytest -q -p no:cacheprovider").exit_code == 0
        assert s.exec("git log --oneline | wc -l").output.strip() == "1"  # no history to leak


CRASHER = textwrap.dedent("""
    import os, sys
    from rlvr.envs.swe.sandbox import DockerBackend
    from rlvr.envs.swe.pool import SandboxPool
    pool = SandboxPool(DockerBackend(reap=False), sys.argv[1], size=2)
    pool.warm()
    pool.checkout()
    from rlvr.envs.swe.sandbox import owner_label
    print(owner_label(), flush=True)
    os.kill(os.getpid(), 9)  # crash without any cleanup
""")


@pytest.mark.docker
def test_containers_of_crashed_processes_remove_themselves(backend, image):
    proc = subprocess.run([sys.executable, "-c", CRASHER, image], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    owner = proc.stdout.strip().splitlines()[-1]
    assert owner != owner_label()
    deadline = time.monotonic() + 10
    while leaked_containers(backend, owner) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leaked_containers(backend, owner) == []  # the crash leaked nothing: no reaper needed
    reap_leaked(backend.client)  # and the reaper finds nothing of that owner to do


# --------------------------------------------------------------------------- bubblewrap
@pytest.fixture(scope="module")
def bw():
    backend = require_bwrap(config=SandboxConfig(command_timeout_s=20))
    with backend.create() as s:
        s.load_tree(TREE)
        yield s


def test_bwrap_same_interface(bw):
    assert bw.exec("python3 -m pytest -q -p no:cacheprovider").exit_code == 0
    res = bw.exec("id -u; touch /etc/evil; python3 -c 'import socket; socket.create_connection((\"1.1.1.1\", 53), timeout=2)'")
    assert res.output.splitlines()[0] == "1000"
    assert "Read-only file system" in res.output
    assert "Network is unreachable" in res.output
    assert bw.exec("sleep 10", timeout_s=1).timed_out
    bw.write_files({"pkg/__init__.py": "def add(a, b):\n    return 0\n"})
    assert bw.read_file("/testbed/pkg/__init__.py").endswith(b"return 0\n")
    assert "pkg/__init__.py" in bw.diff()
    bw.reset()
    assert bw.diff() == ""


@pytest.mark.docker
def test_exec_transport_has_the_same_behaviour(backend, image):
    cfg = SandboxConfig(transport="exec", command_timeout_s=10)
    with backend.create(image, cfg) as s:
        head = s.load_tree(TREE)
        res = s.exec("echo out; echo err >&2; exit 3")
        assert res.exit_code == 3 and "out" in res.output and "err" in res.output
        assert s.exec("sleep 5", timeout_s=0.5).timed_out
        s.write_files({"x.txt": "1"})
        assert s.reset() == head and s.diff() == ""
    with pytest.raises(ConfigError, match="transport"):
        SandboxConfig(transport="ssh")  # type: ignore[arg-type]
