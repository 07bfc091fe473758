"""rlvr/SWE-v0 served over OpenEnv: the sandboxes live and die on the server's side; the client only sends text."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("openenv")
from rlvr.envs.swe.sandbox import owner_label  # noqa: E402
from rlvr.envs.swe.testing import leaked_containers, require_bwrap, require_docker  # noqa: E402
from rlvr.integrations.openenv import RemoteEnv  # noqa: E402


def _serve_swe(*extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlvr.cli", "serve", "rlvr/SWE-v0", "--port", "0", "-e", "pool_size=1",
         "-e", "command_timeout_s=20", "-e", "test_timeout_s=60", "-e", "max_turns=12", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    line = proc.stdout.readline()
    url = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
    if not url:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        pytest.fail(f"unexpected server output: {line!r}")
    return proc, url.group(1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    proc.stdout.close()


def _play_oracle(env: RemoteEnv) -> tuple[float, dict]:
    total, done = 0.0, False
    while not done:
        _, r, term, trunc, info = env.step(env.oracle_action())
        total, done = total + r, term or trunc
    return total, info


@pytest.mark.docker
def test_swe_sandboxes_stay_with_the_server():
    backend = require_docker()
    proc, url = _serve_swe()
    try:
        server_owner = owner_label(proc.pid)
        # this process may already hold pooled sandboxes of earlier tests: the client must add none
        client_before = set(leaked_containers(backend))
        env = RemoteEnv(url, connect_timeout_s=60, message_timeout_s=300)
        try:
            env.reset(seed=0)
            assert leaked_containers(backend, server_owner), "the session's sandbox runs under the server process"
            assert set(leaked_containers(backend)) <= client_before  # none belongs to this (client) process
            total, info = _play_oracle(env)
            assert info["success"] is True and total > 0
        finally:
            env.close()
        assert set(leaked_containers(backend)) <= client_before  # the warm pool stays with the server
        os.killpg(proc.pid, signal.SIGKILL)  # the server dies: its sandboxes die with their driver
        proc.wait(timeout=30)
        deadline = time.monotonic() + 60
        while leaked_containers(backend, server_owner) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert leaked_containers(backend, server_owner) == []
    finally:
        _stop(proc)


@pytest.mark.slow
def test_swe_over_openenv_with_bwrap_sandboxes():
    """The same episode on a machine without Docker: the bubblewrap sandboxes are the server's children."""
    require_bwrap()
    proc, url = _serve_swe("-e", "backend=bwrap")
    try:
        env = RemoteEnv(url, connect_timeout_s=60, message_timeout_s=300)
        try:
            _, reset_info = env.reset(seed=0)
            assert reset_info["task_id"]
            total, info = _play_oracle(env)
            assert info["success"] is True and total > 0 and info["resolved"]
        finally:
            env.close()
    finally:
        _stop(proc)
